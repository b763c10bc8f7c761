package auth

import (
	"crypto"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/eventgate/eventgate/event"
)

// SigningKey is what Mint signs with: an HS256 secret or a private key, the algorithm pinned by
// the key's type as a Verifier's is. Immutable after NewSecretKey or LoadSigningKey; safe for
// concurrent use.
type SigningKey struct {
	method jwt.SigningMethod
	key    any
}

// NewSecretKey returns the HS256 key of secret (copied). Like the server, it refuses secrets
// under MinSecretBytes; the error never contains the secret.
func NewSecretKey(secret []byte) (*SigningKey, error) {
	if len(secret) < MinSecretBytes {
		return nil, fmt.Errorf("%d bytes; the server refuses secrets under %d", len(secret), MinSecretBytes)
	}
	return &SigningKey{method: jwt.SigningMethodHS256, key: slices.Clone(secret)}, nil
}

// LoadSigningKey reads a PEM private key from the file at path: RSA (RS256), EC P-256 (ES256) or
// Ed25519 (EdDSA). A read error is the os error, which names the path.
func LoadSigningKey(path string) (*SigningKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if k, err := jwt.ParseRSAPrivateKeyFromPEM(data); err == nil {
		return &SigningKey{method: jwt.SigningMethodRS256, key: k}, nil
	}
	if k, err := jwt.ParseECPrivateKeyFromPEM(data); err == nil {
		if k.Curve.Params().BitSize != 256 {
			return nil, errors.New("only P-256 EC keys are supported (ES256)")
		}
		return &SigningKey{method: jwt.SigningMethodES256, key: k}, nil
	}
	if k, err := jwt.ParseEdPrivateKeyFromPEM(data); err == nil {
		if _, ok := k.(crypto.Signer); ok {
			return &SigningKey{method: jwt.SigningMethodEdDSA, key: k}, nil
		}
	}
	return nil, fmt.Errorf("%s holds no RSA, EC or Ed25519 private key in PEM", path)
}

// Algorithm returns the JWS algorithm of the tokens this key signs.
func (k *SigningKey) Algorithm() string { return k.method.Alg() }

// Claims are what Mint writes into a token: the claims Verifier.Verify reads.
type Claims struct {
	// Subject is sub; required.
	Subject string
	// Scopes become the space-separated scope claim (written even when empty).
	Scopes []string
	// Topics become the topics claim; nil writes none, which grants every topic.
	Topics []event.Pattern
	// Audience and Issuer become aud and iss when not empty.
	Audience, Issuer string
	// IssuedAt (iat; zero means now) and Expires (exp) are written in whole seconds.
	IssuedAt, Expires time.Time
}

// Mint signs c with key and returns the compact token. It refuses what the server would: no
// subject, an exp not after iat, or an empty (non-nil) topics grant.
func Mint(key *SigningKey, c Claims) (string, error) {
	if c.IssuedAt.IsZero() {
		c.IssuedAt = time.Now()
	}
	switch {
	case key == nil:
		return "", errors.New("no signing key")
	case c.Subject == "":
		return "", errors.New("the token needs a subject")
	case !c.Expires.After(c.IssuedAt):
		return "", errors.New("the token must expire after it is issued")
	case c.Topics != nil && len(c.Topics) == 0:
		return "", errors.New("an empty topics grant is refused; give nil to grant every topic")
	}
	claims := jwt.MapClaims{"sub": c.Subject, "scope": strings.Join(c.Scopes, " "), "iat": c.IssuedAt.Unix(), "exp": c.Expires.Unix()}
	if c.Topics != nil {
		topics := make([]string, len(c.Topics))
		for i, p := range c.Topics {
			topics[i] = p.String()
		}
		claims["topics"] = topics
	}
	if c.Audience != "" {
		claims["aud"] = c.Audience
	}
	if c.Issuer != "" {
		claims["iss"] = c.Issuer
	}
	return jwt.NewWithClaims(key.method, claims).SignedString(key.key)
}
