package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/sealpost/sealpost"
)

// CreateBatch stores a new mail batch of accountID.
func (db *DB) CreateBatch(ctx context.Context, accountID int64, batchID string) error {
	_, err := db.write.ExecContext(ctx, `INSERT INTO mail_batches (batch_id, account_id, created_at) VALUES (?, ?, ?)`,
		batchID, accountID, now().UnixNano())
	if err != nil {
		return mapError("creating mail batch", err, "account not found", "batch id already exists")
	}
	return nil
}

// BatchExists reports whether accountID created batchID.
func (db *DB) BatchExists(ctx context.Context, accountID int64, batchID string) (bool, error) {
	var n int
	err := db.read.QueryRowContext(ctx, `SELECT count(*) FROM mail_batches WHERE batch_id = ? AND account_id = ?`, batchID, accountID).Scan(&n)
	if err != nil {
		return false, mapError("reading mail batch", err, "", "")
	}
	return n > 0, nil
}

// SetScheduledSend changes a status in one statement, and looks the reason
// up only when it changes nothing. Creating one reads the batch and counts
// the account's statuses in the write transaction that sets it, which
// SQLite's single writer serialises: racing creations cannot pass the cap
// together.
func (db *DB) SetScheduledSend(ctx context.Context, accountID int64, batchID string, status sealpost.BatchStatus, create bool) error {
	if !status.Valid() {
		return sealpost.Errorf(sealpost.EINVALID, "unknown scheduled send status %q", status)
	}
	if create {
		err := db.writeTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
			var hasStatus bool
			err := tx.QueryRowContext(ctx, `SELECT status IS NOT NULL FROM mail_batches WHERE batch_id = ? AND account_id = ?`,
				batchID, accountID).Scan(&hasStatus)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM mail_batches WHERE account_id = ? AND status IS NOT NULL`,
				accountID).Scan(&n); err != nil {
				return err
			}
			if err := sealpost.CheckNewScheduledSend(batchID, err == nil, hasStatus, n); err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, `UPDATE mail_batches SET status = ? WHERE batch_id = ? AND account_id = ?`,
				string(status), batchID, accountID)
			return err
		})
		return domainError("setting scheduled send", err, "", "")
	}
	res, err := db.write.ExecContext(ctx, `UPDATE mail_batches SET status = ? WHERE batch_id = ? AND account_id = ? AND status IS NOT NULL`,
		string(status), batchID, accountID)
	if err != nil {
		return mapError("setting scheduled send", err, "", "")
	}
	if n, err := res.RowsAffected(); err != nil || n > 0 {
		return err
	}
	return sealpost.ScheduledSendMiss(ctx, db, accountID, batchID)
}

// ScheduledSends lists the account's batches that have a status.
func (db *DB) ScheduledSends(ctx context.Context, accountID int64) ([]sealpost.ScheduledSend, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT batch_id, status FROM mail_batches
		WHERE account_id = ? AND status IS NOT NULL ORDER BY batch_id`, accountID)
	if err != nil {
		return nil, mapError("listing scheduled sends", err, "", "")
	}
	defer rows.Close()
	out := []sealpost.ScheduledSend{}
	for rows.Next() {
		var s sealpost.ScheduledSend
		var status string
		if err := rows.Scan(&s.BatchID, &status); err != nil {
			return nil, mapError("listing scheduled sends", err, "", "")
		}
		s.Status = sealpost.BatchStatus(status)
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, mapError("listing scheduled sends", err, "", "")
	}
	return out, nil
}

// DeleteScheduledSend removes the status, so that the batch's held mail
// is claimed again.
func (db *DB) DeleteScheduledSend(ctx context.Context, accountID int64, batchID string) error {
	res, err := db.write.ExecContext(ctx, `UPDATE mail_batches SET status = NULL
		WHERE batch_id = ? AND account_id = ? AND status IS NOT NULL`, batchID, accountID)
	if err != nil {
		return mapError("deleting scheduled send", err, "", "")
	}
	if n, err := res.RowsAffected(); err != nil || n > 0 {
		return err
	}
	return sealpost.ScheduledSendMiss(ctx, db, accountID, batchID)
}
