package handlers

import (
	"testing"
	"testing/synctest"
	"time"
)

// A linger nobody wakes runs out wsLinger after it began, whatever the phase of the clock's timer;
// one the writer leaves (finish) is not ended later.
func TestLingerClockRunsOut(t *testing.T) {
	t.Parallel()
	for _, offset := range []time.Duration{0, time.Millisecond, wsLinger / 2, wsLinger - time.Millisecond, wsLinger, wsLinger + time.Millisecond} {
		synctest.Test(t, func(t *testing.T) {
			l := newLingerClock()
			defer l.stop()
			time.Sleep(offset) // the linger begins at this point of the timer's period
			at := l.start()
			began := time.Now()
			<-l.kick
			if took := time.Since(began); took != wsLinger || !l.ranOut(at) {
				t.Fatalf("offset %v: the linger ended after %v (ran out: %v), want %v", offset, took, l.ranOut(at), wsLinger)
			}
			l.finish()

			// A linger the writer leaves early is not ended by the clock.
			at = l.start()
			time.Sleep(wsLinger / 3)
			l.finish()
			time.Sleep(3 * wsLinger)
			select {
			case <-l.kick:
				t.Fatalf("offset %v: a linger the writer had left was ended", offset)
			default:
			}
			if l.ranOut(at) {
				t.Fatalf("offset %v: a linger the writer had left is marked as ended by the clock", offset)
			}
		})
	}
}

// A token the clock sent for a linger the writer had already left (it was woken at the same
// moment) is stale: the next linger drains it and still lasts wsLinger.
func TestLingerClockStaleToken(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := newLingerClock()
		defer l.stop()
		at := l.start()
		time.Sleep(wsLinger) // the clock ends this linger; the writer, woken otherwise, ignores it
		synctest.Wait()
		if !l.ranOut(at) {
			t.Fatal("the clock did not end the first linger")
		}
		l.finish()
		at = l.start()
		began := time.Now()
		<-l.kick
		if took := time.Since(began); took != wsLinger || !l.ranOut(at) {
			t.Fatalf("the next linger ended after %v, want %v: a stale token ended it", took, wsLinger)
		}
	})
}

// Once stopped, the clock's timer is not armed, and a check that was running meanwhile does not
// re-arm it: a writer run leaves no timer behind.
func TestLingerClockStops(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := newLingerClock()
		l.start()
		time.Sleep(wsLinger / 2)
		l.stop()
		if l.timer.Stop() {
			t.Fatal("the timer was still armed after stop")
		}
		l.check() // as if it had fired just before stop
		if l.timer.Stop() {
			t.Fatal("a check after stop re-armed the timer")
		}
	})
}
