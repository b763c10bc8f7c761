package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eventgate/eventgate/auth"
)

// TestMakeToken: what `eventgate token` signs is what the server accepts, with the claims asked.
func TestMakeToken(t *testing.T) {
	t.Parallel()
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte("0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(edKey)
	keyFile := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	hs, err := auth.NewVerifier(auth.Config{Secret: []byte("0123456789abcdef0123456789abcdef"), Audience: "eg"})
	if err != nil {
		t.Fatal(err)
	}
	ed, _ := auth.NewVerifier(auth.Config{PublicKey: edKey.Public()})
	noenv := func(string) string { return "" }
	tests := []struct {
		name     string
		req      tokenRequest
		verifier *auth.Verifier
		problem  string
	}{
		{"hs256 from file", tokenRequest{sub: "dev", scope: "subscribe,publish", topics: "jobs/* queue", aud: "eg", ttl: time.Hour, secretFile: secretFile, getenv: noenv}, hs, ""},
		{"hs256 from env", tokenRequest{sub: "dev", scope: "admin", aud: "eg", ttl: time.Hour, getenv: func(k string) string {
			if k == "EVENTGATE_JWT_SECRET" {
				return "0123456789abcdef0123456789abcdef"
			}
			return ""
		}}, hs, ""},
		{"eddsa key", tokenRequest{sub: "dev", scope: "subscribe", ttl: time.Minute, keyFile: keyFile, getenv: noenv}, ed, ""},
		{"no sub", tokenRequest{scope: "subscribe", ttl: time.Hour, secretFile: secretFile, getenv: noenv}, nil, "--sub"},
		{"bad scope", tokenRequest{sub: "a", scope: "root", ttl: time.Hour, secretFile: secretFile, getenv: noenv}, nil, "root"},
		{"bad topic", tokenRequest{sub: "a", topics: "JOBS", ttl: time.Hour, secretFile: secretFile, getenv: noenv}, nil, "--topics"},
		{"bad ttl", tokenRequest{sub: "a", ttl: -time.Second, secretFile: secretFile, getenv: noenv}, nil, "--ttl"},
		{"short secret", tokenRequest{sub: "a", ttl: time.Hour, getenv: func(k string) string {
			if k == "EVENTGATE_JWT_SECRET" {
				return "short"
			}
			return ""
		}}, nil, "32"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tok, err := makeToken(tt.req, 0)
			if tt.problem != "" {
				if err == nil || !strings.Contains(err.Error(), tt.problem) {
					t.Fatalf("makeToken = %q, %v; want an error mentioning %q", tok, err, tt.problem)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			p, err := tt.verifier.Verify(tok)
			if err != nil {
				t.Fatalf("the server refuses the token: %v", err)
			}
			if p.Subject != tt.req.sub || strings.Join(p.Scopes, ",") != strings.Join(splitList(tt.req.scope), ",") ||
				time.Until(p.Expires) > tt.req.ttl || time.Until(p.Expires) < tt.req.ttl-5*time.Second {
				t.Fatalf("principal %+v, want sub %s scopes %q ttl %s", p, tt.req.sub, tt.req.scope, tt.req.ttl)
			}
			if len(p.Topics) != len(splitList(tt.req.topics)) {
				t.Fatalf("topics %v, want %q", p.Topics, tt.req.topics)
			}
		})
	}
}

func TestBuildVerifier(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	_ = os.WriteFile(secretFile, []byte("  0123456789abcdef0123456789abcdef \n"), 0o600)
	empty := filepath.Join(dir, "empty")
	_ = os.WriteFile(empty, []byte("\n"), 0o600)
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(pub)
	keyFile := filepath.Join(dir, "key.pem")
	_ = os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600)
	tests := []struct {
		name string
		cfg  config
		alg  string // "" with want == "": nil verifier (auth off)
		want string // in the error
	}{
		{"auth none", config{Auth: "none", JWTSecret: "ignored"}, "", ""},
		{"no key", config{Auth: "jwt"}, "", "EVENTGATE_AUTH=none"},
		{"secret", config{Auth: "jwt", JWTSecret: "0123456789abcdef0123456789abcdef"}, "HS256", ""},
		{"short secret", config{Auth: "jwt", JWTSecret: "0123456789"}, "", "EVENTGATE_JWT_SECRET:"},
		{"secret file", config{Auth: "jwt", JWTSecretFile: secretFile}, "HS256", ""},
		{"empty secret file", config{Auth: "jwt", JWTSecretFile: empty}, "", "EVENTGATE_JWT_SECRET_FILE"},
		{"public key", config{Auth: "jwt", JWTPublicKeyFile: keyFile}, "EdDSA", ""},
		{"secret as key file", config{Auth: "jwt", JWTPublicKeyFile: secretFile}, "", "EVENTGATE_JWT_PUBLIC_KEY_FILE"},
		{"two sources", config{Auth: "jwt", JWTSecret: "0123456789abcdef0123456789abcdef", JWTPublicKeyFile: keyFile}, "", "only one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v, err := buildVerifier(tt.cfg)
			switch {
			case tt.want != "":
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("buildVerifier = %v, %v; want an error with %q", v, err, tt.want)
				}
				if strings.Contains(err.Error(), "0123456789") {
					t.Fatalf("the error shows the secret: %v", err)
				}
			case tt.alg == "":
				if v != nil || err != nil {
					t.Fatalf("buildVerifier = %v, %v; want nil (auth off)", v, err)
				}
			default:
				if err != nil || v.Algorithm() != tt.alg {
					t.Fatalf("buildVerifier = %v, %v; want %s", v, err, tt.alg)
				}
			}
		})
	}
}
