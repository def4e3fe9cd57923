// Package sqlite is sealpost's single-node store, on an embedded SQLite
// database (modernc.org/sqlite: pure Go, no cgo).
//
// Writes go through one connection opened with BEGIN IMMEDIATE, so they queue
// in Go rather than fail with SQLITE_BUSY; reads use a separate pool, which
// WAL mode lets run alongside the writer. The authentication hot path
// (LookupAPIKey and EnforcedTLS) is served from an in-process cache, which is
// only sound while one process owns the file: see LockExclusive.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/sealpost/sealpost"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// DB is a sealpost.Store on one SQLite database file.
type DB struct {
	path  string
	write *sql.DB // one connection: SQLite allows one writer at a time
	read  *sql.DB

	// Prepared once because they run on every authenticated request.
	lookupStmt   *sql.Stmt
	settingsStmt *sql.Stmt
	// On the write connection, for the mail send path.
	stmts *writeStmts
	// Runs write transactions, concurrent ones together.
	writer writer

	cache cache

	lockMu   sync.Mutex
	lockFile *os.File

	closeOnce sync.Once
	closeErr  error
}

var _ sealpost.Store = (*DB)(nil)

// busyTimeout is how long a statement waits for a lock held by another
// connection (a backup, the sqlite3 shell) before failing with SQLITE_BUSY.
const busyTimeout = 5 * time.Second

// Synchronous is how hard SQLite makes a commit durable before it returns.
type Synchronous string

const (
	// SynchronousFull fsyncs the write-ahead log at every commit: a
	// transaction that committed (a 202 for mail send) survives a power
	// failure. The default.
	SynchronousFull Synchronous = "full"
	// SynchronousNormal fsyncs only at checkpoints: faster, and still
	// consistent after a crash, but the last commits before a power failure
	// (not a process crash) can be lost.
	SynchronousNormal Synchronous = "normal"
)

// ParseSynchronous reads a --sqlite-synchronous value.
func ParseSynchronous(s string) (Synchronous, error) {
	switch v := Synchronous(strings.ToLower(s)); v {
	case SynchronousFull, SynchronousNormal:
		return v, nil
	}
	return "", fmt.Errorf("%q is not full or normal", s)
}

// Option changes how Open opens the database.
type Option func(*options)

type options struct {
	synchronous Synchronous
	busy        time.Duration
}

// WithSynchronous sets the durability of commits; SynchronousFull when not
// given.
func WithSynchronous(s Synchronous) Option {
	return func(o *options) { o.synchronous = s }
}

// withBusyTimeout sets the wait for other connections' locks, so that tests
// can run into SQLITE_BUSY without waiting the full timeout.
func withBusyTimeout(d time.Duration) Option {
	return func(o *options) { o.busy = d }
}

// Open opens the database at path, creating the file if needed, and brings
// its schema up to date. A new file, and the -wal and -shm files SQLite
// makes beside it, are readable by their owner only: they hold webhook
// signing keys, webhook URLs with credentials and message bodies.
func Open(ctx context.Context, path string, opts ...Option) (*DB, error) {
	o := options{synchronous: SynchronousFull, busy: busyTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	if _, err := ParseSynchronous(string(o.synchronous)); err != nil {
		return nil, fmt.Errorf("sqlite: synchronous: %w", err)
	}
	busy := o.busy
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: resolving %s: %w", path, err)
	}
	if err := createPrivate(abs); err != nil {
		return nil, err
	}
	db := &DB{path: abs, writer: newWriter()}
	db.cache.enabled.Store(true)

	// Every pooled connection runs these on connect, so none of them can
	// end up without foreign keys or a busy timeout.
	params := url.Values{}
	params.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busy.Milliseconds()))
	params.Add("_pragma", "journal_mode(WAL)")
	params.Add("_pragma", "foreign_keys(1)")
	params.Add("_pragma", "synchronous("+strings.ToUpper(string(o.synchronous))+")")

	writeParams := cloneValues(params)
	writeParams.Set("_txlock", "immediate")
	// The writer's statement journals (a shared transaction's savepoints)
	// stay in memory rather than spill to temporary files; its page cache
	// (64 MiB at most) holds the queue's hot pages; and the WAL is folded
	// back into the database every 8,000 pages (32 MiB) rather than 1,000,
	// so that a page the queue rewrites again and again is copied back
	// once per checkpoint, not once per few hundred messages.
	writeParams.Add("_pragma", "temp_store(MEMORY)")
	writeParams.Add("_pragma", "cache_size(-65536)")
	writeParams.Add("_pragma", "wal_autocheckpoint(8000)")
	db.write, err = sql.Open("sqlite", dsn(abs, writeParams))
	if err != nil {
		return nil, fmt.Errorf("sqlite: opening %s: %w", abs, err)
	}
	db.write.SetMaxOpenConns(1)
	db.write.SetMaxIdleConns(1)
	db.write.SetConnMaxLifetime(0)
	db.write.SetConnMaxIdleTime(0)

	if err := connect(ctx, db.write, busy); err != nil {
		db.write.Close()
		return nil, fmt.Errorf("sqlite: opening %s: %w", abs, err)
	}
	// The read pool comes after: its query-only connections could neither
	// create the file nor switch it to WAL.
	if err := migrate(ctx, db.write); err != nil {
		db.write.Close()
		return nil, fmt.Errorf("sqlite: migrating %s: %w", abs, err)
	}

	readParams := cloneValues(params)
	readParams.Set("_query_only", "1")
	db.read, err = sql.Open("sqlite", dsn(abs, readParams))
	if err != nil {
		db.write.Close()
		return nil, fmt.Errorf("sqlite: opening %s: %w", abs, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	db.read.SetMaxOpenConns(n)
	db.read.SetMaxIdleConns(n)
	db.read.SetConnMaxLifetime(0)
	db.read.SetConnMaxIdleTime(0)

	if db.lookupStmt, err = db.read.PrepareContext(ctx, lookupAPIKeySQL); err == nil {
		db.settingsStmt, err = db.read.PrepareContext(ctx, enforcedTLSSQL)
	}
	if err == nil {
		db.stmts, err = prepareWriteStmts(ctx, db.write)
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: preparing statements: %w", err)
	}
	return db, nil
}

// createPrivate creates the database file with mode 0600 if it does not
// exist yet, whatever the umask. SQLite would create it 0644 less the umask;
// it gives the -wal and -shm files it makes later the main file's mode, so
// they are private too. An existing file keeps the mode its owner gave it.
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sqlite: creating %s: %w", path, err)
	}
	// The umask can only take bits away from 0600; Chmod makes sure
	// nothing else (a default ACL) added any.
	err = f.Chmod(0o600)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sqlite: creating %s: %w", path, err)
	}
	return nil
}

// connect makes w's first connection. On a new file that connection switches
// it to WAL, which needs an exclusive lock that SQLite does not wait for with
// busy_timeout; when several processes open a new file at once, all but one
// get SQLITE_BUSY, so retry for as long as busy_timeout would have waited.
func connect(ctx context.Context, w *sql.DB, busy time.Duration) error {
	deadline := time.Now().Add(busy)
	for {
		err := w.PingContext(ctx)
		if err == nil || !isBusy(err) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func isBusy(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_BUSY
}

// isLocked reports whether err says another connection held a lock for
// longer than busy_timeout waits: SQLITE_BUSY ("database is locked") or
// SQLITE_LOCKED, with any extended code.
func isLocked(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		return true
	}
	return false
}

// dsn makes a file: URI so that any path, even one holding '?' or '#',
// reaches SQLite intact.
func dsn(path string, params url.Values) string {
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(path), RawQuery: params.Encode()}
	if u.Path != "" && u.Path[0] != '/' {
		u.Path = "/" + u.Path // a Windows drive path
	}
	return u.String()
}

func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

// Close closes the database and releases the lock taken by LockExclusive.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		var errs []error
		for _, st := range []*sql.Stmt{db.lookupStmt, db.settingsStmt} {
			if st != nil {
				errs = append(errs, st.Close())
			}
		}
		errs = append(errs, db.stmts.close())
		if db.read != nil {
			errs = append(errs, db.read.Close())
		}
		errs = append(errs, db.write.Close())
		errs = append(errs, db.unlock())
		if err := errors.Join(errs...); err != nil {
			db.closeErr = fmt.Errorf("sqlite: closing %s: %w", db.path, err)
		}
	})
	return db.closeErr
}

// Ping reports whether the database answers a query.
func (db *DB) Ping(ctx context.Context) error {
	var one int
	if err := db.read.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return &sealpost.Error{Code: sealpost.EUNAVAILABLE, Message: "database does not answer", Err: err}
	}
	return nil
}

// SetCacheEnabled turns the hot-path cache on or off; it is on after Open.
// Turning it off is for measuring what the cache is worth.
func (db *DB) SetCacheEnabled(on bool) { db.cache.enabled.Store(on) }

// now is the creation time stored for new rows. Rows keep Unix nanoseconds,
// so the value returned to the caller is exactly the value read back later.
func now() time.Time { return time.Now().UTC().Round(0) }

func fromUnixNano(ns int64) time.Time { return time.Unix(0, ns).UTC() }

// internal wraps an unexpected database error. A lock another connection
// held past busy_timeout (a backup, the sqlite3 shell in a transaction) is
// not a fault of sealpost and goes away by itself: it is EUNAVAILABLE, which
// clients see as a 503 to retry, not a 500.
func internal(op string, err error) error {
	if isLocked(err) {
		return &sealpost.Error{Code: sealpost.EUNAVAILABLE, Message: op + ": database busy", Err: err}
	}
	return &sealpost.Error{Code: sealpost.EINTERNAL, Message: op, Err: err}
}

// mapError turns a database error into the domain's: what is ENOTFOUND or
// ECONFLICT to a caller depends on the operation, so each caller says.
func mapError(op string, err error, notFound, conflict string) error {
	if errors.Is(err, sql.ErrNoRows) {
		return sealpost.Errorf(sealpost.ENOTFOUND, "%s", notFound)
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			if conflict != "" {
				return &sealpost.Error{Code: sealpost.ECONFLICT, Message: conflict, Err: err}
			}
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			// The only references are to accounts: the owner is gone.
			return &sealpost.Error{Code: sealpost.ENOTFOUND, Message: "account not found", Err: err}
		}
	}
	return internal(op, err)
}

// domainError keeps an error fn already mapped to the domain's and maps
// any other (a failed BEGIN or COMMIT, say) as mapError does.
func domainError(op string, err error, notFound, conflict string) error {
	var de *sealpost.Error
	if err == nil || errors.As(err, &de) {
		return err
	}
	return mapError(op, err, notFound, conflict)
}

// inTx runs fn in a transaction of w, which _txlock makes BEGIN IMMEDIATE:
// taking the write lock up front means no transaction ever has to upgrade a
// read lock, the one case busy_timeout cannot wait out.
func inTx(ctx context.Context, w *sql.DB, fn func(tx *sql.Tx) error) error {
	tx, err := w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}
