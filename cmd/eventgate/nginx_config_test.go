package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eventgate/eventgate/nginx"
	"github.com/eventgate/eventgate/nginx/nginxtest"
)

// TestNginxConfig runs `eventgate nginx-config` the way `go tool task nginx:render` does: it
// writes what nginx.Render makes, which nginx itself accepts, and refuses bad arguments.
func TestNginxConfig(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "rendered")
	var stdout, stderr bytes.Buffer
	code := runNginxConfig([]string{"-listen", "127.0.0.1:8088", "-upstreams", "127.0.0.1:8081, 127.0.0.1:8082", "-out", out}, &stdout, &stderr)
	conf := filepath.Join(out, "nginx.conf")
	if code != 0 || !strings.Contains(stdout.String(), "wrote "+conf) {
		t.Fatalf("nginx-config: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	got, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	p := nginx.DefaultParams()
	p.Listen, p.Upstreams = "127.0.0.1:8088", []string{"127.0.0.1:8081", "127.0.0.1:8082"}
	var want bytes.Buffer
	if err := nginx.Render(&want, p); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("the command wrote a different file than Render:\n%s", got)
	}

	for _, tt := range []struct {
		name string
		args []string
		in   string // in stderr
	}{
		{"bad upstream", []string{"-listen", "127.0.0.1:8088", "-upstreams", "a;b:1", "-out", out}, "upstreams"},
		{"no -out", []string{"-listen", "127.0.0.1:8088", "-upstreams", "127.0.0.1:8081"}, "usage"},
		{"unknown flag", []string{"-nope"}, "-nope"},
	} {
		stdout.Reset()
		stderr.Reset()
		if code := runNginxConfig(tt.args, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), tt.in) {
			t.Errorf("%s: exit %d, stderr %q; want 2 mentioning %q", tt.name, code, stderr.String(), tt.in)
		}
	}

	bin := nginxtest.Binary(t) // skips here without nginx
	cmd := exec.Command(bin, "-t", "-c", conf, "-p", out+"/", "-e", "stderr")
	if b, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(b), "test is successful") {
		t.Fatalf("nginx -t on the written config: %v\n%s", err, b)
	}
}
