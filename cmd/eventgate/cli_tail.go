package main

// `eventgate tail`: prints one JSON envelope per line from a client.Subscription, which keeps
// going across errors, clean ends of stream, server restarts and `shutdown`, resuming with
// Last-Event-ID. Notes go to stderr.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/eventgate/eventgate/client"
)

// tailOptions are tail's settings after flag parsing.
type tailOptions struct {
	client     *client.Client
	topics     []string
	types      []string
	since      string
	heartbeat  time.Duration // 0 disables dead-connection detection
	maxBackoff time.Duration
}

// runTail is `eventgate tail`; it returns the exit code. It stops cleanly (exit 0) when ctx ends.
func runTail(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	hc := &http.Client{Transport: client.NewTransport()}
	return tailMain(ctx, args, getenv, stdout, stderr, hc.Do)
}

// tailMain is runTail with the HTTP round trip injected (tests use a fake one).
func tailMain(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer,
	do func(*http.Request) (*http.Response, error)) int {
	opts, code, ok := parseTailArgs(args, getenv, stderr, do)
	if !ok {
		return code
	}
	return exitCode(stderr, "tail", tail(ctx, opts, stdout, stderr), client.ErrUnauthorized, exitAuth)
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func parseTailArgs(args []string, getenv func(string) string, stderr io.Writer, do func(*http.Request) (*http.Response, error)) (tailOptions, int, bool) {
	var o tailOptions
	fs := flag.NewFlagSet("eventgate tail", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: eventgate tail [flags]

Prints the events of GET /api/v1/stream, one JSON envelope per line, and reconnects (honouring
retry: and resuming with Last-Event-ID) until interrupted. resync and connection notes go to
stderr. Exit codes: 0 interrupted, 1 refused or invalid answer, 2 usage, 3 401/403.

Flags:
`)
		fs.PrintDefaults()
	}
	var cf clientFlags
	cf.register(fs, getenv)
	var topics, types stringList
	fs.Var(&topics, "topic", "topic pattern: exact (jobs/<uuid>), prefix (jobs/*) or * (repeatable; default *)")
	fs.Var(&types, "type", "event type, e.g. job.progress (repeatable; default all)")
	fs.StringVar(&o.since, "since", "", "start after this event id; 0 = oldest retained, now = live (default live)")
	fs.DurationVar(&o.heartbeat, "heartbeat", client.DefaultHeartbeat, "the server's heartbeat interval; no data for 3× this reconnects (0 disables)")
	fs.DurationVar(&o.maxBackoff, "max-backoff", client.DefaultMaxBackoff, "longest wait between failed connection attempts")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, exitOK, false
		}
		return o, exitUsage, false
	}
	o.topics, o.types = topics, types
	fail := func(format string, a ...any) (tailOptions, int, bool) {
		fmt.Fprintf(stderr, "eventgate tail: "+format+"\n", a...)
		return o, exitUsage, false
	}
	if fs.NArg() > 0 {
		return fail("unexpected argument %q", fs.Arg(0))
	}
	var err error
	if o.client, err = cf.newClient(do); err != nil {
		return fail("--url: %v", err)
	}
	if o.heartbeat < 0 || o.maxBackoff <= 0 {
		return fail("--heartbeat must be 0 or more and --max-backoff more than 0")
	}
	return o, 0, true
}

// tail prints the stream until ctx ends (nil) or the server refuses for good.
func tail(ctx context.Context, o tailOptions, out, log io.Writer) error {
	note := func(format string, a ...any) { fmt.Fprintf(log, "eventgate tail: "+format+"\n", a...) }
	so := client.SubscribeOptions{
		Topics: o.topics, Types: o.types, Since: o.since, Heartbeat: o.heartbeat, MaxBackoff: o.maxBackoff,
		OnConnect: func(url, lastEventID string) {
			note("connected to %s%s", url, resumeNote(lastEventID, o.since))
		},
		OnRetry: func(err error, wait time.Duration) {
			note("%v; reconnecting in %s", err, wait.Round(time.Millisecond))
		},
		OnSkip: func(id, typ string, err error) { note("skipping event %q (%s): %v", id, typ, err) },
	}
	if o.heartbeat == 0 {
		so.Heartbeat = -1 // the client's 0 is its default
	}
	for {
		sub := o.client.Subscribe(ctx, so)
		err := printMessages(sub, out, note)
		sub.Close()
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, client.ErrAuthExpired):
			// Resumed with the same token: a server that still refuses it answers 401 (exit 3).
			note("the token expired")
			so.LastEventID = sub.LastEventID()
		case errors.Is(err, client.ErrUnauthorized):
			return err
		case errors.Is(err, client.ErrNotEventStream):
			return fmt.Errorf("giving up: %w (is --url right?)", err)
		default:
			return fmt.Errorf("giving up: %w", err)
		}
	}
}

// resumeNote says where a connection resumes from, for the connection message.
func resumeNote(lastEventID, since string) string {
	switch {
	case lastEventID != "":
		return " (resuming after " + lastEventID + ")"
	case since != "":
		return " (since " + since + ")"
	}
	return ""
}

// printMessages prints events and reports control events until the subscription ends; a failing
// stdout ends it too.
func printMessages(sub *client.Subscription, out io.Writer, note func(string, ...any)) error {
	for {
		m, err := sub.Next()
		if err != nil {
			return err
		}
		switch m.Kind {
		case client.KindResync:
			r := m.Resync
			note("resync (%s): the log no longer vouches for events after %s; continuing from %s (oldest held %s); refetch your state: %s",
				r.Reason, r.Requested, m.ID, r.Oldest, oneJSONLine(m.Data))
		case client.KindShutdown:
			note("the server is shutting down")
		case client.KindEvent:
			if _, err := out.Write(append(oneJSONLine(m.Data), '\n')); err != nil {
				return fmt.Errorf("writing to stdout: %v", err)
			}
		}
	}
}

// oneJSONLine returns JSON data on one line (compacted if it spans several).
func oneJSONLine(data []byte) []byte {
	if !bytes.ContainsAny(data, "\r\n") {
		return data
	}
	var b bytes.Buffer
	if json.Compact(&b, data) != nil {
		return bytes.Join(bytes.Fields(data), []byte(" "))
	}
	return b.Bytes()
}
