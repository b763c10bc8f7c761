package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"time"

	"github.com/eventgate/eventgate/client"
)

// fakeEventgate is a tiny stand-in for an eventgate server, enough for the example: POST
// /api/v1/events appends; GET /api/v1/stream sends what follows Last-Event-ID (or everything),
// then a shutdown on the first connection and an auth_expired on later ones.
func fakeEventgate() *httptest.Server {
	var mu sync.Mutex
	var events []string // envelopes; event n has id "<n>-0"
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer s3cret" {
			http.Error(w, `{"error":{"code":"unauthorized","message":"A bearer token is required."}}`, http.StatusUnauthorized)
			return
		}
		if r.Method == http.MethodPost {
			var batch []struct {
				Type string          `json:"type"`
				Data json.RawMessage `json:"data"`
			}
			_ = json.NewDecoder(r.Body).Decode(&batch)
			var ids []string
			for _, e := range batch {
				id := strconv.Itoa(len(events)+1) + "-0"
				env, _ := json.Marshal(map[string]any{"id": id, "type": e.Type, "topic": "queue", "time": "2026-11-26T21:20:00.123Z", "data": e.Data})
				events, ids = append(events, string(env)), append(ids, id)
			}
			w.WriteHeader(http.StatusCreated)
			_ = json.NewEncoder(w).Encode(map[string][]string{"ids": ids})
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "retry: 10\n\n")
		last := r.Header.Get("Last-Event-ID")
		from, _ := strconv.Atoi(last[:max(0, len(last)-2)]) // "<n>-0" → n
		for i := from; i < len(events); i++ {
			fmt.Fprintf(w, "id: %d-0\nevent: queue.status\ndata: %s\n\n", i+1, events[i])
		}
		if last == "" {
			fmt.Fprint(w, "event: shutdown\ndata: {\"type\":\"shutdown\"}\n\n")
		} else {
			fmt.Fprint(w, "event: auth_expired\ndata: {\"type\":\"auth_expired\"}\n\n")
		}
	}))
}

func Example() {
	srv := fakeEventgate()
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	c, err := client.New(srv.URL, client.Options{Token: "s3cret"})
	if err != nil {
		log.Fatal(err)
	}
	// One batch, appended atomically; retried with the same Idempotency-Key if need be.
	ids, err := c.Publish(ctx, []json.RawMessage{
		json.RawMessage(`{"type":"queue.status","data":{"pending":2,"active":1}}`),
		json.RawMessage(`{"type":"queue.status","data":{"pending":1,"active":1}}`),
	}, client.PublishOptions{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("published", ids)

	sub := c.Subscribe(ctx, client.SubscribeOptions{Topics: []string{"queue"}, Since: "0"})
	defer sub.Close()
	for {
		m, err := sub.Next()
		if errors.Is(err, client.ErrAuthExpired) {
			// Subscribe again with a fresh token and LastEventID: sub.LastEventID() to go on.
			fmt.Println("token expired; resume after", sub.LastEventID())
			return
		} else if err != nil {
			log.Fatal(err)
		}
		switch m.Kind {
		case client.KindEvent:
			fmt.Println(m.Event.ID, m.Event.Type, m.Event.Topic, string(m.Event.Data))
		case client.KindResync:
			fmt.Println("resync: refetch your state;", m.Resync.Reason)
		case client.KindShutdown:
			fmt.Println("server shutting down; the subscription reconnects by itself")
		}
	}
	// Output:
	// published [1-0 2-0]
	// 1-0 queue.status queue {"pending":2,"active":1}
	// 2-0 queue.status queue {"pending":1,"active":1}
	// server shutting down; the subscription reconnects by itself
	// token expired; resume after 2-0
}
