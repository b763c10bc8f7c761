package auth

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func TestEnsureSecret(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "state", "secret")
	var wg sync.WaitGroup
	got := make([]string, 8)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := EnsureSecret(path)
			if err != nil {
				t.Error(err)
			}
			got[i] = string(s)
		}()
	}
	wg.Wait()
	for _, s := range got {
		if s != got[0] || len(s) < MinSecretBytes {
			t.Fatalf("concurrent makers got %q, want one secret of 32+ bytes", got)
		}
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file: %v, mode %v; want 0600", err, fi.Mode())
	}
	if again, _ := EnsureSecret(path); string(again) != got[0] {
		t.Fatal("a second call made a new secret")
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Fatalf("state dir holds %d files, want only the secret (temporary files removed)", len(entries))
	}
}
