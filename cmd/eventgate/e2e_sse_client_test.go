package main

// The end-to-end tests' SSE client: a goroutine reads frames into a channel; the test waits for
// them with deadlines (no sleeps as synchronisation).

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// frame is one SSE block (lines up to a blank line), as the server wrote it.
type frame struct {
	ID, Event, Data, Retry string
	HasID, HasData         bool
	Comments               []string
}

// isEvent reports whether the frame carries an event (not only a comment or retry hint).
func (f frame) isEvent() bool { return f.HasData || f.Event != "" }

// sseStream is an open SSE response read by a goroutine into frames.
type sseStream struct {
	Resp   *http.Response
	frames chan frame
	done   chan struct{}
	cancel context.CancelFunc
	err    error // read error at the end (nil: clean EOF); valid once done is closed
}

// openStream GETs url and requires a 200 text/event-stream response. Closed at cleanup.
func openStream(t *testing.T, url string, headers map[string]string) *sseStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header.Set("Accept", "text/event-stream")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := streamClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET %s: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		t.Fatalf("GET %s: status %d, want 200; body %s", url, resp.StatusCode, body)
	}
	s := &sseStream{Resp: resp, frames: make(chan frame, 4096), done: make(chan struct{}), cancel: cancel}
	go s.read(ctx)
	t.Cleanup(s.Close)
	return s
}

func (s *sseStream) read(ctx context.Context) {
	defer close(s.done)
	defer close(s.frames)
	sc := bufio.NewScanner(s.Resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var f frame
	empty := true
	for sc.Scan() {
		line := strings.TrimSuffix(sc.Text(), "\r")
		if line == "" {
			if !empty {
				select {
				case s.frames <- f:
				case <-ctx.Done():
					return
				}
			}
			f, empty = frame{}, true
			continue
		}
		empty = false
		if c, ok := strings.CutPrefix(line, ":"); ok {
			f.Comments = append(f.Comments, strings.TrimPrefix(c, " "))
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			f.ID, f.HasID = value, true
		case "event":
			f.Event = value
		case "data":
			if f.HasData {
				f.Data += "\n"
			}
			f.Data, f.HasData = f.Data+value, true
		case "retry":
			f.Retry = value
		}
	}
	s.err = sc.Err()
}

// Close cancels the request and waits for the reader. Idempotent.
func (s *sseStream) Close() {
	s.cancel()
	s.Resp.Body.Close()
	<-s.done
}

// next returns the next frame; it fails the test on timeout or if the stream ended.
func (s *sseStream) next(t *testing.T, timeout time.Duration) frame {
	t.Helper()
	select {
	case f, ok := <-s.frames:
		if !ok {
			t.Fatalf("stream ended (err %v) while waiting for a frame", s.err)
		}
		return f
	case <-time.After(timeout):
		t.Fatalf("no frame within %s", timeout)
		return frame{}
	}
}

// nextEvent returns the next frame that carries an event, skipping heartbeats and retry hints.
func (s *sseStream) nextEvent(t *testing.T, timeout time.Duration) frame {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if f := s.next(t, max(time.Until(deadline), time.Millisecond)); f.isEvent() {
			return f
		}
	}
}

// events returns the next n event frames, within timeout overall.
func (s *sseStream) events(t *testing.T, n int, timeout time.Duration) []frame {
	t.Helper()
	deadline, out := time.Now().Add(timeout), make([]frame, 0, n)
	for len(out) < n {
		out = append(out, s.nextEvent(t, max(time.Until(deadline), time.Millisecond)))
	}
	return out
}

// expectEnd waits for the stream to end and returns the frames that came before the end.
func (s *sseStream) expectEnd(t *testing.T, timeout time.Duration) (out []frame) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case f, ok := <-s.frames:
			if !ok {
				return out
			}
			out = append(out, f)
		case <-deadline:
			t.Fatalf("stream did not end within %s; frames meanwhile: %+v", timeout, out)
		}
	}
}

// frameIDs returns the id: of each frame.
func frameIDs(fs []frame) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.ID
	}
	return out
}
