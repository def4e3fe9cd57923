package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
)

// holdWriteLock takes the database's write lock from a connection of its
// own, as a backup tool or the sqlite3 shell inside BEGIN IMMEDIATE would,
// and returns the function that releases it.
func holdWriteLock(t *testing.T, path string) (release func()) {
	t.Helper()
	other, err := sql.Open("sqlite", dsn(path, nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	conn, err := other.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(t.Context(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	return func() {
		if _, err := conn.ExecContext(context.Background(), "ROLLBACK"); err != nil {
			t.Error(err)
		}
		conn.Close()
	}
}

// TestWriteLockHeldPastBusyTimeoutIsUnavailable: when another connection
// holds the write lock for longer than busy_timeout, every write fails with
// EUNAVAILABLE (a 503 to retry), never EINTERNAL (a 500), and the store
// works again once the lock is released.
func TestWriteLockHeldPastBusyTimeoutIsUnavailable(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "sealpost.db")
	db, err := Open(ctx, path, withBusyTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	a := mustAccount(t, db, "alice")
	on := true

	writes := []struct {
		name string
		do   func(context.Context) error
	}{
		{"UpdateEnforcedTLS", func(ctx context.Context) error {
			_, err := db.UpdateEnforcedTLS(ctx, a.ID, sealpost.EnforcedTLSPatch{RequireTLS: &on})
			return err
		}},
		{"CreateAccount", func(ctx context.Context) error {
			return db.CreateAccount(ctx, &sealpost.Account{Kind: sealpost.KindUser, Username: "bob", Email: "bob@example.com"})
		}},
		{"CreateAPIKey", func(ctx context.Context) error {
			k, _, err := sealpost.NewAPIKey(a.ID, "key", []string{sealpost.ScopeEnforcedTLSRead})
			if err != nil {
				t.Fatal(err)
			}
			return db.CreateAPIKey(ctx, k)
		}},
		{"ClaimDeliveries", func(ctx context.Context) error {
			_, err := db.ClaimDeliveries(ctx, "node", time.Now(), time.Minute, 4)
			return err
		}},
		{"ClaimEventBatch", func(ctx context.Context) error {
			_, err := db.ClaimEventBatch(ctx, "node", time.Now(), time.Minute, 4)
			return err
		}},
		{"UpdateEventWebhookSettings", func(ctx context.Context) error {
			_, err := db.UpdateEventWebhookSettings(ctx, a.ID, sealpost.EventWebhookPatch{Bools: map[string]bool{"enabled": true}})
			return err
		}},
	}
	release := holdWriteLock(t, path)
	for _, w := range writes {
		err := w.do(ctx)
		if code := sealpost.ErrorCode(err); code != sealpost.EUNAVAILABLE {
			t.Errorf("%s with the write lock held elsewhere: code %q (%v), want %q", w.name, code, err, sealpost.EUNAVAILABLE)
		}
	}
	release()
	for _, w := range writes {
		if err := w.do(ctx); err != nil {
			t.Errorf("%s after the lock was released: %v", w.name, err)
		}
	}
}

// TestWriteWaitsForShortLock: a lock held elsewhere for less than
// busy_timeout makes writes wait, not fail.
func TestWriteWaitsForShortLock(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "sealpost.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	a := mustAccount(t, db, "alice")
	release := holdWriteLock(t, path)
	time.AfterFunc(300*time.Millisecond, release)
	on := true
	start := time.Now()
	if _, err := db.UpdateEnforcedTLS(ctx, a.ID, sealpost.EnforcedTLSPatch{RequireTLS: &on}); err != nil {
		t.Fatalf("a write while the lock was held for 300ms: %v", err)
	}
	if waited := time.Since(start); waited < 250*time.Millisecond {
		t.Fatalf("the write took %v: it did not wait for the lock", waited)
	}
}
