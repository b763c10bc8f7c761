package handlers

import "sync/atomic"

// streamWake is an SSE stream's one wake-up. Every source — the subscription
// (SubscribeOptions.Wake), the heartbeat, the drain, the token's expiry, the client's departure,
// a catch-up retry — sets its bit in due and sends on ch (capacity 1, never blocking); the pump
// parks on ch alone and then takes every bit set. Parking in a select over six channels, as the
// pump did, cost about a tenth of the server's CPU at 2,000 subscribers × 500 events/s: each
// wake-up locked and queued on every channel, the drain's shared by every stream
// (docs/performance.md). Safe for concurrent use; set never blocks, so the hub may call it
// with its lock held.
type streamWake struct {
	ch  chan struct{}
	due atomic.Uint32
}

// The reasons a stream's pump is woken.
const (
	wakeEvents   uint32 = 1 << iota // the subscription may have events
	wakeRetry                       // a failed catch-up read is due again
	wakeBeat                        // the heartbeat is due
	wakeDrain                       // the server started draining
	wakeDrainNow                    // this stream's point in the drain spread has come
	wakeExpired                     // the token expired
	wakeGone                        // the client left
)

func newStreamWake() *streamWake { return &streamWake{ch: make(chan struct{}, 1)} }

// set records why and wakes the pump if it is not already due to wake.
func (w *streamWake) set(why uint32) {
	w.due.Or(why)
	select {
	case w.ch <- struct{}{}:
	default:
	}
}

// events is set for the subscription's Wake.
func (w *streamWake) events() { w.set(wakeEvents) }

// take returns and clears every reason set since the last take.
func (w *streamWake) take() uint32 { return w.due.Swap(0) }
