package main

// `eventgate token` prints a signed token; `eventgate dev-secret` makes the development HS256
// secret that `go tool task run` starts the server with. Both are for development and operations
// scripts: production tokens come from your identity provider.

import (
	"crypto"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/eventgate/eventgate/handlers"
	"github.com/eventgate/eventgate/streams"
)

// DevSecretPath is where the development secret lives, relative to the working directory (the
// repository root under `go tool task`). It is git-ignored.
const DevSecretPath = ".eventgate-dev/secret"

// maxTokenTTL bounds --ttl: a token that outlives a year is a password.
const maxTokenTTL = 366 * 24 * time.Hour

// runToken is `eventgate token`: it signs a token with HS256 (the secret from --secret-file,
// EVENTGATE_JWT_SECRET, EVENTGATE_JWT_SECRET_FILE, or the development secret, made if absent) or
// with a PEM private key (--key: RS256, ES256 or EdDSA by key type), and prints it on stdout.
func runToken(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("eventgate token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sub := fs.String("sub", "", "subject (required): rate limits and idempotency keys are per subject")
	scope := fs.String("scope", "subscribe", "space- or comma-separated scopes: subscribe publish admin")
	topics := fs.String("topics", "", "space- or comma-separated topic patterns the token may see (default: all)")
	ttl := fs.Duration("ttl", time.Hour, "lifetime of the token")
	aud := fs.String("aud", getenv("EVENTGATE_JWT_AUDIENCE"), "aud claim ($EVENTGATE_JWT_AUDIENCE)")
	iss := fs.String("iss", getenv("EVENTGATE_JWT_ISSUER"), "iss claim ($EVENTGATE_JWT_ISSUER)")
	secretFile := fs.String("secret-file", "", "file holding the HS256 secret (default: $EVENTGATE_JWT_SECRET, $EVENTGATE_JWT_SECRET_FILE, else "+DevSecretPath+")")
	keyFile := fs.String("key", "", "PEM private key (RSA, EC P-256 or Ed25519) to sign with instead of the HS256 secret")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: eventgate token --sub SUBJECT [--scope \"subscribe publish\"] [--topics \"jobs/*\"] [--ttl 1h]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	tok, err := makeToken(tokenRequest{
		sub: *sub, scope: *scope, topics: *topics, ttl: *ttl, aud: *aud, iss: *iss,
		secretFile: *secretFile, keyFile: *keyFile, getenv: getenv,
	}, fs.NArg())
	if err != nil {
		fmt.Fprintf(stderr, "eventgate token: %v\n", err)
		return 2
	}
	fmt.Fprintln(stdout, tok)
	return 0
}

type tokenRequest struct {
	sub, scope, topics, aud, iss string
	ttl                          time.Duration
	secretFile, keyFile          string
	getenv                       func(string) string
}

// makeToken validates the request and signs the token.
func makeToken(r tokenRequest, extraArgs int) (string, error) {
	switch {
	case extraArgs > 0:
		return "", errors.New("unexpected arguments (flags only)")
	case r.sub == "":
		return "", errors.New("--sub is required")
	case r.ttl <= 0 || r.ttl > maxTokenTTL:
		return "", fmt.Errorf("--ttl must be positive and at most %s", maxTokenTTL)
	}
	scopes := splitList(r.scope)
	for _, s := range scopes {
		if !slices.Contains([]string{handlers.ScopeSubscribe, handlers.ScopePublish, handlers.ScopeAdmin}, s) {
			return "", fmt.Errorf("--scope: unknown scope %q (want subscribe, publish, admin)", s)
		}
	}
	now := time.Now()
	claims := jwt.MapClaims{"sub": r.sub, "scope": strings.Join(scopes, " "), "iat": now.Unix(), "exp": now.Add(r.ttl).Unix()}
	if t := splitList(r.topics); len(t) > 0 {
		for _, p := range t {
			if _, err := streams.ParsePattern(p); err != nil {
				return "", fmt.Errorf("--topics: %w", err)
			}
		}
		claims["topics"] = t
	}
	if r.aud != "" {
		claims["aud"] = r.aud
	}
	if r.iss != "" {
		claims["iss"] = r.iss
	}
	method, key, err := signingKey(r)
	if err != nil {
		return "", err
	}
	return jwt.NewWithClaims(method, claims).SignedString(key)
}

// signingKey picks the key: --key, else the HS256 secret by the documented order.
func signingKey(r tokenRequest) (jwt.SigningMethod, any, error) {
	if r.keyFile != "" {
		data, err := os.ReadFile(r.keyFile)
		if err != nil {
			return nil, nil, fmt.Errorf("--key: %w", err)
		}
		if k, err := jwt.ParseRSAPrivateKeyFromPEM(data); err == nil {
			return jwt.SigningMethodRS256, k, nil
		}
		if k, err := jwt.ParseECPrivateKeyFromPEM(data); err == nil {
			if k.Curve.Params().BitSize != 256 {
				return nil, nil, errors.New("--key: only P-256 EC keys are supported (ES256)")
			}
			return jwt.SigningMethodES256, k, nil
		}
		if k, err := jwt.ParseEdPrivateKeyFromPEM(data); err == nil {
			if _, ok := k.(crypto.Signer); ok {
				return jwt.SigningMethodEdDSA, k, nil
			}
		}
		return nil, nil, fmt.Errorf("--key: %s holds no RSA, EC or Ed25519 private key in PEM", r.keyFile)
	}
	var secret []byte
	var err error
	switch {
	case r.secretFile != "":
		secret, err = readSecretFile(r.secretFile)
	case r.getenv("EVENTGATE_JWT_SECRET") != "":
		secret = []byte(r.getenv("EVENTGATE_JWT_SECRET"))
	case r.getenv("EVENTGATE_JWT_SECRET_FILE") != "":
		secret, err = readSecretFile(r.getenv("EVENTGATE_JWT_SECRET_FILE"))
	default:
		secret, err = ensureDevSecret(DevSecretPath)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("HS256 secret: %w", err)
	}
	if len(secret) < handlers.MinSecretBytes {
		return nil, nil, fmt.Errorf("HS256 secret: %d bytes; the server refuses secrets under %d", len(secret), handlers.MinSecretBytes)
	}
	return jwt.SigningMethodHS256, secret, nil
}

// splitList splits on spaces and commas.
func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
}

// runDevSecret is `eventgate dev-secret [PATH]`: it makes the development secret at PATH
// (default DevSecretPath) unless it exists, and says how to get a token.
func runDevSecret(args []string, stderr io.Writer) int {
	path := DevSecretPath
	switch len(args) {
	case 0:
	case 1:
		path = args[0]
	default:
		fmt.Fprintln(stderr, "usage: eventgate dev-secret [PATH]")
		return 2
	}
	if _, err := ensureDevSecret(path); err != nil {
		fmt.Fprintf(stderr, "eventgate dev-secret: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "eventgate: development HS256 secret in %s; get a token with:\n"+
		"  export TOKEN=$(go run ./cmd/eventgate token --sub dev --scope \"subscribe publish\" --ttl 24h)\n", path)
	return 0
}

// ensureDevSecret returns the secret at path, creating it first (32 random bytes, base64url,
// mode 0600 as os.CreateTemp makes it, in a 0700 directory) when it does not exist. Two concurrent callers get the same
// secret: the file is created exclusively.
func ensureDevSecret(path string) ([]byte, error) {
	if secret, err := readSecretFile(path); err == nil {
		return secret, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	secret := base64.RawURLEncoding.AppendEncode(nil, raw)
	// Write a temporary file, then link it into place: the link fails if the secret exists, so a
	// reader never sees a half-written file and two makers agree on one secret.
	tmp, err := os.CreateTemp(filepath.Dir(path), ".secret-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(secret, '\n')); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Close(); err != nil {
		return nil, err
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return readSecretFile(path) // another process made it first
		}
		return nil, err
	}
	return secret, nil
}
