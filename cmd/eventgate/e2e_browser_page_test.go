package main

// The console page driver for the browser tests: one headless chromium, a tab per case, the page
// read from the DOM, screenshots on failure.

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath returns the browser binary, or skips (fails when it is required).
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("EVENTGATE_TEST_CHROMIUM"), "chromium", "chromium-browser"} {
		if p == "" {
			continue
		}
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("EVENTGATE_TEST_REQUIRE_CHROMIUM") == "1" {
		t.Fatal("no chromium binary (EVENTGATE_TEST_CHROMIUM, PATH) and EVENTGATE_TEST_REQUIRE_CHROMIUM=1: run .ci/chromium.sh")
	}
	t.Skip("no chromium binary: set EVENTGATE_TEST_CHROMIUM or run .ci/chromium.sh")
	return ""
}

// newBrowser starts one headless chromium with a fresh profile; it is closed at cleanup.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("no-pings", true),
		// Nothing but loopback: every host but localhost and 127.0.0.1 maps to "not found".
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1000),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	startCtx, cancelStart := context.WithTimeout(ctx, 30*time.Second)
	defer cancelStart()
	// The first Do binds the browser's life to the context it gets: give it ctx, bounded by a
	// watchdog that cancels it only if the start hangs.
	stop := context.AfterFunc(startCtx, func() {
		if startCtx.Err() == context.DeadlineExceeded {
			cancel()
		}
	})
	defer stop()
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

// consolePage is one tab showing the console.
type consolePage struct {
	t      *testing.T
	ctx    context.Context
	mu     sync.Mutex
	errors []string // console errors and uncaught exceptions
}

// openConsole opens the console of baseURL in a new tab of browser. At cleanup, a failed test
// saves a screenshot (path logged) before the tab closes.
func openConsole(t *testing.T, browser context.Context, baseURL string) *consolePage {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	p := &consolePage{t: t, ctx: ctx}
	t.Cleanup(func() {
		if t.Failed() {
			p.screenshot(filepath.Join(failureDir(t), "console-failure.png"))
			t.Logf("page at failure: %+v", p.snapshot())
		}
		cancel()
	})
	// The first Do on a context opens the tab and binds the tab's life to the context it gets:
	// give it ctx itself; later actions get timeouts of their own (p.do).
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("opening a tab: %v", err)
	}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				p.mu.Lock()
				p.errors = append(p.errors, fmt.Sprintf("%s (%s:%d)", m, m.URL, m.Line+1))
				p.mu.Unlock()
			}
		}
	}()
	if err := p.do(chromedp.Navigate(baseURL + "/")); err != nil {
		t.Fatalf("loading the console: %v", err)
	}
	return p
}

// do runs actions with the per-change timeout.
func (p *consolePage) do(actions ...chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(p.ctx, browserTimeout)
	defer cancel()
	return chromedp.Do(ctx, actions...)
}

// consoleErrors returns the console errors and exceptions so far.
func (p *consolePage) consoleErrors() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.errors)
}

// jobRow is one row of the jobs table as shown.
type jobRow struct {
	Status  string  `json:"status"`
	Badge   string  `json:"badge"`
	Percent float64 `json:"percent"`
	Label   string  `json:"label"`
}

// pageView is what the console shows, read from the DOM.
type pageView struct {
	State     string            `json:"state"`
	Transport string            `json:"transport"`
	Text      string            `json:"text"`
	LastID    string            `json:"lastId"`
	IDs       []string          `json:"ids"` // event ids, oldest first
	Jobs      map[string]jobRow `json:"jobs"`
	Queue     string            `json:"queue"`
	Marker    bool              `json:"marker"` // set by the test: gone after a reload
}

const viewJS = `(() => {
  const conn = document.getElementById("conn");
  if (!conn) return {state: "", ids: [], jobs: {}};
  return {
    state: conn.dataset.state, transport: conn.dataset.transport, text: conn.textContent,
    lastId: document.getElementById("last-id").textContent,
    ids: [...document.querySelectorAll("#events li:not(.control)")].map((li) => li.dataset.id).reverse(),
    jobs: Object.fromEntries([...document.querySelectorAll("#jobs tbody tr")].map((tr) => [tr.dataset.job, {
      status: tr.dataset.status, badge: tr.querySelector(".badge").textContent,
      percent: tr.querySelector("progress").value, label: tr.querySelector(".pct").textContent}])),
    queue: document.getElementById("queue").textContent,
    marker: window.__eventgateTestMarker === true,
  };
})()`

// snapshot reads the page; a zero view if the page does not answer.
func (p *consolePage) snapshot() pageView {
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[pageView](viewJS))
	if err != nil {
		return pageView{State: "unreadable: " + err.Error()}
	}
	return v
}

// waitFor polls the page until cond holds, failing with the last view after browserTimeout.
func (p *consolePage) waitFor(what string, cond func(pageView) bool) pageView {
	p.t.Helper()
	deadline := time.Now().Add(browserTimeout)
	for {
		v := p.snapshot()
		if cond(v) {
			return v
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("the console did not show %s within %s; it shows %+v", what, browserTimeout, v)
		}
		select {
		case <-p.ctx.Done():
			p.t.Fatalf("the tab closed while waiting for %s", what)
		case <-time.After(50 * time.Millisecond): // poll interval
		}
	}
}

// waitConnected waits for the connection state "connected" over transport.
func (p *consolePage) waitConnected(transport string) pageView {
	p.t.Helper()
	return p.waitFor("connected over "+transport, func(v pageView) bool {
		return v.State == "connected" && v.Transport == transport
	})
}

// chooseTransport clicks the transport's radio button ("sse" or "ws"). A connected page
// switches at once, resuming from its last id; a stopped one uses it on the next Connect.
func (p *consolePage) chooseTransport(transport string) {
	p.t.Helper()
	if err := p.do(chromedp.Click(chromedp.CSS(`input[name="transport"][value="` + transport + `"]`))); err != nil {
		p.t.Fatalf("choosing %s: %v", transport, err)
	}
}

// setField sets the value of the form field with id, as typing would.
func (p *consolePage) setField(id, value string) {
	p.t.Helper()
	js, _ := json.Marshal(value)
	if err := p.do(chromedp.Evaluate[chromedp.Void](`document.getElementById("` + id + `").value = ` + string(js))); err != nil {
		p.t.Fatalf("setting #%s: %v", id, err)
	}
}

// useTransport switches a connected page to transport and waits until it is connected over it.
func (p *consolePage) useTransport(transport string) {
	p.t.Helper()
	p.chooseTransport(transport)
	p.waitConnected(transport)
}

func (p *consolePage) screenshot(path string) {
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err == nil {
		err = os.WriteFile(path, png, 0o644)
	}
	if err != nil {
		p.t.Logf("screenshot: %v", err)
		return
	}
	p.t.Logf("screenshot: %s", path)
}

// keepScreenshots saves desktop and phone-sized screenshots into EVENTGATE_TEST_SCREENSHOTS.
func (p *consolePage) keepScreenshots(name string) {
	dir := os.Getenv("EVENTGATE_TEST_SCREENSHOTS")
	if dir == "" {
		return
	}
	p.screenshot(filepath.Join(dir, name+"-desktop.png"))
	if err := p.do(chromedp.EmulateViewport(390, 844)); err == nil {
		p.screenshot(filepath.Join(dir, name+"-phone.png"))
		_ = p.do(chromedp.EmulateViewport(1280, 1000))
	}
}

// requireJob requires the job's row to show status at percent.
func requireJob(t *testing.T, v pageView, job, status string, percent int) {
	t.Helper()
	r, ok := v.Jobs[job]
	if !ok || r.Status != status || r.Badge != status || int(r.Percent) != percent || r.Label != fmt.Sprintf("%d %%", percent) {
		t.Fatalf("job %s shows %+v (present: %v), want %s at %d %%", job, r, ok, status, percent)
	}
}

func jobStarted(job string) string {
	return fmt.Sprintf(`{"type":"job.started","data":{"job_id":%q,"job_type":"export"}}`, job)
}

func jobCompleted(job string) string {
	return fmt.Sprintf(`{"type":"job.completed","data":{"job_id":%q,"job_type":"export"}}`, job)
}

// docBlock returns the JavaScript block of file (README.md or docs/..., relative to the
// repository root) that follows the marker "<!-- e2e: name", so the documented snippets are the
// ones tested.
func docBlock(t *testing.T, file, name string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", filepath.FromSlash(file)))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(raw), "<!-- e2e: "+name)
	if ok {
		_, rest, ok = strings.Cut(rest, "```js\n")
	}
	var block string
	if ok {
		block, _, ok = strings.Cut(rest, "```")
	}
	if !ok {
		t.Fatalf("%s has no ```js block after <!-- e2e: %s", file, name)
	}
	return block
}

// consoleJWT signs an HS256 token (sub, exp, scope subscribe publish) valid for ttl.
func consoleJWT(secret string, ttl time.Duration) string {
	enc := base64.RawURLEncoding
	claims, _ := json.Marshal(map[string]any{"sub": "console-e2e", "exp": time.Now().Add(ttl).Unix(), "scope": "subscribe publish"})
	unsigned := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc.EncodeToString(claims)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(unsigned))
	return unsigned + "." + enc.EncodeToString(mac.Sum(nil))
}

// failureDir is where a failed test leaves its screenshot: EVENTGATE_TEST_SCREENSHOTS, else a new
// temp dir named after the test that outlives it (t.TempDir is removed when the test ends).
func failureDir(t *testing.T) string {
	if dir := os.Getenv("EVENTGATE_TEST_SCREENSHOTS"); dir != "" {
		return dir
	}
	dir, err := os.MkdirTemp("", "eventgate-"+strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())+"-")
	if err != nil {
		return os.TempDir()
	}
	return dir
}
