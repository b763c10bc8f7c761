package handlers

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"regexp"
	"time"

	"github.com/gin-gonic/gin"
)

// consoleFiles is the live console (GET /, docs/clients.md#console): plain HTML, CSS and JavaScript
// embedded in the binary — no build step, no external assets, so it works offline.
//
//go:embed console/*
var consoleFiles embed.FS

// consoleAsset is one embedded file, read once at start-up. Immutable; shared by all requests.
type consoleAsset struct {
	body        []byte
	contentType string
	etag        string // strong ETag: a hash of the body
}

// consoleAssets maps a file name under console/ to its asset. Built at init; read-only after.
var consoleAssets = loadConsoleAssets()

// consoleIndex is the page served at GET /.
const consoleIndex = "index.html"

func loadConsoleAssets() map[string]consoleAsset {
	out := map[string]consoleAsset{}
	entries, err := fs.ReadDir(consoleFiles, "console")
	if err != nil {
		panic(fmt.Sprintf("console assets: %v", err)) // the embed directive guarantees the folder
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		body, err := fs.ReadFile(consoleFiles, "console/"+e.Name())
		if err != nil {
			panic(fmt.Sprintf("console asset %s: %v", e.Name(), err))
		}
		ct := mime.TypeByExtension(path.Ext(e.Name()))
		if ct == "" {
			ct = "application/octet-stream"
		}
		sum := sha256.Sum256(body)
		out[e.Name()] = consoleAsset{body: body, contentType: ct, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
	}
	return out
}

// plainHost matches a Host header that is safe to repeat in a CSP source expression: a DNS name
// or IPv4 address, or a bracketed IPv6 address, with an optional port. Anything else (a Host with
// ';' or spaces could add CSP directives) is left out of the policy.
var plainHost = regexp.MustCompile(`^([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?$`)

// consoleCSP is the page's Content-Security-Policy: only this origin's scripts, styles, images
// and connections (and its WebSocket URLs, spelled out for browsers whose 'self' does not cover
// ws:/wss:), no inline script or style, no framing, no plugins, no form posts elsewhere.
func consoleCSP(host string) string {
	connect := "'self'"
	if plainHost.MatchString(host) {
		connect += " ws://" + host + " wss://" + host
	}
	return "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src " + connect +
		"; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
}

// console serves GET /: the console page. It is an open route: the page holds no data; the
// token the user enters is sent by the page to the API routes, which check it.
func (s *Server) console(c *gin.Context) { s.serveConsoleAsset(c, consoleIndex) }

// consoleAsset serves GET /console/<file>: the page's script, style sheet and icon.
func (s *Server) consoleAsset(c *gin.Context) {
	name := c.Param("file") // one path segment (the route is /console/:file)
	if name == consoleIndex {
		name = "" // the page itself lives at / only
	}
	s.serveConsoleAsset(c, name)
}

func (s *Server) serveConsoleAsset(c *gin.Context, name string) {
	a, ok := consoleAssets[name]
	if !ok {
		s.fail(c, fmt.Errorf("%w: no console file %q", errNotFound, name))
		return
	}
	h := c.Writer.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("Content-Security-Policy", consoleCSP(c.Request.Host))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	// Revalidate every time (cheap: 304 on a matching ETag), so an upgraded binary's page is
	// picked up at once and never mixed with a cached script of the previous version.
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", a.etag)
	http.ServeContent(c.Writer, c.Request, "", time.Time{}, bytes.NewReader(a.body))
}
