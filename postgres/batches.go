package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

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

// SetScheduledSend changes a status in one statement, which every node's
// next claim sees once it commits, and looks the reason up only when it
// changes nothing. Creating one locks the account's row while its statuses
// are counted, so creations on any number of nodes pass the cap one at a
// time.
func (db *DB) SetScheduledSend(ctx context.Context, accountID int64, batchID string, status sealpost.BatchStatus, create bool) error {
	if !status.Valid() {
		return sealpost.Errorf(sealpost.EINVALID, "unknown scheduled send status %q", status)
	}
	if create {
		err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
			if err := lockAccount(ctx, tx, accountID); err != nil {
				if sealpost.ErrorCode(err) == sealpost.ENOTFOUND {
					// No account has no batches.
					return sealpost.CheckNewScheduledSend(batchID, false, false, 0)
				}
				return err
			}
			var hasStatus bool
			err := tx.QueryRow(ctx, `SELECT status IS NOT NULL FROM mail_batches WHERE batch_id = $1 AND account_id = $2`,
				batchID, accountID).Scan(&hasStatus)
			if err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
			var n int
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM mail_batches WHERE account_id = $1 AND status IS NOT NULL`,
				accountID).Scan(&n); err != nil {
				return err
			}
			if err := sealpost.CheckNewScheduledSend(batchID, err == nil, hasStatus, n); err != nil {
				return err
			}
			_, err = tx.Exec(ctx, `UPDATE mail_batches SET status = $1 WHERE batch_id = $2 AND account_id = $3`,
				string(status), batchID, accountID)
			return err
		})
		return storeErr(err, "mail batch")
	}
	tag, err := db.pool.Exec(ctx, `UPDATE mail_batches SET status = $1 WHERE batch_id = $2 AND account_id = $3 AND status IS NOT NULL`,
		string(status), batchID, accountID)
	if err != nil {
		return storeErr(err, "mail batch")
	}
	if tag.RowsAffected() > 0 {
		return nil
	}
	return sealpost.ScheduledSendMiss(ctx, db, accountID, batchID)
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
	return sealpost.ScheduledSendMiss(ctx, db, accountID, batchID)
}
