package main

// The console with operator-defined types (EVENTGATE_CATALOGUE): it lists them from
// GET /api/v1/catalogue, offers them in the type filter, and shows their events on both
// transports; after a SIGHUP reload, the next connection picks up the new type.

import (
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/chromedp/chromedp"
)

// typeItem is one entry of the console's list of event types.
type typeItem struct {
	Type    string `json:"type"`
	Builtin string `json:"builtin"`
	Badge   string `json:"badge"`
	Topic   string `json:"topic"`
}

const typeListJS = `[...document.querySelectorAll("#type-list li")].map((li) => ({
  type: li.dataset.type, builtin: li.dataset.builtin, topic: li.querySelector(".type-topic").textContent,
  badge: (li.querySelector(".badge") || {}).textContent || ""}))`

const typeOptionsJS = `[...document.querySelectorAll("#type-names option")].map((o) => o.value)`

func TestE2EBrowserCatalogue(t *testing.T) {
	t.Parallel()
	browser := newBrowser(t)
	path := catalogueFile(t, "")
	s := startServer(t, map[string]string{"EVENTGATE_AUTH": "none", "EVENTGATE_CATALOGUE": path})
	mustPublish(t, s.URL(), queueStatus(0, 0), 1) // GET /api/v1/queue is a 200, not a logged 404
	p := openConsole(t, browser, s.URL())
	p.waitConnected("sse")

	items, err := chromedp.Run(p.ctx, chromedp.Evaluate[[]typeItem](typeListJS))
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(items, func(it typeItem) bool { return it.Type == "order.shipped" })
	if len(items) != 11 || i < 0 || items[i].Builtin != "false" || items[i].Badge != "custom" || items[i].Topic != "orders/{order_id}" {
		t.Fatalf("the console lists %+v, want the 9 built-in and 2 custom types, order.shipped marked custom", items)
	}
	if j := slices.IndexFunc(items, func(it typeItem) bool { return it.Type == "job.progress" }); j < 0 || items[j].Badge != "" {
		t.Fatalf("job.progress listed as %+v", items)
	}
	options, err := chromedp.Run(p.ctx, chromedp.Evaluate[[]string](typeOptionsJS))
	if err != nil || !slices.Contains(options, "payment.declined") || !slices.Contains(options, "queue.status") {
		t.Fatalf("the type filter offers %v (%v), want the catalogue's types", options, err)
	}

	order := newUUID()
	ids := mustPublish(t, s.URL(), orderShipped(order, "ups"), 1)
	p.waitFor("the custom event over SSE", func(v pageView) bool { return v.LastID == ids[0] })
	p.useTransport("ws")
	ids = append(ids, mustPublish(t, s.URL(), `{"type":"payment.declined","data":{"account":"acme","payment_id":"`+newUUID()+`","amount":3,"currency":"USD"}}`, 1)...)
	v := p.waitFor("the custom event over WebSocket", func(v pageView) bool { return v.LastID == ids[1] })
	requireIDs(t, "events shown", v.IDs, ids)
	shown, err := chromedp.Run(p.ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#events li .ev-type")].map((n) => n.textContent)`))
	if err != nil || !slices.Equal(shown, []string{"payment.declined", "order.shipped"}) {
		t.Fatalf("event rows show types %v (%v)", shown, err)
	}

	// A reload adds a type; the page learns it on its next connection (here: Connect).
	if err := os.WriteFile(path, []byte(mustRead(t, path)+`
  order.delivered:
    topic: "orders/{order_id}"
    schema: {type: object, additionalProperties: false, required: [order_id], properties: {order_id: {type: string, format: uuid}}}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reload", frameTimeout, func() bool { return countLines(s, "catalogue reloaded", nil) == 1 })
	p.chooseTransport("sse")
	p.waitFor("order.delivered listed", func(pageView) bool {
		items, err := chromedp.Run(p.ctx, chromedp.Evaluate[[]typeItem](typeListJS))
		return err == nil && slices.ContainsFunc(items, func(it typeItem) bool { return it.Type == "order.delivered" })
	})
	p.waitConnected("sse")
	ids = append(ids, mustPublish(t, s.URL(), `{"type":"order.delivered","data":{"order_id":"`+order+`"}}`, 1)...)
	v = p.waitFor("the new type's event over SSE", func(v pageView) bool { return v.LastID == ids[2] })
	requireIDs(t, "events shown", v.IDs, ids)
	if errs := p.consoleErrors(); len(errs) > 0 {
		t.Fatalf("console errors: %q", errs)
	}
	if strings.Contains(v.Text, "error") {
		t.Fatalf("the page shows %q", v.Text)
	}
	p.keepScreenshots("console-catalogue")
}
