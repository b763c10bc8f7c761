package jobs_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/jobs"
)

const jobA = "6f1c2a9e-1d4b-4c59-9d1e-6a2b3c4d5e6f"

// jobLife is one job's events in log order.
func jobLife(t *testing.T) []*event.Event {
	t.Helper()
	raw := []string{
		`{"type":"job.queued","data":{"job_id":"` + jobA + `","job_type":"resize"}}`,
		`{"type":"job.started","data":{"job_id":"` + jobA + `","job_type":"resize"}}`,
		`{"type":"job.progress","data":{"job_id":"` + jobA + `","percent":10,"message":"a"}}`,
		`{"type":"job.progress","data":{"job_id":"` + jobA + `","percent":60,"message":"b"}}`,
		`{"type":"job.completed","data":{"job_id":"` + jobA + `","job_type":"resize"}}`,
	}
	out := make([]*event.Event, len(raw))
	for i, r := range raw {
		d, err := event.ParseDraft([]byte(r))
		if err != nil {
			t.Fatal(err)
		}
		out[i] = event.NewEvent(event.ID{MS: 1000, Seq: uint64(i)}, d)
	}
	return out
}

func foldAll(events []*event.Event) (jobs.State, []jobs.State) {
	var st jobs.State
	var steps []jobs.State
	for _, e := range events {
		st, _ = jobs.Fold(st, e)
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
	inOrder, _ := foldAll(append(append([]*event.Event{}, life...), life...)) // replayed whole
	if want, _ := foldAll(life); inOrder != want {
		t.Fatalf("replaying changed the state: %+v vs %+v", inOrder, want)
	}
	rank := map[string]int{"": 0, "queued": 1, "running": 2, "completed": 3}
	r := rand.New(rand.NewPCG(1, 2))
	for trial := range 500 {
		seq := append(append([]*event.Event{}, life...), life[r.IntN(len(life))], life[r.IntN(len(life))])
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

func ExampleFold() {
	d, _ := event.ParseDraft([]byte(`{"type":"job.progress","data":{"job_id":"` + jobA + `","percent":40}}`))
	st, changed := jobs.Fold(jobs.State{}, event.NewEvent(event.ID{MS: 1732650000000}, d))
	fmt.Println(st.Status, st.Percent, changed)
	// Output: running 40 true
}
