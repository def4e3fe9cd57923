package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/sealpost/sealpost"
)

// errLeaseLost aborts a completion whose lease is gone.
var errLeaseLost = errors.New("lease lost")

// finishDeliverySQL counts the attempt (?4: 1, or 0 for work handed back
// unattempted) and releases the lease, checking it
// in the same statement; it runs after the recipients' updates, so the
// queued ones left decide between due again and done.
const finishDeliverySQL = `UPDATE deliveries SET attempts = attempts + ?4, lease_owner = NULL, lease_until = 0,
		done = NOT EXISTS (SELECT 1 FROM recipients WHERE delivery_id = ?2 AND state = 'queued'),
		next_attempt_at = CASE WHEN EXISTS (SELECT 1 FROM recipients WHERE delivery_id = ?2 AND state = 'queued')
			THEN ?1 ELSE next_attempt_at END
	WHERE id = ?2 AND done = 0 AND lease_owner = ?3
	RETURNING message_id, done`

// dropBodySQL forgets a message's data (its layout, or its whole message
// if stored before bodies were shared) once its last delivery is done; the
// rows stay for RecipientStates. The
// unary + keeps SQLite off the deliveries_due index, on which done = 0
// would walk every pending delivery of the queue instead of the message's
// few.
const dropBodySQL = `UPDATE messages SET data = NULL WHERE id = ?1
	AND NOT EXISTS (SELECT 1 FROM deliveries WHERE message_id = ?1 AND +done = 0)`

// dropSharedBodySQL forgets the shared body of a message once no message
// using it has a delivery pending, which dropBodySQL marks by setting data
// to NULL.
const dropSharedBodySQL = `UPDATE message_bodies SET data = NULL
	WHERE id = (SELECT body_id FROM messages WHERE id = ?1) AND data IS NOT NULL
	AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.body_id = message_bodies.id AND m.data IS NOT NULL)`

// CompleteDelivery checks the lease owner but not the clock: an owner
// whose lease ran out may record its attempt as long as nobody claimed the
// delivery since. A zero NextAttemptAt with recipients still queued makes
// the delivery due at once. It returns once the completion is committed,
// possibly together with concurrent ones (the store's writer gathers them:
// a commit costs far more than the statements of one completion).
func (db *DB) CompleteDelivery(ctx context.Context, owner string, c sealpost.DeliveryCompletion) error {
	obs, err := sealpost.CleanObservations(c.Observations)
	if err != nil {
		return err
	}
	c.Observations = obs
	for _, u := range c.Recipients {
		switch u.State {
		case sealpost.StateQueued, sealpost.StateDelivered, sealpost.StateBounced, sealpost.StateBlocked, sealpost.StateDropped:
		default:
			return sealpost.Invalid(sealpost.FieldError{Field: "state", Message: fmt.Sprintf("unknown recipient state %q", u.State)})
		}
	}
	err = db.writeTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		return db.applyCompletion(ctx, tx, owner, c, now())
	})
	if err != nil {
		return completionError(err, owner, c.DeliveryID)
	}
	return nil
}

// applyCompletion records c in tx. When it fails because the lease is
// gone, it says so whatever else is wrong with c, since ECONFLICT is what
// tells the caller that another owner's attempt is the one that counts.
func (db *DB) applyCompletion(ctx context.Context, tx *sql.Tx, owner string, c sealpost.DeliveryCompletion, stamp time.Time) error {
	err := db.recordCompletion(ctx, tx, owner, c, stamp)
	if err == nil || errors.Is(err, errLeaseLost) {
		return err
	}
	var lo sql.NullString
	switch lerr := tx.StmtContext(ctx, db.stmts.leaseOwner).QueryRowContext(ctx, c.DeliveryID).Scan(&lo); {
	case errors.Is(lerr, sql.ErrNoRows):
		return errLeaseLost
	case lerr != nil:
		return errors.Join(err, lerr)
	case !lo.Valid || lo.String != owner:
		return errLeaseLost
	}
	return err
}

func (db *DB) recordCompletion(ctx context.Context, tx *sql.Tx, owner string, c sealpost.DeliveryCompletion, stamp time.Time) error {
	if len(c.Recipients) > 0 {
		upd := tx.StmtContext(ctx, db.stmts.updateRecipient)
		var last sql.NullInt64 // NULL: no event, the last one stays
		if t, ok := sealpost.LastEventTime(c.Events, stamp); ok {
			last = sql.NullInt64{Int64: t.UnixNano(), Valid: true}
		}
		for _, u := range c.Recipients {
			res, err := upd.ExecContext(ctx, string(u.State), last, u.RecipientID, c.DeliveryID)
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n == 0 {
				return sealpost.Invalid(sealpost.FieldError{Field: "recipient", Message: fmt.Sprintf("recipient %d is not in delivery %d", u.RecipientID, c.DeliveryID)})
			}
		}
	}
	if err := db.insertEvents(ctx, tx, c.Events, nil, stamp); err != nil {
		return err
	}
	var messageID int64
	var done bool
	err := tx.StmtContext(ctx, db.stmts.finishDelivery).QueryRowContext(ctx, c.NextAttemptAt.UnixNano(), c.DeliveryID, owner, attemptCount(c)).
		Scan(&messageID, &done)
	if errors.Is(err, sql.ErrNoRows) {
		return errLeaseLost
	}
	if err != nil {
		return err
	}
	if err := db.recordObservations(ctx, tx, c.Observations); err != nil {
		return err
	}
	if !done {
		return nil
	}
	if _, err := tx.StmtContext(ctx, db.stmts.dropBody).ExecContext(ctx, messageID); err != nil {
		return err
	}
	_, err = tx.StmtContext(ctx, db.stmts.dropSharedBody).ExecContext(ctx, messageID)
	return err
}

// completionError is what a caller of CompleteDelivery gets for err.
func completionError(err error, owner string, deliveryID int64) error {
	if errors.Is(err, errLeaseLost) {
		return sealpost.Errorf(sealpost.ECONFLICT, "delivery %d is not leased to %s", deliveryID, owner)
	}
	var se *sealpost.Error
	if errors.As(err, &se) {
		return err
	}
	return mapError("completing delivery", err, "delivery not found", "")
}

// attemptCount is how much c adds to a delivery's attempts.
func attemptCount(c sealpost.DeliveryCompletion) int {
	if c.Unattempted {
		return 0
	}
	return 1
}
