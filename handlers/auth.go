package handlers

// The HTTP side of authentication: where a request's token is found, the middleware that
// verifies it with the configured auth.Verifier and requires a scope, and what the routes read
// from the principal. Verification itself lives in package auth; its errors become 401 and 403
// answers through errorTable.

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/eventgate/eventgate/auth"
	"github.com/eventgate/eventgate/event"
)

// Token sources (docs/api.md#authentication).
const (
	// TokenQueryParam is the query parameter for clients that cannot set headers (EventSource).
	TokenQueryParam = "access_token"
	// TokenCookie is the cookie carrying a token; accepted on GET and HEAD only (see tokenFrom).
	TokenCookie = "eventgate_token"
)

// errUnauthorized is wrapped by the errors of a request that carries no usable token (401);
// a token that fails verification wraps auth.ErrInvalidToken instead (401 too).
var errUnauthorized = errors.New("unauthorized")

// tokenFrom returns the request's token: the Authorization: Bearer header, else the access_token
// query parameter, else — on GET and HEAD only — the eventgate_token cookie. Cookies are sent by
// browsers on cross-site requests too, so a cookie never authorizes a state-changing request
// (CSRF); the WebSocket upgrade (a GET) is protected by its Origin check. An Authorization header
// of another scheme is an error rather than silently ignored.
func tokenFrom(c *gin.Context) (string, error) {
	if h := c.GetHeader("Authorization"); h != "" {
		scheme, tok, _ := strings.Cut(h, " ")
		if !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
			return "", fmt.Errorf("%w: the Authorization header must be \"Bearer <token>\"", errUnauthorized)
		}
		return strings.TrimSpace(tok), nil
	}
	if tok := c.Query(TokenQueryParam); tok != "" {
		return tok, nil
	}
	if m := c.Request.Method; m == http.MethodGet || m == http.MethodHead {
		if ck, err := c.Request.Cookie(TokenCookie); err == nil && ck.Value != "" {
			return ck.Value, nil
		}
	}
	return "", fmt.Errorf("%w: no token: send Authorization: Bearer <token>, the %s query parameter, or the %s cookie", errUnauthorized, TokenQueryParam, TokenCookie)
}

// Rejection reasons of eventgate_rejections_total for authentication (see the Reject constants).
const (
	// RejectUnauthorized: no valid token (401).
	RejectUnauthorized = "unauthorized"
	// RejectForbidden: a valid token without the route's scope (403).
	RejectForbidden = "forbidden"
)

// requireScope returns the middleware that authenticates the request and requires scope:
// 401 with WWW-Authenticate: Bearer without a valid token, 403 when the token lacks the scope.
// An empty scope only authenticates: any valid token passes.
// It leaves the principal and its subject on the context. With auth disabled (Config.Auth nil) it
// lets every request through. Other route groups (webhooks: auth.ScopeAdmin) use it the same way.
func (s *Server) requireScope(scope string) gin.HandlerFunc {
	return func(c *gin.Context) {
		if s.cfg.Auth == nil {
			return
		}
		tok, err := tokenFrom(c)
		var p *auth.Principal
		if err == nil {
			p, err = s.cfg.Auth.Verify(tok)
		}
		if err != nil {
			challenge := `Bearer realm="eventgate"`
			if tok != "" {
				challenge += `, error="invalid_token"`
			}
			c.Header("WWW-Authenticate", challenge)
			s.reject(c, RejectUnauthorized)
			s.log.Debug("request unauthorized", "client_ip", c.ClientIP(), "url", redactedURL(c.Request.URL), "reason", err.Error())
			s.fail(c, err)
			return
		}
		if scope != "" && !p.HasScope(scope) {
			c.Header("WWW-Authenticate", `Bearer realm="eventgate", error="insufficient_scope", scope="`+scope+`"`)
			s.reject(c, RejectForbidden)
			s.log.Debug("request forbidden", "client_ip", c.ClientIP(), "subject", p.Subject, "url", redactedURL(c.Request.URL), "scope", scope)
			s.fail(c, fmt.Errorf("%w: the token lacks the %q scope", errForbidden, scope))
			return
		}
		setPrincipal(c, p)
	}
}

// subjectScoped prefixes key with a digest of the request's token subject (unchanged when auth
// is off), so that equal keys of different subjects never meet.
func subjectScoped(c *gin.Context, key string) string {
	sub := subjectOf(c)
	if sub == "" {
		return key
	}
	sum := sha256.Sum256([]byte(sub))
	return "sub:" + hex.EncodeToString(sum[:12]) + ":" + key
}

// grantFilter bounds f by p's topic grants. Asking for nothing (no topic patterns) means
// "everything granted": the grants become the topics. Every requested pattern must be covered by
// a grant, else the error wraps errForbidden. A nil p or a token without topics grants all.
func grantFilter(f event.Filter, p *auth.Principal) (event.Filter, error) {
	if p == nil || p.Topics == nil || f.Nothing {
		return f, nil
	}
	if len(f.Topics) == 0 {
		f.Topics = slices.Clone(p.Topics)
		return f, nil
	}
	if q, ok := event.GrantCovers(p.Topics, f.Topics); !ok {
		return event.Filter{}, fmt.Errorf("%w: the token does not grant topic %q", errForbidden, q.String())
	}
	return f, nil
}

// tokenExpiry runs expired, on a goroutine of its own, when p's token expires, and returns the
// function that cancels that (a no-op when p is nil: auth is off).
func tokenExpiry(p *auth.Principal, expired func()) (stop func()) {
	if p == nil {
		return func() {}
	}
	t := time.AfterFunc(time.Until(p.Expires), expired)
	return func() { t.Stop() }
}

// redactedURL renders u for logs with the value of every query parameter whose name contains
// "token" (access_token among them) replaced. It works on the raw query, split at '&' and ';', so
// malformed queries are redacted too.
func redactedURL(u *url.URL) string {
	if u.RawQuery == "" {
		return u.Path
	}
	var b strings.Builder
	b.WriteString(u.Path)
	b.WriteByte('?')
	rest := u.RawQuery
	for rest != "" {
		end := strings.IndexAny(rest, "&;")
		part, sep := rest, ""
		if end >= 0 {
			part, sep, rest = rest[:end], rest[end:end+1], rest[end+1:]
		} else {
			rest = ""
		}
		k, _, hasValue := strings.Cut(part, "=")
		name, err := url.QueryUnescape(k)
		if err != nil {
			name = k
		}
		if hasValue && strings.Contains(strings.ToLower(name), "token") {
			part = k + "=REDACTED"
		}
		b.WriteString(part)
		b.WriteString(sep)
	}
	return b.String()
}
