package handlers

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/eventgate/eventgate/auth"
)

// Token helpers of the route tests. They sign claims with jwt directly rather than auth.Mint,
// so that tests can send the malformed tokens (a string exp, alg none) a client might.

var testSecret = []byte("0123456789abcdef0123456789abcdef-test")

// claimsFor returns valid claims for sub with scope, expiring in an hour.
func claimsFor(sub, scope string) jwt.MapClaims {
	return jwt.MapClaims{"sub": sub, "scope": scope, "exp": time.Now().Add(time.Hour).Unix()}
}

// hsToken signs claims with HS256 and testSecret.
func hsToken(t testing.TB, claims jwt.MapClaims) string {
	t.Helper()
	return signed(t, jwt.SigningMethodHS256, testSecret, claims)
}

// noneToken is an unsigned token (alg none) with valid claims.
func noneToken(t testing.TB) string {
	t.Helper()
	return signed(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claimsFor("mallory", "subscribe publish admin"))
}

func signed(t testing.TB, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatalf("signing: %v", err)
	}
	return s
}

func mustVerifier(t testing.TB, cfg auth.Config) *auth.Verifier {
	t.Helper()
	v, err := auth.NewVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
