package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/eventgate/eventgate/auth"
	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/streams"
	"github.com/eventgate/eventgate/telemetry"
	"github.com/eventgate/eventgate/webhooks"
)

// Errors the handlers raise themselves; domain errors come from streams.
var (
	errTooLarge           = errors.New("payload too large")
	errBadRequest         = errors.New("bad request")
	errNotFound           = errors.New("not found")
	errForbidden          = errors.New("forbidden")
	errOverloaded         = errors.New("overloaded")
	errTooManyConnections = errors.New("too many connections")
	errMethod             = errors.New("method not allowed")
	errDraining           = errors.New("draining")
	// Request guards (input.go).
	errRequestTimeout       = errors.New("request timeout")
	errUnsupportedMediaType = errors.New("unsupported media type")
	errTooManyRequests      = errors.New("too many requests")
)

// errorTable maps error kinds (matched with errors.Is, first match wins) to the HTTP status and
// the error code (docs/api.md#errors). It is the one place where that mapping lives.
var errorTable = []struct {
	err    error
	status int
	code   string
	// expose: the error's text is safe and useful for the client (client errors); otherwise a
	// fixed message is sent and the detail only logged.
	expose  bool
	message string
}{
	{errRequestTimeout, http.StatusRequestTimeout, "request_timeout", true, ""},
	{event.ErrInvalidEvent, http.StatusBadRequest, "invalid_event", true, ""},
	{event.ErrInvalidPosition, http.StatusBadRequest, "invalid_position", true, ""},
	{event.ErrInvalidFilter, http.StatusBadRequest, "invalid_filter", true, ""},
	{webhooks.ErrInvalidURL, http.StatusBadRequest, "invalid_webhook_url", true, ""},
	{webhooks.ErrInvalid, http.StatusBadRequest, "invalid_webhook", true, ""},
	{webhooks.ErrNotFound, http.StatusNotFound, "not_found", true, ""},
	{errBadRequest, http.StatusBadRequest, "bad_request", true, ""},
	{errUnauthorized, http.StatusUnauthorized, "unauthorized", true, ""},
	{auth.ErrInvalidToken, http.StatusUnauthorized, "unauthorized", true, ""},
	{errForbidden, http.StatusForbidden, "forbidden", true, ""},
	{errNotFound, http.StatusNotFound, "not_found", true, ""},
	{errMethod, http.StatusMethodNotAllowed, "method_not_allowed", true, ""},
	{streams.ErrKeyInFlight, http.StatusConflict, "idempotency_key_in_use", false, "A request with this Idempotency-Key is still in progress."},
	{webhooks.ErrTooMany, http.StatusConflict, "too_many_webhooks", true, ""},
	{errTooLarge, http.StatusRequestEntityTooLarge, "payload_too_large", true, ""},
	{errUnsupportedMediaType, http.StatusUnsupportedMediaType, "unsupported_media_type", true, ""},
	{errTooManyRequests, http.StatusTooManyRequests, "too_many_requests", true, ""},
	{errTooManyConnections, http.StatusTooManyRequests, "too_many_connections", true, ""},
	{errRateLimited, http.StatusTooManyRequests, "rate_limited", true, ""},
	{errOverloaded, http.StatusServiceUnavailable, "overloaded", true, ""},
	{errDraining, http.StatusServiceUnavailable, "draining", false, "The server is shutting down; retry on another instance."},
	{streams.ErrOutcomeUnknown, http.StatusServiceUnavailable, "store_unavailable", false, "The event store did not confirm the append: the events may or may not be in the log. Retry with the same Idempotency-Key (a retry without one may append them twice)."},
	{streams.ErrUnavailable, http.StatusServiceUnavailable, "store_unavailable", false, "The event store is unavailable; retry later."},
	{context.DeadlineExceeded, http.StatusServiceUnavailable, "timeout", false, "The event store did not answer in time; retry later."},
}

// codeOf returns the error code for err (for WebSocket error frames).
func codeOf(err error) string {
	for _, row := range errorTable {
		if errors.Is(err, row.err) {
			return row.code
		}
	}
	return "internal"
}

// errorBody is the error shape of docs/api.md#errors.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// fail writes err as a JSON error response and aborts the chain. Unknown errors are 500s whose
// detail is logged, never sent. Exposed messages are cut (clientMessage): they may quote client
// input of any size. Answering before the request body was read whole closes the connection
// (closeUnreadBody).
func (s *Server) fail(c *gin.Context, err error) {
	if b := bodyOf(c); b != nil && b.timedOut && !errors.Is(err, errRequestTimeout) {
		// The handler saw the body deadline as a read error (often formatted with %v): the
		// cause the client must learn is the timeout.
		err = fmt.Errorf("%w: the request body did not arrive within %s", errRequestTimeout, s.cfg.BodyTimeout)
	}
	status, code, msg := http.StatusInternalServerError, "internal", "Internal server error."
	for _, row := range errorTable {
		if errors.Is(err, row.err) {
			status, code, msg = row.status, row.code, row.message
			if row.expose {
				msg = clientMessage(err.Error())
			}
			break
		}
	}
	closeUnreadBody(c)
	if errors.Is(err, streams.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
		s.metrics.StoreError(telemetry.StoreRequest)
	}
	if status >= 500 && status != http.StatusServiceUnavailable {
		s.log.Error("request failed", "route", c.FullPath(), "status", status, "err", err)
	}
	if status == http.StatusUnauthorized && c.Writer.Header().Get("WWW-Authenticate") == "" {
		c.Header("WWW-Authenticate", "Bearer") // RFC 6750; requireScope sets a fuller challenge
	}
	if status == http.StatusServiceUnavailable && c.Writer.Header().Get("Retry-After") == "" {
		c.Header("Retry-After", "1")
	}
	c.Abort()
	c.PureJSON(status, errorBody{errorDetail{Code: code, Message: msg}}) // no \u003c escapes in messages
}
