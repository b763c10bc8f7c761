package main

// `eventgate publish`: events as JSON from arguments or stdin, sent in batches with
// client.Publish; the ids are printed one per line.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/eventgate/eventgate/client"
)

const (
	// maxPublishBatch is the server's limit of events per request (docs/api.md#publishing).
	maxPublishBatch = client.MaxBatch
	// maxPublishBatchBytes keeps a request well under the server's default body limit (8 MiB).
	maxPublishBatchBytes = 4 << 20
)

// errPublishInput wraps malformed input (exit 2).
var errPublishInput = errors.New("invalid input")

// publishOptions are publish's settings after flag parsing.
type publishOptions struct {
	client         *client.Client
	batchSize      int
	linger         time.Duration
	idempotencyKey string // empty only with --no-idempotency-key
	noKey          bool
	retryFor       time.Duration
	args           []string // JSON documents; empty (or "-") means stdin
}

// runPublish is `eventgate publish`; it returns the exit code.
func runPublish(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	hc := &http.Client{Transport: client.NewTransport(), Timeout: 2 * time.Minute}
	return publishMain(ctx, args, getenv, stdin, stdout, stderr, hc.Do)
}

// publishMain is runPublish with the HTTP round trip injected.
func publishMain(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer,
	do func(*http.Request) (*http.Response, error)) int {
	o, code, ok := parsePublishArgs(args, getenv, stderr, do)
	if !ok {
		return code
	}
	p := &publisher{opts: o, out: stdout, notes: stderr}
	var src <-chan publishItem
	if len(o.args) == 0 || (len(o.args) == 1 && o.args[0] == "-") {
		src = readEvents(ctx, stdin, "stdin")
	} else {
		var err error
		if src, err = argEvents(o.args); err != nil {
			fmt.Fprintf(stderr, "eventgate publish: %v\n", err)
			return exitUsage
		}
	}
	return exitCode(stderr, "publish", p.run(ctx, src), errPublishInput, exitUsage)
}

func parsePublishArgs(args []string, getenv func(string) string, stderr io.Writer, do func(*http.Request) (*http.Response, error)) (publishOptions, int, bool) {
	var o publishOptions
	fs := flag.NewFlagSet("eventgate publish", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: eventgate publish [flags] [EVENT_JSON ...]

Publishes events to POST /api/v1/events and prints their ids, one per line, in input order.
Each argument is one event {"type":...,"data":{...}} or a JSON array of events. Without
arguments (or with -), events are read from stdin: one event, an array, or any sequence of
them such as NDJSON (one event per line). Events are sent in batches (each batch is appended
atomically); from stdin a partial batch is sent once input pauses for --linger.
Every batch carries an Idempotency-Key (random per run unless --idempotency-key is given), and
429, 409, 502/503/504 and lost answers are retried with the same key for --retry-for, so a
retry never appends a batch twice.
Exit codes: 0 all published, 1 refused by the server or unreachable (ids printed so far were
appended; nothing of the failing batch was, when the server refused it), 2 usage or malformed input.

Flags:
`)
		fs.PrintDefaults()
	}
	var cf clientFlags
	cf.register(fs, getenv)
	fs.IntVar(&o.batchSize, "batch-size", maxPublishBatch, "events per request (1 to 1000)")
	fs.DurationVar(&o.linger, "linger", 100*time.Millisecond, "send a partial batch when stdin pauses this long")
	fs.StringVar(&o.idempotencyKey, "idempotency-key", "", "Idempotency-Key of the first batch; batch n>0 uses KEY/n (a rerun with the same input appends nothing twice) (default: a random key per run)")
	fs.BoolVar(&o.noKey, "no-idempotency-key", false, "send no Idempotency-Key; then a 5xx or a lost answer is not retried (a retry could append twice)")
	fs.DurationVar(&o.retryFor, "retry-for", client.DefaultRetryFor, "how long to retry a batch after 429, 409, 502/503/504 or a lost answer; 0: no retries")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, exitOK, false
		}
		return o, exitUsage, false
	}
	o.args = fs.Args()
	fail := func(format string, a ...any) (publishOptions, int, bool) {
		fmt.Fprintf(stderr, "eventgate publish: "+format+"\n", a...)
		return o, exitUsage, false
	}
	var err error
	if o.client, err = cf.newClient(do); err != nil {
		return fail("--url: %v", err)
	}
	if o.batchSize < 1 || o.batchSize > maxPublishBatch {
		return fail("--batch-size must be from 1 to %d", maxPublishBatch)
	}
	if o.linger <= 0 {
		return fail("--linger must be more than 0")
	}
	if o.retryFor < 0 {
		return fail("--retry-for must not be negative")
	}
	switch {
	case o.noKey && o.idempotencyKey != "":
		return fail("--idempotency-key and --no-idempotency-key exclude each other")
	case !o.noKey && o.idempotencyKey == "":
		o.idempotencyKey = client.NewIdempotencyKey()
	}
	return o, 0, true
}

// publishItem is one event from the input, or the error that ended the input.
type publishItem struct {
	event json.RawMessage
	err   error
}

// readEvents decodes a sequence of JSON values from r (an object is one event, an array is
// several) and sends them, then closes the channel. A malformed value ends it with an error
// wrapping errPublishInput.
func readEvents(ctx context.Context, r io.Reader, name string) <-chan publishItem {
	out := make(chan publishItem, maxPublishBatch)
	go func() {
		defer close(out)
		send := func(it publishItem) bool {
			select {
			case out <- it:
				return true
			case <-ctx.Done():
				return false
			}
		}
		dec := json.NewDecoder(r)
		for n := 1; ; n++ {
			var raw json.RawMessage
			err := dec.Decode(&raw)
			if errors.Is(err, io.EOF) {
				return
			}
			var events []json.RawMessage
			if err == nil {
				events, err = splitEvents(raw)
			}
			if err != nil {
				send(publishItem{err: fmt.Errorf("%w: %s, JSON value %d: %v", errPublishInput, name, n, err)})
				return
			}
			for _, e := range events {
				if !send(publishItem{event: e}) {
					return
				}
			}
		}
	}()
	return out
}

// argEvents parses every argument before anything is sent (a malformed one is a usage error
// with nothing published) and returns their events as a closed channel.
func argEvents(args []string) (<-chan publishItem, error) {
	var all []publishItem
	for i, a := range args {
		for it := range readEvents(context.Background(), strings.NewReader(a), "argument "+strconv.Itoa(i+1)) {
			if it.err != nil {
				return nil, it.err
			}
			all = append(all, it)
		}
	}
	out := make(chan publishItem, len(all))
	for _, it := range all {
		out <- it
	}
	close(out)
	return out, nil
}

// splitEvents returns the events of one JSON value: an object, or an array of objects.
func splitEvents(raw json.RawMessage) ([]json.RawMessage, error) {
	v := bytes.TrimSpace(raw)
	switch {
	case len(v) > 0 && v[0] == '{':
		return []json.RawMessage{v}, nil
	case len(v) > 0 && v[0] == '[':
		var arr []json.RawMessage
		if err := json.Unmarshal(v, &arr); err != nil {
			return nil, err
		}
		for i, e := range arr {
			if e = bytes.TrimSpace(e); len(e) == 0 || e[0] != '{' {
				return nil, fmt.Errorf("array element %d is not a JSON object", i)
			}
			arr[i] = e
		}
		return arr, nil
	}
	return nil, errors.New(`want an event {"type":...,"data":{...}} or an array of events`)
}

// publisher sends batches and prints ids. Used by one goroutine.
type publisher struct {
	opts    publishOptions
	out     io.Writer
	notes   io.Writer // retries are announced here (stderr)
	batches int       // batches sent
	sent    int       // events appended
}

// run batches the input and sends each batch; it stops at the first failure.
func (p *publisher) run(ctx context.Context, src <-chan publishItem) error {
	var batch []json.RawMessage
	size := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := p.send(ctx, batch)
		batch, size = batch[:0], 0
		return err
	}
	var linger *time.Timer
	var lingerC <-chan time.Time
	defer func() {
		if linger != nil {
			linger.Stop()
		}
	}()
	for {
		select {
		case it, ok := <-src:
			if !ok {
				if err := flush(); err != nil {
					return err
				}
				if p.sent == 0 {
					return fmt.Errorf("%w: no events to publish", errPublishInput)
				}
				return nil
			}
			if it.err != nil {
				// What came before the malformed value is sent; the error names the value.
				if err := flush(); err != nil {
					return err
				}
				return it.err
			}
			if len(batch) > 0 && size+len(it.event)+1 > maxPublishBatchBytes {
				if err := flush(); err != nil {
					return err
				}
			}
			batch = append(batch, it.event)
			size += len(it.event) + 1
			if len(batch) >= p.opts.batchSize {
				if err := flush(); err != nil {
					return err
				}
				lingerC = nil
				continue
			}
			if linger == nil {
				linger = time.NewTimer(p.opts.linger)
			} else {
				linger.Reset(p.opts.linger)
			}
			lingerC = linger.C
		case <-lingerC:
			lingerC = nil
			if err := flush(); err != nil {
				return err
			}
		case <-ctx.Done():
			return fmt.Errorf("interrupted after %d events were published", p.sent)
		}
	}
}

// send publishes one batch and prints the ids. The client retries it (for --retry-for) with the
// batch's Idempotency-Key: K for the first batch, K/n for batch n.
func (p *publisher) send(ctx context.Context, batch []json.RawMessage) error {
	key := p.opts.idempotencyKey
	if key != "" && p.batches > 0 {
		key += "/" + strconv.Itoa(p.batches)
	}
	where := fmt.Sprintf("input events %d to %d", p.sent+1, p.sent+len(batch))
	if len(batch) == 1 {
		where = fmt.Sprintf("input event %d", p.sent+1)
	}
	po := client.PublishOptions{IdempotencyKey: key, NoIdempotencyKey: key == "", RetryFor: p.opts.retryFor,
		OnRetry: func(err error, wait time.Duration) {
			fmt.Fprintf(p.notes, "eventgate publish: %s; retrying in %s\n", strings.TrimSuffix(where+": "+err.Error(), "."), wait)
		}}
	if po.RetryFor == 0 {
		po.RetryFor = -1 // --retry-for 0: no retries (the client's 0 is its default)
	}
	ids, err := p.opts.client.Publish(ctx, batch, po)
	if err != nil {
		return p.failure(ctx, where, err)
	}
	p.batches++
	p.sent += len(ids)
	if _, err := io.WriteString(p.out, strings.Join(ids, "\n")+"\n"); err != nil {
		return fmt.Errorf("writing to stdout: %w", err)
	}
	return nil
}

// failure words a batch's failure: what became of the batch, and how to finish the run.
func (p *publisher) failure(ctx context.Context, where string, err error) error {
	var pe *client.PublishError
	if !errors.As(err, &pe) {
		if ctx.Err() != nil { // ended while waiting to retry
			return fmt.Errorf("interrupted after %d events were published", p.sent)
		}
		return fmt.Errorf("%s: %w", where, err)
	}
	switch pe.Outcome {
	case client.NotSent:
		return fmt.Errorf("%s not sent: %w", where, pe.Err)
	case client.Refused:
		return fmt.Errorf("%s refused (not appended): %w", where, pe.Err)
	case client.Unconfirmed:
		return fmt.Errorf("%s: %w (they may or may not have been appended%s)", where, pe.Err, p.rerunHint())
	}
	return fmt.Errorf("%s: %w", where, pe.Err)
}

// rerunHint tells how to finish a run whose last batch's outcome is unknown without duplicates.
func (p *publisher) rerunHint() string {
	if p.opts.idempotencyKey == "" {
		return ""
	}
	return "; rerun with --idempotency-key " + p.opts.idempotencyKey + " and the same input to publish them at most once"
}
