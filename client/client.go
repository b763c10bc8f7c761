// Package client is a Go client for eventgate: it follows the event stream (GET /api/v1/stream)
// and publishes events (POST /api/v1/events). It depends on the standard library only.
//
// A [Subscription] reconnects by itself after a network error, a clean end of stream, a server
// restart or a shutdown: it waits the server's retry: (failed attempts back off exponentially,
// with jitter; a longer Retry-After wins) and resumes with Last-Event-ID, dropping any event that
// is not after the last one delivered, so each event arrives once and in order. A resync (the log
// can no longer vouch for the position: refetch your state) and a shutdown are delivered as
// messages; an expired token ends the subscription with [ErrAuthExpired].
//
// [Client.Publish] appends a batch atomically under an Idempotency-Key, and retries it with the
// same key after a 429, a 409 idempotency_key_in_use, a 502/503/504 or a lost answer, so a retry
// never appends the batch twice.
//
// Positions (event ids) are opaque strings here.
package client

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Doer sends one HTTP request, as *http.Client does (tests may pass a fake). A Doer shared by
// goroutines must be safe for concurrent use.
type Doer interface {
	Do(*http.Request) (*http.Response, error)
}

// Options are a Client's settings; the zero value is valid.
type Options struct {
	// Token, when not empty, is sent as "Authorization: Bearer <Token>" on every request
	// (surrounding spaces are trimmed). It never appears in an error.
	Token string
	// HTTPClient sends the requests. nil: an *http.Client on NewTransport() without an overall
	// timeout (a stream lasts as long as it is followed).
	HTTPClient Doer
}

// Client is the address, token and HTTP client of one eventgate server. It holds no connection of
// its own (each Subscribe and Publish makes its requests) and is safe for concurrent use.
type Client struct {
	base  *url.URL
	token string
	http  Doer
}

// New returns a Client for the server at baseURL, http(s)://host[:port][/prefix]; a path prefix
// (behind a proxy) is kept.
func New(baseURL string, o Options) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("base URL %q: want http(s)://host[:port][/prefix]", redactURL(baseURL))
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath, u.Fragment = "", ""
	c := &Client{base: u, token: strings.TrimSpace(o.Token), http: o.HTTPClient}
	if c.http == nil {
		c.http = &http.Client{Transport: NewTransport()}
	}
	return c, nil
}

// NewTransport returns the transport a Client uses by default: proxies from the environment
// (never for loopback), bounded dial, TLS handshake and header waits, and no bound on how long a
// body is read (a stream lasts). Each call returns a new transport with its own connection pool.
func NewTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
}

// endpoint returns the base URL joined with path (e.g. /api/v1/events); the caller owns the copy.
func (c *Client) endpoint(path string) *url.URL {
	u := *c.base
	u.Path += path
	return &u
}

// authorize sets the bearer token on req, if there is one.
func (c *Client) authorize(req *http.Request) {
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
}
