package handlers

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"testing/synctest"
	"time"
)

// armCounter counts the deadlines set on the socket under a progressConn.
type armCounter struct {
	net.Conn
	arms int
}

func (c *armCounter) SetWriteDeadline(t time.Time) error {
	c.arms++
	return c.Conn.SetWriteDeadline(t)
}

// A writer that sets a fresh deadline before every write re-arms the socket's deadline about once
// per quarter window, not once per write (the cost the 10,000-subscriber profile showed).
func TestProgressConnArmsLazily(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		go func() { _, _ = io.Copy(io.Discard, b) }()
		counter := &armCounter{Conn: a}
		pc := &progressConn{Conn: counter}
		const writes = 400 // 20 s of writes every 50 ms, with a 10 s window
		for range writes {
			_ = pc.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := pc.Write([]byte("data: x\n\n")); err != nil {
				t.Fatal(err)
			}
			time.Sleep(50 * time.Millisecond) // fake time: the pace of events
		}
		// One arm, then one per 2.5 s of the 20 s: 9.
		if counter.arms > 10 {
			t.Errorf("the socket's deadline was set %d times for %d writes; want ≤ 10", counter.arms, writes)
		}
	})
}

// A write to a client that reads nothing fails exactly one window after the deadline asked for
// was set, although the armed deadline kept from an earlier write fires before it.
func TestProgressConnKeptDeadlineStillExact(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		pc := &progressConn{Conn: a}
		_ = pc.SetWriteDeadline(time.Now().Add(10 * time.Second)) // armed for t=10s
		time.Sleep(2 * time.Second)
		start := time.Now()
		_ = pc.SetWriteDeadline(start.Add(10 * time.Second)) // kept armed at 10s; asked for 12s
		_, err := pc.Write([]byte("data: x\n\n"))            // nobody reads b
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("write: %v, want a deadline error", err)
		}
		if got := time.Since(start); got != 10*time.Second {
			t.Errorf("the write failed after %v, want exactly the 10s window", got)
		}
	})
}

// A deadline earlier than the armed one, and no deadline at all, are applied at once.
func TestProgressConnShorterAndNoDeadline(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		counter := &armCounter{Conn: a}
		pc := &progressConn{Conn: counter}
		_ = pc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		start := time.Now()
		_ = pc.SetWriteDeadline(start.Add(time.Second))
		if _, err := pc.Write([]byte("x")); !errors.Is(err, os.ErrDeadlineExceeded) || time.Since(start) != time.Second {
			t.Fatalf("write: %v after %v, want a deadline error after 1s", err, time.Since(start))
		}
		_ = pc.SetWriteDeadline(time.Time{})
		if counter.arms != 3 {
			t.Errorf("arms = %d, want 3 (10s, 1s, none)", counter.arms)
		}
	})
}
