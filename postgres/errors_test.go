package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sealpost/sealpost"
)

func TestStoreErr(t *testing.T) {
	t.Parallel()
	opErr := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	domain := sealpost.Errorf(sealpost.EINVALID, "bad")
	other := errors.New("something odd")
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"nil", nil, ""},
		{"no rows", pgx.ErrNoRows, sealpost.ENOTFOUND},
		{"wrapped no rows", fmt.Errorf("reading: %w", pgx.ErrNoRows), sealpost.ENOTFOUND},
		{"unique violation", &pgconn.PgError{Code: "23505", ConstraintName: "accounts_username_key"}, sealpost.ECONFLICT},
		{"foreign key violation", &pgconn.PgError{Code: "23503", ConstraintName: "api_keys_account_id_fkey"}, sealpost.ENOTFOUND},
		{"NUL or invalid UTF-8 in text", &pgconn.PgError{Code: "22021"}, sealpost.EINVALID},
		{"connection failure", &pgconn.PgError{Code: "08006"}, sealpost.EUNAVAILABLE},
		{"admin shutdown", &pgconn.PgError{Code: "57P01"}, sealpost.EUNAVAILABLE},
		{"crash shutdown", &pgconn.PgError{Code: "57P02"}, sealpost.EUNAVAILABLE},
		{"starting up", &pgconn.PgError{Code: "57P03"}, sealpost.EUNAVAILABLE},
		{"too many connections", &pgconn.PgError{Code: "53300"}, sealpost.EUNAVAILABLE},
		{"syntax error", &pgconn.PgError{Code: "42601"}, sealpost.EINTERNAL},
		{"bad password", &pgconn.PgError{Code: "28P01"}, sealpost.EINTERNAL},
		{"refused", opErr, sealpost.EUNAVAILABLE},
		{"reset", fmt.Errorf("read: %w", syscall.ECONNRESET), sealpost.EUNAVAILABLE},
		{"eof", fmt.Errorf("receive message failed: %w", io.ErrUnexpectedEOF), sealpost.EUNAVAILABLE},
		{"conn closed", fmt.Errorf("x: %w", pgconn.ErrConnClosed), sealpost.EUNAVAILABLE},
		{"deadline", context.DeadlineExceeded, sealpost.EUNAVAILABLE},
		{"canceled", context.Canceled, sealpost.EINTERNAL},
		{"domain error", domain, sealpost.EINVALID},
		{"other", other, sealpost.EINTERNAL},
	}
	for _, tc := range tests {
		err := storeErr(tc.err, "account")
		if got := sealpost.ErrorCode(err); got != tc.want {
			t.Errorf("%s: code %q (err %v), want %q", tc.name, got, err, tc.want)
		}
		// The cause stays reachable for logs and errors.Is, whatever the code.
		if tc.err != nil && !errors.Is(err, tc.err) && tc.want != sealpost.ENOTFOUND {
			t.Errorf("%s: %v does not wrap %v", tc.name, err, tc.err)
		}
	}
}
