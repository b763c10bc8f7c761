package handlers

import (
	"time"

	"github.com/gin-gonic/gin"

	"github.com/eventgate/eventgate/auth"
)

// ctxKey is the type of the keys under which middleware leaves values on the gin context for the
// handlers after it. Unexported, so that no other package's c.Set can collide with them; read and
// write them only through the accessors below, which fix each key's value type.
type ctxKey string

const (
	keyStarted      ctxKey = "eventgate.started"       // time.Time the request began (observeHTTP)
	keyObserveLater ctxKey = "eventgate.observe_later" // bool: the connection observes the request
	keyPrincipal    ctxKey = "eventgate.principal"     // *auth.Principal (absent when auth is off)
	keySubject      ctxKey = "eventgate.subject"       // string: the principal's subject
	keySlot         ctxKey = "eventgate.slot"          // *slot: the connection's place under the caps
	keyOwned        ctxKey = "eventgate.owned"         // bool: a streaming handler took over the slot
	keyBody         ctxKey = "eventgate.body"          // *guardedBody (absent without a body)
)

// ctxValue returns the value under key as a T (T's zero value when it is of another type) and
// whether key was set at all.
func ctxValue[T any](c *gin.Context, key ctxKey) (T, bool) {
	v, ok := c.Get(key)
	t, _ := v.(T)
	return t, ok
}

func setStarted(c *gin.Context, t time.Time) { c.Set(keyStarted, t) }

// startedAt returns when the request began, if the metrics middleware ran.
func startedAt(c *gin.Context) (time.Time, bool) {
	return ctxValue[time.Time](c, keyStarted)
}

// setObserveLater marks a request whose duration the connection observes when it ends.
func setObserveLater(c *gin.Context) { c.Set(keyObserveLater, true) }

func observesLater(c *gin.Context) bool { return c.GetBool(keyObserveLater) }

// setPrincipal leaves the authenticated principal and its subject on the context.
func setPrincipal(c *gin.Context, p *auth.Principal) {
	c.Set(keyPrincipal, p)
	c.Set(keySubject, p.Subject)
}

// principalOf returns the request's principal, or nil when auth is disabled.
func principalOf(c *gin.Context) *auth.Principal {
	p, _ := ctxValue[*auth.Principal](c, keyPrincipal)
	return p
}

// subjectOf returns the request's token subject, or "" when auth is disabled.
func subjectOf(c *gin.Context) string { return c.GetString(keySubject) }

func setSlot(c *gin.Context, sl *slot) { c.Set(keySlot, sl) }

// slotOf returns the connection's slot, or nil when admit did not run.
func slotOf(c *gin.Context) *slot {
	sl, _ := ctxValue[*slot](c, keySlot)
	return sl
}

// setOwned marks that a streaming handler took over the slot and releases it when the
// connection ends.
func setOwned(c *gin.Context) { c.Set(keyOwned, true) }

func owned(c *gin.Context) bool { return c.GetBool(keyOwned) }

func setBody(c *gin.Context, b *guardedBody) { c.Set(keyBody, b) }

// bodyOf returns the request's guarded body, or nil.
func bodyOf(c *gin.Context) *guardedBody {
	b, _ := ctxValue[*guardedBody](c, keyBody)
	return b
}
