package handlers

import (
	"io"
	"net"
	"testing"
	"testing/synctest"
	"time"
)

// The frames of one batch share a write deadline (progressConn skips a deadline it was given
// already), and a corked batch larger than corkMaxHeld leaves in several writes. A client that
// reads steadily — a chunk every 300 ms with a 1 s timeout — must not be cut at a write boundary:
// a write that starts just before the shared deadline, after the previous one completed thanks
// to the client's reading, has not seen the client stall for a timeout.
func TestSharedDeadlineSteadyReaderAttack(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		writes int           // writes under one deadline
		size   int           // bytes each
		chunk  int           // bytes the client reads each time
		every  time.Duration // between the client's reads
	}{
		// Each 32 KiB write completes at the client's 4th read: at 0.9 s; the next starts with
		// 0.1 s of the shared 1 s deadline left and the client's next read 0.3 s away.
		{"write completes just before the deadline", 6, 32 << 10, 8 << 10, 300 * time.Millisecond},
		{"many small frames", 40, 4 << 10, 8 << 10, 450 * time.Millisecond},
		{"one chunk per write", 8, 8 << 10, 8 << 10, 900 * time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				const timeout = time.Second
				a, b := net.Pipe()
				defer a.Close()
				defer b.Close()
				readerDone := make(chan int64)
				go func() { // the client: one chunk every tc.every, steadily
					var got int64
					buf := make([]byte, tc.chunk)
					for {
						n, err := io.ReadFull(b, buf)
						got += int64(n)
						if err != nil {
							readerDone <- got
							return
						}
						time.Sleep(tc.every)
					}
				}()
				pc := &progressConn{Conn: a}
				deadline := time.Now().Add(timeout) // one per batch, as wsConn.deliver asks
				frame := make([]byte, tc.size)
				failed := false
				for i := range tc.writes {
					_ = pc.SetWriteDeadline(deadline)
					if _, err := pc.Write(frame); err != nil {
						t.Errorf("write %d of %d failed at %v although the client reads %d bytes every %v: %v",
							i+1, tc.writes, time.Since(deadline.Add(-timeout)), tc.chunk, tc.every, err)
						failed = true
						break
					}
				}
				a.Close()
				if got, want := <-readerDone, int64(tc.writes*tc.size); got != want && !failed {
					t.Errorf("client read %d bytes, want %d", got, want)
				}
			})
		})
	}
}

// The other side of the shared deadline: a client that stops reading after a write completed is
// still cut, within two timeouts of its last read, however many writes share the deadline.
func TestSharedDeadlineStalledReaderCutAttack(t *testing.T) {
	t.Parallel()
	for _, readFirst := range []int{0, 1, 3} { // writes the client reads before it stalls
		synctest.Test(t, func(t *testing.T) {
			const timeout, size = time.Second, 8 << 10
			a, b := net.Pipe()
			defer b.Close()
			lastRead := make(chan time.Time, 1)
			go func() {
				buf := make([]byte, size)
				at := time.Now()
				for range readFirst {
					if _, err := io.ReadFull(b, buf); err != nil {
						break
					}
					at = time.Now()
					time.Sleep(300 * time.Millisecond)
				}
				lastRead <- at // and reads nothing more
			}()
			pc := &progressConn{Conn: a}
			deadline := time.Now().Add(timeout)
			var err error
			for range readFirst + 5 {
				_ = pc.SetWriteDeadline(deadline)
				if _, err = pc.Write(make([]byte, size)); err != nil {
					break
				}
			}
			a.Close()
			last := <-lastRead
			if err == nil {
				t.Fatalf("after %d reads the client stalled, yet every write succeeded", readFirst)
			}
			if d := time.Since(last); d > 2*timeout {
				t.Errorf("after %d reads: cut %v after the client's last read, want ≤ %v", readFirst, d, 2*timeout)
			}
		})
	}
}
