package main

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/sealpost/sealpost"
	"github.com/sealpost/sealpost/postgres"
	"github.com/sealpost/sealpost/sqlite"
)

// storeKind tells which store a --database value names and returns the
// part that store's Open takes.
func storeKind(dsn string) (kind, target string, err error) {
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		if _, err := url.Parse(dsn); err != nil {
			return "", "", fmt.Errorf("--database: invalid PostgreSQL URL")
		}
		return "postgres", dsn, nil
	case strings.HasPrefix(dsn, "sqlite:"):
		path := strings.TrimPrefix(dsn, "sqlite:")
		if path == "" {
			return "", "", fmt.Errorf("--database: sqlite: needs a file path")
		}
		return "sqlite", path, nil
	case dsn == "":
		return "", "", fmt.Errorf("--database is empty")
	case strings.Contains(dsn, "://"):
		return "", "", fmt.Errorf("--database: unsupported scheme; use sqlite:PATH, a file path, or a postgres:// URL")
	default:
		return "sqlite", dsn, nil
	}
}

// openStore opens the store --database names. exclusive asks a SQLite store
// to refuse a second serving process: its in-process caches are only
// correct while one process serves the file. synchronous is a SQLite
// store's --sqlite-synchronous; "" is the default, full.
func openStore(ctx context.Context, dsn string, exclusive bool, synchronous string) (sealpost.Store, string, error) {
	kind, target, err := storeKind(dsn)
	if err != nil {
		return nil, "", err
	}
	switch kind {
	case "postgres":
		db, err := postgres.Open(ctx, target)
		if err != nil {
			return nil, "", fmt.Errorf("opening PostgreSQL: %w", err)
		}
		return db, kind, nil
	default:
		var opts []sqlite.Option
		if synchronous != "" {
			sync, err := sqlite.ParseSynchronous(synchronous)
			if err != nil {
				return nil, "", fmt.Errorf("--sqlite-synchronous: %w", err)
			}
			opts = append(opts, sqlite.WithSynchronous(sync))
		}
		db, err := sqlite.Open(ctx, target, opts...)
		if err != nil {
			return nil, "", fmt.Errorf("opening SQLite database %s: %w", target, err)
		}
		if exclusive {
			if err := db.LockExclusive(); err != nil {
				db.Close()
				return nil, "", err
			}
		}
		return db, kind, nil
	}
}
