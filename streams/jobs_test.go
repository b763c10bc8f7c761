package streams_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/eventgate/eventgate/store"
	"github.com/eventgate/eventgate/streams"
)

// jobLife is one job's events in log order.
func jobLife(t *testing.T) []*streams.Event {
	t.Helper()
	raw := []string{
		`{"type":"job.queued","data":{"job_id":"` + jobA + `","job_type":"resize"}}`,
		`{"type":"job.started","data":{"job_id":"` + jobA + `","job_type":"resize"}}`,
		`{"type":"job.progress","data":{"job_id":"` + jobA + `","percent":10,"message":"a"}}`,
		`{"type":"job.progress","data":{"job_id":"` + jobA + `","percent":60,"message":"b"}}`,
		`{"type":"job.completed","data":{"job_id":"` + jobA + `","job_type":"resize"}}`,
	}
	out := make([]*streams.Event, len(raw))
	for i, r := range raw {
		d, err := streams.ParseDraft([]byte(r))
		if err != nil {
			t.Fatal(err)
		}
		out[i] = streams.NewEvent(streams.ID{MS: 1000, Seq: uint64(i)}, d)
	}
	return out
}

func foldAll(events []*streams.Event) (streams.JobState, []streams.JobState) {
	var st streams.JobState
	var steps []streams.JobState
	for _, e := range events {
		st, _ = streams.FoldJob(st, e)
		steps = append(steps, st)
	}
	return st, steps
}

func TestFoldJobInOrder(t *testing.T) {
	t.Parallel()
	life := jobLife(t)
	_, steps := foldAll(life)
	want := []struct {
		status  string
		percent int
		message string
	}{
		{"queued", 0, ""}, {"running", 0, ""}, {"running", 10, "a"}, {"running", 60, "b"}, {"completed", 100, "b"},
	}
	for i, w := range want {
		if s := steps[i]; s.Status != w.status || s.Percent != w.percent || s.Message != w.message || s.JobType != "resize" && i != 2 && i != 3 {
			t.Fatalf("after event %d: %+v, want %+v", i, s, w)
		}
	}
	if final := steps[4]; final.LastEventID != life[4].ID.String() || !final.UpdatedAt.Equal(life[4].Time()) {
		t.Fatalf("final %+v", final)
	}
}

// TestFoldJobShuffledAndDuplicated: whatever order and repetition events arrive in, a job never
// moves backwards and ends completed at the last event.
func TestFoldJobShuffledAndDuplicated(t *testing.T) {
	t.Parallel()
	life := jobLife(t)
	inOrder, _ := foldAll(append(append([]*streams.Event{}, life...), life...)) // replayed whole
	if want, _ := foldAll(life); inOrder != want {
		t.Fatalf("replaying changed the state: %+v vs %+v", inOrder, want)
	}
	rank := map[string]int{"": 0, "queued": 1, "running": 2, "completed": 3}
	r := rand.New(rand.NewPCG(1, 2))
	for trial := range 500 {
		seq := append(append([]*streams.Event{}, life...), life[r.IntN(len(life))], life[r.IntN(len(life))])
		r.Shuffle(len(seq), func(i, j int) { seq[i], seq[j] = seq[j], seq[i] })
		final, steps := foldAll(seq)
		for i := 1; i < len(steps); i++ {
			if rank[steps[i].Status] < rank[steps[i-1].Status] || steps[i].Percent < steps[i-1].Percent {
				t.Fatalf("trial %d moved backwards at step %d: %+v → %+v", trial, i, steps[i-1], steps[i])
			}
		}
		if final.Status != "completed" || final.Percent != 100 || final.LastEventID != life[4].ID.String() {
			t.Fatalf("trial %d: final %+v", trial, final)
		}
	}
}

func TestProjectorFoldsLog(t *testing.T) {
	t.Parallel()
	h, log := startHub(t, 3, 4) // a ring of 3: state must outlive it
	jobs := store.NewMemoryJobs(time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = streams.NewProjector(h, jobs).Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	raw := []string{
		`{"type":"job.queued","data":{"job_id":"` + jobA + `","job_type":"resize"}}`,
		`{"type":"job.progress","data":{"job_id":"` + jobA + `","percent":40}}`,
		`{"type":"queue.status","data":{"pending":4,"active":1}}`,
		`{"type":"job.failed","data":{"job_id":"` + jobA + `","job_type":"resize","error":"disk full"}}`,
		`{"type":"queue.status","data":{"pending":3,"active":0}}`,
	}
	for _, r := range raw {
		d, err := streams.ParseDraft([]byte(r))
		if err != nil {
			t.Fatal(err)
		}
		ids, err := log.Append(context.Background(), []streams.Draft{d})
		if err != nil {
			t.Fatal(err)
		}
		// Wait until folded, so the ring of 3 trims only what the projector has seen.
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			if c, _ := jobs.Cursor(context.Background()); !c.Less(ids[0]) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("event %v not folded", ids[0])
			}
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, ok, _ := jobs.Job(context.Background(), jobA)
		q, qok, _ := jobs.Queue(context.Background())
		if ok && qok && st.Status == streams.JobFailed && q.Pending == 3 {
			if st.Error != "disk full" || st.Percent != 40 || st.JobType != "resize" {
				t.Fatalf("job %+v", st)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %+v (%v), queue %+v (%v)", st, ok, q, qok)
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
}

func ExampleFoldJob() {
	d, _ := streams.ParseDraft([]byte(`{"type":"job.progress","data":{"job_id":"` + jobA + `","percent":40}}`))
	st, changed := streams.FoldJob(streams.JobState{}, streams.NewEvent(streams.ID{MS: 1732650000000}, d))
	fmt.Println(st.Status, st.Percent, changed)
	// Output: running 40 true
}

func TestResyncCarriesQueueStatus(t *testing.T) {
	t.Parallel()
	log := store.NewMemory(5)
	log.SetPoll(20 * time.Millisecond)
	jobs := store.NewMemoryJobs(time.Hour)
	if ok, _ := jobs.SwapQueue(context.Background(), "", streams.QueueState{Pending: 9, Active: 1, LastEventID: "1-0"}); !ok {
		t.Fatal("swap")
	}
	h := streams.NewHub(log, streams.HubOptions{Queue: jobs.Queue})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = h.Run(ctx) }()
	ids := appendN(t, log, 20)
	sub, err := h.Subscribe(ctx, streams.Filter{}, streams.After(ids[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	got := collect(t, sub, 1)
	if !strings.Contains(string(got[0].JSON), `"queue":{"pending":9,"active":1`) {
		t.Fatalf("resync %s does not carry the queue status", got[0].JSON)
	}
}

func TestReceiptBody(t *testing.T) {
	t.Parallel()
	ids := []streams.ID{{MS: 1, Seq: 2}, {MS: 30, Seq: 0}}
	want, _ := json.Marshal(map[string][]string{"ids": {"1-2", "30-0"}})
	if got := streams.ReceiptBody(ids); string(got) != string(want) {
		t.Fatalf("%s, want %s", got, want)
	}
}
