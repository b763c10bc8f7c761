package auth

import "errors"

// Sentinel errors, matched with errors.Is. Their texts are part of what clients read: handlers
// expose a verification error's message as it is ("unauthorized: the token has expired").
var (
	// ErrInvalidToken is wrapped by every error of Verifier.Verify: the token is not accepted.
	ErrInvalidToken = errors.New("unauthorized")
	// ErrExpired is wrapped, beside ErrInvalidToken, when the token's exp has passed.
	ErrExpired = errors.New("the token has expired")
	// ErrInvalidKey is wrapped by the errors of NewVerifier and of public-key parsing: the
	// verification key (or its configuration) is unusable.
	ErrInvalidKey = errors.New("invalid verification key")
)
