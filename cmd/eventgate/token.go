package main

// `eventgate token` prints a signed token; `eventgate dev-secret` makes the development HS256
// secret that `go tool task run` starts the server with. Both are for development and operations
// scripts: production tokens come from your identity provider.

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/eventgate/eventgate/auth"
	"github.com/eventgate/eventgate/event"
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

// makeToken validates the request (naming the flag at fault) and has auth.Mint sign the token.
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
		if !auth.KnownScope(s) {
			return "", fmt.Errorf("--scope: unknown scope %q (want subscribe, publish, admin)", s)
		}
	}
	var topics []event.Pattern // nil without --topics: every topic
	for _, t := range splitList(r.topics) {
		p, err := event.ParsePattern(t)
		if err != nil {
			return "", fmt.Errorf("--topics: %w", err)
		}
		topics = append(topics, p)
	}
	key, err := signingKey(r)
	if err != nil {
		return "", err
	}
	now := time.Now()
	return auth.Mint(key, auth.Claims{Subject: r.sub, Scopes: scopes, Topics: topics, Audience: r.aud, Issuer: r.iss,
		IssuedAt: now, Expires: now.Add(r.ttl)})
}

// signingKey picks the key: --key, else the HS256 secret by the documented order.
func signingKey(r tokenRequest) (*auth.SigningKey, error) {
	if r.keyFile != "" {
		key, err := auth.LoadSigningKey(r.keyFile)
		if err != nil {
			return nil, fmt.Errorf("--key: %w", err)
		}
		return key, nil
	}
	var secret []byte
	var err error
	switch {
	case r.secretFile != "":
		secret, err = auth.LoadSecret(r.secretFile)
	case r.getenv("EVENTGATE_JWT_SECRET") != "":
		secret = []byte(r.getenv("EVENTGATE_JWT_SECRET"))
	case r.getenv("EVENTGATE_JWT_SECRET_FILE") != "":
		secret, err = auth.LoadSecret(r.getenv("EVENTGATE_JWT_SECRET_FILE"))
	default:
		secret, err = auth.EnsureSecret(DevSecretPath)
	}
	if err != nil {
		return nil, fmt.Errorf("HS256 secret: %w", err)
	}
	key, err := auth.NewSecretKey(secret)
	if err != nil {
		return nil, fmt.Errorf("HS256 secret: %w", err)
	}
	return key, nil
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
	if _, err := auth.EnsureSecret(path); err != nil {
		fmt.Fprintf(stderr, "eventgate dev-secret: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "eventgate: development HS256 secret in %s; get a token with:\n"+
		"  export TOKEN=$(go run ./cmd/eventgate token --sub dev --scope \"subscribe publish\" --ttl 24h)\n", path)
	return 0
}
