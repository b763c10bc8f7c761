package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// tokenClaims are the claims eventgate reads. scope is a space-separated string (a JSON array is
// tolerated); topics an array of patterns (a space-separated string is tolerated).
type tokenClaims struct {
	Scope  words `json:"scope"`
	Topics words `json:"topics"`
	jwt.RegisteredClaims
}

// errNumericClaim is wrapped when exp, nbf or iat is not a JSON number: encoding/json reads a
// quoted number into the json.Number that golang-jwt's NumericDate decodes, so "exp":"4102444800"
// would otherwise pass, against RFC 7519 §2 (NumericDate is a number).
var errNumericClaim = errors.New("claim must be a number")

// UnmarshalJSON decodes the claims after checking that the time claims are JSON numbers (or null).
func (c *tokenClaims) UnmarshalJSON(b []byte) error {
	var times struct {
		Exp json.RawMessage `json:"exp"`
		Nbf json.RawMessage `json:"nbf"`
		Iat json.RawMessage `json:"iat"`
	}
	if err := json.Unmarshal(b, &times); err != nil {
		return err
	}
	for _, claim := range []struct {
		name string
		raw  json.RawMessage
	}{{"exp", times.Exp}, {"nbf", times.Nbf}, {"iat", times.Iat}} {
		if v := claim.raw; len(v) > 0 && string(v) != "null" && !(v[0] == '-' || v[0] >= '0' && v[0] <= '9') {
			return fmt.Errorf("the %s %w", claim.name, errNumericClaim)
		}
	}
	type plain tokenClaims // without this method
	return json.Unmarshal(b, (*plain)(c))
}

// words is a claim given as a space-separated string or an array of strings.
type words []string

func (w *words) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*w = strings.Fields(s)
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return errors.New("want a string or an array of strings")
	}
	*w = list
	return nil
}

// tokenProblem turns a jwt error into a short client-facing sentence; an expired token's is
// ErrExpired, so that callers can tell it apart.
func tokenProblem(err error) error {
	switch {
	case errors.Is(err, errNumericClaim):
		for _, claim := range []string{"exp", "nbf", "iat"} {
			if strings.Contains(err.Error(), "the "+claim+" claim") {
				return errors.New("the token is malformed: its " + claim + " claim must be a number")
			}
		}
		return errors.New("the token is malformed")
	case errors.Is(err, jwt.ErrTokenMalformed):
		return errors.New("the token is malformed")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return errors.New("the token's signature or algorithm is not accepted")
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		for _, claim := range []string{"aud", "iss", "exp"} {
			if strings.Contains(err.Error(), claim+" claim") {
				return errors.New("the token has no " + claim + " claim")
			}
		}
		return errors.New("the token lacks a required claim")
	case errors.Is(err, jwt.ErrTokenExpired):
		return ErrExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return errors.New("the token is not valid yet (nbf)")
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return errors.New("the token's audience is not accepted")
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return errors.New("the token's issuer is not accepted")
	}
	return errors.New("the token is invalid")
}
