package main

// End-to-end tests of the console page (GET /) in a real headless chromium, driven over the
// DevTools protocol with chromedp: the page loads without console errors, job progress bars move
// to 100 % on both transports, the page keeps reconnecting after a non-200 answer (where
// EventSource alone gives up), and after eventgate restarts on the Redis store it shows
// "reconnecting", then every event published meanwhile, in order, without a reload.
//
// One browser serves every subtest (a tab each). Chromium comes from EVENTGATE_TEST_CHROMIUM or
// PATH (.ci/chromium.sh installs Debian's package); without it these tests skip, or fail when
// EVENTGATE_TEST_REQUIRE_CHROMIUM=1. The browser only ever loads loopback URLs, and its resolver
// maps every host name except localhost to "not found", so background services dial nothing.
// On failure a screenshot is saved into a temp dir of the test's own (kept: t.TempDir would be
// removed with the test) and its path logged; EVENTGATE_TEST_SCREENSHOTS=<dir> saves one of each
// passing console view too (desktop and phone sizes), for a human to look at.

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

const (
	browserTimeout = 20 * time.Second // for one expected change on the page
)

func TestE2EBrowserConsole(t *testing.T) {
	t.Parallel()
	browser := newBrowser(t)

	for _, transport := range []string{"sse", "ws"} {
		t.Run("progress/"+transport, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, map[string]string{"EVENTGATE_AUTH": "none"})
			// A queue status exists, so the page's first GET /api/v1/queue is a 200 (a 404 is
			// logged by the browser as a failed resource, which would count as an error).
			mustPublish(t, s.URL(), queueStatus(2, 0), 1)
			p := openConsole(t, browser, s.URL())
			p.waitConnected("sse")
			if transport != "sse" {
				p.useTransport(transport)
			}
			v := p.waitFor("the queue status", func(v pageView) bool { return strings.HasPrefix(v.Queue, "2 pending · 0 active") })
			if len(v.IDs) != 0 || v.LastID != "—" {
				t.Fatalf("a live page shows events before any was published: %+v", v)
			}

			job := newUUID()
			ids := mustPublish(t, s.URL(), batch(jobQueued(job), jobStarted(job), jobProgress(job, 40)), 3)
			v = p.waitFor("job at 40 %", func(v pageView) bool { return v.Jobs[job].Percent == 40 })
			requireJob(t, v, job, "running", 40)

			// A payload with markup is shown as text, never parsed as HTML.
			ids = append(ids, mustPublish(t, s.URL(), fmt.Sprintf(`{"type":"job.progress","data":{"job_id":%q,"percent":75,"message":"<img src=x onerror=alert(1)>"}}`, job), 1)...)
			ids = append(ids, mustPublish(t, s.URL(), batch(jobProgress(job, 100), jobCompleted(job), queueStatus(0, 1)), 3)...)
			v = p.waitFor("the job completed", func(v pageView) bool { return v.Jobs[job].Status == "completed" && v.LastID == ids[len(ids)-1] })
			requireJob(t, v, job, "completed", 100)
			requireIDs(t, "events shown", v.IDs, ids)
			if !strings.HasPrefix(v.Queue, "0 pending · 1 active") {
				t.Fatalf("queue shows %q, want 0 pending · 1 active", v.Queue)
			}
			injected, err := chromedp.Run(p.ctx, chromedp.Evaluate[int](`document.querySelectorAll("#events img, #jobs img").length`))
			if err != nil || injected != 0 {
				t.Fatalf("payload markup was inserted as HTML (%d img elements, %v)", injected, err)
			}
			if errs := p.consoleErrors(); len(errs) > 0 {
				t.Fatalf("console errors: %q", errs)
			}
			p.keepScreenshots("console-" + transport)
		})
	}

	// Any non-200 answer closes an EventSource for good; the page's own wrapper must keep
	// trying. Here the answer is 429: the one connection per IP is taken by another client.
	t.Run("after-non-200", func(t *testing.T) {
		t.Parallel()
		s := startServer(t, map[string]string{"EVENTGATE_AUTH": "none", "EVENTGATE_MAX_CONNECTIONS_PER_IP": "1"})
		holder := openStream(t, s.URL()+"/api/v1/stream", nil)
		if status, _, raw := doRequest(t, http.MethodGet, s.URL()+"/api/v1/stream", "", nil); status != http.StatusTooManyRequests {
			t.Fatalf("a second stream got %d %s, want 429", status, raw)
		}
		p := openConsole(t, browser, s.URL())
		v := p.waitFor("reconnecting after a 429", func(v pageView) bool {
			return v.State == "reconnecting" && strings.Contains(v.Text, "attempt 2")
		})
		t.Logf("while refused: %q", v.Text)
		holder.Close()
		p.waitConnected("sse")
		job := newUUID()
		ids := mustPublish(t, s.URL(), batch(jobQueued(job), jobProgress(job, 10)), 2)
		v = p.waitFor("the events after the 429", func(v pageView) bool { return v.LastID == ids[1] })
		requireIDs(t, "events shown", v.IDs, ids)
		requireJob(t, v, job, "running", 10)
	})

	// Topic and type filters are applied by the server; a filter it refuses stops the page with
	// the server's message instead of retrying forever.
	t.Run("filters", func(t *testing.T) {
		t.Parallel()
		s := startServer(t, map[string]string{"EVENTGATE_AUTH": "none"})
		p := openConsole(t, browser, s.URL())
		p.waitConnected("sse")
		setFilters := func(topics, types string) {
			t.Helper()
			p.setField("topics", topics)
			p.setField("types", types)
			if err := p.do(chromedp.Click(chromedp.ID("connect"))); err != nil {
				t.Fatal(err)
			}
		}
		setFilters("NOT/a/pattern", "")
		v := p.waitFor("a refused filter", func(v pageView) bool { return v.State == "error" })
		if !strings.Contains(v.Text, "refused") || !strings.Contains(v.Text, "NOT/a/pattern") {
			t.Fatalf("after a bad filter the page shows %q", v.Text)
		}
		setFilters("jobs/*, queue", "job.progress queue.status")
		p.waitConnected("sse")
		job := newUUID()
		ids := mustPublish(t, s.URL(), batch(noteCreated(newUUID(), "filtered out"), jobQueued(job), jobProgress(job, 5), queueStatus(1, 0)), 4)
		v = p.waitFor("the filtered events", func(v pageView) bool { return v.LastID == ids[3] })
		requireIDs(t, "events shown", v.IDs, ids[2:])
	})

	// With auth on: no token is refused (and the page stops); a pasted token goes to the API as a
	// cookie on both transports, never into the page's URL, also after another tab deleted the
	// cookie; an expiring token ends in "token expired" (SSE auth_expired event, WebSocket close
	// 1008).
	t.Run("token", func(t *testing.T) {
		t.Parallel()
		const secret = "console-e2e-secret-0123456789abcdef0123"
		s := startServer(t, map[string]string{"EVENTGATE_JWT_SECRET": secret})
		if status, _, _ := doRequest(t, http.MethodGet, s.URL()+"/api/v1/events", "", nil); status != http.StatusUnauthorized {
			t.Skipf("GET /api/v1/events without a token: %d: the binary does not enforce EVENTGATE_JWT_SECRET", status)
		}
		token := consoleJWT(secret, time.Hour)
		p := openConsole(t, browser, s.URL())
		v := p.waitFor("refused without a token", func(v pageView) bool { return v.State == "error" })
		if !strings.Contains(v.Text, "not authorized") {
			t.Fatalf("without a token the page shows %q, want \"not authorized: ...\"", v.Text)
		}
		connectWith := func(tok string) {
			t.Helper()
			p.setField("token", tok)
			if err := p.do(chromedp.Click(chromedp.ID("connect"))); err != nil {
				t.Fatal(err)
			}
		}
		connectWith(token)
		p.waitConnected("sse")
		job := newUUID()
		pub := map[string]string{"Authorization": "Bearer " + token}
		if status, _, raw := publish(t, s.URL(), batch(jobQueued(job), jobProgress(job, 100), jobCompleted(job)), pub); status != http.StatusCreated {
			t.Fatalf("publish: %d %s", status, raw)
		}
		requireJob(t, p.waitFor("the job over SSE", func(v pageView) bool { return v.Jobs[job].Status == "completed" }), job, "completed", 100)
		// The cookie is the browser's, shared by every tab of the host (ports do not count): a
		// second console tab without a token deletes it when it connects, as the other subtests'
		// tabs (on other ports) do at random moments. The first tab must still take its own token
		// to its next connection, here the switch to WebSocket.
		other := openConsole(t, browser, s.URL())
		other.waitFor("a second tab refused without a token", func(v pageView) bool { return v.State == "error" })
		p.useTransport("ws")
		queue, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](`location.href + " " + document.referrer`))
		if err != nil || strings.Contains(queue, token) || strings.Contains(queue, "access_token") {
			t.Fatalf("the token is in the page's URL: %q (%v)", queue, err)
		}
		if status, _, raw := publish(t, s.URL(), queueStatus(1, 1), pub); status != http.StatusCreated {
			t.Fatalf("publish: %d %s", status, raw)
		}
		p.waitFor("the queue over WebSocket", func(v pageView) bool { return strings.HasPrefix(v.Queue, "1 pending · 1 active") })

		for _, transport := range []string{"ws", "sse"} {
			name := map[string]string{"ws": "websocket", "sse": "sse"}[transport]
			opened := countLines(s, "connection opened", map[string]string{"transport": name})
			expiredBefore := countLines(s, "connection closed", map[string]string{"transport": name, "reason": "auth_expired"})
			p.chooseTransport(transport)
			// Long enough to connect under load; the page state of the previous round says
			// "expired" already, so the server's log tells this round's story.
			connectWith(consoleJWT(secret, 6*time.Second))
			waitFor(t, "the page connects over "+name, 20*time.Second, func() bool {
				return countLines(s, "connection opened", map[string]string{"transport": name}) > opened
			})
			waitFor(t, "the server ends the "+name+" stream for the expiry", 20*time.Second, func() bool {
				return countLines(s, "connection closed", map[string]string{"transport": name, "reason": "auth_expired"}) > expiredBefore
			})
			v := p.waitFor("token expired over "+transport, func(v pageView) bool { return v.State == "expired" })
			if !strings.Contains(v.Text, "token expired") {
				t.Fatalf("after expiry over %s the page shows %q", transport, v.Text)
			}
		}
	})

	// The documented browser snippets (README.md's EventSource wrapper, docs/clients.md's WebSocket
	// one), as a reader would paste them: they receive events, and after a restart (in-process
	// store: the new log cannot vouch for their position) they reconnect, get resync, and receive
	// live events again.
	t.Run("readme-snippets", func(t *testing.T) {
		t.Parallel()
		sse, ws := docBlock(t, "README.md", "readme-eventsource"), docBlock(t, "docs/clients.md", "clients-websocket")
		a := startServer(t, map[string]string{"EVENTGATE_AUTH": "none", "EVENTGATE_SHUTDOWN_GRACE": "2s"})
		p := openConsole(t, browser, a.URL())
		setup := `(() => {` + sse + "\n" + ws + `
			window.__readme = {sse: {got: [], states: []}, ws: {got: [], states: []}};
			for (const [name, fn] of [["sse", subscribe], ["ws", subscribeWS]]) {
				const r = window.__readme[name];
				fn({topic: "jobs/*"}, (type, ev) => r.got.push(type + " " + (ev.id || ev.reason)), (s) => r.states.push(s));
			}
		})()`
		if err := p.do(chromedp.Evaluate[chromedp.Void](setup)); err != nil {
			t.Fatalf("running the documented snippets: %v", err)
		}
		type got struct {
			Got    []string `json:"got"`
			States []string `json:"states"`
		}
		read := func() (map[string]got, error) {
			ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
			defer cancel()
			return chromedp.Run(ctx, chromedp.Evaluate[map[string]got](`window.__readme`))
		}
		waitBoth := func(what string, cond func(got) bool) {
			t.Helper()
			deadline := time.Now().Add(browserTimeout)
			for {
				r, err := read()
				if err == nil && cond(r["sse"]) && cond(r["ws"]) {
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("documented snippets: no %s within %s: %+v (%v)", what, browserTimeout, r, err)
				}
				select {
				case <-time.After(50 * time.Millisecond): // poll interval
				case <-p.ctx.Done():
					t.Fatal("the tab closed")
				}
			}
		}
		last := func(ss []string) string {
			if len(ss) == 0 {
				return ""
			}
			return ss[len(ss)-1]
		}
		waitBoth("connection", func(g got) bool { return last(g.States) == "connected" })
		job := newUUID()
		ids := mustPublish(t, a.URL(), batch(noteCreated(newUUID(), "not in jobs/*"), jobQueued(job), jobProgress(job, 30)), 3)
		want := []string{"job.queued " + ids[1], "job.progress " + ids[2]}
		waitBoth("events", func(g got) bool { return len(g.Got) >= 2 })
		if r, _ := read(); !slices.Equal(r["sse"].Got, want) || !slices.Equal(r["ws"].Got, want) {
			t.Fatalf("documented snippets got %+v, want %q each", r, want)
		}

		a.Stop()
		waitBoth("reconnecting", func(g got) bool { return strings.HasPrefix(last(g.States), "reconnecting (attempt") })
		b := startServer(t, map[string]string{"EVENTGATE_AUTH": "none", "EVENTGATE_ADDR": a.addr})
		waitBoth("resync after the restart", func(g got) bool {
			return slices.Contains(g.Got, "resync position_unknown") && last(g.States) == "connected"
		})
		live := mustPublish(t, b.URL(), jobProgress(job, 60), 1)
		waitBoth("a live event after the restart", func(g got) bool { return last(g.Got) == "job.progress "+live[0] })
	})

	// eventgate restarts on the Redis store (SIGTERM, then a new process on the same port);
	// meanwhile a producer XADDs. The page shows reconnecting, then every missed event in order.
	for _, transport := range []string{"sse", "ws"} {
		t.Run("restart/"+transport, func(t *testing.T) {
			t.Parallel()
			client, key, env := redisSetup(t, map[string]string{"EVENTGATE_AUTH": "none", "EVENTGATE_SHUTDOWN_GRACE": "5s"})
			a := startServer(t, env)
			p := openConsole(t, browser, a.URL())
			p.waitConnected("sse")
			if transport != "sse" {
				p.useTransport(transport)
			}
			if err := p.do(chromedp.Evaluate[chromedp.Void](`window.__eventgateTestMarker = true`)); err != nil {
				t.Fatal(err)
			}
			job := newUUID()
			seen := mustPublish(t, a.URL(), batch(jobQueued(job), jobProgress(job, 20)), 2)
			p.waitFor("the events before the restart", func(v pageView) bool { return v.LastID == seen[1] })

			a.Stop()
			v := p.waitFor("reconnecting", func(v pageView) bool {
				return v.State == "reconnecting" && strings.Contains(v.Text, "attempt")
			})
			t.Logf("while down: %q", v.Text)
			p.keepScreenshots("reconnecting-" + transport)
			missed := []string{
				xadd(t, client, key, "event", jobProgress(job, 50)),
				xadd(t, client, key, "event", noteCreated(newUUID(), "while eventgate was down")),
				xadd(t, client, key, "event", jobProgress(job, 90)),
				xadd(t, client, key, "event", jobCompleted(job)),
				xadd(t, client, key, "event", queueStatus(5, 3)),
			}

			env["EVENTGATE_ADDR"] = a.addr // the same port: the page reconnects to where it was
			b := startServer(t, env)
			want := append(slices.Clone(seen), missed...)
			v = p.waitFor("every missed event", func(v pageView) bool { return v.LastID == want[len(want)-1] })
			requireIDs(t, "events shown after the restart", v.IDs, want)
			if v.State != "connected" || v.Transport != transport || !strings.Contains(v.Text, "resumed after") {
				t.Fatalf("state %q over %q (%q), want connected and resumed over %s", v.State, v.Transport, v.Text, transport)
			}
			if !v.Marker {
				t.Fatal("the page was reloaded")
			}
			requireJob(t, v, job, "completed", 100)
			if !strings.HasPrefix(v.Queue, "5 pending · 3 active") {
				t.Fatalf("queue shows %q, want 5 pending · 3 active", v.Queue)
			}
			// And live again.
			live := mustPublish(t, b.URL(), queueStatus(0, 0), 1)
			v = p.waitFor("a live event after the restart", func(v pageView) bool { return v.LastID == live[0] })
			requireIDs(t, "events shown", v.IDs, append(want, live...))
		})
	}
}
