package handlers

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/streams"
	"github.com/eventgate/eventgate/telemetry"
)

// sseHeaders are sent on every stream response (docs/api.md#server-sent-events). X-Accel-Buffering
// stops nginx from buffering the stream.
func sseHeaders(h http.Header) {
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
}

// appendFrame appends one SSE frame for e to b. The envelope JSON never contains a raw newline
// (JSON escapes them), so it fits on one data: line. No allocation beyond b's growth.
func appendFrame(b []byte, e *event.Event) []byte {
	b = append(b, "id: "...)
	b = e.ID.AppendTo(b)
	b = append(b, "\nevent: "...)
	b = append(b, e.Type...)
	b = append(b, "\ndata: "...)
	b = append(b, e.JSON...)
	return append(b, '\n', '\n')
}

func appendRetry(b []byte, d time.Duration) []byte {
	b = append(b, "retry: "...)
	b = strconv.AppendInt(b, d.Milliseconds(), 10)
	return append(b, '\n', '\n')
}

// shutdownFrame tells the client the server is restarting, then a jittered retry so clients do
// not reconnect as one wave.
func (s *Server) appendShutdown(b []byte) []byte {
	b = append(b, "event: shutdown\ndata: {\"type\":\"shutdown\"}\n\n"...)
	jitter := s.cfg.Retry + rand.N(s.cfg.Retry+time.Millisecond)
	return appendRetry(b, jitter)
}

// subscribe subscribes, waiting at most a few seconds for the hub's reader to start.
func (s *Server) subscribe(ctx context.Context, f event.Filter, start streams.Start) (*streams.Subscription, error) {
	return s.subscribeWith(ctx, f, start, streams.SubscribeOptions{})
}

// subscribeWith is subscribe with per-subscription options (Hub.SubscribeWith).
func (s *Server) subscribeWith(ctx context.Context, f event.Filter, start streams.Start, opts streams.SubscribeOptions) (*streams.Subscription, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	sub, err := s.hub.SubscribeWith(ctx, f, start, opts)
	if err != nil {
		return nil, fmt.Errorf("%w: the event log is not readable yet", streams.ErrUnavailable)
	}
	return sub, nil
}

// drainAfter is a random delay within DrainSpread, so clients do not reconnect as one wave.
func (s *Server) drainAfter() time.Duration {
	if s.cfg.DrainSpread <= 0 {
		return 0
	}
	return rand.N(s.cfg.DrainSpread)
}

// resumeStart reads the resume position: Last-Event-ID header first, then since, then
// last_event_id. Absent means live.
func resumeStart(c *gin.Context) (streams.Start, error) {
	v := c.GetHeader("Last-Event-ID")
	if v == "" {
		v = c.Query("since")
	}
	if v == "" {
		v = c.Query("last_event_id")
	}
	return streams.ParseStart(v)
}

// stream serves GET /api/v1/stream (docs/api.md#server-sent-events): one select loop over the
// request context, the drain signal, the heartbeat and the subscription.
func (s *Server) stream(c *gin.Context) {
	start, err := resumeStart(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	filter, err := s.queryFilter(c)
	if err == nil {
		filter, err = grantFilter(filter, principalOf(c))
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	w := c.Writer
	rc := http.NewResponseController(w)
	if s.isDraining() {
		s.reject(c, RejectDraining)
		// EventSource gives up for good on a non-200: answer 200 and ask it to come back later.
		sseHeaders(w.Header())
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(s.appendShutdown(appendRetry(nil, s.cfg.Retry)))
		_ = rc.Flush()
		return
	}
	ctx := c.Request.Context()
	wake := newStreamWake()
	sub, err := s.subscribeWith(ctx, filter, start, streams.SubscribeOptions{Wake: wake.events})
	if err != nil {
		if ctx.Err() == nil {
			s.reject(c, RejectStoreUnavailable)
			// The log reader has not started (the store is down since start-up). Answer 200 and
			// ask the client to come back: EventSource gives up for good on a non-200.
			sseHeaders(w.Header())
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write(appendRetry([]byte(": store unavailable\n"), s.cfg.Retry))
			_ = rc.Flush()
		}
		return
	}
	info := s.openConn(c, telemetry.SSE, filter, start)
	stopExpiry := tokenExpiry(principalOf(c), func() { wake.set(wakeExpired) }) // a no-op when auth is off
	sseHeaders(c.Writer.Header())
	first := appendRetry(nil, s.cfg.Retry)
	if start.Live {
		// An id-only block sets EventSource's lastEventId without firing an event, so a client
		// that drops before its first event still resumes from where it joined: nothing is lost.
		first = append(sub.Position().AppendTo(append(first, "id: "...)), '\n', '\n')
	}
	if sink, ok := hijack(c, first, s.abortCtx); ok {
		// The handler returns now; the stream lives on in two small goroutines of its own.
		info.observeLater(c, http.StatusOK)
		if p := principalOf(c); p != nil {
			// A slow reader inside one long write does not see the expiry: cut the write a
			// write timeout after it (an idle stream sends auth_expired at exp itself).
			stopCut := sink.cutAt(p.Expires.Add(s.cfg.WriteTimeout))
			stop := stopExpiry
			stopExpiry = func() { stop(); stopCut() }
		}
		go s.pump(sink, sub, wake, info, stopExpiry)
		return
	}
	s.pump(newWriterSink(c, first), sub, wake, info, stopExpiry)
}

// pump is a stream's writer: one loop over the client's departure, the drain signal, token
// expiry, the heartbeat and the subscription, all of which wake it through wake (streamWake: it
// parks on one channel, not a select over six). It owns sub, out and info, and ends them.
func (s *Server) pump(out sseSink, sub *streams.Subscription, wake *streamWake, info *connInfo, stopExpiry func()) {
	reason := telemetry.CloseClient
	heartbeat := time.AfterFunc(s.cfg.Heartbeat, func() { wake.set(wakeBeat) })
	stopGone := out.onGone(func() { wake.set(wakeGone) })
	stopDrain := afterFunc(s.drainCtx, func() { wake.set(wakeDrain) })
	var drainNow, retryRead *time.Timer
	defer func() {
		stopExpiry()
		heartbeat.Stop()
		stopGone()
		stopDrain()
		for _, t := range []*time.Timer{drainNow, retryRead} {
			if t != nil {
				t.Stop()
			}
		}
		sub.Close()
		out.close()
		info.close(reason)
	}()
	// The request's context ends when net/http lets go of a hijacked connection: store reads
	// during catch-up use a context of the stream's own.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	send := func(b []byte) bool {
		if err := out.write(b, s.cfg.WriteTimeout); err != nil {
			reason = telemetry.CloseWriteFailed
			switch {
			case s.aborted():
				reason = telemetry.CloseShutdown // CloseStreams closed the socket
			case out.cut():
				reason = telemetry.CloseAuthExpired // its token expired during a long write
			case errors.Is(err, os.ErrDeadlineExceeded):
				reason = telemetry.CloseWriteTimeout // the client stopped reading; it resumes with its last id
			}
			return false
		}
		return true
	}
	retryLater := func() {
		if retryRead == nil {
			retryRead = time.AfterFunc(time.Second, func() { wake.set(wakeRetry) })
		} else {
			retryRead.Reset(time.Second)
		}
	}
	deliver := func() bool {
		bp := frameBuffers.Get().(*[]byte)
		ep := eventSlices.Get().(*[]*event.Event)
		ok := s.deliver(ctx, sub, ep, bp, info, retryLater) && send(*bp)
		clear(*ep) // a pooled batch keeps no delivered event alive
		*bp, *ep = (*bp)[:0], (*ep)[:0]
		if cap(*bp) <= 64<<10 {
			frameBuffers.Put(bp)
		}
		eventSlices.Put(ep)
		return ok
	}

	for range wake.ch {
		due := wake.take()
		switch {
		case due&wakeGone != 0:
			if s.aborted() {
				reason = telemetry.CloseShutdown
			}
			return
		case due&wakeDrainNow != 0:
			send(s.appendShutdown(nil))
			reason = telemetry.CloseShutdown
			return
		case due&wakeExpired != 0:
			// The client reconnects with a fresh token and its last id
			// (docs/api.md#token-expiry-on-live-connections).
			send([]byte("event: auth_expired\ndata: {\"type\":\"auth_expired\"}\n\n"))
			reason = telemetry.CloseAuthExpired
			return
		}
		if due&wakeDrain != 0 && drainNow == nil {
			drainNow = time.AfterFunc(s.drainAfter(), func() { wake.set(wakeDrainNow) })
		}
		if due&wakeBeat != 0 {
			if !send([]byte(": ping\n\n")) {
				return
			}
			heartbeat.Reset(s.cfg.Heartbeat)
		}
		if due&(wakeEvents|wakeRetry) != 0 && !deliver() {
			return
		}
	}
}

// eventSlices holds the per-wake-up event batches, so an idle stream holds none.
var eventSlices = sync.Pool{New: func() any { s := make([]*event.Event, 0, 64); return &s }}

// deliver frames what the subscription has ready into buf. A store error while catching up keeps
// the stream open and schedules another attempt; false only when ctx ended.
func (s *Server) deliver(ctx context.Context, sub *streams.Subscription, events *[]*event.Event, buf *[]byte, info *connInfo, retryLater func()) bool {
	evs, err := sub.Next(ctx, (*events)[:0])
	*events = evs
	for _, e := range evs {
		*buf = appendFrame(*buf, e)
	}
	info.delivered(evs, err)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return false
		}
		s.log.Warn("catch-up read failed; retrying", "err", err)
		retryLater()
	}
	return true
}
