package client

// The server's error answers (docs/api.md#errors) and the errors that end a Subscription.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

var (
	// ErrUnauthorized is wrapped by the error that ends a Subscription on a 401 or 403 answer
	// (the same token will not do better); errors.As finds the *StatusError beside it.
	ErrUnauthorized = errors.New("not authorized")
	// ErrAuthExpired ends a Subscription when the server reports that its token expired (the
	// auth_expired event). Subscribe again with a fresh token and LastEventID to go on.
	ErrAuthExpired = errors.New("the token expired")
	// ErrNotEventStream is wrapped by the error that ends a Subscription on a 200 answer that is
	// not text/event-stream (a wrong base URL?).
	ErrNotEventStream = errors.New("not an event stream")
	// ErrClosed is what Next returns after Close.
	ErrClosed = errors.New("client: subscription closed")
)

// StatusError is an answer other than success: the status and the error code and message
// (or a short excerpt of a body that is not one). It is a value: nothing in it is shared.
type StatusError struct {
	Status     int
	Code       string        // e.g. "invalid_event"; empty when the body was not an eventgate error
	Message    string        // one line
	RetryAfter time.Duration // from Retry-After (seconds form); 0 if absent
}

// Error returns "<status> <code>: <message>", with the status text when there is no code.
func (e *StatusError) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message)
	}
	if e.Message != "" {
		return fmt.Sprintf("%d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
	}
	return fmt.Sprintf("%d %s", e.Status, http.StatusText(e.Status))
}

// readStatusError reads (at most 64 KiB of) resp's body into a StatusError. It does not close the
// body.
func readStatusError(resp *http.Response) *StatusError {
	e := &StatusError{Status: resp.StatusCode}
	if s, err := strconv.Atoi(strings.TrimSpace(resp.Header.Get("Retry-After"))); err == nil && s >= 0 {
		e.RetryAfter = time.Duration(min(s, 3600)) * time.Second
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var body struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if json.Unmarshal(raw, &body) == nil && body.Error.Code != "" {
		e.Code, e.Message = body.Error.Code, oneLine(body.Error.Message, 500)
		return e
	}
	e.Message = oneLine(string(raw), 200)
	return e
}

// oneLine makes s printable on one line of at most n runes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(strings.ToValidUTF8(s, "\uFFFD")), " ")
	if r := []rune(s); len(r) > n {
		s = string(r[:n]) + "…"
	}
	return s
}

// transportError returns err without the request URL (which url.Error includes, with its query).
func transportError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// redactURL returns s without its query and user info (which may hold a token), for messages.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}

// finalError marks an error after which a Subscription does not reconnect.
type finalError struct{ err error }

func (f finalError) Error() string { return f.err.Error() }
func (f finalError) Unwrap() error { return f.err }
