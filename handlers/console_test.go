package handlers

import (
	"bytes"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/eventgate/eventgate/auth"
)

func TestConsoleRoutes(t *testing.T) {
	t.Parallel()
	v, err := auth.NewVerifier(auth.Config{Secret: bytes.Repeat([]byte("k"), auth.MinSecretBytes)})
	if err != nil {
		t.Fatal(err)
	}
	// Auth on: the page and its assets are open routes all the same (they hold no data).
	s, _ := newTestServer(t, Config{Auth: v})
	tests := []struct {
		name, method, target string
		status               int
		contentType, inBody  string
	}{
		{"page", "GET", "/", 200, "text/html; charset=utf-8", `<script src="/console/console.js" defer></script>`},
		{"script", "GET", "/console/console.js", 200, "text/javascript; charset=utf-8", `"use strict"`},
		{"style", "GET", "/console/console.css", 200, "text/css; charset=utf-8", ".jobs"},
		{"icon", "GET", "/console/favicon.svg", 200, "image/svg+xml", "<svg"},
		{"page is only at /", "GET", "/console/index.html", 404, "application/json; charset=utf-8", `"not_found"`},
		{"unknown asset", "GET", "/console/nope.js", 404, "application/json; charset=utf-8", `"not_found"`},
		{"no folder listing", "GET", "/console/", 404, "application/json; charset=utf-8", `"not_found"`},
		{"read only", "POST", "/", 405, "application/json; charset=utf-8", `"method_not_allowed"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := do(s, tt.method, "http://eventgate.example:8080"+tt.target, "", nil)
			if rec.Code != tt.status || rec.Header().Get("Content-Type") != tt.contentType || !strings.Contains(rec.Body.String(), tt.inBody) {
				t.Fatalf("%s %s: %d %q %.200s, want %d %q containing %q", tt.method, tt.target, rec.Code,
					rec.Header().Get("Content-Type"), rec.Body.String(), tt.status, tt.contentType, tt.inBody)
			}
			if tt.status != 200 {
				return
			}
			for h, want := range map[string]string{
				"X-Content-Type-Options": "nosniff",
				"Referrer-Policy":        "no-referrer",
				"X-Frame-Options":        "DENY",
				"Cache-Control":          "no-cache",
				"Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; " +
					"connect-src 'self' ws://eventgate.example:8080 wss://eventgate.example:8080; object-src 'none'; " +
					"base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
			} {
				if got := rec.Header().Get(h); got != want {
					t.Errorf("%s: %q, want %q", h, got, want)
				}
			}
			if rec.Header().Get("ETag") == "" {
				t.Error("no ETag")
			}
		})
	}
}

func TestConsoleRevalidation(t *testing.T) {
	t.Parallel()
	s, _ := newTestServer(t, Config{})
	first := do(s, "GET", "/console/console.js", "", nil)
	etag := first.Header().Get("ETag")
	for _, tt := range []struct {
		name, ifNoneMatch string
		status            int
	}{
		{"same version", etag, http.StatusNotModified},
		{"other version", `"0123"`, http.StatusOK},
	} {
		rec := do(s, "GET", "/console/console.js", "", http.Header{"If-None-Match": {tt.ifNoneMatch}})
		if rec.Code != tt.status {
			t.Errorf("%s: If-None-Match %s: %d, want %d", tt.name, tt.ifNoneMatch, rec.Code, tt.status)
		}
	}
}

func TestConsoleCSPHost(t *testing.T) {
	t.Parallel()
	tests := []struct {
		host, connect string
	}{
		{"127.0.0.1:8080", "connect-src 'self' ws://127.0.0.1:8080 wss://127.0.0.1:8080;"},
		{"[::1]:8080", "connect-src 'self' ws://[::1]:8080 wss://[::1]:8080;"},
		{"events.example.com", "connect-src 'self' ws://events.example.com wss://events.example.com;"},
		// A Host that could add directives is left out: 'self' still covers same-origin.
		{"a;script-src *", "connect-src 'self';"},
		{"a b", "connect-src 'self';"},
		{"", "connect-src 'self';"},
	}
	for _, tt := range tests {
		if got := consoleCSP(tt.host); !strings.Contains(got, tt.connect) || strings.Count(got, "script-src") != 1 {
			t.Errorf("consoleCSP(%q) = %q, want it to contain %q", tt.host, got, tt.connect)
		}
	}
}

// TestConsoleAssetsSelfContained checks what the CSP and "works offline" require of the files:
// no external URL, no inline script, style or event handler, no token-bearing form field.
func TestConsoleAssetsSelfContained(t *testing.T) {
	t.Parallel()
	forbidden := []struct {
		what string
		re   *regexp.Regexp
		in   string // file suffix the rule applies to
	}{
		{"an external or protocol-relative URL", regexp.MustCompile(`(?i)(src|href|action)\s*=\s*["']?\s*([a-z]+:)?//`), ""},
		{"an absolute URL", regexp.MustCompile(`(?i)\b(https?|wss?):?//[a-z0-9]`), ".js"},
		{"an absolute URL", regexp.MustCompile(`(?i)\b(https?|wss?)://`), ".css"},
		{"an absolute URL", regexp.MustCompile(`(?i)\b(https?|wss?)://`), ".html"},
		{"a CSS import or url()", regexp.MustCompile(`(?i)@import|url\(`), ".css"},
		{"an inline script", regexp.MustCompile(`(?i)<script(\s[^>]*)?>\s*[^<\s]`), ".html"},
		{"a script without src", regexp.MustCompile(`(?i)<script(\s+(?:defer|type="[^"]*"))*\s*>`), ".html"},
		{"an inline style", regexp.MustCompile(`(?i)<style|\sstyle\s*=`), ".html"},
		{"an inline event handler", regexp.MustCompile(`(?i)<[^>]*\son[a-z]+\s*=`), ".html"},
		{"a named form field (a script-less submit would put it in the URL)", regexp.MustCompile(`(?i)<(input|select|textarea)\b[^>]*\sname\s*=\s*"(?:token|topics|types|since)"`), ".html"},
		{"markup inserted as HTML", regexp.MustCompile(`innerHTML|outerHTML|insertAdjacentHTML|document\.write`), ".js"},
	}
	if len(consoleAssets) < 4 {
		t.Fatalf("embedded console files: %d, want index.html, console.js, console.css, favicon.svg", len(consoleAssets))
	}
	for name, a := range consoleAssets {
		for _, f := range forbidden {
			if !strings.HasSuffix(name, f.in) {
				continue
			}
			if m := f.re.Find(a.body); m != nil {
				t.Errorf("%s has %s: %q", name, f.what, m)
			}
		}
	}
}
