// Package jobs keeps the state of jobs and of the job queue, folded from the log's job.* and
// queue.status events (docs/api.md#job-and-queue-state): the fold itself, the store port it is kept
// behind, the projector that drains a hub subscription into that store, and the queue status
// carried by resyncs.
package jobs

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/eventgate/eventgate/event"
)

// Job statuses (docs/api.md#job-and-queue-state).
const (
	Queued    = "queued"
	Running   = "running"
	Completed = "completed"
	Failed    = "failed"
)

// State is a job's current state folded from the log. It is a value: folding returns a new one.
type State struct {
	JobID       string    `json:"job_id"`
	JobType     string    `json:"job_type"`
	Status      string    `json:"status"`
	Percent     int       `json:"percent"`
	Message     string    `json:"message"`
	Error       string    `json:"error"`
	UpdatedAt   time.Time `json:"updated_at"`
	LastEventID string    `json:"last_event_id"`
}

// QueueState is the latest queue.status.
type QueueState struct {
	Pending     int64     `json:"pending"`
	Active      int64     `json:"active"`
	UpdatedAt   time.Time `json:"updated_at"`
	LastEventID string    `json:"last_event_id"`
}

// statusOf is the status a job event moves a job to ("" for another type).
func statusOf(typ string) string {
	switch typ {
	case event.TypeJobQueued:
		return Queued
	case event.TypeJobStarted, event.TypeJobProgress:
		return Running
	case event.TypeJobCompleted:
		return Completed
	case event.TypeJobFailed:
		return Failed
	}
	return ""
}

// rank orders statuses so that a fold never moves a job backwards.
func rank(status string) int {
	switch status {
	case Queued:
		return 1
	case Running:
		return 2
	case Completed, Failed:
		return 3
	}
	return 0
}

type jobData struct {
	JobID   string `json:"job_id"`
	JobType string `json:"job_type"`
	Percent int    `json:"percent"`
	Message string `json:"message"`
	Error   string `json:"error"`
}

// Fold applies a job event to st and reports whether the state changed. The fold is
// idempotent and order-safe: an event at or before st's last event is ignored, and a job never
// moves backwards (queued → running → completed/failed; percent never decreases while running;
// a finished job stays finished).
func Fold(st State, e *event.Event) (State, bool) {
	if !strings.HasPrefix(e.Type, "job.") {
		return st, false
	}
	if st.LastEventID != "" {
		if last, err := event.ParseID(st.LastEventID); err == nil && !last.Less(e.ID) {
			return st, false
		}
	}
	var d jobData
	if err := json.Unmarshal(e.Data, &d); err != nil {
		return st, false
	}
	next := st
	next.JobID = d.JobID
	if d.JobType != "" {
		next.JobType = d.JobType
	}
	status := statusOf(e.Type)
	switch {
	case rank(status) > rank(st.Status):
		next.Status = status
	case rank(status) < rank(st.Status) || rank(st.Status) == 3:
		// An older stage, or anything after the end: remember we saw it, change nothing else.
		next.LastEventID = e.ID.String()
		return next, next != st
	}
	switch e.Type {
	case event.TypeJobProgress:
		next.Percent = max(next.Percent, d.Percent)
		next.Message = d.Message
	case event.TypeJobCompleted:
		next.Percent = 100
	case event.TypeJobFailed:
		next.Error = d.Error
	}
	next.UpdatedAt = e.Time()
	next.LastEventID = e.ID.String()
	return next, true
}

// FoldQueue applies a queue.status event; the newest event wins.
func FoldQueue(st QueueState, e *event.Event) (QueueState, bool) {
	if e.Type != event.TypeQueueStatus {
		return st, false
	}
	if st.LastEventID != "" {
		if last, err := event.ParseID(st.LastEventID); err == nil && !last.Less(e.ID) {
			return st, false
		}
	}
	var d struct{ Pending, Active int64 }
	if err := json.Unmarshal(e.Data, &d); err != nil {
		return st, false
	}
	return QueueState{Pending: d.Pending, Active: d.Active, UpdatedAt: e.Time(), LastEventID: e.ID.String()}, true
}
