package handlers

import (
	crand "crypto/rand"
	"encoding/hex"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/eventgate/eventgate/streams"
)

// connInfo is what the open and close log lines of one streaming connection share. Owned by the
// connection's writer goroutine.
type connInfo struct {
	s         *Server
	id        string
	transport string
	clientIP  string
	subject   string
	opened    time.Time
	sent      int
	release   func() // frees the connection's slots; nil when none were taken
}

// openConn logs a connection's start and returns its record.
func (s *Server) openConn(c *gin.Context, transport string, f streams.Filter, start streams.Start) *connInfo {
	info := &connInfo{
		s: s, id: c.GetString(ctxConnID), transport: transport, clientIP: c.ClientIP(),
		subject: c.GetString(ctxSubject), opened: time.Now(),
	}
	if info.id == "" {
		info.id = connID()
	}
	if v, ok := c.Get(ctxRelease); ok {
		info.release, _ = v.(func())
		c.Set(ctxOwned, true)
	}
	resume := "now"
	if !start.Live {
		resume = start.After.String()
	}
	s.log.Info("connection opened", "conn", info.id, "transport", transport, "client_ip", info.clientIP,
		"subject", info.subject, "topics", f.TopicStrings(), "resume", resume)
	return info
}

// close frees the connection's slots and logs its end. Call once.
func (i *connInfo) close(reason string) {
	if i.release != nil {
		i.release()
	}
	i.s.log.Info("connection closed", "conn", i.id, "transport", i.transport, "client_ip", i.clientIP,
		"subject", i.subject, "duration", time.Since(i.opened).Round(time.Millisecond).String(),
		"events_sent", i.sent, "reason", reason)
}

// Keys of values that middleware leaves on the gin context for the streaming handlers.
const (
	ctxSubject = "eventgate.subject"
	ctxRelease = "eventgate.release"
)

func connID() string {
	var b [8]byte
	_, _ = crand.Read(b[:])
	return hex.EncodeToString(b[:])
}
