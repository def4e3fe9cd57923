package sqlite

import (
	"context"
	"database/sql"
	"sync"
)

// writer runs the store's write transactions. SQLite has one writer at a
// time, and a commit (BEGIN IMMEDIATE, the pages written to the WAL, its
// fsync) costs more than most transactions' own statements; under load the
// writer is what every mail send, claim and delivery outcome waits for. So
// the callers that arrive while a transaction runs wait together, and the
// next of them to get the writer runs all their work in one transaction,
// each caller's in a savepoint of its own: work that fails is undone alone
// and its caller alone gets the error; a failed commit fails them all, and
// nothing of any of them is stored.
//
// Each caller's work runs with its context's values but not its
// cancellation: SQLite answers an interrupted write inside a transaction by
// rolling back the whole transaction, everyone's work included. A caller
// whose context is done before its turn is not run.
type writer struct {
	token chan struct{} // holds one value while a transaction runs

	mu      sync.Mutex
	pending []*writeJob // in arrival order
}

type writeJob struct {
	ctx  context.Context
	fn   func(ctx context.Context, tx *sql.Tx) error
	err  error
	done chan struct{} // closed once err is set
}

// maxWriteJobs bounds how many callers share one transaction, so that one
// transaction does not hold the writer for long.
const maxWriteJobs = 64

func newWriter() writer { return writer{token: make(chan struct{}, 1)} }

// writeTx runs fn in a write transaction, possibly shared with concurrent
// callers', and returns once that has committed or failed. fn must do all
// its work through tx and with the context it is given.
func (db *DB) writeTx(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	w := &db.writer
	j := &writeJob{ctx: ctx, fn: fn, done: make(chan struct{})}
	w.mu.Lock()
	w.pending = append(w.pending, j)
	w.mu.Unlock()
	for {
		select {
		case <-j.done:
			return j.err
		case w.token <- struct{}{}:
		}
		select {
		case <-j.done: // the transaction that just ended ran it
			<-w.token
			return j.err
		default:
		}
		w.mu.Lock()
		n := min(len(w.pending), maxWriteJobs)
		batch := w.pending[:n:n]
		w.pending = append([]*writeJob(nil), w.pending[n:]...)
		w.mu.Unlock()
		db.runWriteJobs(batch)
		<-w.token
		select {
		case <-j.done:
			return j.err
		default:
			// More than maxWriteJobs were ahead of it: its turn is next.
		}
	}
}

// runWriteJobs runs batch in one transaction and sets each job's outcome.
func (db *DB) runWriteJobs(batch []*writeJob) {
	live := make([]*writeJob, 0, len(batch))
	for _, j := range batch {
		if err := j.ctx.Err(); err != nil {
			j.err = err
			close(j.done)
			continue
		}
		live = append(live, j)
	}
	if len(live) == 0 {
		return
	}
	ctx := context.WithoutCancel(live[0].ctx)
	err := inTx(ctx, db.write, func(tx *sql.Tx) error {
		if len(live) == 1 {
			// Alone, the transaction is the savepoint.
			j := live[0]
			j.err = j.fn(context.WithoutCancel(j.ctx), tx)
			return j.err
		}
		savepoint := tx.StmtContext(ctx, db.stmts.savepoint)
		rollbackTo := tx.StmtContext(ctx, db.stmts.rollbackTo)
		release := tx.StmtContext(ctx, db.stmts.release)
		for _, j := range live {
			if _, err := savepoint.ExecContext(ctx); err != nil {
				return err
			}
			if j.err = j.fn(context.WithoutCancel(j.ctx), tx); j.err != nil {
				if _, err := rollbackTo.ExecContext(ctx); err != nil {
					return err
				}
			}
			if _, err := release.ExecContext(ctx); err != nil {
				return err
			}
		}
		return nil
	})
	for _, j := range live {
		if j.err == nil {
			j.err = err
		}
		close(j.done)
	}
}
