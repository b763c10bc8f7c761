package main

// Access control wiring: the token verifier from the EVENTGATE_AUTH / EVENTGATE_JWT_* settings,
// and the rate limiters from EVENTGATE_CONNECT_RATE / EVENTGATE_PUBLISH_RATE on the configured
// store.

import (
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/eventgate/eventgate/auth"
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
func buildVerifier(cfg config) (*auth.Verifier, error) {
	if cfg.Auth == "none" {
		return nil, nil
	}
	ac := auth.Config{Audience: cfg.JWTAudience, Issuer: cfg.JWTIssuer}
	variable := ""
	switch sources := countNonEmpty(cfg.JWTSecret, cfg.JWTSecretFile, cfg.JWTPublicKeyFile); sources {
	case 0:
		return nil, errNoKey
	case 1:
	default:
		return nil, errors.New("EVENTGATE_JWT_SECRET: set only one of EVENTGATE_JWT_SECRET, EVENTGATE_JWT_SECRET_FILE and EVENTGATE_JWT_PUBLIC_KEY_FILE")
	}
	var err error
	switch {
	case cfg.JWTSecret != "":
		variable = "EVENTGATE_JWT_SECRET"
		ac.Secret = []byte(cfg.JWTSecret)
	case cfg.JWTSecretFile != "":
		variable = "EVENTGATE_JWT_SECRET_FILE"
		ac.Secret, err = auth.LoadSecret(cfg.JWTSecretFile)
	default:
		variable = "EVENTGATE_JWT_PUBLIC_KEY_FILE"
		ac.PublicKey, err = auth.LoadPublicKey(cfg.JWTPublicKeyFile)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", variable, err)
	}
	v, err := auth.NewVerifier(ac)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", variable, err)
	}
	return v, nil
}

// rateLimiters returns the connect and publish limiters: in Redis when client is set (budgets
// shared by every instance on the stream key), else in process. An Off rate gives a nil limiter.
func rateLimiters(cfg config, client redis.UniversalClient) (connect, publish limits.RateLimiter) {
	build := func(name string, rate limits.Rate) limits.RateLimiter {
		switch {
		case rate.Off():
			return nil
		case client != nil:
			return store.NewRedisRateLimiter(client, redisKeys(cfg).Prefix+"ratelimit:"+name, rate)
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
