// Package auth verifies and mints eventgate's bearer tokens (JWT, docs/api.md#authentication): keys
// and their pinned algorithms, the claims eventgate reads (sub, scope, topics, exp, nbf, aud, iss),
// and the Principal a verified token speaks for. It knows nothing of HTTP: package handlers finds
// the token in a request and turns these errors into 401 and 403 answers; the eventgate command
// loads keys and mints development tokens with the same code the server verifies with.
package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"fmt"
	"slices"

	"github.com/golang-jwt/jwt/v5"

	"github.com/eventgate/eventgate/event"
)

// MinSecretBytes is the shortest HS256 secret accepted: HS256 needs a key of at least the hash
// size to resist brute force.
const MinSecretBytes = 32

// maxTokenBytes bounds a token before any parsing.
const maxTokenBytes = 8 << 10

// Config selects how tokens are verified. Exactly one of Secret and PublicKey is set.
type Config struct {
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

// NewVerifier checks cfg and returns its verifier. Errors wrap ErrInvalidKey and never contain
// the secret.
func NewVerifier(cfg Config) (*Verifier, error) {
	v := &Verifier{}
	switch {
	case cfg.Secret != nil && cfg.PublicKey != nil:
		return nil, fmt.Errorf("%w: give an HS256 secret or a public key, not both", ErrInvalidKey)
	case cfg.Secret != nil:
		if len(cfg.Secret) < MinSecretBytes {
			return nil, fmt.Errorf("%w: the HS256 secret is %d bytes; at least %d are required", ErrInvalidKey, len(cfg.Secret), MinSecretBytes)
		}
		v.alg, v.key = jwt.SigningMethodHS256.Alg(), slices.Clone(cfg.Secret)
	case cfg.PublicKey != nil:
		alg, err := algorithmFor(cfg.PublicKey)
		if err != nil {
			return nil, err
		}
		v.alg, v.key = alg, cfg.PublicKey
	default:
		return nil, fmt.Errorf("%w: no HS256 secret and no public key", ErrInvalidKey)
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
			return "", fmt.Errorf("%w: the RSA key has %d bits; at least 2048 are required", ErrInvalidKey, k.N.BitLen())
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
		return "", fmt.Errorf("%w: unsupported elliptic curve", ErrInvalidKey)
	case ed25519.PublicKey:
		return jwt.SigningMethodEdDSA.Alg(), nil
	}
	return "", fmt.Errorf("%w: unsupported key type %T (want RSA, ECDSA or Ed25519)", ErrInvalidKey, key)
}

// Verify checks token (signature, algorithm, exp, nbf, aud, iss) and returns its principal.
// Errors wrap ErrInvalidToken (and ErrExpired for an expired token) with a message safe to show
// the client.
func (v *Verifier) Verify(token string) (*Principal, error) {
	if len(token) > maxTokenBytes {
		return nil, fmt.Errorf("%w: the token is over %d bytes", ErrInvalidToken, maxTokenBytes)
	}
	var claims tokenClaims
	_, err := v.parser.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return v.key, nil })
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, tokenProblem(err))
	}
	if claims.Subject == "" {
		return nil, fmt.Errorf("%w: the token has no sub claim", ErrInvalidToken)
	}
	p := &Principal{Subject: claims.Subject, Scopes: claims.Scope, Expires: claims.ExpiresAt.Time}
	if claims.Topics != nil {
		if len(claims.Topics) == 0 {
			// An empty grant would read as "every topic" downstream; refuse it instead.
			return nil, fmt.Errorf("%w: the token's topics claim is empty", ErrInvalidToken)
		}
		for _, t := range claims.Topics {
			pat, err := event.ParsePattern(t)
			if err != nil {
				return nil, fmt.Errorf("%w: the token's topics claim: %w", ErrInvalidToken, err)
			}
			p.Topics = append(p.Topics, pat)
		}
	}
	return p, nil
}
