package auth

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// LoadSecret reads an HS256 secret from the file at path, without surrounding whitespace (a
// trailing newline). The server (EVENTGATE_JWT_SECRET_FILE) and `eventgate token` read secrets
// alike through it. Errors never contain the secret.
func LoadSecret(path string) ([]byte, error) {
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

// EnsureSecret returns the HS256 secret at path, creating it first (32 random bytes, base64url,
// mode 0600 as os.CreateTemp makes it, in a 0700 directory) when it does not exist. Concurrent
// callers, in one process or several, get the same secret: the file is created exclusively.
func EnsureSecret(path string) ([]byte, error) {
	if secret, err := LoadSecret(path); err == nil {
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
			return LoadSecret(path) // another process made it first
		}
		return nil, err
	}
	return secret, nil
}
