package sealpost

import (
	"context"
	"time"
)

// ConsoleSession is one signed-in browser of the web console. The store
// keeps neither the cookie's token nor the API key in the clear: ID is the
// token's SHA-256 and SealedKey the key encrypted under a key derived from
// the token, so a copy of the database signs no one in.
type ConsoleSession struct {
	ID        []byte
	SealedKey []byte
	ExpiresAt time.Time
}

// ConsoleSessionService keeps console sessions in the database, so that
// every node behind a load balancer knows them and signing out ends them
// everywhere.
type ConsoleSessionService interface {
	// CreateConsoleSession stores s and forgets sessions expired at now,
	// which keeps the table bounded without a janitor.
	CreateConsoleSession(ctx context.Context, s ConsoleSession, now time.Time) error
	// ConsoleSession returns the session id names; ENOTFOUND when there is
	// none or it expired at now.
	ConsoleSession(ctx context.Context, id []byte, now time.Time) (ConsoleSession, error)
	// DeleteConsoleSession ends a session; ending one that does not exist
	// is no error.
	DeleteConsoleSession(ctx context.Context, id []byte) error
}
