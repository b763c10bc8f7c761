package client

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// scripted is a fake Doer: request n gets answers[n] (the last one again past the end).
type scripted struct {
	mu      sync.Mutex
	reqs    []*http.Request
	answers []func() (*http.Response, error)
}

func (s *scripted) Do(req *http.Request) (*http.Response, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqs = append(s.reqs, req)
	return s.answers[min(len(s.reqs), len(s.answers))-1]()
}

func (s *scripted) requests() []*http.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.reqs)
}

// answer is a canned response with a body and a Content-Type.
func answer(status int, contentType, body string) func() (*http.Response, error) {
	return func() (*http.Response, error) {
		return &http.Response{StatusCode: status, Header: http.Header{"Content-Type": {contentType}}, Body: io.NopCloser(strings.NewReader(body))}, nil
	}
}

func stream(body string) func() (*http.Response, error) {
	return answer(http.StatusOK, "text/event-stream", "retry: 1\n\n"+body)
}

func newTestClient(t *testing.T, do Doer) *Client {
	t.Helper()
	c, err := New("http://eventgate.test/prefix/", Options{Token: " tok\n", HTTPClient: do})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestSubscriptionMessages: kinds, duplicates dropped across a reconnect, a skipped event, resync
// moving the position back, auth_expired ending the subscription.
func TestSubscriptionMessages(t *testing.T) {
	t.Parallel()
	do := &scripted{answers: []func() (*http.Response, error){
		stream("id: 1-0\nevent: job.progress\ndata: {\"id\":\"1-0\",\"type\":\"job.progress\",\"topic\":\"jobs/a\",\"time\":\"2026-11-26T21:20:00.123Z\",\"data\":{\"percent\":5}}\n\n" +
			"id: 2-0\nevent: job.progress\ndata: {oops\n\n" +
			"event: shutdown\ndata: {\"type\":\"shutdown\"}\n\n"),
		stream("id: 2-0\nevent: job.progress\ndata: {\"id\":\"2-0\"}\n\n" +
			"id: 3-0\nevent: job.progress\ndata: {\"id\":\"3-0\"}\n\n" +
			"id: 1-0\nevent: resync\ndata: {\"type\":\"resync\",\"reason\":\"position_unknown\",\"requested\":\"3-0\",\"oldest\":\"1-1\"}\n\n" +
			"id: 1-1\nevent: job.progress\ndata: {\"id\":\"1-1\"}\n\n" +
			"event: auth_expired\ndata: {\"type\":\"auth_expired\"}\n\n"),
	}}
	var notes []string
	sub := newTestClient(t, do).Subscribe(context.Background(), SubscribeOptions{
		Topics: []string{"jobs/*"}, Types: []string{"job.progress"}, Since: "0",
		OnConnect: func(url, last string) { notes = append(notes, "connect "+url+" "+last) },
		OnRetry:   func(err error, wait time.Duration) { notes = append(notes, "retry: "+err.Error()) },
		OnSkip:    func(id, typ string, err error) { notes = append(notes, "skip "+id+" "+typ+": "+err.Error()) },
	})
	defer sub.Close()
	var got []string
	for {
		m, err := sub.Next()
		if err != nil {
			if !errors.Is(err, ErrAuthExpired) {
				t.Fatalf("ended with %v, want ErrAuthExpired", err)
			}
			break
		}
		got = append(got, m.Kind.String()+" "+m.ID+" "+m.Event.ID+m.Resync.Reason)
	}
	if want := []string{"event 1-0 1-0", "shutdown 2-0 ", "event 3-0 3-0", "resync 1-0 position_unknown", "event 1-1 1-1"}; !slices.Equal(got, want) {
		t.Fatalf("messages\n%q\nwant\n%q", got, want)
	}
	if _, err := sub.Next(); !errors.Is(err, ErrAuthExpired) || sub.LastEventID() != "1-1" {
		t.Fatalf("again: %v, last id %q; want ErrAuthExpired and 1-1", err, sub.LastEventID())
	}
	if want := []string{"connect http://eventgate.test/prefix/api/v1/stream ", "skip 2-0 job.progress: its data is not JSON",
		"retry: the stream ended", "connect http://eventgate.test/prefix/api/v1/stream 2-0"}; !slices.Equal(notes, want) {
		t.Fatalf("callbacks\n%q\nwant\n%q", notes, want)
	}
	reqs := do.requests()
	if q := reqs[0].URL.Query(); q.Get("topic") != "jobs/*" || q.Get("type") != "job.progress" || q.Get("since") != "0" ||
		reqs[0].Header.Get("Authorization") != "Bearer tok" || reqs[0].Header.Get("Last-Event-ID") != "" {
		t.Fatalf("first request %s %v", reqs[0].URL, reqs[0].Header)
	}
	if reqs[1].URL.Query().Has("since") || reqs[1].Header.Get("Last-Event-ID") != "2-0" {
		t.Fatalf("second request %s Last-Event-ID %q, want no since and 2-0", reqs[1].URL, reqs[1].Header.Get("Last-Event-ID"))
	}
}

// TestSubscriptionResumesFrom: LastEventID is sent from the first connection, and what is not
// after it is not delivered.
func TestSubscriptionResumesFrom(t *testing.T) {
	t.Parallel()
	do := &scripted{answers: []func() (*http.Response, error){
		stream("id: 5-0\nevent: x\ndata: {}\n\nid: 6-0\nevent: x\ndata: {}\n\n"),
	}}
	sub := newTestClient(t, do).Subscribe(context.Background(), SubscribeOptions{Since: "0", LastEventID: "5-0"})
	defer sub.Close()
	m, err := sub.Next()
	if err != nil || m.ID != "6-0" {
		t.Fatalf("first message %+v %v, want 6-0", m, err)
	}
	if r := do.requests()[0]; r.Header.Get("Last-Event-ID") != "5-0" || r.URL.Query().Has("since") {
		t.Fatalf("request %s Last-Event-ID %q", r.URL, r.Header.Get("Last-Event-ID"))
	}
}

// TestSubscriptionEnds: what ends a subscription, and what Next returns then.
func TestSubscriptionEnds(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		answer func() (*http.Response, error)
		is     error
		status int
	}{
		{"401", answer(401, "application/json", `{"error":{"code":"unauthorized","message":"no"}}`), ErrUnauthorized, 401},
		{"403", answer(403, "application/json", `{"error":{"code":"forbidden","message":"no"}}`), ErrUnauthorized, 403},
		{"404", answer(404, "text/plain", "404 page not found"), nil, 404},
		{"not a stream", answer(200, "text/html", "<html>"), ErrNotEventStream, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sub := newTestClient(t, &scripted{answers: []func() (*http.Response, error){tc.answer}}).Subscribe(context.Background(), SubscribeOptions{})
			defer sub.Close()
			_, err := sub.Next()
			var se *StatusError
			if (tc.is != nil && !errors.Is(err, tc.is)) || (tc.status != 0 && (!errors.As(err, &se) || se.Status != tc.status)) {
				t.Fatalf("Next: %v, want %v / status %d", err, tc.is, tc.status)
			}
		})
	}

	// Context end and Close.
	ctx, cancel := context.WithCancel(context.Background())
	retries := 0
	do := &scripted{answers: []func() (*http.Response, error){answer(503, "application/json", `{}`)}}
	sub := newTestClient(t, do).Subscribe(ctx, SubscribeOptions{OnRetry: func(error, time.Duration) { retries++; cancel() }})
	if _, err := sub.Next(); !errors.Is(err, context.Canceled) || retries != 1 {
		t.Fatalf("after cancel: %v after %d retries, want context.Canceled after 1", err, retries)
	}
	sub.Close()
	if _, err := sub.Next(); !errors.Is(err, context.Canceled) {
		t.Fatalf("after Close: %v; want the first error, context.Canceled", err)
	}
	sub = newTestClient(t, do).Subscribe(context.Background(), SubscribeOptions{})
	sub.Close()
	if _, err := sub.Next(); !errors.Is(err, ErrClosed) || len(do.requests()) != 1 {
		t.Fatalf("closed before the first Next: %v after %d requests, want ErrClosed and none", err, len(do.requests())-1)
	}
}
