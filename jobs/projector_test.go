package jobs_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/jobs"
	"github.com/eventgate/eventgate/store"
	"github.com/eventgate/eventgate/streams"
)

func TestProjectorFoldsLog(t *testing.T) {
	t.Parallel()
	log := store.NewMemory(3) // a ring of 3: state must outlive it
	log.SetPoll(50 * time.Millisecond)
	h := streams.NewHub(log, streams.HubOptions{Buffer: 4, PageSize: 32})
	go func() { _ = h.Run(t.Context()) }()
	state := store.NewMemoryJobs(time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = jobs.NewProjector(h, state, nil).Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	raw := []string{
		`{"type":"job.queued","data":{"job_id":"` + jobA + `","job_type":"resize"}}`,
		`{"type":"job.progress","data":{"job_id":"` + jobA + `","percent":40}}`,
		`{"type":"queue.status","data":{"pending":4,"active":1}}`,
		`{"type":"job.failed","data":{"job_id":"` + jobA + `","job_type":"resize","error":"disk full"}}`,
		`{"type":"queue.status","data":{"pending":3,"active":0}}`,
	}
	for _, r := range raw {
		d, err := event.ParseDraft([]byte(r))
		if err != nil {
			t.Fatal(err)
		}
		ids, err := log.Append(context.Background(), []event.Draft{d})
		if err != nil {
			t.Fatal(err)
		}
		// Wait until folded, so the ring of 3 trims only what the projector has seen.
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			if c, _ := state.Cursor(context.Background()); !c.Less(ids[0]) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("event %v not folded", ids[0])
			}
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, ok, _ := state.Job(context.Background(), jobA)
		q, qok, _ := state.Queue(context.Background())
		if ok && qok && st.Status == jobs.Failed && q.Pending == 3 {
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

// countingJobs counts the compare-and-sets and makes the first of each fail, as when another
// instance folds the same job concurrently.
type countingJobs struct {
	*store.MemoryJobs
	swaps, queueSwaps atomic.Int32
	conflict          sync.Map // job id (or "queue") → already failed once
}

func (c *countingJobs) SwapJob(ctx context.Context, prev string, next jobs.State) (bool, error) {
	c.swaps.Add(1)
	if _, seen := c.conflict.LoadOrStore(next.JobID, true); !seen {
		return false, nil
	}
	return c.MemoryJobs.SwapJob(ctx, prev, next)
}

func (c *countingJobs) SwapQueue(ctx context.Context, prev string, next jobs.QueueState) (bool, error) {
	c.queueSwaps.Add(1)
	if _, seen := c.conflict.LoadOrStore("queue", true); !seen {
		return false, nil
	}
	return c.MemoryJobs.SwapQueue(ctx, prev, next)
}

// A page holding events of several jobs and of the queue, interleaved, is folded with one
// compare-and-set per job (plus the retry of a conflict), and every job ends where its own events
// take it.
func TestProjectorFoldsPagePerJob(t *testing.T) {
	t.Parallel()
	log := store.NewMemory(100)
	h := streams.NewHub(log, streams.HubOptions{PageSize: 64})
	go func() { _ = h.Run(t.Context()) }()
	const jobB = "7a2d3b0f-2e5c-4d6a-8e2f-7b3c4d5e6f70"
	raw := []string{
		`{"type":"job.queued","data":{"job_id":"` + jobA + `","job_type":"resize"}}`,
		`{"type":"job.queued","data":{"job_id":"` + jobB + `","job_type":"encode"}}`,
		`{"type":"queue.status","data":{"pending":2,"active":0}}`,
		`{"type":"job.progress","data":{"job_id":"` + jobA + `","percent":40,"message":"a"}}`,
		`{"type":"job.progress","data":{"job_id":"` + jobB + `","percent":70,"message":"b"}}`,
		`{"type":"job.progress","data":{"job_id":"` + jobA + `","percent":60,"message":"c"}}`,
		`{"type":"queue.status","data":{"pending":0,"active":2}}`,
		`{"type":"job.completed","data":{"job_id":"` + jobB + `","job_type":"encode"}}`,
	}
	drafts := make([]event.Draft, len(raw))
	for i, r := range raw {
		d, err := event.ParseDraft([]byte(r))
		if err != nil {
			t.Fatal(err)
		}
		drafts[i] = d
	}
	// Appended before the projector starts: it folds them as one page from the log's start.
	ids, err := log.Append(t.Context(), drafts)
	if err != nil {
		t.Fatal(err)
	}
	state := &countingJobs{MemoryJobs: store.NewMemoryJobs(time.Hour)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = jobs.NewProjector(h, state, nil).Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if c, _ := state.Cursor(t.Context()); !c.Less(ids[len(ids)-1]) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("page not folded")
		}
	}
	a, _, _ := state.Job(t.Context(), jobA)
	b, _, _ := state.Job(t.Context(), jobB)
	q, _, _ := state.Queue(t.Context())
	if a.Status != jobs.Running || a.Percent != 60 || a.Message != "c" || a.LastEventID != ids[5].String() {
		t.Errorf("job A %+v", a)
	}
	if b.Status != jobs.Completed || b.Percent != 100 || b.LastEventID != ids[7].String() {
		t.Errorf("job B %+v", b)
	}
	if q.Active != 2 || q.Pending != 0 || q.LastEventID != ids[6].String() {
		t.Errorf("queue %+v", q)
	}
	if n := state.swaps.Load(); n != 4 { // two jobs, each a conflict and its retry
		t.Errorf("%d job compare-and-sets for one page of two jobs, want 4", n)
	}
	if n := state.queueSwaps.Load(); n != 2 {
		t.Errorf("%d queue compare-and-sets for one page, want 2", n)
	}
}
