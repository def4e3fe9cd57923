//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package sqlite

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// LockExclusive claims the database for this process until Close, by an
// advisory lock on <path>.lock. serve calls it because the hot-path cache
// assumes no other process changes the database; two serve processes on one
// file would each serve the other's stale settings. The lock is released by
// the kernel if the process dies, so a crash never leaves it behind.
func (db *DB) LockExclusive() error {
	db.lockMu.Lock()
	defer db.lockMu.Unlock()
	if db.lockFile != nil {
		return nil
	}
	name := db.path + ".lock"
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("sqlite: opening lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return fmt.Errorf("sqlite: database %s is in use by another sealpost serve process; use PostgreSQL to run several nodes", db.path)
		}
		return fmt.Errorf("sqlite: locking %s: %w", name, err)
	}
	db.lockFile = f
	return nil
}

func (db *DB) unlock() error {
	db.lockMu.Lock()
	defer db.lockMu.Unlock()
	if db.lockFile == nil {
		return nil
	}
	// Closing the descriptor drops the flock.
	err := db.lockFile.Close()
	db.lockFile = nil
	return err
}
