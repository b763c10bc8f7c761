package main

// What `eventgate publish` and `eventgate tail` share: the endpoint and token flags, the HTTP
// client, and decoding the server's JSON errors.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Exit codes of the client subcommands.
const (
	exitOK      = 0
	exitFailure = 1 // the server refused, or could not be reached
	exitUsage   = 2 // bad flags or input
	exitAuth    = 3 // tail: 401/403
)

// defaultClientURL is used when neither --url nor EVENTGATE_URL is set.
const defaultClientURL = "http://127.0.0.1:8080"

// clientFlags are the connection settings of a client subcommand.
type clientFlags struct {
	url      string
	token    string // --token
	envToken string // $EVENTGATE_TOKEN, used when --token is empty
}

// register adds --url and --token to fs, defaulting to EVENTGATE_URL and EVENTGATE_TOKEN.
func (c *clientFlags) register(fs *flag.FlagSet, getenv func(string) string) {
	def := getenv("EVENTGATE_URL")
	if def == "" {
		def = defaultClientURL
	}
	fs.StringVar(&c.url, "url", def, "eventgate base URL ($EVENTGATE_URL)")
	// The environment's token is not the flag's default: -h would print it.
	c.envToken = getenv("EVENTGATE_TOKEN")
	fs.StringVar(&c.token, "token", "", "bearer token (default $EVENTGATE_TOKEN); sent as Authorization: Bearer, never printed")
}

// endpoint checks the base URL and returns it joined with path (e.g. /api/v1/events). A base with
// a path prefix (behind a proxy) is kept.
func (c *clientFlags) endpoint(path string) (*url.URL, error) {
	u, err := url.Parse(c.url)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--url %q: want http(s)://host[:port][/prefix]", redactURL(c.url))
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawPath = ""
	u.Fragment = ""
	return u, nil
}

// authorize sets the bearer token on req, if there is one.
func (c *clientFlags) authorize(req *http.Request) {
	t := strings.TrimSpace(c.token)
	if t == "" {
		t = strings.TrimSpace(c.envToken)
	}
	if t != "" {
		req.Header.Set("Authorization", "Bearer "+t)
	}
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

// newClientTransport is the transport of the client subcommands: proxies from the environment
// (never for loopback), bounded dial and header waits. Streams have no overall timeout.
func newClientTransport() *http.Transport {
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

// serverError is a non-success answer: the status and the error code (docs/api.md#errors) and
// message (or a short excerpt of a body that is not one).
type serverError struct {
	Status     int
	Code       string
	Message    string
	RetryAfter time.Duration // from Retry-After (seconds form); 0 if absent
}

func (e *serverError) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message)
	}
	if e.Message != "" {
		return fmt.Sprintf("%d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
	}
	return fmt.Sprintf("%d %s", e.Status, http.StatusText(e.Status))
}

// readServerError reads (at most 64 KiB of) resp's body into a serverError. It does not close
// the body.
func readServerError(resp *http.Response) *serverError {
	e := &serverError{Status: resp.StatusCode}
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

// clientCommand runs a client subcommand with the process's stdio until it returns or SIGINT /
// SIGTERM arrives (which ends it cleanly); it returns the exit code.
func clientCommand(cmd func(ctx context.Context, args []string) int, args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return cmd(ctx, args)
}

// runPublishStd is `eventgate publish` on the process's environment and stdio.
func runPublishStd(ctx context.Context, args []string) int {
	return runPublish(ctx, args, os.Getenv, os.Stdin, os.Stdout, os.Stderr)
}

// runTailStd is `eventgate tail` on the process's environment and stdio.
func runTailStd(ctx context.Context, args []string) int {
	return runTail(ctx, args, os.Getenv, os.Stdout, os.Stderr)
}

// exitCode reports a subcommand's outcome: 0 for nil; otherwise it prints the error and returns
// code for errors matching special, exitFailure for the rest.
func exitCode(stderr io.Writer, cmd string, err error, special error, code int) int {
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "eventgate %s: %v\n", cmd, err)
	if errors.Is(err, special) {
		return code
	}
	return exitFailure
}
