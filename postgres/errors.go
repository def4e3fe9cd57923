package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sealpost/sealpost"
)

// storeErr turns an error from pgx into sealpost's error type, so that the
// HTTP layer answers the same whichever store is behind it. what names the
// thing read or written ("account", "API key"), for messages.
func storeErr(err error, what string) error {
	if err == nil {
		return nil
	}
	var se *sealpost.Error
	if errors.As(err, &se) {
		return err
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return sealpost.Errorf(sealpost.ENOTFOUND, "%s not found", what)
	}
	// A caller that gave up is not a database outage; keep the cause
	// visible to errors.Is instead of reporting the database as down.
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("postgres: %s: %w", what, err)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == "23505": // unique_violation
			return &sealpost.Error{Code: sealpost.ECONFLICT, Message: conflictMessage(pgErr.ConstraintName, what), Err: err}
		case pgErr.Code == "23503": // foreign_key_violation: the account referred to is gone
			return &sealpost.Error{Code: sealpost.ENOTFOUND, Message: missingMessage(pgErr.ConstraintName), Err: err}
		case pgErr.Code == "22021" || pgErr.Code == "22P05":
			// character_not_in_repertoire, untranslatable_character: a NUL
			// or invalid UTF-8 in text that the layers above let through.
			// The input is bad, not the database.
			return &sealpost.Error{Code: sealpost.EINVALID, Fields: []sealpost.FieldError{{Message: what + " contains characters that cannot be stored"}}, Err: err}
		case serverUnavailable(pgErr.Code):
			return unavailable(err)
		}
		// Any other server error (a syntax error, a failed login) is a bug
		// or a misconfiguration, not something waiting would fix.
		return fmt.Errorf("postgres: %s: %w", what, err)
	}
	if unreachable(err) {
		return unavailable(err)
	}
	return fmt.Errorf("postgres: %s: %w", what, err)
}

func unavailable(err error) error {
	return &sealpost.Error{Code: sealpost.EUNAVAILABLE, Message: "database unavailable", Err: err}
}

// serverUnavailable reports whether a SQLSTATE means the server cannot serve
// right now but may again: the connection failed or the server is shutting
// down, starting up, or out of connection slots.
func serverUnavailable(code string) bool {
	if len(code) == 5 && code[:2] == "08" { // connection_exception
		return true
	}
	switch code {
	case "57P01", // admin_shutdown
		"57P02", // crash_shutdown
		"57P03", // cannot_connect_now
		"53300": // too_many_connections
		return true
	}
	return false
}

// unreachable reports whether err, which carries no server error, comes from
// not reaching the server: a refused or reset connection, a dial or read
// timeout, a connection that closed under the query.
func unreachable(err error) bool {
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded),
		pgconn.Timeout(err),
		// SafeToRetry means nothing reached the server: it was not
		// connected, or the connection had already failed.
		pgconn.SafeToRetry(err),
		errors.As(err, &connectErr),
		errors.As(err, &netErr),
		errors.Is(err, pgconn.ErrConnClosed),
		errors.Is(err, net.ErrClosed),
		errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE):
		return true
	}
	return false
}

func conflictMessage(constraint, what string) string {
	switch constraint {
	case "accounts_username_key":
		return "username already exists"
	case "accounts_public_id_key":
		return "account id already exists"
	case "api_keys_pkey":
		return "API key id already exists"
	}
	return what + " already exists"
}

func missingMessage(constraint string) string {
	if constraint == "accounts_parent_id_fkey" {
		return "parent account not found"
	}
	return "account not found"
}
