package redistest

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// onceProbe remembers the outcome of one reachability check per process, so that every test of
// an unreachable server skips at once.
type onceProbe struct {
	once sync.Once
	url  string
	err  error
}

// check runs probe against url on the first call, within timeout, and returns its outcome then
// and on every later call; changed is returned when a later call names another URL.
func (p *onceProbe) check(url string, timeout time.Duration, changed error, probe func(ctx context.Context) error) error {
	p.once.Do(func() {
		p.url = url
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		p.err = probe(ctx)
	})
	if p.url != url {
		return changed
	}
	return p.err
}

// skipOrFail skips the test with skipMsg, or fails it with failMsg when EnvRequire is 1.
func skipOrFail(t testing.TB, failMsg, skipMsg string) {
	t.Helper()
	if os.Getenv(EnvRequire) == "1" {
		t.Fatal(failMsg)
	}
	t.Skip(skipMsg)
}

// ownPrefix returns a key prefix unique to this test ("egtest:<test name>:<random>:") and
// registers a cleanup that deletes the keys with it (deleteAll, within 10s), reporting a failure
// as a test error, and then closes the client.
func ownPrefix(t testing.TB, closeClient func() error, deleteAll func(ctx context.Context, prefix string) error) string {
	prefix := "egtest:" + strings.ReplaceAll(t.Name(), " ", "_") + ":" + randomHex(6) + ":"
	t.Cleanup(func() {
		defer closeClient()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := deleteAll(ctx, prefix); err != nil {
			t.Errorf("redistest: cleaning up %q: %v", prefix, err)
		}
	})
	return prefix
}
