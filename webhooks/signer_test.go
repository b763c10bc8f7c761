package webhooks

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// TestSignVector is the Standard Webhooks specification's published test vector.
func TestSignVector(t *testing.T) {
	t.Parallel()
	s, err := NewSigner("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	got := s.Sign("msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}

// TestSignVerifiedByReference: the reference library accepts our signatures, and rejects them
// for another body, id, timestamp or secret.
func TestSignVerifiedByReference(t *testing.T) {
	t.Parallel()
	secret := NewSecret()
	s, err := NewSigner(secret)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := standardwebhooks.NewWebhook(NewSecret())
	body := []byte(`{"id":"1-0","type":"queue.status","topic":"queue","time":"2026-01-01T00:00:00.000Z","data":{"pending":1,"active":0}}`)
	now := time.Now()
	headers := func(id string, ts time.Time, sig string) http.Header {
		h := http.Header{}
		h.Set(HeaderID, id)
		h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
		h.Set(HeaderSignature, sig)
		return h
	}
	sig := s.Sign("1-0", now, body)
	if err := ref.Verify(body, headers("1-0", now, sig)); err != nil {
		t.Fatalf("reference library rejects our signature: %v", err)
	}
	for name, tc := range map[string]struct {
		wh   *standardwebhooks.Webhook
		body []byte
		h    http.Header
	}{
		"other body":      {ref, append(body[:len(body):len(body)], ' '), headers("1-0", now, sig)},
		"other id":        {ref, body, headers("2-0", now, sig)},
		"other timestamp": {ref, body, headers("1-0", now.Add(time.Second), sig)},
		"other secret":    {other, body, headers("1-0", now, sig)},
	} {
		if err := tc.wh.Verify(tc.body, tc.h); err == nil {
			t.Errorf("%s: the reference library accepted a wrong signature", name)
		}
	}
}

func TestNewSecret(t *testing.T) {
	t.Parallel()
	a, b := NewSecret(), NewSecret()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(a, "whsec_"))
	if !strings.HasPrefix(a, "whsec_") || err != nil || len(key) != 32 || a == b {
		t.Fatalf("NewSecret = %q (%d bytes, %v), then %q", a, len(key), err, b)
	}
	if _, err := NewSigner("whsec_not base64!"); err == nil {
		t.Fatal("NewSigner accepted a bad secret")
	}
}
