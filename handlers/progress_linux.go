package handlers

import (
	"net"
	"syscall"
)

// tcpNotSentLowat is TCP_NOTSENT_LOWAT from linux/tcp.h; package syscall does not define it.
const tcpNotSentLowat = 0x19

// limitUnsent caps the bytes c's socket holds unsent at unsentLowWater (see progressChunk), so a
// blocked write resumes as soon as the client has taken a little, and its progress is seen.
// In-flight data is not limited, so fast clients keep their throughput. Best effort: a
// connection that is not a TCP socket is left as it is.
func limitUnsent(c net.Conn) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return
	}
	_ = raw.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpNotSentLowat, unsentLowWater)
	})
}
