package nginx_test

import (
	"bytes"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eventgate/eventgate/nginx"
	"github.com/eventgate/eventgate/nginx/nginxtest"
)

func params(listen string, upstreams ...string) nginx.Params {
	p := nginx.DefaultParams()
	p.Listen, p.Upstreams = listen, upstreams
	return p
}

func TestRenderValidates(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		edit  func(*nginx.Params)
		valid bool
		want  []string // lines the rendered file must hold
	}{
		{"two upstreams", func(p *nginx.Params) {}, true,
			[]string{"listen 127.0.0.1:8088;", "server 127.0.0.1:8081 max_fails=1 fail_timeout=5s;", "server 127.0.0.1:8082 max_fails=1 fail_timeout=5s;"}},
		{"hostnames and IPv6", func(p *nginx.Params) { p.Listen, p.Upstreams = "[::1]:80", []string{"eventgate-1:8080", "[::1]:9000"} }, true,
			[]string{"listen [::1]:80;", "server eventgate-1:8080 max_fails", "server [::1]:9000 max_fails"}},
		{"any address", func(p *nginx.Params) { p.Listen = "*:8080" }, true, []string{"listen *:8080;"}},
		{"limits", func(p *nginx.Params) { p.ConnectRate, p.ConnectBurst, p.ConnsPerIP, p.MaxBody = "600r/m", 0, 3, "16m" }, true,
			[]string{"rate=600r/m;", "limit_req zone=eventgate_connect nodelay;", "limit_conn eventgate_conns 3;", "client_max_body_size 16m;"}},
		{"no upstream", func(p *nginx.Params) { p.Upstreams = nil }, false, nil},
		{"upstream twice", func(p *nginx.Params) { p.Upstreams = []string{"127.0.0.1:1", "127.0.0.1:1"} }, false, nil},
		{"no port", func(p *nginx.Params) { p.Listen = "127.0.0.1" }, false, nil},
		{"port 0", func(p *nginx.Params) { p.Listen = "127.0.0.1:0" }, false, nil},
		{"port too big", func(p *nginx.Params) { p.Upstreams = []string{"127.0.0.1:65536"} }, false, nil},
		{"injection in listen", func(p *nginx.Params) { p.Listen = "127.0.0.1:80; include /etc/passwd" }, false, nil},
		{"injection in upstream host", func(p *nginx.Params) { p.Upstreams = []string{"a;b:80"} }, false, nil},
		{"space in upstream", func(p *nginx.Params) { p.Upstreams = []string{"a b:80"} }, false, nil},
		{"star upstream", func(p *nginx.Params) { p.Upstreams = []string{"*:80"} }, false, nil},
		{"bad rate", func(p *nginx.Params) { p.ConnectRate = "10/s" }, false, nil},
		{"bad api rate", func(p *nginx.Params) { p.APIRate = "1r/s;" }, false, nil},
		{"bad size", func(p *nginx.Params) { p.MaxBody = "8 m" }, false, nil},
		{"negative burst", func(p *nginx.Params) { p.APIBurst = -1 }, false, nil},
		{"no connections", func(p *nginx.Params) { p.ConnsPerIP = 0 }, false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := params("127.0.0.1:8088", "127.0.0.1:8081", "127.0.0.1:8082")
			tc.edit(&p)
			var out bytes.Buffer
			err := nginx.Render(&out, p)
			if !tc.valid {
				if !errors.Is(err, nginx.ErrInvalid) {
					t.Fatalf("Render(%+v) = %v, want an ErrInvalid", p, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Render(%+v): %v", p, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("rendered config lacks %q", w)
				}
			}
			if strings.Contains(out.String(), "{{") || strings.Contains(out.String(), "<no value>") {
				t.Errorf("rendered config holds template residue:\n%s", out.String())
			}
		})
	}
}

// TestRenderedConfigAccepted has nginx itself check rendered files (`nginx -t`), unprivileged
// paths included.
func TestRenderedConfigAccepted(t *testing.T) {
	t.Parallel()
	bin := nginxtest.Binary(t)
	for _, p := range []nginx.Params{
		params("127.0.0.1:8088", "127.0.0.1:8081"),
		params("[::1]:8088", "localhost:8081", "127.0.0.1:8082", "[::1]:8083"),
	} {
		dir := t.TempDir()
		conf, err := nginx.WriteConfig(filepath.Join(dir, "out"), p)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "-t", "-c", conf, "-p", filepath.Dir(conf)+"/", "-e", "stderr")
		if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "test is successful") {
			t.Fatalf("nginx -t on the config for %+v: %v\n%s", p, err, out)
		}
	}
}
