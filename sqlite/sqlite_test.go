package sqlite_test

import (
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sealpost/sealpost"
	"github.com/sealpost/sealpost/sqlite"
	"github.com/sealpost/sealpost/storetest"
)

func openTemp(t *testing.T) *sqlite.DB {
	t.Helper()
	return openAt(t, filepath.Join(t.TempDir(), "sealpost.db"))
}

func openAt(t *testing.T, path string) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return db
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) sealpost.Store { return openTemp(t) })
}

// TestStoreUncached runs the suite with the cache off, so the plain database
// path is held to the same contract as the cached one.
func TestStoreUncached(t *testing.T) {
	storetest.Run(t, func(t *testing.T) sealpost.Store {
		db := openTemp(t)
		db.SetCacheEnabled(false)
		return db
	})
}

// openWithAccounts opens a database in a new file and creates a user
// account for each name (name@example.com) in it; the caller closes it, and
// may reopen the file at path.
func openWithAccounts(t *testing.T, names ...string) (path string, db *sqlite.DB, accts []*sealpost.Account) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "sealpost.db")
	db, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		a := &sealpost.Account{Kind: sealpost.KindUser, Username: name, Email: name + "@example.com"}
		if err := db.CreateAccount(t.Context(), a); err != nil {
			t.Fatal(err)
		}
		accts = append(accts, a)
	}
	return path, db, accts
}

// inspect opens a plain connection to the file, beside the store's own.
func inspect(t *testing.T, path string) *sql.DB {
	t.Helper()
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return raw
}

func TestMigrationsIdempotent(t *testing.T) {
	ctx := t.Context()
	path, db, accts := openWithAccounts(t, "alice")
	a := accts[0]
	if _, err := db.UpdateEnforcedTLS(ctx, a.ID, sealpost.EnforcedTLSPatch{Version: new(sealpost.TLS13)}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	for i := range 3 {
		db, err := sqlite.Open(ctx, path)
		if err != nil {
			t.Fatalf("reopen %d: %v", i, err)
		}
		got, err := db.AccountByUsername(ctx, "alice")
		if err != nil {
			t.Fatalf("reopen %d: AccountByUsername: %v", i, err)
		}
		if got.ID != a.ID || !got.CreatedAt.Equal(a.CreatedAt) {
			t.Errorf("reopen %d: account %+v, want %+v", i, *got, *a)
		}
		s, err := db.EnforcedTLS(ctx, a.ID)
		if err != nil || s.Version != sealpost.TLS13 {
			t.Errorf("reopen %d: EnforcedTLS = %+v, %v; want version 1.3", i, s, err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}

	var n int
	var version string
	raw := inspect(t, path)
	if err := raw.QueryRowContext(ctx, `SELECT count(*), min(version) FROM schema_migrations`).Scan(&n, &version); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir("migrations")
	if err != nil {
		t.Fatal(err)
	}
	if n != len(entries) || version != "0001_init" {
		t.Errorf("schema_migrations has %d rows starting at %q, want %d starting at 0001_init", n, version, len(entries))
	}
}

// TestOpenConcurrently starts several processes' worth of Open on one new
// file at once: each migration must be applied exactly once.
func TestOpenConcurrently(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sealpost.db")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			db, err := sqlite.Open(t.Context(), path)
			if err != nil {
				t.Errorf("Open: %v", err)
				return
			}
			if err := db.Ping(t.Context()); err != nil {
				t.Errorf("Ping: %v", err)
			}
			db.Close()
		})
	}
	wg.Wait()
}

func TestNewerSchemaRefused(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "sealpost.db")
	db := openAt(t, path)
	db.Close()
	if _, err := inspect(t, path).ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES ('9999_future', 0)`); err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.Open(ctx, path)
	if err == nil {
		db.Close()
		t.Fatal("Open of a database migrated by a newer version succeeded")
	}
	if !strings.Contains(err.Error(), "9999_future") {
		t.Errorf("error %q does not name the unknown migration", err)
	}
}

func TestLockExclusive(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sealpost.db")
	first := openAt(t, path)
	second := openAt(t, path)

	if err := first.LockExclusive(); err != nil {
		t.Fatalf("first LockExclusive: %v", err)
	}
	if err := first.LockExclusive(); err != nil {
		t.Errorf("LockExclusive again by the holder: %v", err)
	}
	err := second.LockExclusive()
	if err == nil {
		t.Fatal("second LockExclusive succeeded while the first holds the lock")
	}
	for _, want := range []string{path, "in use by another sealpost serve process", "PostgreSQL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}

	// Without the lock a store still works: account create does not take it.
	a := &sealpost.Account{Kind: sealpost.KindUser, Username: "alice", Email: "alice@example.com"}
	if err := second.CreateAccount(t.Context(), a); err != nil {
		t.Errorf("CreateAccount without the lock: %v", err)
	}

	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if err := second.LockExclusive(); err != nil {
		t.Errorf("LockExclusive after the holder closed: %v", err)
	}
}

func TestWALMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sealpost.db")
	openAt(t, path)
	var mode string
	if err := inspect(t, path).QueryRowContext(t.Context(), `PRAGMA journal_mode`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" {
		t.Errorf("journal_mode = %q, want wal", mode)
	}
}

func TestAwkwardPath(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a dir?with#odd%20chars")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "sealpost.db")
	db := openAt(t, path)
	if err := db.CreateAccount(t.Context(), &sealpost.Account{Kind: sealpost.KindUser, Username: "alice", Email: "alice@example.com"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("database not at the path given: %v", err)
	}
}

func TestOpenFailsInMissingDirectory(t *testing.T) {
	_, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "missing", "sealpost.db"))
	if err == nil {
		t.Fatal("Open in a directory that does not exist succeeded")
	}
}

func TestParseSynchronous(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want sqlite.Synchronous
		ok   bool
	}{
		{"full", sqlite.SynchronousFull, true},
		{"FULL", sqlite.SynchronousFull, true},
		{"normal", sqlite.SynchronousNormal, true},
		{"off", "", false},
		{"", "", false},
	} {
		got, err := sqlite.ParseSynchronous(tt.in)
		if got != tt.want || (err == nil) != tt.ok {
			t.Errorf("ParseSynchronous(%q) = %q, %v", tt.in, got, err)
		}
	}
}
