package streams_test

import (
	"context"
	"fmt"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/store"
	"github.com/eventgate/eventgate/streams"
)

// Example shows the subscription core: publish to the log, then a subscriber that resumes from
// the oldest event replays the history and continues live, in order, each event once.
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := store.NewMemory(1000)
	hub := streams.NewHub(log, streams.HubOptions{})
	go func() { _ = hub.Run(ctx) }()

	publish := func(raw string) {
		d, err := event.ParseDraft([]byte(raw))
		if err != nil {
			panic(err)
		}
		if _, err := log.Append(ctx, []event.Draft{d}); err != nil {
			panic(err)
		}
	}
	publish(`{"type":"job.queued","data":{"job_id":"6f1c2a9e-1d4b-4c59-9d1e-6a2b3c4d5e6f","job_type":"resize"}}`)
	publish(`{"type":"queue.status","data":{"pending":1,"active":0}}`)

	jobs, _ := event.NewFilter([]string{"jobs/*"}, nil)
	sub, err := hub.Subscribe(ctx, jobs, streams.After(event.ID{})) // from the oldest event
	if err != nil {
		panic(err)
	}
	defer sub.Close()

	publish(`{"type":"job.progress","data":{"job_id":"6f1c2a9e-1d4b-4c59-9d1e-6a2b3c4d5e6f","percent":50,"message":"read /home/app/in.png\nstack..."}}`)
	var got []*event.Event
	for len(got) < 2 {
		<-sub.Ready() // in a server: one case of the connection's select loop
		got, _ = sub.Next(ctx, got)
	}
	for _, e := range got {
		fmt.Println(e.Type, e.Topic, string(e.Data))
	}
	// Output:
	// job.queued jobs/6f1c2a9e-1d4b-4c59-9d1e-6a2b3c4d5e6f {"job_id":"6f1c2a9e-1d4b-4c59-9d1e-6a2b3c4d5e6f","job_type":"resize"}
	// job.progress jobs/6f1c2a9e-1d4b-4c59-9d1e-6a2b3c4d5e6f {"job_id":"6f1c2a9e-1d4b-4c59-9d1e-6a2b3c4d5e6f","percent":50,"message":"read [path]"}
}
