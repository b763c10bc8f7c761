package handlers

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/streams"
	"github.com/eventgate/eventgate/telemetry"
)

// connInfo is what the open and close log lines of one streaming connection share. Owned by the
// connection's writer goroutine.
type connInfo struct {
	s         *Server
	id        string
	transport telemetry.Transport
	clientIP  string
	subject   string
	opened    time.Time
	sent      int
	slot      *slot // the connection's place under the caps; nil when none was taken

	// Metrics, resolved at open so that delivery does no label lookup.
	tm       *telemetry.Connections
	openedMS uint64 // opened in Unix ms: events appended since are live deliveries
	// resumePending: the connection asked for a position; the first successful read from the log
	// tells whether it resumed or needed a resync.
	resumePending bool
	// observeHTTP: the request's duration is observed at close (WebSocket), from started.
	observeHTTP bool
	httpStatus  int
	method      string
	route       string
	started     time.Time
}

// openConn logs a connection's start and returns its record.
func (s *Server) openConn(c *gin.Context, transport telemetry.Transport, f event.Filter, start streams.Start) *connInfo {
	info := &connInfo{s: s, transport: transport, subject: subjectOf(c), opened: time.Now()}
	info.slot = slotOf(c)
	if info.slot != nil {
		info.id, info.clientIP = info.slot.id, info.slot.ip
		setOwned(c)
	} else {
		info.id, info.clientIP = connID(), c.ClientIP()
	}
	info.tm = s.metrics.Connections(transport)
	info.openedMS = uint64(info.opened.UnixMilli())
	info.tm.Opened(start.Live)
	info.resumePending = !start.Live
	if transport == telemetry.WebSocket {
		info.observeLater(c, http.StatusSwitchingProtocols)
	}
	resume := "now"
	if !start.Live {
		resume = start.After.String()
	}
	s.log.Info("connection opened", "conn", info.id, "transport", string(transport), "client_ip", info.clientIP,
		"subject", info.subject, "topics", f.TopicStrings(), "resume", resume)
	return info
}

// delivered records a batch returned by the subscription's Next (before or as it is written) and
// the read error, if any: events sent, events delivered and their publish-to-delivery latency
// (only for events appended while the connection was open: a replay of history is not latency),
// the resume outcome, and store errors. Writer goroutine only; no allocation.
func (i *connInfo) delivered(evs []*event.Event, err error) {
	i.sent += len(evs)
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			i.s.metrics.StoreError(telemetry.StoreCatchUp)
		}
	} else if i.resumePending {
		i.resumePending = false
		i.tm.Resumed(len(evs) > 0 && evs[0].Control && evs[0].Type == streams.TypeResync)
	}
	var nowMS uint64 // read once per batch, and only when an event needs it
	var lags telemetry.Latencies
	n := 0
	for _, e := range evs {
		if e.Control {
			continue
		}
		n++
		if e.ID.MS >= i.openedMS {
			if nowMS == 0 {
				nowMS = uint64(time.Now().UnixMilli())
			}
			var lag uint64
			if nowMS > e.ID.MS { // the log's clock may be ahead of ours
				lag = nowMS - e.ID.MS
			}
			lags.Add(lag)
		}
	}
	i.tm.Latencies(&lags)
	if n > 0 {
		i.tm.Delivered(n)
	}
}

// observeLater marks a connection whose handler returns before the connection ends (a WebSocket
// after its upgrade, a hijacked SSE stream): its request duration is observed at close instead.
func (i *connInfo) observeLater(c *gin.Context, status int) {
	i.observeHTTP, i.httpStatus, i.method, i.route = true, status, c.Request.Method, c.FullPath()
	i.started = i.opened
	if t, ok := startedAt(c); ok {
		i.started = t
	}
	setObserveLater(c)
}

// close records and logs the connection's end, then frees its slots (so that once Server.Active
// has dropped, the metrics and the log line are written). Call once.
func (i *connInfo) close(reason telemetry.CloseReason) {
	i.tm.Closed(reason)
	if i.observeHTTP {
		i.s.metrics.ObserveRequest(i.method, i.route, i.httpStatus, time.Since(i.started))
	}
	i.s.log.Info("connection closed", "conn", i.id, "transport", string(i.transport), "client_ip", i.clientIP,
		"subject", i.subject, "duration", time.Since(i.opened).Round(time.Millisecond).String(),
		"events_sent", i.sent, "reason", string(reason))
	if i.slot != nil {
		i.slot.release()
	}
}

func connID() string {
	var b [8]byte
	_, _ = crand.Read(b[:])
	return hex.EncodeToString(b[:])
}
