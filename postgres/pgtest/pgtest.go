// Package pgtest gives tests a PostgreSQL database of their own.
//
// Tests that need PostgreSQL read the server's URL from the environment
// variable SEALPOST_TEST_POSTGRES and are skipped when it is unset, so that
// plain "go test ./..." passes on a machine without PostgreSQL. To run them:
//
//	SEALPOST_TEST_POSTGRES=$(scripts/pg-start.sh) go test ./...
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvVar names the environment variable holding the test server's URL.
const EnvVar = "SEALPOST_TEST_POSTGRES"

// URL returns a URL of the test server whose search_path is a new, empty
// schema, dropped with everything in it when t ends. Tests calling it can run
// in parallel without seeing each other's tables, and every postgres.Open of
// the returned URL shares that one schema, as processes of one deployment
// share a database.
//
// URL skips t when SEALPOST_TEST_POSTGRES is unset, and fails it when the
// variable is set but the server cannot be used.
func URL(t testing.TB) string {
	t.Helper()
	SkipIfUnset(t)
	base := os.Getenv(EnvVar)

	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	schema := "sp_" + hex.EncodeToString(b[:])

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := exec(ctx, base, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("pgtest: creating schema in %s=%s: %v", EnvVar, redact(base), err)
	}
	t.Cleanup(func() {
		// t's own context is already cancelled when cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := exec(ctx, base, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("pgtest: dropping schema %s: %v", schema, err)
		}
	})

	u, err := withSearchPath(base, schema)
	if err != nil {
		t.Fatalf("pgtest: %s: %v", EnvVar, err)
	}
	return u
}

// SkipIfUnset skips t when SEALPOST_TEST_POSTGRES is unset.
func SkipIfUnset(t testing.TB) {
	t.Helper()
	if os.Getenv(EnvVar) == "" {
		t.Skip(EnvVar + " not set: PostgreSQL store tests skipped")
	}
}

func exec(ctx context.Context, connString, sql string) error {
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// withSearchPath adds the schema to the URL's options parameter, which the
// server reads as command-line settings for each connection; libpq-based
// tools such as psql understand the same URL.
func withSearchPath(base, schema string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	q := u.Query()
	opts := strings.TrimSpace(q.Get("options") + " -c search_path=" + schema)
	q.Set("options", opts)
	// Encode writes spaces as '+', which pgx reads literally; a '+' in a
	// value is written as %2B, so every '+' here is a space.
	u.RawQuery = strings.ReplaceAll(q.Encode(), "+", "%20")
	return u.String(), nil
}

func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
