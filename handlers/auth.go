package handlers

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/golang-jwt/jwt/v5"

	"github.com/eventgate/eventgate/streams"
)

// Scopes a token may carry in its space-separated scope claim (SPEC §6).
const (
	ScopeSubscribe = "subscribe"
	ScopePublish   = "publish"
	ScopeAdmin     = "admin"
)

// MinSecretBytes is the shortest HS256 secret accepted: HS256 needs a key of at least the hash
// size to resist brute force.
const MinSecretBytes = 32

// maxTokenBytes bounds a token before any parsing.
const maxTokenBytes = 8 << 10

// Token sources (SPEC §6).
const (
	// TokenQueryParam is the query parameter for clients that cannot set headers (EventSource).
	TokenQueryParam = "access_token"
	// TokenCookie is the cookie carrying a token; accepted on GET and HEAD only (see tokenFrom).
	TokenCookie = "eventgate_token"
)

// errUnauthorized is wrapped by every missing or invalid token error (401).
var errUnauthorized = errors.New("unauthorized")

// errInvalidKey is wrapped by AuthConfig and public key errors.
var errInvalidKey = errors.New("invalid verification key")

// AuthConfig selects how tokens are verified. Exactly one of Secret and PublicKey is set.
type AuthConfig struct {
	// Secret is the HS256 key, at least MinSecretBytes long.
	Secret []byte
	// PublicKey verifies RS256 (*rsa.PublicKey, 2048 bits or more), ES256/ES384/ES512
	// (*ecdsa.PublicKey on P-256/P-384/P-521) or EdDSA (ed25519.PublicKey) tokens. See
	// ParsePublicKeyPEM.
	PublicKey crypto.PublicKey
	// Audience, when set, must be among the token's aud values.
	Audience string
	// Issuer, when set, must equal the token's iss.
	Issuer string
}

// Verifier checks bearer tokens. The algorithm is pinned by the key: a token signed with any
// other algorithm (none, or HS256 on a public-key server) is rejected before its signature is
// looked at. Immutable after NewVerifier; safe for concurrent use.
type Verifier struct {
	alg    string
	key    any
	parser *jwt.Parser
}

// NewVerifier checks cfg and returns its verifier.
func NewVerifier(cfg AuthConfig) (*Verifier, error) {
	v := &Verifier{}
	switch {
	case cfg.Secret != nil && cfg.PublicKey != nil:
		return nil, fmt.Errorf("%w: give an HS256 secret or a public key, not both", errInvalidKey)
	case cfg.Secret != nil:
		if len(cfg.Secret) < MinSecretBytes {
			return nil, fmt.Errorf("%w: the HS256 secret is %d bytes; at least %d are required", errInvalidKey, len(cfg.Secret), MinSecretBytes)
		}
		v.alg, v.key = jwt.SigningMethodHS256.Alg(), slices.Clone(cfg.Secret)
	case cfg.PublicKey != nil:
		alg, err := algorithmFor(cfg.PublicKey)
		if err != nil {
			return nil, err
		}
		v.alg, v.key = alg, cfg.PublicKey
	default:
		return nil, fmt.Errorf("%w: no HS256 secret and no public key", errInvalidKey)
	}
	opts := []jwt.ParserOption{jwt.WithValidMethods([]string{v.alg}), jwt.WithExpirationRequired()}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

// Algorithm returns the one JWS algorithm this verifier accepts (HS256, RS256, ES256, EdDSA…).
func (v *Verifier) Algorithm() string { return v.alg }

// algorithmFor pins the algorithm to the key's type.
func algorithmFor(key crypto.PublicKey) (string, error) {
	switch k := key.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return "", fmt.Errorf("%w: the RSA key has %d bits; at least 2048 are required", errInvalidKey, k.N.BitLen())
		}
		return jwt.SigningMethodRS256.Alg(), nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return jwt.SigningMethodES256.Alg(), nil
		case elliptic.P384():
			return jwt.SigningMethodES384.Alg(), nil
		case elliptic.P521():
			return jwt.SigningMethodES512.Alg(), nil
		}
		return "", fmt.Errorf("%w: unsupported elliptic curve", errInvalidKey)
	case ed25519.PublicKey:
		return jwt.SigningMethodEdDSA.Alg(), nil
	}
	return "", fmt.Errorf("%w: unsupported key type %T (want RSA, ECDSA or Ed25519)", errInvalidKey, key)
}

// ParsePublicKeyPEM reads the first PEM block of data: a PKIX public key ("PUBLIC KEY"), a
// PKCS #1 RSA public key ("RSA PUBLIC KEY") or a certificate ("CERTIFICATE"), RSA, ECDSA or
// Ed25519. Private keys are refused, so that a signing key is never deployed by mistake.
func ParsePublicKeyPEM(data []byte) (crypto.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%w: no PEM block found", errInvalidKey)
	}
	var key crypto.PublicKey
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			key = cert.PublicKey
		}
	default:
		return nil, fmt.Errorf("%w: PEM block %q: want PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE", errInvalidKey, block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errInvalidKey, err)
	}
	if _, err := algorithmFor(key); err != nil {
		return nil, err
	}
	return key, nil
}

// Principal is who a verified token speaks for. Immutable once built; shared by the goroutines
// of one connection.
type Principal struct {
	// Subject is the token's sub: rate limits and idempotency keys are per subject.
	Subject string
	// Scopes are the token's scopes (subscribe, publish, admin; unknown ones are kept, unused).
	Scopes []string
	// Topics are the patterns the token may subscribe to; nil means every topic.
	Topics []streams.Pattern
	// Expires is the token's exp: live connections end then.
	Expires time.Time
}

// HasScope reports whether the principal holds scope.
func (p *Principal) HasScope(scope string) bool { return slices.Contains(p.Scopes, scope) }

// tokenClaims are the claims eventgate reads. scope is a space-separated string (a JSON array is
// tolerated); topics an array of patterns (a space-separated string is tolerated).
type tokenClaims struct {
	Scope  words `json:"scope"`
	Topics words `json:"topics"`
	jwt.RegisteredClaims
}

// errNumericClaim is wrapped when exp, nbf or iat is not a JSON number: encoding/json reads a
// quoted number into the json.Number that golang-jwt's NumericDate decodes, so "exp":"4102444800"
// would otherwise pass, against RFC 7519 §2 (NumericDate is a number).
var errNumericClaim = errors.New("claim must be a number")

// UnmarshalJSON decodes the claims after checking that the time claims are JSON numbers (or null).
func (c *tokenClaims) UnmarshalJSON(b []byte) error {
	var times struct {
		Exp json.RawMessage `json:"exp"`
		Nbf json.RawMessage `json:"nbf"`
		Iat json.RawMessage `json:"iat"`
	}
	if err := json.Unmarshal(b, &times); err != nil {
		return err
	}
	for _, claim := range []struct {
		name string
		raw  json.RawMessage
	}{{"exp", times.Exp}, {"nbf", times.Nbf}, {"iat", times.Iat}} {
		if v := claim.raw; len(v) > 0 && string(v) != "null" && !(v[0] == '-' || v[0] >= '0' && v[0] <= '9') {
			return fmt.Errorf("the %s %w", claim.name, errNumericClaim)
		}
	}
	type plain tokenClaims // without this method
	return json.Unmarshal(b, (*plain)(c))
}

// words is a claim given as a space-separated string or an array of strings.
type words []string

func (w *words) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*w = strings.Fields(s)
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return errors.New("want a string or an array of strings")
	}
	*w = list
	return nil
}

// Verify checks token (signature, algorithm, exp, nbf, aud, iss) and returns its principal.
// Errors wrap errUnauthorized with a message safe to show the client.
func (v *Verifier) Verify(token string) (*Principal, error) {
	if len(token) > maxTokenBytes {
		return nil, fmt.Errorf("%w: the token is over %d bytes", errUnauthorized, maxTokenBytes)
	}
	var claims tokenClaims
	_, err := v.parser.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return v.key, nil })
	if err != nil {
		return nil, fmt.Errorf("%w: %s", errUnauthorized, tokenProblem(err))
	}
	if claims.Subject == "" {
		return nil, fmt.Errorf("%w: the token has no sub claim", errUnauthorized)
	}
	p := &Principal{Subject: claims.Subject, Scopes: claims.Scope, Expires: claims.ExpiresAt.Time}
	if claims.Topics != nil {
		if len(claims.Topics) == 0 {
			// An empty grant would read as "every topic" downstream; refuse it instead.
			return nil, fmt.Errorf("%w: the token's topics claim is empty", errUnauthorized)
		}
		for _, t := range claims.Topics {
			pat, err := streams.ParsePattern(t)
			if err != nil {
				return nil, fmt.Errorf("%w: the token's topics claim: %w", errUnauthorized, err)
			}
			p.Topics = append(p.Topics, pat)
		}
	}
	return p, nil
}

// tokenProblem turns a jwt error into a short client-facing sentence.
func tokenProblem(err error) string {
	switch {
	case errors.Is(err, errNumericClaim):
		for _, claim := range []string{"exp", "nbf", "iat"} {
			if strings.Contains(err.Error(), "the "+claim+" claim") {
				return "the token is malformed: its " + claim + " claim must be a number"
			}
		}
		return "the token is malformed"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "the token is malformed"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return "the token's signature or algorithm is not accepted"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		for _, claim := range []string{"aud", "iss", "exp"} {
			if strings.Contains(err.Error(), claim+" claim") {
				return "the token has no " + claim + " claim"
			}
		}
		return "the token lacks a required claim"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "the token has expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "the token is not valid yet (nbf)"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "the token's audience is not accepted"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "the token's issuer is not accepted"
	}
	return "the token is invalid"
}

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

// ctxPrincipal is the gin context key of the request's *Principal (absent when auth is off).
const ctxPrincipal = "eventgate.principal"

// requireScope returns the middleware that authenticates the request and requires scope:
// 401 with WWW-Authenticate: Bearer without a valid token, 403 when the token lacks the scope.
// It leaves the principal and its subject on the context. With auth disabled (Config.Auth nil) it
// lets every request through. Other route groups (webhooks: ScopeAdmin) use it the same way.
func (s *Server) requireScope(scope string) gin.HandlerFunc {
	return func(c *gin.Context) {
		if s.cfg.Auth == nil {
			return
		}
		tok, err := tokenFrom(c)
		var p *Principal
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
		if !p.HasScope(scope) {
			c.Header("WWW-Authenticate", `Bearer realm="eventgate", error="insufficient_scope", scope="`+scope+`"`)
			s.reject(c, RejectForbidden)
			s.log.Debug("request forbidden", "client_ip", c.ClientIP(), "subject", p.Subject, "url", redactedURL(c.Request.URL), "scope", scope)
			s.fail(c, fmt.Errorf("%w: the token lacks the %q scope", errForbidden, scope))
			return
		}
		c.Set(ctxPrincipal, p)
		c.Set(ctxSubject, p.Subject)
	}
}

// principalOf returns the request's principal, or nil when auth is disabled.
func principalOf(c *gin.Context) *Principal {
	v, _ := c.Get(ctxPrincipal)
	p, _ := v.(*Principal)
	return p
}

// subjectScoped prefixes key with a digest of the request's token subject (unchanged when auth
// is off), so that equal keys of different subjects never meet.
func subjectScoped(c *gin.Context, key string) string {
	sub := c.GetString(ctxSubject)
	if sub == "" {
		return key
	}
	sum := sha256.Sum256([]byte(sub))
	return "sub:" + hex.EncodeToString(sum[:12]) + ":" + key
}

// grantFilter bounds f by p's topic grants. Asking for nothing (no topic patterns) means
// "everything granted": the grants become the topics. Every requested pattern must be covered by
// a grant, else the error wraps errForbidden. A nil p or a token without topics grants all.
func grantFilter(f streams.Filter, p *Principal) (streams.Filter, error) {
	if p == nil || p.Topics == nil || f.Nothing {
		return f, nil
	}
	if len(f.Topics) == 0 {
		f.Topics = slices.Clone(p.Topics)
		return f, nil
	}
	for _, q := range f.Topics {
		if !slices.ContainsFunc(p.Topics, func(g streams.Pattern) bool { return g.Covers(q) }) {
			return streams.Filter{}, fmt.Errorf("%w: the token does not grant topic %q", errForbidden, q.String())
		}
	}
	return f, nil
}

// expiry returns a channel that fires when p's token expires, and the function that releases its
// timer. Both are inert for a nil p (auth disabled).
func (p *Principal) expiry() (<-chan time.Time, func()) {
	if p == nil {
		return nil, func() {}
	}
	t := time.NewTimer(time.Until(p.Expires))
	return t.C, func() { t.Stop() }
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
