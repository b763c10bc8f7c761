package event_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/eventgate/eventgate/event"
)

const (
	orderID   = "6f1c2a9e-1d4b-4c59-9d1e-6a2b3c4d5e6f"
	paymentID = "0b7e3f0a-89ab-4cde-8f01-23456789abcd"
)

// exampleTypes loads the example catalogue or fails t.
func exampleTypes(t testing.TB) *event.Catalogue {
	t.Helper()
	c, err := event.LoadCatalogue(exampleCatalogue)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func shipped(data string) string { return catEv("order.shipped", data) }

func TestCustomParseValid(t *testing.T) {
	t.Parallel()
	c := exampleTypes(t)
	tests := []struct {
		name, in, topic, data string
	}{
		{"required only", shipped(`{"order_id":"` + orderID + `","carrier":"ups"}`),
			"orders/" + orderID, `{"carrier":"ups","order_id":"` + orderID + `"}`},
		{"keys sorted, space dropped, html kept", shipped(` { "carrier" : "<b>&</b>" , "order_id" : "` + orderID + `" } `),
			"orders/" + orderID, `{"carrier":"<b>&</b>","order_id":"` + orderID + `"}`},
		{"uuid lowercased, topic too", shipped(`{"order_id":"` + strings.ToUpper(orderID) + `","carrier":"ups"}`),
			"orders/" + orderID, `{"carrier":"ups","order_id":"` + orderID + `"}`},
		{"nested and formats", shipped(`{"order_id":"` + orderID + `","carrier":"ups","shipped_on":"2026-11-26","items":[{"sku":"A-1","quantity":2}]}`),
			"orders/" + orderID, `{"carrier":"ups","items":[{"quantity":2,"sku":"A-1"}],"order_id":"` + orderID + `","shipped_on":"2026-11-26"}`},
		{"sanitized note", shipped(`{"order_id":"` + orderID + `","carrier":"ups","note":"failed at /srv/app/x.py:12\nTraceback"}`),
			"orders/" + orderID, `{"carrier":"ups","note":"failed at [path]","order_id":"` + orderID + `"}`},
		{"sanitize cap", shipped(`{"order_id":"` + orderID + `","carrier":"ups","note":"` + strings.Repeat("n", 300) + `"}`),
			"orders/" + orderID, `{"carrier":"ups","note":"` + strings.Repeat("n", 200) + `","order_id":"` + orderID + `"}`},
		{"numbers as sent, two placeholders", catEv("payment.declined", `{"account":"acme-1","payment_id":"`+paymentID+`","amount":12.50,"currency":"EUR","reason":"DELETE FROM cards"}`),
			"payments/acme-1/" + paymentID, `{"account":"acme-1","amount":12.50,"currency":"EUR","payment_id":"` + paymentID + `","reason":"[sql]"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d, err := c.ParseDraft([]byte(tt.in))
			if err != nil {
				t.Fatalf("ParseDraft: %v", err)
			}
			if d.Topic != tt.topic || string(d.Data) != tt.data {
				t.Fatalf("got topic %q data %s\nwant topic %q data %s", d.Topic, d.Data, tt.topic, tt.data)
			}
			again, err := c.ParseDraft(d.Payload())
			if err != nil || again.Topic != d.Topic || string(again.Data) != string(d.Data) {
				t.Fatalf("parsing the payload again: %+v, %v; want the same draft", again, err)
			}
		})
	}
}

func TestCustomParseInvalid(t *testing.T) {
	t.Parallel()
	c := exampleTypes(t)
	ok := `"order_id":"` + orderID + `","carrier":"ups"`
	big := strings.Repeat("Z", 5000)
	tests := []struct {
		name, in, field, inMessage string
	}{
		{"unknown field", shipped(`{` + ok + `,"colour":"red"}`), "data.colour", "unknown field for order.shipped"},
		{"unknown nested field", shipped(`{` + ok + `,"items":[{"sku":"A","quantity":1,"x":1}]}`), "data.items[0].x", "unknown field"},
		{"missing field", shipped(`{"order_id":"` + orderID + `"}`), "data.carrier", "is required"},
		{"missing nested field", shipped(`{` + ok + `,"items":[{"sku":"A"}]}`), "data.items[0].quantity", "is required"},
		{"bad uuid", shipped(`{"order_id":"nope","carrier":"ups"}`), "data.order_id", "must be a UUID"},
		{"bad date", shipped(`{` + ok + `,"shipped_on":"2026-02-30"}`), "data.shipped_on", "must be a valid date"},
		{"too long", shipped(`{"order_id":"` + orderID + `","carrier":"` + strings.Repeat("c", 65) + `"}`), "data.carrier", "must be at most 64 characters (got 65)"},
		{"too short", shipped(`{"order_id":"` + orderID + `","carrier":""}`), "data.carrier", "must be at least 1 characters"},
		{"wrong type", shipped(`{"order_id":"` + orderID + `","carrier":7}`), "data.carrier", "must be string, got number"},
		{"null", shipped(`{"order_id":"` + orderID + `","carrier":null}`), "data.carrier", "must be string, got null"},
		{"pattern", shipped(`{` + ok + `,"items":[{"sku":"a b","quantity":1}]}`), "data.items[0].sku", `must match the pattern "^[A-Z0-9-]+$"`},
		{"minimum", shipped(`{` + ok + `,"items":[{"sku":"A","quantity":0}]}`), "data.items[0].quantity", "must be at least 1"},
		{"integer", shipped(`{` + ok + `,"items":[{"sku":"A","quantity":1.5}]}`), "data.items[0].quantity", "must be integer, got number"},
		{"max items", shipped(`{` + ok + `,"items":[` + strings.Repeat(`{"sku":"A","quantity":1},`, 100) + `{"sku":"A","quantity":1}]}`), "data.items", "maxItems"},
		{"enum", catEv("payment.declined", `{"account":"a","payment_id":"`+paymentID+`","amount":1,"currency":"JPY"}`), "data.currency", "must be one of 'EUR', 'USD', 'GBP'"},
		{"exclusive minimum", catEv("payment.declined", `{"account":"a","payment_id":"`+paymentID+`","amount":0,"currency":"EUR"}`), "data.amount", "must be more than 0"},
		{"topic value outside the grammar", catEv("payment.declined", `{"account":"a/b","payment_id":"`+paymentID+`","amount":1,"currency":"EUR"}`), "data.account", "must match the pattern"},
		{"duplicate field", shipped(`{` + ok + `,"carrier":"dhl"}`), "data.carrier", "duplicate field"},
		{"duplicate nested field", shipped(`{` + ok + `,"items":[{"sku":"A","sku":"B","quantity":1}]}`), "data.items[0].sku", "duplicate field"},
		{"data not an object", shipped(`[1]`), "data", "must be a JSON object, got array"},
		{"data missing", `{"type":"order.shipped"}`, "data", "is required"},
		{"too deep", shipped(`{` + ok + `,"items":` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `}`), "data.items", "nested more than 64 levels"},
		{"large value not echoed", shipped(`{"order_id":"` + big + `","carrier":"ups"}`), "data.order_id", "must be a UUID"},
		{"large key not echoed", shipped(`{` + ok + `,"` + big + `":1}`), `data."ZZZZ`, "unknown field"},
		{"large pattern value not echoed", shipped(`{` + ok + `,"items":[{"sku":"` + big + `","quantity":1}]}`), "data.items[0].sku", "at most 32 characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d, err := c.ParseDraft([]byte(tt.in))
			var ve *event.ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, event.ErrInvalidEvent) {
				t.Fatalf("ParseDraft = %+v, %v; want a *ValidationError", d, err)
			}
			if !strings.HasPrefix(ve.Field, tt.field) || !strings.Contains(ve.Message, tt.inMessage) {
				t.Fatalf("error %q (field %q), want field %q and a message containing %q", err, ve.Field, tt.field, tt.inMessage)
			}
			if len(err.Error()) > 300 {
				t.Fatalf("error of %d bytes quotes the value: %.200q", len(err.Error()), err)
			}
		})
	}
}

// TestCustomTopicTemplate: topics are built from the data; a value the topic grammar does not
// allow, or one that makes the topic too long to subscribe to, is refused, naming the field.
func TestCustomTopicTemplate(t *testing.T) {
	t.Parallel()
	c := mustCatalogue(t, oneType("shop/{region}/orders/{carrier}-{order_id}",
		`{order_id: {type: string, format: uuid}, carrier: {type: string, maxLength: 120}, region: {type: string, enum: [eu, us, "EU", ""]}}`,
		`[order_id, carrier, region]`, ""))
	tests := []struct {
		name, region, carrier, topic, errField string
	}{
		{"expanded", "eu", "ups", "shop/eu/orders/ups-" + orderID, ""},
		{"dots, dashes, digits", "us", "a.b_c-9", "shop/us/orders/a.b_c-9-" + orderID, ""},
		{"uppercase", "EU", "ups", "", "data.region"},
		{"empty", "", "ups", "", "data.region"},
		{"slash", "eu", "a/b", "", "data.carrier"},
		{"space", "eu", "a b", "", "data.carrier"},
		{"too long", "eu", strings.Repeat("x", 80), "", "data.order_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d, err := c.ParseDraft([]byte(shipped(`{"order_id":"` + orderID + `","carrier":"` + tt.carrier + `","region":"` + tt.region + `"}`)))
			if tt.errField == "" {
				if err != nil || d.Topic != tt.topic {
					t.Fatalf("topic %q, %v; want %q", d.Topic, err, tt.topic)
				}
				if _, err := event.ParsePattern(d.Topic); err != nil {
					t.Fatalf("topic %q is not one subscribers can name: %v", d.Topic, err)
				}
				return
			}
			var ve *event.ValidationError
			if !errors.As(err, &ve) || ve.Field != tt.errField {
				t.Fatalf("ParseDraft = %+v, %v; want an error on %s", d, err, tt.errField)
			}
		})
	}
	fixed := mustCatalogue(t, oneType("orders", okProps, okRequired, ""))
	if d, err := fixed.ParseDraft([]byte(shipped(`{"order_id":"` + orderID + `","carrier":"x"}`))); err != nil || d.Topic != "orders" {
		t.Fatalf("a fixed topic: %q, %v", d.Topic, err)
	}
}

// TestCustomBatch: custom and built-in events mix in one batch; an invalid custom event rejects
// the batch with its index.
func TestCustomBatch(t *testing.T) {
	t.Parallel()
	c := exampleTypes(t)
	good := shipped(`{"order_id":"` + orderID + `","carrier":"ups"}`)
	ds, err := c.ParseBatch([]byte(`[` + catEv("queue.status", `{"pending":1,"active":0}`) + `,` + good + `]`))
	if err != nil || len(ds) != 2 || ds[1].Type != "order.shipped" {
		t.Fatalf("ParseBatch = %+v, %v", ds, err)
	}
	_, err = c.ParseBatch([]byte(`[` + good + `,` + shipped(`{"order_id":"`+orderID+`"}`) + `]`))
	if err == nil || err.Error() != "event[1]: data.carrier: is required" {
		t.Fatalf("ParseBatch error %v, want event[1]: data.carrier: is required", err)
	}
	// The built-ins alone do not know the type, and say which they do know.
	_, err = event.Builtin().ParseDraft([]byte(good))
	if err == nil || !strings.Contains(err.Error(), `unknown event type "order.shipped" (want one of job.completed,`) {
		t.Fatalf("the built-in catalogue: %v", err)
	}
	_, err = c.ParseDraft([]byte(catEv("order.lost", `{}`)))
	if err == nil || !strings.Contains(err.Error(), "order.shipped, payment.declined, queue.status)") {
		t.Fatalf("an unknown type with the example catalogue: %v, want the custom types listed", err)
	}
}

// TestCustomDecodeEntry: entries written directly with XADD are validated on read like a
// publish.
func TestCustomDecodeEntry(t *testing.T) {
	t.Parallel()
	c := exampleTypes(t)
	id := event.ID{MS: 1732650000000}
	ev, err := c.DecodeEntry(id, []byte(shipped(`{"carrier":"ups","order_id":"`+strings.ToUpper(orderID)+`"}`)))
	if err != nil || ev.Topic != "orders/"+orderID || ev.Type != "order.shipped" {
		t.Fatalf("DecodeEntry = %+v, %v", ev, err)
	}
	if _, err := c.DecodeEntry(id, []byte(shipped(`{"carrier":"ups"}`))); !errors.Is(err, event.ErrInvalidEvent) {
		t.Fatalf("an invalid entry: %v, want ErrInvalidEvent", err)
	}
}

// FuzzParseDraftCustom: parsing custom events never panics, errors are validation errors, and
// an accepted draft survives a round trip through its payload unchanged.
func FuzzParseDraftCustom(f *testing.F) {
	c := exampleTypes(f)
	for _, s := range []string{
		shipped(`{"order_id":"` + orderID + `","carrier":"ups","note":"a\u2028b /etc/x","items":[{"sku":"A","quantity":1e0}]}`),
		catEv("payment.declined", `{"account":"a","payment_id":"`+strings.ToUpper(paymentID)+`","amount":1E-3,"currency":"GBP","reason":"at x(y.go:1)\nok"}`),
		shipped(`{"order_id":"` + orderID + `","carrier":"\u003c\u0000"}`),
		shipped(`{"a":{"a":{"a":1}},"a":2}`),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		d, err := c.ParseDraft(raw)
		if err != nil {
			var ve *event.ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, event.ErrInvalidEvent) || ve.Index != -1 {
				t.Fatalf("bad error %T %v", err, err)
			}
			return
		}
		again, err := c.ParseDraft(d.Payload())
		if err != nil || again.Topic != d.Topic || string(again.Data) != string(d.Data) {
			t.Fatalf("round trip of %s: %+v, %v", d.Payload(), again, err)
		}
	})
}

// TestCustomParseConcurrent: one catalogue validates from many goroutines at once (the publish
// handler, the log reader and every catching-up subscription share it); run with -race.
func TestCustomParseConcurrent(t *testing.T) {
	t.Parallel()
	c := exampleTypes(t)
	good := []byte(shipped(`{"order_id":"` + orderID + `","carrier":"ups","note":"a\nb","items":[{"sku":"A","quantity":1}]}`))
	bad := []byte(shipped(`{"order_id":"` + orderID + `","carrier":"ups","items":[{"sku":"a","quantity":1}]}`))
	want, _ := c.ParseDraft(good)
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			for range 200 {
				if d, err := c.ParseDraft(good); err != nil || string(d.Data) != string(want.Data) {
					errs <- fmt.Errorf("good event: %s, %v", d.Data, err)
					return
				}
				if _, err := c.ParseDraft(bad); err == nil || !strings.Contains(err.Error(), "data.items[0].sku") {
					errs <- fmt.Errorf("bad event: %v", err)
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
