//go:build !(darwin || dragonfly || freebsd || linux || netbsd || openbsd)

package sqlite

import (
	"fmt"
	"runtime"
)

// LockExclusive would claim the database for this process; without flock
// it cannot, and serving with the hot-path cache unguarded is refused.
func (db *DB) LockExclusive() error {
	return fmt.Errorf("sqlite: exclusive database lock is not supported on %s; use PostgreSQL", runtime.GOOS)
}

func (db *DB) unlock() error { return nil }
