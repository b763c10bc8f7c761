package handlers

import (
	"sync/atomic"
	"time"
)

// wsLinger is how long a writer that just delivered events waits for the next wake-up before it
// ends. Under load the next batch comes within it, and a writer started afresh would grow its
// stack again (7 % of the server's CPU at 10,000 x 20, where events come every 50 ms or later:
// docs/performance.md); an idle connection's writer, woken only for pings, never lingers.
const wsLinger = 250 * time.Millisecond

// lingerClock ends the lingers of one writer run. The writer parks on kick alone, which its
// wake-ups and the clock both send to: parking in a select over kick and a timer re-armed for every
// linger (each linger follows a delivery) was 8 % of the server's CPU at 2,000 subscribers × 200
// events/s. The clock's timer instead fires about every wsLinger while the run lasts, and ends a
// linger that has lasted wsLinger by then; a linger that began since is left for the next firing.
type lingerClock struct {
	kick  chan struct{} // capacity 1
	timer *time.Timer   // runs check
	at    atomic.Int64  // when the current linger began (monoNow); 0 while the writer is not lingering
	ended atomic.Int64  // the at of the last linger the clock ended
	done  atomic.Bool   // the writer run ended: the timer is not re-armed
}

func newLingerClock() *lingerClock {
	l := &lingerClock{kick: make(chan struct{}, 1)}
	l.timer = time.AfterFunc(time.Hour, l.check)
	l.timer.Reset(wsLinger) // armed after l.timer is set, which check reads
	return l
}

// processStart is the origin of monoNow.
var processStart = time.Now()

// monoNow is a monotonic clock reading in nanoseconds, never 0.
func monoNow() int64 { return int64(time.Since(processStart)) + 1 }

// start begins a linger and returns its mark. A token left in kick is stale: a wake-up sent during
// an earlier linger, which the writer has seen through w.again, or the clock's end of one the
// writer had left already. Writer only, before it publishes kick in w.kick.
func (l *lingerClock) start() int64 {
	select {
	case <-l.kick:
	default:
	}
	at := monoNow()
	l.at.Store(at)
	return at
}

// ranOut reports whether the clock ended the linger marked at. Writer only, after a token.
func (l *lingerClock) ranOut(at int64) bool { return l.ended.Load() == at }

// finish marks the writer as no longer lingering. Writer only.
func (l *lingerClock) finish() { l.at.Store(0) }

// check runs on the timer: it ends a linger that has lasted wsLinger (the compare-and-swap makes
// sure it is still the same linger) and re-arms for when the current one would.
func (l *lingerClock) check() {
	if l.done.Load() {
		return
	}
	next := wsLinger
	if at := l.at.Load(); at != 0 {
		if d := time.Duration(monoNow() - at); d < wsLinger {
			next = wsLinger - d
		} else if l.at.CompareAndSwap(at, 0) {
			l.ended.Store(at) // before the token: the writer sees it when it wakes
			nudge(l.kick)
		}
	}
	l.timer.Reset(next)
}

// stop ends the clock with its writer run. A check running meanwhile re-arms the timer once more;
// that firing sees done.
func (l *lingerClock) stop() {
	l.done.Store(true)
	l.timer.Stop()
}

// lingerWait waits for a token on kick, parked with 2 KiB of its stack in use: the collector
// halves the stack of a goroutine that uses under a quarter of it, so a writer parked shallow
// would lose the stack its delivery grew at every collection and copy it back at its next
// delivery (docs/performance.md). 2 KiB in use keeps an 8 KiB stack whole.
//
//go:noinline
func lingerWait(kick chan struct{}) {
	var pad [2 << 10]byte
	keepStack(&pad)
	<-kick
}

// keepStack makes its argument live on the caller's stack.
//
//go:noinline
func keepStack(*[2 << 10]byte) {}

// linger waits, after a delivery, for the next wake-up (true) or for the linger to run out
// (false), and returns with w.mu held. Tokens that are neither (stale ones, see start) are
// waited past.
func (w *wsConn) linger(l *lingerClock, at int64) bool {
	for {
		lingerWait(l.kick)
		w.mu.Lock()
		if w.again || w.stopped {
			return true
		}
		if l.ranOut(at) {
			return false
		}
		w.mu.Unlock()
	}
}
