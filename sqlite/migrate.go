package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// Migrations are applied in file name order, each at most once.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

type migration struct {
	version string // the file name without .sql
	sql     string
}

func migrations() ([]migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	out := make([]migration, 0, len(names))
	for _, name := range names {
		b, err := migrationFiles.ReadFile(name)
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: strings.TrimSuffix(path.Base(name), ".sql"), sql: string(b)})
	}
	return out, nil
}

// migrate brings the schema up to date. w must begin transactions with BEGIN
// IMMEDIATE: each migration then checks and applies itself under the write
// lock, so two processes starting at once cannot both apply it.
func migrate(ctx context.Context, w *sql.DB) error {
	all, err := migrations()
	if err != nil {
		return fmt.Errorf("reading migrations: %w", err)
	}
	// In a transaction, not autocommit: a bare statement would start as a
	// reader and fail with SQLITE_BUSY, without waiting, if another process
	// wrote first and it then needed to write.
	err = inTx(ctx, w, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    TEXT PRIMARY KEY,
			applied_at INTEGER NOT NULL
		) STRICT`)
		return err
	})
	if err != nil {
		return fmt.Errorf("creating schema_migrations: %w", err)
	}
	if err := refuseNewerSchema(ctx, w, all); err != nil {
		return err
	}
	for _, m := range all {
		err := inTx(ctx, w, func(tx *sql.Tx) error {
			var applied int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, m.version).Scan(&applied); err != nil {
				return err
			}
			if applied > 0 {
				return nil
			}
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, m.version, now().UnixNano())
			return err
		})
		if err != nil {
			return fmt.Errorf("migration %s: %w", m.version, err)
		}
	}
	return nil
}

// refuseNewerSchema stops an older binary from running on a database that a
// newer one has migrated: it would not know what the new schema requires.
func refuseNewerSchema(ctx context.Context, w *sql.DB, known []migration) error {
	rows, err := w.QueryContext(ctx, `SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		return fmt.Errorf("reading schema_migrations: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return fmt.Errorf("reading schema_migrations: %w", err)
		}
		if !slices.ContainsFunc(known, func(m migration) bool { return m.version == v }) {
			return fmt.Errorf("database has migration %s, which this version of sealpost does not know: upgrade sealpost", v)
		}
	}
	return rows.Err()
}
