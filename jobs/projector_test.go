package jobs_test

import (
	"context"
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
