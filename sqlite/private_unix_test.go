//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package sqlite_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/sealpost/sealpost"
)

// TestFilesArePrivate: the database holds webhook signing keys, webhook URLs
// with credentials and message bodies, so the file and every file SQLite and
// serve make beside it are mode 0600 even under the usual umask 022. Not
// parallel: the umask belongs to the whole process.
func TestFilesArePrivate(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	path := filepath.Join(t.TempDir(), "sealpost.db")
	db := openAt(t, path)
	if err := db.LockExclusive(); err != nil {
		t.Fatal(err)
	}
	// A write, so that the -wal and -shm files exist.
	if err := db.CreateAccount(t.Context(), &sealpost.Account{Kind: sealpost.KindUser, Username: "alice"}); err != nil {
		t.Fatal(err)
	}
	for _, suffix := range []string{"", "-wal", "-shm", ".lock"} {
		fi, err := os.Stat(path + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if mode := fi.Mode().Perm(); mode != 0o600 {
			t.Errorf("%s: mode %#o, want 0600", filepath.Base(path+suffix), mode)
		}
	}
}
