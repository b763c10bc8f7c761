package store_test

import (
	"testing"
	"time"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/jobs"
	"github.com/eventgate/eventgate/store"
	"github.com/eventgate/eventgate/store/storetest"
	"github.com/eventgate/eventgate/streams"
	"github.com/eventgate/eventgate/webhooks"
)

func TestDiskReceipts(t *testing.T) {
	t.Parallel()
	storetest.RunReceipts(t, func(t *testing.T) streams.Receipts {
		return store.NewDiskReceipts(openDisk(t, t.TempDir(), store.DiskOptions{}))
	})
}

func TestDiskJobs(t *testing.T) {
	t.Parallel()
	storetest.RunJobs(t, func(t *testing.T, ttl time.Duration) jobs.Store {
		return store.NewDiskJobs(openDisk(t, t.TempDir(), store.DiskOptions{}), ttl)
	})
}

func TestDiskWebhooks(t *testing.T) {
	t.Parallel()
	storetest.RunWebhooks(t, func(t *testing.T) webhooks.Store {
		return store.NewDiskWebhooks(openDisk(t, t.TempDir(), store.DiskOptions{}))
	})
}

// TestDiskCompanionsSurviveReopen: receipts, job and queue state, the jobs cursor, webhook
// endpoints with their cursor, retries and delivery log are there after a restart.
func TestDiskCompanionsSurviveReopen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := t.Context()
	d := openDisk(t, dir, store.DiskOptions{})
	ids, _, _, err := store.NewDiskReceipts(d).AppendOnce(ctx, d, "key", storetest.Drafts(t, 2), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	js := store.NewDiskJobs(d, time.Hour)
	job := jobs.State{JobID: storetest.JobID, Status: jobs.Running, Percent: 40, LastEventID: ids[0].String()}
	queue := jobs.QueueState{Pending: 3, Active: 1, LastEventID: ids[1].String()}
	if ok, err := js.SwapJob(ctx, "", job); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if ok, err := js.SwapQueue(ctx, "", queue); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if err := js.SetCursor(ctx, ids[1]); err != nil {
		t.Fatal(err)
	}
	wh := store.NewDiskWebhooks(d)
	hook := webhooks.Webhook{ID: "h1", URL: "https://example.com/hook", Topics: []string{"jobs/*"}, Secret: "whsec_x", Enabled: true, CreatedAt: time.UnixMilli(1764194400123).UTC()}
	if err := wh.CreateWebhook(ctx, hook, event.ID{}, 10); err != nil {
		t.Fatal(err)
	}
	if ok, err := wh.AcquireWebhook(ctx, "h1", "me", time.Minute); !ok || err != nil {
		t.Fatal(ok, err)
	}
	retry := webhooks.Retry{EventID: ids[0], Attempt: 2, Due: time.UnixMilli(1764194400999).UTC(), Body: []byte(`{"x":1}`)}
	if err := wh.ScheduleRetry(ctx, "h1", "me", retry); err != nil {
		t.Fatal(err)
	}
	if err := wh.AdvanceWebhookCursor(ctx, "h1", "me", ids[1]); err != nil {
		t.Fatal(err)
	}
	if err := wh.RecordDelivery(ctx, "h1", webhooks.Delivery{EventID: ids[0], Attempt: 1, Outcome: "http_5xx", Status: 503}); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	d = openDisk(t, dir, store.DiskOptions{})
	r := store.NewDiskReceipts(d)
	if again, prior, _, err := r.AppendOnce(ctx, d, "key", storetest.Drafts(t, 2), time.Hour); again != nil || err != nil || string(prior) != string(streams.ReceiptBody(ids)) {
		t.Fatalf("repeated key after reopening: ids %v prior %s err %v", again, prior, err)
	}
	js = store.NewDiskJobs(d, time.Hour)
	if got, ok, err := js.Job(ctx, storetest.JobID); !ok || err != nil || got.Percent != 40 || got.LastEventID != job.LastEventID {
		t.Fatalf("job after reopening: %+v %v %v", got, ok, err)
	}
	if got, ok, err := js.Queue(ctx); !ok || err != nil || got != queue {
		t.Fatalf("queue after reopening: %+v %v %v", got, ok, err)
	}
	if c, err := js.Cursor(ctx); c != ids[1] || err != nil {
		t.Fatalf("jobs cursor after reopening: %s %v", c, err)
	}
	wh = store.NewDiskWebhooks(d)
	if got, err := wh.Webhook(ctx, "h1"); err != nil || got.URL != hook.URL || got.Secret != hook.Secret || !got.CreatedAt.Equal(hook.CreatedAt) {
		t.Fatalf("webhook after reopening: %+v %v", got, err)
	}
	if c, err := wh.WebhookCursor(ctx, "h1"); c != ids[1] || err != nil {
		t.Fatalf("webhook cursor after reopening: %s %v", c, err)
	}
	// The lease was in process: a new owner takes the endpoint at once, and finds the retry.
	if ok, err := wh.AcquireWebhook(ctx, "h1", "next", time.Minute); !ok || err != nil {
		t.Fatal(ok, err)
	}
	got, ok, err := wh.ClaimRetry(ctx, "h1", "next", retry.Due, time.Minute)
	if !ok || err != nil || got.EventID != retry.EventID || string(got.Body) != string(retry.Body) || got.Attempt != 2 {
		t.Fatalf("retry after reopening: %+v %v %v", got, ok, err)
	}
	if ds, err := wh.Deliveries(ctx, "h1", 10); err != nil || len(ds) != 1 || ds[0].Status != 503 {
		t.Fatalf("deliveries after reopening: %+v %v", ds, err)
	}
}
