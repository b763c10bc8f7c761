package jobs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/jobs"
	"github.com/eventgate/eventgate/store"
	"github.com/eventgate/eventgate/streams"
)

// attackJobs is a job store that widens the window between a read and its compare-and-set (so
// that projectors sharing it conflict), checks that no swap moves a state backwards, and can
// crash its projector (cancel) after a number of swaps: after a job's swap and before the next
// job's, or the cursor's, as a crash mid-page would.
type attackJobs struct {
	*store.MemoryJobs
	swaps    atomic.Int64
	crashAt  int64 // cancel after this many successful swaps (0: never)
	crash    context.CancelFunc
	crashed  atomic.Bool // after the crash, nothing more is stored
	mu       sync.Mutex
	backward []string
}

func (a *attackJobs) Job(ctx context.Context, id string) (jobs.State, bool, error) {
	if a.crashed.Load() {
		return jobs.State{}, false, context.Canceled
	}
	st, ok, err := a.MemoryJobs.Job(ctx, id)
	runtime.Gosched() // let another projector swap in between
	return st, ok, err
}

func (a *attackJobs) Queue(ctx context.Context) (jobs.QueueState, bool, error) {
	st, ok, err := a.MemoryJobs.Queue(ctx)
	runtime.Gosched()
	return st, ok, err
}

func (a *attackJobs) SetCursor(ctx context.Context, id event.ID) error {
	if a.crashed.Load() {
		return context.Canceled
	}
	return a.MemoryJobs.SetCursor(ctx, id)
}

func (a *attackJobs) after(prev, next string) {
	if prev != "" {
		p, _ := event.ParseID(prev)
		n, err := event.ParseID(next)
		if err != nil || !p.Less(n) {
			a.mu.Lock()
			a.backward = append(a.backward, fmt.Sprintf("%s -> %s", prev, next))
			a.mu.Unlock()
		}
	}
	if n := a.swaps.Add(1); a.crashAt > 0 && n == a.crashAt {
		a.crashed.Store(true)
		a.crash()
	}
}

func (a *attackJobs) SwapJob(ctx context.Context, prev string, next jobs.State) (bool, error) {
	if a.crashed.Load() {
		return false, context.Canceled
	}
	ok, err := a.MemoryJobs.SwapJob(ctx, prev, next)
	if ok {
		a.after(prev, next.LastEventID)
	}
	return ok, err
}

func (a *attackJobs) SwapQueue(ctx context.Context, prev string, next jobs.QueueState) (bool, error) {
	if a.crashed.Load() {
		return false, context.Canceled
	}
	ok, err := a.MemoryJobs.SwapQueue(ctx, prev, next)
	if ok {
		a.after(prev, next.LastEventID)
	}
	return ok, err
}

// jobLog appends a random history of several jobs and the queue, interleaved: stages out of
// order, progress going down, events after a job's end, the queue's status changing.
func jobLog(t *testing.T, log streams.Log, rnd *rand.Rand, n int) {
	t.Helper()
	ids := []string{
		"6f1c2a9e-1d4b-4c59-9d1e-6a2b3c4d5e61", "6f1c2a9e-1d4b-4c59-9d1e-6a2b3c4d5e62",
		"6f1c2a9e-1d4b-4c59-9d1e-6a2b3c4d5e63", "6f1c2a9e-1d4b-4c59-9d1e-6a2b3c4d5e64",
		"6f1c2a9e-1d4b-4c59-9d1e-6a2b3c4d5e65",
	}
	for n > 0 {
		batch := make([]event.Draft, 0, 4)
		for range min(n, 1+rnd.IntN(4)) {
			id := ids[rnd.IntN(len(ids))]
			var raw string
			switch rnd.IntN(8) {
			case 0:
				raw = fmt.Sprintf(`{"type":"job.queued","data":{"job_id":%q,"job_type":"resize"}}`, id)
			case 1:
				raw = fmt.Sprintf(`{"type":"job.started","data":{"job_id":%q,"job_type":"resize"}}`, id)
			case 2, 3, 4:
				raw = fmt.Sprintf(`{"type":"job.progress","data":{"job_id":%q,"percent":%d,"message":"m%d"}}`, id, rnd.IntN(100), rnd.IntN(1000))
			case 5:
				raw = fmt.Sprintf(`{"type":"job.completed","data":{"job_id":%q,"job_type":"resize"}}`, id)
			case 6:
				raw = fmt.Sprintf(`{"type":"job.failed","data":{"job_id":%q,"job_type":"resize","error":"e%d"}}`, id, rnd.IntN(1000))
			default:
				raw = fmt.Sprintf(`{"type":"queue.status","data":{"pending":%d,"active":%d}}`, rnd.IntN(50), rnd.IntN(5))
			}
			d, err := event.ParseDraft([]byte(raw))
			if err != nil {
				t.Fatal(err)
			}
			batch = append(batch, d)
		}
		if _, err := log.Append(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
		n -= len(batch)
	}
}

// reference folds the whole log once, event by event, in log order.
func reference(t *testing.T, log streams.Log) (map[string]jobs.State, jobs.QueueState, event.ID) {
	t.Helper()
	page, err := log.Read(context.Background(), event.ID{}, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]jobs.State{}
	var q jobs.QueueState
	for _, e := range page.Events {
		if e.Type == event.TypeQueueStatus {
			q, _ = jobs.FoldQueue(q, e)
			continue
		}
		var d struct {
			JobID string `json:"job_id"`
		}
		_ = json.Unmarshal(e.Data, &d)
		states[d.JobID], _ = jobs.Fold(states[d.JobID], e)
	}
	return states, q, page.Next
}

// runProjector runs a projector (with a hub of its own over log) until ctx ends; the returned
// channel closes when it has.
func runProjector(ctx context.Context, log streams.Log, st jobs.Store, opts streams.HubOptions) <-chan struct{} {
	h := streams.NewHub(log, opts)
	done := make(chan struct{})
	go func() { _ = h.Run(ctx) }()
	go func() {
		defer close(done)
		_ = jobs.NewProjector(h, st, slog.New(slog.DiscardHandler)).Run(ctx)
	}()
	return done
}

// waitFolded polls until the stored cursor reaches last.
func waitFolded(t *testing.T, st jobs.Store, last event.ID) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if c, _ := st.Cursor(context.Background()); !c.Less(last) {
			return
		}
		if time.Now().After(deadline) {
			c, _ := st.Cursor(context.Background())
			t.Fatalf("cursor at %v, want %v", c, last)
		}
	}
}

func wantReference(t *testing.T, st *attackJobs, log streams.Log) {
	t.Helper()
	want, wantQ, _ := reference(t, log)
	for id, w := range want {
		got, ok, _ := st.MemoryJobs.Job(context.Background(), id)
		if !ok || got != w {
			t.Errorf("job %s:\n got %+v\nwant %+v", id, got, w)
		}
	}
	if got, _, _ := st.MemoryJobs.Queue(context.Background()); got != wantQ {
		t.Errorf("queue:\n got %+v\nwant %+v", got, wantQ)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.backward) > 0 {
		t.Errorf("swaps moved a state backwards: %v", st.backward)
	}
}

// A projector that crashes mid-page — after some jobs' compare-and-sets, before the others' and
// before its lazily stored cursor — and is restarted, possibly from a cursor older still (an
// older snapshot of the store), ends with exactly the state one fold of the whole log gives.
func TestProjectorCrashRefoldAttack(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		crashAt int64
		rewind  string // "": the cursor as stored; "zero": from the log's start; "half"
	}{
		{"crash after the first swap", 1, ""},
		{"crash mid-page", 7, ""},
		{"crash late, cursor rewound to zero", 40, "zero"},
		{"crash mid-page, cursor rewound half way", 13, "half"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			log := store.NewMemory(1 << 16)
			log.SetPoll(20 * time.Millisecond)
			rnd := rand.New(rand.NewPCG(uint64(tc.crashAt), 9))
			jobLog(t, log, rnd, 300)
			opts := streams.HubOptions{PageSize: 32, Buffer: 4}
			ctx, cancel := context.WithCancel(context.Background())
			st := &attackJobs{MemoryJobs: store.NewMemoryJobs(time.Hour), crashAt: tc.crashAt, crash: cancel}
			<-runProjector(ctx, log, st, opts) // runs until it crashes
			cancel()
			switch tc.rewind {
			case "zero":
				_ = st.SetCursor(context.Background(), event.ID{})
			case "half":
				page, _ := log.Read(context.Background(), event.ID{}, 150)
				_ = st.SetCursor(context.Background(), page.Next)
			}
			jobLog(t, log, rnd, 100) // more after the crash
			st.crashAt = 0
			st.crashed.Store(false) // the process restarts
			ctx2, cancel2 := context.WithCancel(context.Background())
			done := runProjector(ctx2, log, st, opts)
			_, _, last := reference(t, log)
			waitFolded(t, st, last)
			cancel2()
			<-done
			wantReference(t, st, log)
		})
	}
}

// Two projectors (each with its hub) fold the same log into one store at once, while it is
// appended to: their compare-and-sets conflict, and the state never moves backwards and ends as
// one fold of the log.
func TestProjectorsShareStoreAttack(t *testing.T) {
	t.Parallel()
	for _, page := range []int{1, 8, 256} {
		t.Run(fmt.Sprintf("page %d", page), func(t *testing.T) {
			t.Parallel()
			log := store.NewMemory(1 << 16)
			log.SetPoll(20 * time.Millisecond)
			rnd := rand.New(rand.NewPCG(uint64(page), 5))
			jobLog(t, log, rnd, 100)
			st := &attackJobs{MemoryJobs: store.NewMemoryJobs(time.Hour)}
			ctx, cancel := context.WithCancel(context.Background())
			opts := streams.HubOptions{PageSize: page, Buffer: 2}
			a := runProjector(ctx, log, st, opts)
			b := runProjector(ctx, log, st, opts)
			jobLog(t, log, rnd, 300)
			_, _, last := reference(t, log)
			waitFolded(t, st, last)
			cancel()
			<-a
			<-b
			wantReference(t, st, log)
		})
	}
}
