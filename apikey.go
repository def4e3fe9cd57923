package sealpost

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"slices"
	"strings"
	"time"
	"unicode"
)

// APIKey is a stored API key. The secret half of the token is never stored:
// only its SHA-256, which is enough because the secret is 256 random bits.
type APIKey struct {
	// ID is the key's public id: the middle part of SG.<id>.<secret>.
	ID         string
	AccountID  int64
	Name       string
	Scopes     []string
	SecretHash []byte
	CreatedAt  time.Time
}

// HasScope reports whether the key grants scope.
func (k *APIKey) HasScope(scope string) bool {
	for _, s := range k.Scopes {
		if s == scope {
			return true
		}
	}
	return false
}

// NewAPIKey makes a key for accountID and returns it with its token, the
// string the client must send and that is shown exactly once.
func NewAPIKey(accountID int64, name string, scopes []string) (*APIKey, string, error) {
	var idBytes [16]byte
	var secretBytes [32]byte
	if _, err := rand.Read(idBytes[:]); err != nil {
		return nil, "", Errorf(EINTERNAL, "generating key id: %v", err)
	}
	if _, err := rand.Read(secretBytes[:]); err != nil {
		return nil, "", Errorf(EINTERNAL, "generating key secret: %v", err)
	}
	id := base64.RawURLEncoding.EncodeToString(idBytes[:])
	secret := base64.RawURLEncoding.EncodeToString(secretBytes[:])
	key := &APIKey{
		ID:         id,
		AccountID:  accountID,
		Name:       name,
		Scopes:     scopes,
		SecretHash: hashSecret(secret),
	}
	return key, "SG." + id + "." + secret, nil
}

// ParseToken splits a token of the form SG.<id>.<secret>.
func ParseToken(token string) (id, secret string, ok bool) {
	rest, found := strings.CutPrefix(token, "SG.")
	if !found {
		return "", "", false
	}
	id, secret, found = strings.Cut(rest, ".")
	if !found || id == "" || secret == "" || len(id) > 64 || len(secret) > 128 || strings.Contains(secret, ".") || !isIdentifier(id, 64) {
		return "", "", false
	}
	return id, secret, true
}

// isIdentifier reports whether s is 1 to max characters of the base64url
// alphabet, which every id sealpost makes is written in. Checking before a
// lookup keeps NUL bytes and invalid UTF-8, which PostgreSQL refuses as
// text, from turning a lookup of a name that cannot exist into an error.
func isIdentifier(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Matches reports, in constant time, whether secret is this key's secret.
func (k *APIKey) Matches(secret string) bool {
	return subtle.ConstantTimeCompare(hashSecret(secret), k.SecretHash) == 1
}

func hashSecret(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

// ValidateKeyName reports a problem with a key name, or nil.
func ValidateKeyName(field, name string) *FieldError {
	if strings.TrimSpace(name) == "" {
		return &FieldError{Field: field, Message: field + " is required"}
	}
	if len(name) > 100 {
		return &FieldError{Field: field, Message: field + " must be at most 100 characters"}
	}
	// unicode.IsControl covers C0, DEL and C1; U+FFFD is what invalid
	// UTF-8 decodes to.
	if strings.ContainsFunc(name, func(r rune) bool { return unicode.IsControl(r) || r == '\uFFFD' }) {
		return &FieldError{Field: field, Message: field + " must not contain control characters or invalid UTF-8"}
	}
	return nil
}

// MaxAPIKeysPerAccount is SendGrid's cap on the keys one account holds.
const MaxAPIKeysPerAccount = 100

// APIKeyLimitMessage is the message of the 400 that refuses a key past
// MaxAPIKeysPerAccount, worded as SendGrid's documentation words the cap.
const APIKeyLimitMessage = "There is a limit of 100 API Keys on your account."

// APIKeyUpdate changes a key: nil fields stay as they are.
type APIKeyUpdate struct {
	Name   *string
	Scopes []string // nil keeps the scopes
	// Within, when not nil, makes the update apply only to a key whose
	// current scopes are all in Within; any other key is EFORBIDDEN. The
	// store checks it in the same transaction as the write, so a key
	// broadened meanwhile cannot slip through.
	Within []string
}

// ScopesWithin reports whether every scope in scopes is also in within.
func ScopesWithin(scopes, within []string) bool {
	for _, s := range scopes {
		if !slices.Contains(within, s) {
			return false
		}
	}
	return true
}

// Principal is who a request is from: a key and the account that owns it.
type Principal struct {
	Key     *APIKey
	Account *Account
}

// APIKeyService stores API keys. Every method but LookupAPIKey is scoped to
// one account: a key of another account is ENOTFOUND.
type APIKeyService interface {
	// CreateAPIKey stores k and sets its CreatedAt. An account that holds
	// MaxAPIKeysPerAccount keys already gets ELIMIT; the count and the
	// insert are one atomic step, also across nodes.
	CreateAPIKey(ctx context.Context, k *APIKey) error
	APIKey(ctx context.Context, accountID int64, id string) (*APIKey, error)
	APIKeys(ctx context.Context, accountID int64) ([]*APIKey, error)
	UpdateAPIKey(ctx context.Context, accountID int64, id string, upd APIKeyUpdate) (*APIKey, error)
	// DeleteAPIKey deletes the key; within, when not nil, is checked as
	// APIKeyUpdate.Within is.
	DeleteAPIKey(ctx context.Context, accountID int64, id string, within []string) error
	// LookupAPIKey finds a key by id with its account, for authentication.
	// It must reflect every change committed before it is called.
	LookupAPIKey(ctx context.Context, id string) (*Principal, error)
}
