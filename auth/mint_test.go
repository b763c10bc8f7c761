package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eventgate/eventgate/event"
)

// keyFile writes a PEM block into a temporary file and returns its path.
func keyFile(t *testing.T, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(path, pemOf(t, typ, der), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestMint: what Mint signs, with each kind of key, the matching verifier accepts with the same
// claims; what the server would refuse, Mint refuses.
func TestMint(t *testing.T) {
	t.Parallel()
	k := testKeys()
	edDER, err := x509.MarshalPKCS8PrivateKey(k.ed)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalECPrivateKey(k.ec)
	if err != nil {
		t.Fatal(err)
	}
	hs, err := NewSecretKey(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	load := func(typ string, der []byte) *SigningKey {
		key, err := LoadSigningKey(keyFile(t, typ, der))
		if err != nil {
			t.Fatal(err)
		}
		return key
	}
	jobs, _ := event.ParsePattern("jobs/*")
	now := time.Now()
	claims := Claims{Subject: "dev", Scopes: []string{ScopeSubscribe, ScopePublish}, Topics: []event.Pattern{jobs},
		Audience: "eg", Issuer: "https://issuer.test", IssuedAt: now, Expires: now.Add(time.Hour)}
	for _, tt := range []struct {
		alg string
		key *SigningKey
		cfg Config
	}{
		{"HS256", hs, Config{Secret: testSecret}},
		{"RS256", load("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(k.rsa)), Config{PublicKey: &k.rsa.PublicKey}},
		{"ES256", load("EC PRIVATE KEY", ecDER), Config{PublicKey: &k.ec.PublicKey}},
		{"EdDSA", load("PRIVATE KEY", edDER), Config{PublicKey: k.ed.Public()}},
	} {
		if tt.key.Algorithm() != tt.alg {
			t.Fatalf("key algorithm %s, want %s", tt.key.Algorithm(), tt.alg)
		}
		tt.cfg.Audience, tt.cfg.Issuer = claims.Audience, claims.Issuer
		tok, err := Mint(tt.key, claims)
		if err != nil {
			t.Fatalf("%s: Mint: %v", tt.alg, err)
		}
		p, err := mustVerifier(t, tt.cfg).Verify(tok)
		if err != nil {
			t.Fatalf("%s: the verifier refuses the minted token: %v", tt.alg, err)
		}
		if p.Subject != "dev" || strings.Join(p.Scopes, " ") != "subscribe publish" || len(p.Topics) != 1 ||
			p.Topics[0] != jobs || p.Expires.Unix() != claims.Expires.Unix() {
			t.Fatalf("%s: principal %+v, want the minted claims", tt.alg, p)
		}
	}

	// No topics: no claim, every topic.
	tok, err := Mint(hs, Claims{Subject: "all", Expires: now.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := mustVerifier(t, Config{Secret: testSecret}).Verify(tok); err != nil || p.Topics != nil || len(p.Scopes) != 0 {
		t.Fatalf("Verify = %+v, %v; want every topic and no scope", p, err)
	}

	for name, c := range map[string]Claims{
		"no subject":   {Expires: now.Add(time.Hour)},
		"no expiry":    {Subject: "a", IssuedAt: now},
		"exp past iat": {Subject: "a", IssuedAt: now, Expires: now.Add(-time.Second)},
		"empty topics": {Subject: "a", Topics: []event.Pattern{}, Expires: now.Add(time.Hour)},
	} {
		if tok, err := Mint(hs, c); err == nil {
			t.Errorf("%s: Mint = %q, want an error", name, tok)
		}
	}
	if _, err := Mint(nil, claims); err == nil {
		t.Error("Mint without a key succeeded")
	}
}

func TestSigningKeyRefusals(t *testing.T) {
	t.Parallel()
	k := testKeys()
	if _, err := NewSecretKey(testSecret[:MinSecretBytes-1]); err == nil || strings.Contains(err.Error(), string(testSecret[:8])) {
		t.Fatalf("NewSecretKey(short) = %v; want an error that does not show the secret", err)
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p384DER, _ := x509.MarshalECPrivateKey(p384)
	pubDER, _ := x509.MarshalPKIXPublicKey(&k.rsa.PublicKey)
	for name, tt := range map[string]struct {
		path    string
		problem string
	}{
		"P-384":      {keyFile(t, "EC PRIVATE KEY", p384DER), "P-256"},
		"public key": {keyFile(t, "PUBLIC KEY", pubDER), "no RSA, EC or Ed25519 private key"},
		"missing":    {filepath.Join(t.TempDir(), "absent.pem"), "absent.pem"},
	} {
		if key, err := LoadSigningKey(tt.path); err == nil || !strings.Contains(err.Error(), tt.problem) {
			t.Errorf("%s: LoadSigningKey = %v, %v; want an error mentioning %q", name, key, err, tt.problem)
		}
	}
	if _, err := LoadSigningKey(filepath.Join(t.TempDir(), "absent.pem")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadSigningKey(absent) = %v, want an os.ErrNotExist", err)
	}
}
