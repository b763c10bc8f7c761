package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/jobs"
)

// NewJobs makes an empty job state store whose entries expire ttl after their last update.
type NewJobs func(t *testing.T, ttl time.Duration) jobs.Store

// RunJobs is the contract suite of jobs.Store implementations.
func RunJobs(t *testing.T, newJobs NewJobs) {
	t.Run("compare and set", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		s := newJobs(t, time.Hour)
		if _, ok, err := s.Job(ctx, JobID); ok || err != nil {
			t.Fatalf("unknown job: ok %v err %v", ok, err)
		}
		first := jobs.State{JobID: JobID, Status: jobs.Queued, LastEventID: "1-0"}
		second := jobs.State{JobID: JobID, Status: jobs.Running, Percent: 5, LastEventID: "2-0"}
		steps := []struct {
			prev string
			next jobs.State
			want bool
		}{
			{"", first, true},
			{"", second, false},    // someone else wrote first
			{"9-9", second, false}, // stale
			{"1-0", second, true},
		}
		for i, st := range steps {
			ok, err := s.SwapJob(ctx, st.prev, st.next)
			if err != nil || ok != st.want {
				t.Fatalf("step %d: swapped %v err %v, want %v", i, ok, err, st.want)
			}
		}
		got, ok, err := s.Job(ctx, JobID)
		if err != nil || !ok || got.Status != jobs.Running || got.Percent != 5 || got.LastEventID != "2-0" {
			t.Fatalf("job %+v ok %v err %v", got, ok, err)
		}
	})
	t.Run("queue", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		s := newJobs(t, time.Hour)
		if _, ok, _ := s.Queue(ctx); ok {
			t.Fatal("queue known before any status")
		}
		q := jobs.QueueState{Pending: 3, Active: 1, LastEventID: "5-0"}
		if ok, err := s.SwapQueue(ctx, "", q); !ok || err != nil {
			t.Fatalf("swap: %v %v", ok, err)
		}
		if ok, _ := s.SwapQueue(ctx, "", q); ok {
			t.Fatal("second swap from empty succeeded")
		}
		got, ok, err := s.Queue(ctx)
		if !ok || err != nil || got.Pending != 3 || got.Active != 1 {
			t.Fatalf("queue %+v %v %v", got, ok, err)
		}
	})
	t.Run("cursor never moves back", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		s := newJobs(t, time.Hour)
		for _, id := range []event.ID{{MS: 10, Seq: 2}, {MS: 9, Seq: 99}, {MS: 10, Seq: 1}} {
			if err := s.SetCursor(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
		if c, err := s.Cursor(ctx); err != nil || c != (event.ID{MS: 10, Seq: 2}) {
			t.Fatalf("cursor %v %v", c, err)
		}
	})
	t.Run("expiry", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		s := newJobs(t, 100*time.Millisecond)
		if ok, err := s.SwapJob(ctx, "", jobs.State{JobID: JobID, LastEventID: "1-0"}); !ok || err != nil {
			t.Fatalf("swap %v %v", ok, err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			if _, ok, _ := s.Job(ctx, JobID); !ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("job state did not expire")
			}
			time.Sleep(20 * time.Millisecond) // poll interval
		}
	})
}
