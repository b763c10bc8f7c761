package main

// The final check of TestE2EFaultSchedule: per subscriber, order, duplicates and every
// acknowledged event either received or covered by a resync it received.

import (
	"fmt"
	"strings"
	"testing"
)

// faultFigures are the totals of a run, over all subscribers.
type faultFigures struct {
	reconnects, resyncs int
	lost                int // (acked event, subscriber) pairs: not received and not covered
	duplicated          int // received ids not above the one before (a repeat, or out of order)
	covered             int // (acked event, subscriber) pairs missing but covered by a resync
	reappended          int // sequence numbers delivered under more than one id
}

// covers reports whether resync r tells its subscriber that acknowledged event x may be missing.
// It does when x is after the position r was asked for (requested < x) and
//
//	(a) x < r.oldest: the log says it holds nothing older than oldest (trimmed or lost); or
//	(b) x ≤ r.at (SSE: the resync's id: line): delivery was said to continue after at; or
//	(c) r.reason is position_unknown and x belongs to the log a reset lost: the first reset after
//	    requested has a boundary B with x < B (see faultTimeline.resets).
//
// A WebSocket resync frame carries no id, so (b) is SSE only; (a) and (c) cover what a correct
// server can leave out. Anything else missing is a silent loss.
func covers(r faultResync, x faultID, resets []uint64) bool {
	if !r.requested.less(x) {
		return false
	}
	if x.less(r.oldest) || r.hasAt && !r.at.less(x) {
		return true
	}
	if r.reason == "position_unknown" {
		for _, b := range resets {
			if r.requested.ms < b {
				return x.ms < b
			}
		}
	}
	return false
}

// checkFaultRun checks every subscriber (their goroutines have ended) and reports failures with
// the subscriber, the ids and the faults around them.
func checkFaultRun(t *testing.T, subs []*faultSub, pub *faultPublisher, tl *faultTimeline) faultFigures {
	t.Helper()
	for i, f := range tl.faults {
		t.Logf("fault #%d at +%.1fs: %s", i+1, f.at.Sub(tl.t0).Seconds(), f.name)
	}
	if len(pub.problems) > 0 {
		t.Errorf("publisher: %s", strings.Join(pub.problems, "; "))
	}
	var fig faultFigures
	idsOf := map[int]map[faultID]bool{} // sequence number → ids it was delivered under
	lostSubs := 0
	for _, s := range subs {
		fig.reconnects += s.connects - 1
		fig.resyncs += len(s.resyncs)
		if len(s.problems) > 0 {
			t.Errorf("%s: protocol problems: %s", s.name, strings.Join(s.problems, "; "))
		}
		received := make(map[faultID]bool, len(s.got))
		var dups []string
		for i, id := range s.got {
			received[id] = true
			if i > 0 && !s.got[i-1].less(id) {
				fig.duplicated++
				if len(dups) < 5 {
					dups = append(dups, fmt.Sprintf("%s after %s (event %d)", id, s.got[i-1], i))
				}
			}
			if seq := s.seqs[i]; seq > 0 {
				if idsOf[seq] == nil {
					idsOf[seq] = map[faultID]bool{}
				}
				idsOf[seq][id] = true
			}
		}
		if len(dups) > 0 {
			t.Errorf("%s received ids out of order or twice: %s", s.name, strings.Join(dups, "; "))
		}
		var lost []int // indexes into pub.acked
		for i, a := range pub.acked {
			switch {
			case !s.start.less(a.id) || received[a.id]:
			case s.coveredByResync(a.id, tl.resets):
				fig.covered++
			default:
				lost = append(lost, i)
			}
		}
		if len(lost) > 0 {
			fig.lost += len(lost)
			lostSubs++
			if lostSubs <= 10 { // the first ten in full; the rest by name in the summary below
				t.Errorf("%s", s.describeLoss(lost, pub.acked, tl))
			}
		}
	}
	if lostSubs > 0 {
		t.Errorf("%d of %d subscribers silently lost acknowledged events (%d in all)", lostSubs, len(subs), fig.lost)
	}
	for _, ids := range idsOf {
		if len(ids) > 1 {
			fig.reappended++
		}
	}
	return fig
}

func (s *faultSub) coveredByResync(x faultID, resets []uint64) bool {
	for _, r := range s.resyncs {
		if covers(r, x, resets) {
			return true
		}
	}
	return false
}

// describeLoss names the subscriber, the lost ids in runs of consecutive acknowledgements, the
// faults around each run, and the resyncs it did receive.
func (s *faultSub) describeLoss(lost []int, acked []faultAck, tl *faultTimeline) string {
	var b strings.Builder
	kind := "SSE"
	if s.ws {
		kind = "WebSocket"
	}
	fmt.Fprintf(&b, "%s (%s, %d connections, %d failed connects) lost %d of %d acknowledged events — not received, no resync covering them:",
		s.name, kind, s.connects, s.failedConnects, len(lost), len(acked))
	runs := 0
	for i := 0; i < len(lost); {
		j := i
		for j+1 < len(lost) && lost[j+1] == lost[j]+1 {
			j++
		}
		if runs++; runs <= 5 {
			first, last := acked[lost[i]], acked[lost[j]]
			fmt.Fprintf(&b, "\n  %d events, seq %d..%d, ids %s..%s, acknowledged at +%.1fs, %s",
				j-i+1, first.seq, last.seq, first.id, last.id, first.at.Sub(tl.t0).Seconds(), tl.around(first.at))
		}
		i = j + 1
	}
	if runs > 5 {
		fmt.Fprintf(&b, "\n  … and %d more runs", runs-5)
	}
	if len(s.resyncs) == 0 {
		b.WriteString("\n  it received no resync at all")
	}
	for i, r := range s.resyncs {
		if i == 5 {
			fmt.Fprintf(&b, "\n  … and %d more resyncs", len(s.resyncs)-5)
			break
		}
		at := "(no id: WebSocket)"
		if r.hasAt {
			at = "continuing after " + r.at.String()
		}
		fmt.Fprintf(&b, "\n  resync %s requested %s oldest %s %s, after its event %d", r.reason, r.requested, r.oldest, at, r.after)
	}
	return b.String()
}

func TestFaultCovers(t *testing.T) {
	t.Parallel()
	id := func(ms, seq uint64) faultID { return faultID{ms, seq} }
	resets := []uint64{2000, 5000} // Redis restarted empty twice
	for _, c := range []struct {
		name string
		r    faultResync
		x    faultID
		want bool
	}{
		{"not after requested", faultResync{reason: "history_truncated", requested: id(100, 0), oldest: id(900, 0)}, id(100, 0), false},
		{"older than oldest", faultResync{reason: "history_truncated", requested: id(100, 0), oldest: id(900, 0)}, id(899, 5), true},
		{"held: oldest itself", faultResync{reason: "history_truncated", requested: id(100, 0), oldest: id(900, 0)}, id(900, 0), false},
		{"SSE: up to the id: line", faultResync{reason: "history_truncated", requested: id(100, 0), at: id(950, 0), hasAt: true}, id(950, 0), true},
		{"SSE: after the id: line", faultResync{reason: "history_truncated", requested: id(100, 0), at: id(950, 0), hasAt: true}, id(950, 1), false},
		{"unknown: in the log the reset lost", faultResync{reason: "position_unknown", requested: id(1500, 0)}, id(1999, 9), true},
		{"unknown: in the new log", faultResync{reason: "position_unknown", requested: id(1500, 0)}, id(2000, 0), false},
		{"unknown: only the first reset after requested", faultResync{reason: "position_unknown", requested: id(1500, 0)}, id(4000, 0), false},
		{"unknown: requested in the second log", faultResync{reason: "position_unknown", requested: id(2500, 0)}, id(4999, 0), true},
		{"unknown: no reset after requested", faultResync{reason: "position_unknown", requested: id(6000, 0)}, id(7000, 0), false},
		{"truncated: a reset does not count", faultResync{reason: "history_truncated", requested: id(1500, 0)}, id(1999, 0), false},
	} {
		if got := covers(c.r, c.x, resets); got != c.want {
			t.Errorf("%s: covers(%+v, %s) = %v, want %v", c.name, c.r, c.x, got, c.want)
		}
	}
}
