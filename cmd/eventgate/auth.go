package main

// Access control wiring: the token verifier from the EVENTGATE_AUTH / EVENTGATE_JWT_* settings,
// and the rate limiters from EVENTGATE_CONNECT_RATE / EVENTGATE_PUBLISH_RATE on the configured
// store.

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"github.com/redis/go-redis/v9"

	"github.com/eventgate/eventgate/handlers"
	"github.com/eventgate/eventgate/limits"
	"github.com/eventgate/eventgate/store"
)

// errNoKey says how to configure a key; the message is the one line a newcomer sees.
var errNoKey = errors.New("EVENTGATE_JWT_SECRET: no token key configured: set EVENTGATE_JWT_SECRET (32+ bytes), " +
	"EVENTGATE_JWT_SECRET_FILE or EVENTGATE_JWT_PUBLIC_KEY_FILE, or EVENTGATE_AUTH=none to run without " +
	"authentication (`go tool task run` sets up a development key)")

// buildVerifier returns the token verifier the configuration asks for, or nil with
// EVENTGATE_AUTH=none. Its errors name the variable at fault and never contain the secret.
func buildVerifier(cfg config) (*handlers.Verifier, error) {
	if cfg.Auth == "none" {
		return nil, nil
	}
	ac := handlers.AuthConfig{Audience: cfg.JWTAudience, Issuer: cfg.JWTIssuer}
	variable := ""
	switch sources := countNonEmpty(cfg.JWTSecret, cfg.JWTSecretFile, cfg.JWTPublicKeyFile); sources {
	case 0:
		return nil, errNoKey
	case 1:
	default:
		return nil, errors.New("EVENTGATE_JWT_SECRET: set only one of EVENTGATE_JWT_SECRET, EVENTGATE_JWT_SECRET_FILE and EVENTGATE_JWT_PUBLIC_KEY_FILE")
	}
	if cfg.JWTSecret != "" {
		variable = "EVENTGATE_JWT_SECRET"
		ac.Secret = []byte(cfg.JWTSecret)
	}
	if cfg.JWTSecretFile != "" {
		variable = "EVENTGATE_JWT_SECRET_FILE"
		secret, err := readSecretFile(cfg.JWTSecretFile)
		if err != nil {
			return nil, fmt.Errorf("EVENTGATE_JWT_SECRET_FILE: %w", err)
		}
		ac.Secret = secret
	}
	if cfg.JWTPublicKeyFile != "" {
		variable = "EVENTGATE_JWT_PUBLIC_KEY_FILE"
		data, err := os.ReadFile(cfg.JWTPublicKeyFile)
		if err != nil {
			return nil, fmt.Errorf("EVENTGATE_JWT_PUBLIC_KEY_FILE: %w", err)
		}
		if ac.PublicKey, err = handlers.ParsePublicKeyPEM(data); err != nil {
			return nil, fmt.Errorf("EVENTGATE_JWT_PUBLIC_KEY_FILE: %s: %w", cfg.JWTPublicKeyFile, err)
		}
	}
	v, err := handlers.NewVerifier(ac)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", variable, err)
	}
	return v, nil
}

// readSecretFile reads an HS256 secret, without surrounding whitespace (a trailing newline).
func readSecretFile(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	secret := bytes.TrimSpace(data)
	if len(secret) == 0 {
		return nil, fmt.Errorf("%s is empty", path)
	}
	return secret, nil
}

// rateLimiters returns the connect and publish limiters: in Redis when client is set (budgets
// shared by every instance on the stream key), else in process. An Off rate gives a nil limiter.
func rateLimiters(cfg config, client redis.UniversalClient) (connect, publish limits.RateLimiter) {
	build := func(name string, rate limits.Rate) limits.RateLimiter {
		switch {
		case rate.Off():
			return nil
		case client != nil:
			return store.NewRedisRateLimiter(client, cfg.StreamKey+":ratelimit:"+name, rate)
		default:
			return store.NewMemoryRateLimiter(name, rate)
		}
	}
	return build(handlers.RouteConnect, cfg.ConnectRate), build(handlers.RoutePublish, cfg.PublishRate)
}

func countNonEmpty(values ...string) int {
	n := 0
	for _, v := range values {
		if v != "" {
			n++
		}
	}
	return n
}
