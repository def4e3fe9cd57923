// Package postgres is the PostgreSQL implementation of sealpost.Store, the
// store to use when several sealpost processes serve one deployment.
//
// Every process opened on the same database (and search_path) behaves as one
// service because nothing read from the database is kept in memory: each call
// is a query, so a change committed through one process is seen by every
// other on its next call.
package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sealpost/sealpost"
)

// DB is a sealpost.Store backed by a PostgreSQL connection pool. It is safe
// for concurrent use.
type DB struct {
	pool *pgxpool.Pool
}

var _ sealpost.Store = (*DB)(nil)

// Open connects to the database at url (postgres:// or postgresql://) and
// brings its schema up to date. Tables are created in the first schema of
// the connection's search_path, which the URL can set with
// options=-c%20search_path%3D<schema>; the pool is tuned with pgx's URL
// parameters (pool_max_conns and the like). A server that cannot be reached
// is an EUNAVAILABLE error.
func Open(ctx context.Context, url string) (*DB, error) {
	if !strings.HasPrefix(url, "postgres://") && !strings.HasPrefix(url, "postgresql://") {
		return nil, fmt.Errorf("postgres: open: URL must start with postgres:// or postgresql://")
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	db := &DB{pool: pool}
	if err := db.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return db, nil
}

// Close closes every connection. It waits for connections in use to be
// returned to the pool.
func (db *DB) Close() error {
	db.pool.Close()
	return nil
}

// Ping reports whether the database answers a round trip.
func (db *DB) Ping(ctx context.Context) error {
	return storeErr(db.pool.Ping(ctx), "ping")
}

//go:embed migrations/*.sql
var migrations embed.FS

// migrationLock is the first key of the advisory lock taken while
// migrating; the second is derived from the schema, so that deployments in
// separate schemas of one database do not wait for each other.
const migrationLock int32 = 0x5ea1_7001

// migrate applies, in name order, every embedded migration not yet recorded
// in schema_migrations. It runs in one transaction, so a failed migration
// leaves the schema as it was.
func (db *DB) migrate(ctx context.Context) error {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	err = pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		// Processes starting together would otherwise all see the same
		// migrations as missing and all apply them; all but one would then
		// fail on CREATE TABLE. The lock is released at commit.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))`, migrationLock); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    TEXT PRIMARY KEY,
			applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
		)`); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT version FROM schema_migrations`)
		if err != nil {
			return err
		}
		applied, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		done := make(map[string]bool, len(applied))
		for _, v := range applied {
			done[v] = true
		}
		// Versions recorded here but unknown to this binary are left alone:
		// they come from a newer release, and an older process must still
		// start during a rolling upgrade.
		for _, name := range names {
			version := strings.TrimSuffix(path.Base(name), ".sql")
			if done[version] {
				continue
			}
			script, err := migrations.ReadFile(name)
			if err != nil {
				return err
			}
			// Exec without arguments uses the simple protocol, which runs a
			// file of several statements.
			if _, err := tx.Exec(ctx, string(script)); err != nil {
				return fmt.Errorf("migration %s: %w", version, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, version); err != nil {
				return fmt.Errorf("recording migration %s: %w", version, err)
			}
		}
		return nil
	})
	return storeErr(err, "migrate")
}
