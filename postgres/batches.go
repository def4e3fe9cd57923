package postgres

import (
	"context"

	"github.com/sealpost/sealpost"
)

// CreateBatch stores a new mail batch of accountID.
func (db *DB) CreateBatch(ctx context.Context, accountID int64, batchID string) error {
	_, err := db.pool.Exec(ctx, `INSERT INTO mail_batches (batch_id, account_id) VALUES ($1, $2)`, batchID, accountID)
	return storeErr(err, "mail batch")
}

// BatchExists reports whether accountID created batchID.
func (db *DB) BatchExists(ctx context.Context, accountID int64, batchID string) (bool, error) {
	var ok bool
	err := db.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM mail_batches WHERE batch_id = $1 AND account_id = $2)`,
		batchID, accountID).Scan(&ok)
	return ok, storeErr(err, "mail batch")
}

// SetScheduledSend sets the status in one statement, which every node's
// next claim sees once it commits; only when it changes nothing is the
// reason looked up.
func (db *DB) SetScheduledSend(ctx context.Context, accountID int64, batchID string, status sealpost.BatchStatus, create bool) error {
	if !status.Valid() {
		return sealpost.Errorf(sealpost.EINVALID, "unknown scheduled send status %q", status)
	}
	q := `UPDATE mail_batches SET status = $1 WHERE batch_id = $2 AND account_id = $3 AND status IS NOT NULL`
	if create {
		q = `UPDATE mail_batches SET status = $1 WHERE batch_id = $2 AND account_id = $3 AND status IS NULL`
	}
	tag, err := db.pool.Exec(ctx, q, string(status), batchID, accountID)
	if err != nil {
		return storeErr(err, "mail batch")
	}
	if tag.RowsAffected() > 0 {
		return nil
	}
	return sealpost.ScheduledSendMiss(ctx, db, accountID, batchID, create)
}

// ScheduledSends lists the account's batches that have a status.
func (db *DB) ScheduledSends(ctx context.Context, accountID int64) ([]sealpost.ScheduledSend, error) {
	rows, err := db.pool.Query(ctx, `SELECT batch_id, status FROM mail_batches
		WHERE account_id = $1 AND status IS NOT NULL ORDER BY batch_id`, accountID)
	if err != nil {
		return nil, storeErr(err, "mail batch")
	}
	defer rows.Close()
	out := []sealpost.ScheduledSend{}
	for rows.Next() {
		var s sealpost.ScheduledSend
		var status string
		if err := rows.Scan(&s.BatchID, &status); err != nil {
			return nil, storeErr(err, "mail batch")
		}
		s.Status = sealpost.BatchStatus(status)
		out = append(out, s)
	}
	return out, storeErr(rows.Err(), "mail batch")
}

// DeleteScheduledSend removes the status, so that the batch's held mail
// is claimed again.
func (db *DB) DeleteScheduledSend(ctx context.Context, accountID int64, batchID string) error {
	tag, err := db.pool.Exec(ctx, `UPDATE mail_batches SET status = NULL
		WHERE batch_id = $1 AND account_id = $2 AND status IS NOT NULL`, batchID, accountID)
	if err != nil {
		return storeErr(err, "mail batch")
	}
	if tag.RowsAffected() > 0 {
		return nil
	}
	return sealpost.ScheduledSendMiss(ctx, db, accountID, batchID, false)
}
