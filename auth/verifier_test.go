package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/eventgate/eventgate/event"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef-test")

// Test keys, made once: RSA key generation is slow.
var testKeys = sync.OnceValue(func() (k struct {
	rsa *rsa.PrivateKey
	ec  *ecdsa.PrivateKey
	ed  ed25519.PrivateKey
}) {
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	if k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		panic(err)
	}
	if _, k.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		panic(err)
	}
	return k
})

// sign makes a token with method and key over claims.
func sign(t testing.TB, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatalf("signing: %v", err)
	}
	return s
}

// claimsFor returns valid claims for sub with scope, expiring in an hour.
func claimsFor(sub, scope string) jwt.MapClaims {
	return jwt.MapClaims{"sub": sub, "scope": scope, "exp": time.Now().Add(time.Hour).Unix()}
}

func hsToken(t testing.TB, claims jwt.MapClaims) string {
	return sign(t, jwt.SigningMethodHS256, testSecret, claims)
}

func mustVerifier(t testing.TB, cfg Config) *Verifier {
	t.Helper()
	v, err := NewVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// noneToken is an unsigned token (alg none) with valid claims.
func noneToken(t testing.TB) string {
	return sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claimsFor("mallory", "subscribe publish admin"))
}

func pemOf(t testing.TB, typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func pkixPEM(t testing.TB, pub crypto.PublicKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pemOf(t, "PUBLIC KEY", der)
}

// TestAlgorithmPinning: each verifier accepts its own algorithm and key only — never none, an
// algorithm switch (including HS256 keyed with the public key's PEM), or a foreign signature.
func TestAlgorithmPinning(t *testing.T) {
	t.Parallel()
	k := testKeys()
	otherRSA, _ := rsa.GenerateKey(rand.Reader, 2048)
	otherEd, _, _ := ed25519.GenerateKey(rand.Reader)
	_ = otherEd
	_, otherEdPriv, _ := ed25519.GenerateKey(rand.Reader)
	c := claimsFor("alice", "subscribe")
	servers := []struct {
		name   string
		cfg    Config
		alg    string
		good   string
		forged map[string]string
	}{
		{"HS256", Config{Secret: testSecret}, "HS256", sign(t, jwt.SigningMethodHS256, testSecret, c), map[string]string{
			"none":            noneToken(t),
			"HS384 same key":  sign(t, jwt.SigningMethodHS384, testSecret, c),
			"HS512 same key":  sign(t, jwt.SigningMethodHS512, testSecret, c),
			"wrong secret":    sign(t, jwt.SigningMethodHS256, []byte("another-secret-of-thirty-two-bytes!!"), c),
			"RS256":           sign(t, jwt.SigningMethodRS256, k.rsa, c),
			"EdDSA":           sign(t, jwt.SigningMethodEdDSA, k.ed, c),
			"bad signature":   tamper(sign(t, jwt.SigningMethodHS256, testSecret, c)),
			"payload swapped": swapPayload(sign(t, jwt.SigningMethodHS256, testSecret, c), claimsFor("root", "admin")),
		}},
		{"RS256", Config{PublicKey: &k.rsa.PublicKey}, "RS256", sign(t, jwt.SigningMethodRS256, k.rsa, c), map[string]string{
			"none":                   noneToken(t),
			"HS256 keyed by the PEM": sign(t, jwt.SigningMethodHS256, pkixPEM(t, &k.rsa.PublicKey), c),
			"PS256 same key":         sign(t, jwt.SigningMethodPS256, k.rsa, c),
			"RS512 same key":         sign(t, jwt.SigningMethodRS512, k.rsa, c),
			"other RSA key":          sign(t, jwt.SigningMethodRS256, otherRSA, c),
			"bad signature":          tamper(sign(t, jwt.SigningMethodRS256, k.rsa, c)),
		}},
		{"ES256", Config{PublicKey: &k.ec.PublicKey}, "ES256", sign(t, jwt.SigningMethodES256, k.ec, c), map[string]string{
			"none":                   noneToken(t),
			"HS256 keyed by the PEM": sign(t, jwt.SigningMethodHS256, pkixPEM(t, &k.ec.PublicKey), c),
			"RS256":                  sign(t, jwt.SigningMethodRS256, k.rsa, c),
			"bad signature":          tamper(sign(t, jwt.SigningMethodES256, k.ec, c)),
		}},
		{"EdDSA", Config{PublicKey: k.ed.Public()}, "EdDSA", sign(t, jwt.SigningMethodEdDSA, k.ed, c), map[string]string{
			"none":                   noneToken(t),
			"HS256 keyed by the PEM": sign(t, jwt.SigningMethodHS256, pkixPEM(t, k.ed.Public()), c),
			"other Ed25519 key":      sign(t, jwt.SigningMethodEdDSA, otherEdPriv, c),
			"ES256":                  sign(t, jwt.SigningMethodES256, k.ec, c),
		}},
	}
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			t.Parallel()
			v := mustVerifier(t, srv.cfg)
			if v.Algorithm() != srv.alg {
				t.Fatalf("Algorithm() = %s, want %s", v.Algorithm(), srv.alg)
			}
			if p, err := v.Verify(srv.good); err != nil || p.Subject != "alice" {
				t.Fatalf("valid %s token: %+v, %v", srv.alg, p, err)
			}
			for name, tok := range srv.forged {
				if p, err := v.Verify(tok); !errors.Is(err, ErrInvalidToken) {
					t.Errorf("%s: Verify = %+v, %v; want ErrInvalidToken", name, p, err)
				}
			}
		})
	}
}

// tamper flips one character of the signature.
func tamper(tok string) string {
	b := []byte(tok)
	i := len(b) - 5
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

// swapPayload keeps header and signature but replaces the claims.
func swapPayload(tok string, claims jwt.MapClaims) string {
	parts := strings.Split(tok, ".")
	raw, _ := json.Marshal(claims)
	parts[1] = base64.RawURLEncoding.EncodeToString(raw)
	return strings.Join(parts, ".")
}

// TestVerifyClaims: exp required and enforced, nbf, sub, aud/iss, and the scope and topics claims.
func TestVerifyClaims(t *testing.T) {
	t.Parallel()
	now := time.Now()
	hour := now.Add(time.Hour).Unix()
	v := mustVerifier(t, Config{Secret: testSecret})
	strict := mustVerifier(t, Config{Secret: testSecret, Audience: "eventgate", Issuer: "https://issuer.test"})
	tests := []struct {
		name     string
		v        *Verifier
		claims   jwt.MapClaims
		problem  string // in the error; "" = valid
		scopes   []string
		topics   []string
		noTopics bool
	}{
		{name: "scope string", claims: jwt.MapClaims{"sub": "a", "exp": hour, "scope": "subscribe publish"}, scopes: []string{"subscribe", "publish"}, noTopics: true},
		{name: "scope array", claims: jwt.MapClaims{"sub": "a", "exp": hour, "scope": []string{"admin"}}, scopes: []string{"admin"}, noTopics: true},
		{name: "no scope", claims: jwt.MapClaims{"sub": "a", "exp": hour}, noTopics: true},
		{name: "topics array", claims: jwt.MapClaims{"sub": "a", "exp": hour, "topics": []string{"jobs/*", "queue"}}, topics: []string{"jobs/*", "queue"}},
		{name: "topics string", claims: jwt.MapClaims{"sub": "a", "exp": hour, "topics": "notes/* queue"}, topics: []string{"notes/*", "queue"}},
		{name: "nbf past", claims: jwt.MapClaims{"sub": "a", "exp": hour, "nbf": now.Add(-time.Minute).Unix()}, noTopics: true},
		{name: "missing exp", claims: jwt.MapClaims{"sub": "a"}, problem: "no exp"},
		{name: "past exp", claims: jwt.MapClaims{"sub": "a", "exp": now.Add(-time.Second).Unix()}, problem: "expired"},
		{name: "exp not a number", claims: jwt.MapClaims{"sub": "a", "exp": "tomorrow"}, problem: "malformed"},
		// encoding/json reads a quoted number into json.Number, so golang-jwt would take these.
		{name: "exp numeric string", claims: jwt.MapClaims{"sub": "a", "exp": strconv.FormatInt(hour, 10)}, problem: "exp claim must be a number"},
		{name: "nbf numeric string", claims: jwt.MapClaims{"sub": "a", "exp": hour, "nbf": strconv.FormatInt(now.Unix()-60, 10)}, problem: "nbf claim must be a number"},
		{name: "iat numeric string", claims: jwt.MapClaims{"sub": "a", "exp": hour, "iat": strconv.FormatInt(now.Unix(), 10)}, problem: "iat claim must be a number"},
		{name: "iat number", claims: jwt.MapClaims{"sub": "a", "exp": hour, "iat": now.Unix()}, noTopics: true},
		{name: "exp null", claims: jwt.MapClaims{"sub": "a", "exp": nil}, problem: "no exp"},
		{name: "future nbf", claims: jwt.MapClaims{"sub": "a", "exp": hour, "nbf": now.Add(time.Hour).Unix()}, problem: "not valid yet"},
		{name: "missing sub", claims: jwt.MapClaims{"exp": hour}, problem: "sub"},
		{name: "bad topic pattern", claims: jwt.MapClaims{"sub": "a", "exp": hour, "topics": []string{"JOBS/*"}}, problem: "topics"},
		{name: "empty topics", claims: jwt.MapClaims{"sub": "a", "exp": hour, "topics": []string{}}, problem: "empty"},
		{name: "topics not strings", claims: jwt.MapClaims{"sub": "a", "exp": hour, "topics": 7}, problem: "malformed"},
		{name: "aud and iss ok", v: strict, claims: jwt.MapClaims{"sub": "a", "exp": hour, "aud": []string{"x", "eventgate"}, "iss": "https://issuer.test"}, noTopics: true},
		{name: "wrong aud", v: strict, claims: jwt.MapClaims{"sub": "a", "exp": hour, "aud": "other", "iss": "https://issuer.test"}, problem: "audience"},
		{name: "missing aud", v: strict, claims: jwt.MapClaims{"sub": "a", "exp": hour, "iss": "https://issuer.test"}, problem: "no aud claim"},
		{name: "missing iss", v: strict, claims: jwt.MapClaims{"sub": "a", "exp": hour, "aud": "eventgate"}, problem: "no iss claim"},
		{name: "wrong iss", v: strict, claims: jwt.MapClaims{"sub": "a", "exp": hour, "aud": "eventgate", "iss": "https://evil.test"}, problem: "issuer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ver := tt.v
			if ver == nil {
				ver = v
			}
			p, err := ver.Verify(hsToken(t, tt.claims))
			if tt.problem != "" {
				if !errors.Is(err, ErrInvalidToken) || !strings.Contains(err.Error(), tt.problem) {
					t.Fatalf("Verify = %+v, %v; want ErrInvalidToken mentioning %q", p, err, tt.problem)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if strings.Join(p.Scopes, " ") != strings.Join(tt.scopes, " ") {
				t.Fatalf("scopes %q, want %q", p.Scopes, tt.scopes)
			}
			if tt.noTopics != (p.Topics == nil) {
				t.Fatalf("topics %v, want nil: %v", p.Topics, tt.noTopics)
			}
			var got []string
			for _, pat := range p.Topics {
				got = append(got, pat.String())
			}
			if strings.Join(got, " ") != strings.Join(tt.topics, " ") {
				t.Fatalf("topics %q, want %q", got, tt.topics)
			}
			if p.Expires.Unix() != hour {
				t.Fatalf("expires %v, want %d", p.Expires, hour)
			}
		})
	}
	for _, garbage := range []string{"", "abc", "a.b.c", "a.b", strings.Repeat("x", maxTokenBytes+1)} {
		if _, err := v.Verify(garbage); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("Verify(%.20q) = %v, want ErrInvalidToken", garbage, err)
		}
	}
}

func TestVerifierConfig(t *testing.T) {
	t.Parallel()
	k := testKeys()
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	tests := []struct {
		name string
		cfg  Config
		alg  string // "" = refused
	}{
		{"short secret", Config{Secret: []byte("0123456789abcdef0123456789abcde")}, ""},
		{"32-byte secret", Config{Secret: []byte("0123456789abcdef0123456789abcdef")}, "HS256"},
		{"nothing", Config{}, ""},
		{"both", Config{Secret: testSecret, PublicKey: &k.rsa.PublicKey}, ""},
		{"RSA 1024", Config{PublicKey: &small.PublicKey}, ""},
		{"P-384", Config{PublicKey: &p384.PublicKey}, "ES384"},
		{"private key as public", Config{PublicKey: k.rsa}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v, err := NewVerifier(tt.cfg)
			if tt.alg == "" {
				if err == nil {
					t.Fatalf("NewVerifier accepted %s", tt.name)
				}
				return
			}
			if err != nil || v.Algorithm() != tt.alg {
				t.Fatalf("NewVerifier = %v, %v; want %s", v, err, tt.alg)
			}
		})
	}
}

// FuzzVerify: no input panics the verifier, and whatever it accepts is a usable principal.
func FuzzVerify(f *testing.F) {
	v := mustVerifier(f, Config{Secret: testSecret})
	exp := time.Now().Add(24 * time.Hour).Unix()
	for _, c := range []jwt.MapClaims{
		{"sub": "a", "exp": exp, "scope": "subscribe publish", "topics": []string{"jobs/*", "queue"}},
		{"sub": "a", "exp": exp, "topics": "notes/* *"},
		{"sub": "a", "exp": exp, "scope": []any{"admin", 3}},
		{"sub": "", "exp": exp},
		{"sub": "a", "exp": 1e300},
		{"sub": "a", "exp": exp, "nbf": "x"},
	} {
		f.Add(hsToken(f, c))
	}
	f.Add(noneToken(f))
	f.Add("eyJhbGciOiJIUzI1NiJ9.e30.")
	f.Add("..")
	f.Add("")
	f.Fuzz(func(t *testing.T, tok string) {
		p, err := v.Verify(tok)
		if err != nil {
			if !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("error %v does not wrap ErrInvalidToken", err)
			}
			return
		}
		if p.Subject == "" || !p.Expires.After(time.Now().Add(-time.Minute)) {
			t.Fatalf("accepted a principal without subject or expiry: %+v", p)
		}
		if p.Topics != nil && len(p.Topics) == 0 {
			t.Fatalf("accepted an empty topic grant")
		}
		for _, pat := range p.Topics {
			if again, err := event.ParsePattern(pat.String()); err != nil || again != pat {
				t.Fatalf("grant %q does not round-trip: %v", pat, err)
			}
		}
	})
}
