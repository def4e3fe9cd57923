package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"testing"
	"time"
)

// Callers that arrive while the writer is busy share the next
// transaction; one whose work fails is undone alone, one whose context
// ended before its turn is not run, and more than fit one transaction wait
// for the next.
func TestWriterSharesTransactions(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := newTestDB(t)
	if err := db.writeTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `CREATE TABLE writer_test (n INTEGER PRIMARY KEY)`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	const callers = maxWriteJobs + 6
	const failing, canceled = 3, 7
	errFail := errors.New("this caller's work fails")
	db.writer.token <- struct{}{} // the writer is busy
	var mu sync.Mutex
	txs := map[*sql.Tx]int{}
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		cctx, cancel := context.WithCancel(ctx)
		if i == canceled {
			cancel()
		} else {
			defer cancel()
		}
		wg.Go(func() {
			errs[i] = db.writeTx(cctx, func(ctx context.Context, tx *sql.Tx) error {
				mu.Lock()
				txs[tx]++
				mu.Unlock()
				if _, err := tx.ExecContext(ctx, `INSERT INTO writer_test (n) VALUES (?)`, i); err != nil {
					return err
				}
				if i == failing {
					return errFail
				}
				return nil
			})
		})
	}
	waitFor(t, func() bool {
		db.writer.mu.Lock()
		defer db.writer.mu.Unlock()
		return len(db.writer.pending) == callers-1 // the canceled one returns at once
	})
	<-db.writer.token
	wg.Wait()

	for i, err := range errs {
		switch {
		case i == failing && !errors.Is(err, errFail):
			t.Errorf("caller %d (failing): %v, want its own error", i, err)
		case i == canceled && !errors.Is(err, context.Canceled):
			t.Errorf("caller %d (canceled): %v, want context.Canceled", i, err)
		case i != failing && i != canceled && err != nil:
			t.Errorf("caller %d: %v", i, err)
		}
	}
	var stored []int
	rows, err := db.read.QueryContext(ctx, `SELECT n FROM writer_test ORDER BY n`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var n int
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		stored = append(stored, n)
	}
	want := callers - 2
	if len(stored) != want {
		t.Errorf("stored %v: %d rows, want %d (all but the failing and the canceled)", stored, len(stored), want)
	}
	for _, n := range stored {
		if n == failing || n == canceled {
			t.Errorf("caller %d's row was stored", n)
		}
	}
	// The first maxWriteJobs shared one transaction, the rest the next.
	sizes := map[int]bool{}
	for _, n := range txs {
		sizes[n] = true
	}
	if len(txs) != 2 || !sizes[maxWriteJobs] {
		t.Errorf("the callers ran in %d transactions (%v), want %d in the first and the rest in a second", len(txs), txs, maxWriteJobs)
	}
}

// waitFor polls cond until it holds, for up to a minute.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting")
		}
		time.Sleep(time.Millisecond)
	}
}
