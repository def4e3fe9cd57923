package sealpost

import (
	"crypto/rand"
	"encoding/base64"
)

// newURLSafeID returns 22 URL-safe base64 characters of 16 random bytes.
func newURLSafeID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", Errorf(EINTERNAL, "generating id: %v", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// NewXMessageID returns a fresh X-Message-Id: 22 URL-safe base64 characters.
func NewXMessageID() (string, error) { return newURLSafeID() }
