package main

// End-to-end tests of the real binary with the in-process store: SSE, publishing and history,
// errors (docs/api.md), shutdown and configuration (docs/operations.md).

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestE2EStreamHeadersRetryHeartbeat(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"EVENTGATE_RETRY": "1500ms"})
	st := openStream(t, s.URL()+"/api/v1/stream", nil)
	for k, want := range map[string]string{
		"Content-Type":      "text/event-stream",
		"Cache-Control":     "no-cache",
		"X-Accel-Buffering": "no",
	} {
		if got := st.Resp.Header.Get(k); !strings.HasPrefix(got, want) {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if f := st.next(t, frameTimeout); f.Retry != "1500" || f.isEvent() {
		t.Fatalf("first frame %v, want retry: 1500", f)
	}
	// Then the position the stream joined at: an id-only block (no event; EventSource keeps it).
	if f := st.next(t, frameTimeout); !f.HasID || f.isEvent() {
		t.Fatalf("second frame %v, want an id-only block", f)
	}
	// Heartbeat 1s: a ": ping" comment within a few seconds, and another one after it.
	for n := 0; n < 2; n++ {
		f := st.next(t, 5*time.Second)
		if f.isEvent() || len(f.Comments) != 1 || f.Comments[0] != "ping" {
			t.Fatalf("frame %v, want the heartbeat comment \": ping\"", f)
		}
	}
}

func TestE2EPublishDeliveredAsEnvelope(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	st := openStream(t, s.URL()+"/api/v1/stream", nil)
	data := fmt.Sprintf(`{"job_id":%q,"percent":40}`, jobA)
	ids := mustPublish(t, s.URL(), `{"type":"job.progress","data":`+data+`}`, 1)
	parseID(t, ids[0])

	f := st.nextEvent(t, frameTimeout)
	if f.ID != ids[0] || f.Event != "job.progress" {
		t.Fatalf("frame %v, want id %s event job.progress", f, ids[0])
	}
	e := decodeEnvelope(t, f.Data)
	if e.ID != ids[0] || e.Type != "job.progress" || e.Topic != "jobs/"+jobA {
		t.Fatalf("envelope %s: want id %s, type job.progress, topic jobs/%s", f.Data, ids[0], jobA)
	}
	if !jsonEqual(t, string(e.Data), data) {
		t.Fatalf("envelope data %s, want %s", e.Data, data)
	}
	// The same bytes are served by the history API.
	p := history(t, s.URL(), "after=0")
	if len(p.Events) != 1 || !bytes.Equal(p.Events[0], []byte(f.Data)) {
		t.Fatalf("history %v, want exactly the SSE data %s", p.Events, f.Data)
	}

	// Payload hygiene (docs/api.md#validation-and-payload-hygiene): paths, SQL, stack lines and extra
	// lines are removed; caps apply.
	failed := fmt.Sprintf(`{"type":"job.failed","data":{"job_id":%q,"job_type":"export","error":%q}}`, jobA,
		"open /var/lib/app/secret.db: denied\n\tat main.run(/srv/app/main.go:12)\ngoroutine 1 [running]:")
	progress := fmt.Sprintf(`{"type":"job.progress","data":{"job_id":%q,"percent":1,"message":%q}}`, jobA,
		"step SELECT password FROM users WHERE id=1 "+strings.Repeat("m", 300))
	ids = mustPublish(t, s.URL(), batch(failed, progress), 2)
	got := st.events(t, 2, frameTimeout)
	requireIDs(t, "sanitized", frameIDs(got), ids)
	var fd struct{ Error string }
	var pd struct{ Message string }
	_ = json.Unmarshal(decodeEnvelope(t, got[0].Data).Data, &fd)
	_ = json.Unmarshal(decodeEnvelope(t, got[1].Data).Data, &pd)
	for _, bad := range []string{"/var/lib", "secret.db", "main.go", "goroutine", "\n", "\t"} {
		if strings.Contains(fd.Error, bad) {
			t.Errorf("error %q still contains %q", fd.Error, bad)
		}
	}
	if fd.Error == "" || !strings.Contains(fd.Error, "denied") {
		t.Errorf("error %q: want the first line kept without the path", fd.Error)
	}
	if strings.Contains(pd.Message, "password") || strings.Contains(pd.Message, "users") || utf8.RuneCountInString(pd.Message) > 200 {
		t.Errorf("message %q: want the SQL removed and at most 200 characters", pd.Message)
	}
}

func TestE2EBatchIDsInInputOrder(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	note, job := newUUID(), newUUID()
	in := []string{jobQueued(job), jobProgress(job, 1), noteCreated(note, "x"), queueStatus(1, 0), jobProgress(job, 2), jobProgress(jobA, 3)}
	ids := mustPublish(t, s.URL(), batch(in...), len(in))
	requireIncreasing(t, ids)
	more := mustPublish(t, s.URL(), batch(in[:2]...), 2)
	requireIncreasing(t, append(append([]string{}, ids...), more...))

	p := history(t, s.URL(), "after=0")
	requireIDs(t, "history", historyIDs(t, p), append(ids, more...))
	for i, raw := range p.Events[:len(in)] {
		var want struct{ Type string }
		_ = json.Unmarshal([]byte(in[i]), &want)
		if e := decodeEnvelope(t, string(raw)); e.Type != want.Type {
			t.Fatalf("event %d: type %s, want %s", i, e.Type, want.Type)
		}
	}
}

func TestE2EBatchRejectedAtomically(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	good := jobProgress(jobA, 5)
	cases := []struct {
		name, body, wantIndex, wantField string
	}{
		{"unknown data field", batch(good, good, fmt.Sprintf(`{"type":"job.progress","data":{"job_id":%q,"percent":1,"bogus":1}}`, jobA)), "event[2]", "bogus"},
		{"unknown top-level field", batch(good, good, `{"type":"queue.status","data":{"pending":1,"active":0},"extra":true}`, good), "event[2]", "extra"},
		{"percent out of range", batch(good, jobProgress(jobA, 101)), "event[1]", "percent"},
		{"unknown type", batch(`{"type":"job.exploded","data":{}}`, good), "event[0]", "type"},
		{"missing job_id", batch(good, good, `{"type":"job.progress","data":{"percent":1}}`), "event[2]", "job_id"},
		{"bad uuid", batch(good, good, good, jobProgress("not-a-uuid", 1)), "event[3]", "job_id"},
		{"negative pending", batch(good, queueStatus(-1, 0)), "event[1]", "pending"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, ids, raw := publish(t, s.URL(), tc.body, nil)
			msg := expectError(t, status, raw, http.StatusBadRequest, "invalid_event")
			if ids != nil || !strings.Contains(msg, tc.wantIndex) || !strings.Contains(msg, tc.wantField) {
				t.Fatalf("message %q: want it to name %s and %q", msg, tc.wantIndex, tc.wantField)
			}
			if p := history(t, s.URL(), "after=0"); len(p.Events) != 0 {
				t.Fatalf("rejected batch appended %d events: %s", len(p.Events), p.Events)
			}
		})
	}
}

func TestE2EResumeAfterDisconnect(t *testing.T) {
	t.Parallel()
	for _, via := range []string{"header", "since", "last_event_id"} {
		t.Run(via, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, nil)
			st := openStream(t, s.URL()+"/api/v1/stream", nil)
			seen := mustPublish(t, s.URL(), progressBatch(jobA, 3), 3)
			requireIDs(t, "first connection", frameIDs(st.events(t, 3, frameTimeout)), seen)
			st.Close()

			missed := mustPublish(t, s.URL(), progressBatch(jobA, 2), 2)
			missed = append(missed, mustPublish(t, s.URL(), noteCreated(newUUID(), "n"), 1)...)
			missed = append(missed, mustPublish(t, s.URL(), progressBatch(jobA, 2), 2)...)

			last := seen[len(seen)-1]
			u, headers := s.URL()+"/api/v1/stream", map[string]string(nil)
			switch via {
			case "header":
				headers = map[string]string{"Last-Event-ID": last}
			default:
				u += "?" + via + "=" + url.QueryEscape(last)
			}
			again := openStream(t, u, headers)
			requireIDs(t, "after reconnect", frameIDs(again.events(t, len(missed), frameTimeout)), missed)
			// Then live, with nothing repeated at the seam.
			live := mustPublish(t, s.URL(), jobProgress(jobA, 99), 1)
			if f := again.nextEvent(t, frameTimeout); f.ID != live[0] {
				t.Fatalf("after the replay got %v, want the live event %s", f, live[0])
			}
		})
	}
}

func TestE2ESinceZeroAndLive(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	old := mustPublish(t, s.URL(), progressBatch(jobA, 3), 3)
	fromZero := openStream(t, s.URL()+"/api/v1/stream?since=0", nil)
	now := openStream(t, s.URL()+"/api/v1/stream?since=now", nil)
	dflt := openStream(t, s.URL()+"/api/v1/stream", nil)
	requireIDs(t, "since=0", frameIDs(fromZero.events(t, 3, frameTimeout)), old)

	live := mustPublish(t, s.URL(), queueStatus(2, 1), 1)
	for name, st := range map[string]*sseStream{"since=0": fromZero, "since=now": now, "no since": dflt} {
		if f := st.nextEvent(t, frameTimeout); f.ID != live[0] || f.Event != "queue.status" {
			t.Fatalf("%s: got %v, want only the live event %s", name, f, live[0])
		}
	}
}

func TestE2EFilters(t *testing.T) {
	t.Parallel()
	jobB, note := newUUID(), newUUID()
	set := []string{
		jobProgress(jobA, 10),  // 0
		jobQueued(jobB),        // 1
		noteCreated(note, "x"), // 2
		queueStatus(1, 0),      // 3
		jobProgress(jobB, 20),  // 4
		jobProgress(jobA, 30),  // 5
	}
	cases := []struct {
		name, query string
		want        []int
	}{
		{"all", "", []int{0, 1, 2, 3, 4, 5}},
		{"star", "topic=*", []int{0, 1, 2, 3, 4, 5}},
		{"jobs wildcard", "topic=jobs/*", []int{0, 1, 4, 5}},
		{"notes wildcard", "topic=notes/*", []int{2}},
		{"exact topic", "topic=jobs/" + jobA, []int{0, 5}},
		{"queue", "topic=queue", []int{3}},
		{"type", "type=job.progress", []int{0, 4, 5}},
		{"repeated topics", "topic=jobs/" + jobA + "&topic=notes/*", []int{0, 2, 5}},
		{"repeated types", "type=job.queued&type=note.created", []int{1, 2}},
		{"topic and type", "topic=jobs/*&type=job.queued", []int{1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, nil)
			first := mustPublish(t, s.URL(), batch(set...), len(set))
			// Replay (since=0) is filtered, then live is filtered: publish the set again while
			// connected, then a terminator that matches, and compare everything before it.
			st := openStream(t, s.URL()+"/api/v1/stream?since=0&"+tc.query, nil)
			second := mustPublish(t, s.URL(), batch(set...), len(set))
			term := mustPublish(t, s.URL(), set[tc.want[0]], 1)
			var want []string
			for _, ids := range [][]string{first, second} {
				for _, i := range tc.want {
					want = append(want, ids[i])
				}
			}
			want = append(want, term[0])
			got := st.events(t, len(want), frameTimeout) // an extra event would shift the terminator
			requireIDs(t, tc.query, frameIDs(got), want)
			// History applies the same filter.
			p := history(t, s.URL(), "after=0&"+tc.query)
			requireIDs(t, "history "+tc.query, historyIDs(t, p), want)
		})
	}
}

func TestE2EInvalidRequestParameters(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	stream := s.URL() + "/api/v1/stream"
	for _, v := range []string{"abc", "1-2-3", "-1", "1-", "-", "1.5-0", "+1-0", "0x10-0", "18446744073709551616-0", "1-18446744073709551616"} {
		for _, via := range []string{"header", "since", "last_event_id", "history"} {
			t.Run(via+"="+v, func(t *testing.T) {
				var status int
				var raw []byte
				switch via {
				case "header":
					status, _, raw = doRequest(t, http.MethodGet, stream, "", map[string]string{"Last-Event-ID": v})
				case "history":
					status, _, raw = doRequest(t, http.MethodGet, s.URL()+"/api/v1/events?after="+url.QueryEscape(v), "", nil)
				default:
					status, _, raw = doRequest(t, http.MethodGet, stream+"?"+via+"="+url.QueryEscape(v), "", nil)
				}
				expectError(t, status, raw, http.StatusBadRequest, "invalid_position")
			})
		}
	}
	for _, q := range []string{"topic=JOBS/*", "topic=jobs/*/x", "topic=jobs//x", "topic=", "type=job.exploded", "type="} {
		t.Run(q, func(t *testing.T) {
			status, _, raw := doRequest(t, http.MethodGet, stream+"?"+q, "", nil)
			expectError(t, status, raw, http.StatusBadRequest, "invalid_filter")
			status, _, raw = doRequest(t, http.MethodGet, s.URL()+"/api/v1/events?"+q, "", nil)
			expectError(t, status, raw, http.StatusBadRequest, "invalid_filter")
		})
	}
}

// resyncBody is the data of a resync control event.
type resyncBody struct {
	Type, Reason, Requested, Oldest string
}

// expectResync requires f to be a resync control frame with reason and requested, and returns it.
func expectResync(t *testing.T, f frame, reason, requested string) resyncBody {
	t.Helper()
	var r resyncBody
	if f.Event != "resync" || json.Unmarshal([]byte(f.Data), &r) != nil {
		t.Fatalf("frame %v, want event: resync with JSON data", f)
	}
	var keys map[string]any
	_ = json.Unmarshal([]byte(f.Data), &keys)
	if len(keys) != 4 || r.Type != "resync" || r.Reason != reason || r.Requested != requested {
		t.Fatalf("resync %s, want type resync, reason %s, requested %s, oldest", f.Data, reason, requested)
	}
	if !f.HasID {
		t.Fatalf("resync frame %v has no id: line", f)
	}
	parseID(t, f.ID)
	return r
}

func TestE2EResyncMemory(t *testing.T) {
	t.Parallel()
	t.Run("history_truncated", func(t *testing.T) {
		t.Parallel()
		s := startServer(t, map[string]string{"EVENTGATE_RETENTION": "10"})
		var ids []string
		ids = append(ids, mustPublish(t, s.URL(), progressBatch(jobA, 12), 12)...)
		ids = append(ids, mustPublish(t, s.URL(), progressBatch(jobA, 18), 18)...)
		st := openStream(t, s.URL()+"/api/v1/stream", map[string]string{"Last-Event-ID": ids[2]})
		f := st.nextEvent(t, frameTimeout)
		r := expectResync(t, f, "history_truncated", ids[2])
		if r.Oldest != ids[20] {
			t.Fatalf("resync oldest %s, want %s (retention 10 of 30)", r.Oldest, ids[20])
		}
		// The id: is where delivery continues: a reconnect from it must not skip the oldest event.
		if idLess(t, f.ID, ids[2]) || !idLess(t, f.ID, r.Oldest) {
			t.Fatalf("resync id %s, want in [%s, %s)", f.ID, ids[2], r.Oldest)
		}
		requireIDs(t, "retained", frameIDs(st.events(t, 10, frameTimeout)), ids[20:])
		live := mustPublish(t, s.URL(), jobProgress(jobA, 1), 1)
		if g := st.nextEvent(t, frameTimeout); g.ID != live[0] {
			t.Fatalf("got %v, want live %s", g, live[0])
		}
		// Resuming from the resync id gives the retained events without another resync.
		again := openStream(t, s.URL()+"/api/v1/stream?since="+url.QueryEscape(f.ID), nil)
		requireIDs(t, "from resync id", frameIDs(again.events(t, 11, frameTimeout)), append(append([]string{}, ids[20:]...), live[0]))
	})
	t.Run("position_unknown", func(t *testing.T) {
		t.Parallel()
		s := startServer(t, nil)
		mustPublish(t, s.URL(), progressBatch(jobA, 3), 3)
		const future = "99999999999999-0"
		st := openStream(t, s.URL()+"/api/v1/stream", map[string]string{"Last-Event-ID": future})
		expectResync(t, st.nextEvent(t, frameTimeout), "position_unknown", future)
		live := mustPublish(t, s.URL(), progressBatch(jobA, 2), 2)
		requireIDs(t, "live after resync", frameIDs(st.events(t, 2, frameTimeout)), live)
	})
}

func TestE2EHistoryPaging(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	var all, notes []string
	for i := 0; i < 6; i++ {
		all = append(all, mustPublish(t, s.URL(), progressBatch(jobA, 20), 20)...)
		n := mustPublish(t, s.URL(), noteCreated(newUUID(), fmt.Sprint("note ", i)), 1)
		all, notes = append(all, n...), append(notes, n...)
	}
	// Default limit 100.
	p := history(t, s.URL(), "after=0")
	requireIDs(t, "default page", historyIDs(t, p), all[:100])
	if p.Oldest != all[0] || p.Next != all[99] {
		t.Fatalf("page oldest %s next %s, want %s and %s", p.Oldest, p.Next, all[0], all[99])
	}
	// Walking with next visits everything exactly once, in order.
	var walked []string
	after := "0"
	for pages := 0; ; pages++ {
		if pages > 50 {
			t.Fatal("paging does not end")
		}
		p := history(t, s.URL(), "limit=7&after="+url.QueryEscape(after))
		if p.Oldest != all[0] {
			t.Fatalf("oldest %s, want %s", p.Oldest, all[0])
		}
		if len(p.Events) > 7 {
			t.Fatalf("%d events with limit=7", len(p.Events))
		}
		walked = append(walked, historyIDs(t, p)...)
		if len(p.Events) == 0 {
			if p.Next != after {
				t.Fatalf("empty page moved next from %s to %s", after, p.Next)
			}
			break
		}
		after = p.Next
	}
	requireIDs(t, "walk", walked, all)
	// Filters.
	requireIDs(t, "type", historyIDs(t, history(t, s.URL(), "after=0&limit=1000&type=note.created")), notes)
	requireIDs(t, "topic", historyIDs(t, history(t, s.URL(), "after=0&limit=1000&topic=notes/*")), notes)
	requireIDs(t, "after", historyIDs(t, history(t, s.URL(), "limit=1000&after="+all[100])), all[101:])
	// Limit validation.
	for _, l := range []string{"0", "1001", "x", "-1", "1.5"} {
		status, _, raw := doRequest(t, http.MethodGet, s.URL()+"/api/v1/events?limit="+l, "", nil)
		expectError(t, status, raw, http.StatusBadRequest, "")
	}
}

func TestE2EErrorsAndIdempotency(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"EVENTGATE_MAX_EVENT_BYTES": "300"})
	cases := []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"unknown route", http.MethodGet, "/nope", "", http.StatusNotFound, "not_found"},
		{"unknown api route", http.MethodGet, "/api/v1/nope", "", http.StatusNotFound, "not_found"},
		{"wrong method", http.MethodDelete, "/api/v1/events", "", http.StatusMethodNotAllowed, ""},
		{"invalid JSON", http.MethodPost, "/api/v1/events", `{"type":`, http.StatusBadRequest, ""},
		{"not an event", http.MethodPost, "/api/v1/events", `"hello"`, http.StatusBadRequest, ""},
		{"empty batch", http.MethodPost, "/api/v1/events", `[]`, http.StatusBadRequest, ""},
		{"trailing garbage", http.MethodPost, "/api/v1/events", queueStatus(1, 1) + `x`, http.StatusBadRequest, ""},
		{"event too large", http.MethodPost, "/api/v1/events", noteCreated(newUUID(), strings.Repeat("t", 400)), http.StatusRequestEntityTooLarge, ""},
		{"too large in batch", http.MethodPost, "/api/v1/events", batch(queueStatus(1, 1), noteCreated(newUUID(), strings.Repeat("t", 400))), http.StatusRequestEntityTooLarge, ""},
		{"title over 500", http.MethodPost, "/api/v1/events", noteCreated(newUUID(), strings.Repeat("é", 501)), 0, ""}, // 400 or 413
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, _, raw := doRequest(t, tc.method, s.URL()+tc.path, tc.body, nil)
			expectError(t, status, raw, tc.status, tc.code)
		})
	}
	if p := history(t, s.URL(), "after=0"); len(p.Events) != 0 {
		t.Fatalf("rejected requests appended %s", p.Events)
	}

	key := map[string]string{"Idempotency-Key": "order-" + newUUID()}
	body := batch(queueStatus(1, 0), queueStatus(2, 0))
	st1, ids1, raw1 := publish(t, s.URL(), body, key)
	st2, ids2, raw2 := publish(t, s.URL(), body, key)
	if st1 != http.StatusCreated || st2 != http.StatusCreated || len(ids1) != 2 {
		t.Fatalf("idempotent publish: %d %s then %d %s, want 201 twice", st1, raw1, st2, raw2)
	}
	requireIDs(t, "repeated Idempotency-Key", ids2, ids1)
	other := mustPublish(t, s.URL(), queueStatus(3, 0), 1)
	requireIDs(t, "history after idempotent repeat", historyIDs(t, history(t, s.URL(), "after=0")), append(ids1, other...))
	status, _, raw := doRequest(t, http.MethodPost, s.URL()+"/api/v1/events", body, map[string]string{"Idempotency-Key": "has space"})
	expectError(t, status, raw, http.StatusBadRequest, "")
}
