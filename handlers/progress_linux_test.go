package handlers

import (
	"net"
	"syscall"
	"testing"
)

// TestLimitUnsent: limitUnsent sets TCP_NOTSENT_LOWAT on a TCP connection and leaves other
// connections alone.
func TestLimitUnsent(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	limitUnsent(c)
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var got int
	var gerr error
	_ = raw.Control(func(fd uintptr) { got, gerr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpNotSentLowat) })
	if gerr != nil || got != unsentLowWater {
		t.Fatalf("TCP_NOTSENT_LOWAT = %d (%v), want %d", got, gerr, unsentLowWater)
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	limitUnsent(a) // not a socket: nothing to do, no panic
}
