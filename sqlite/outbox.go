package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/sealpost/sealpost"
)

// ClaimEventBatch serves the due account served least recently, and among
// those never served the one whose oldest waiting event is oldest, so that
// no account's events wait behind a busier one's for long. max <= 0 claims
// nothing.
func (db *DB) ClaimEventBatch(ctx context.Context, owner string, now time.Time, lease time.Duration, max int) (*sealpost.EventBatch, error) {
	return db.ClaimEventBatchInLane(ctx, owner, sealpost.AnyOutbox, now, lease, max)
}

// ClaimEventBatchInLane is ClaimEventBatch among the accounts of lane.
func (db *DB) ClaimEventBatchInLane(ctx context.Context, owner string, lane sealpost.OutboxLane, now time.Time, lease time.Duration, max int) (*sealpost.EventBatch, error) {
	if max <= 0 {
		return nil, nil
	}
	var out *sealpost.EventBatch
	err := db.writeTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		out = nil
		b := &sealpost.EventBatch{LeaseOwner: owner}
		var failingSince int64
		lo, hi := lane.AttemptsRange()
		err := tx.QueryRowContext(ctx,
			`SELECT account_id, attempts, failing_since FROM (
				SELECT s.account_id, s.attempts, s.failing_since, s.served_at,
					(SELECT min(e.id) FROM events e WHERE e.account_id = s.account_id) AS head
				FROM outbox_state s
				WHERE s.lease_until <= ? AND s.next_attempt_at <= ? AND s.attempts BETWEEN ? AND ?)
			 WHERE head IS NOT NULL ORDER BY served_at, head LIMIT 1`,
			now.UnixNano(), now.UnixNano(), lo, hi).Scan(&b.AccountID, &b.Attempts, &failingSince)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if failingSince != 0 {
			b.FailingSince = fromUnixNano(failingSince)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE outbox_state SET lease_owner = ?, lease_until = ?, served_at = ? WHERE account_id = ?`,
			owner, now.Add(lease).UnixNano(), now.UnixNano(), b.AccountID); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT id, kind, payload, message_id, created_at FROM events
			WHERE account_id = ? ORDER BY id LIMIT ?`, b.AccountID, max)
		if err != nil {
			return err
		}
		defer rows.Close()
		var about []int64
		for rows.Next() {
			var e sealpost.StoredEvent
			var kind string
			var payload []byte
			var messageID sql.NullInt64
			var created int64
			if err := rows.Scan(&e.ID, &kind, &payload, &messageID, &created); err != nil {
				return err
			}
			e.Kind, e.Payload, e.CreatedAt = sealpost.EventKind(kind), payload, fromUnixNano(created)
			b.Events = append(b.Events, e)
			about = append(about, messageID.Int64)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if err := completeEvents(ctx, tx, b.AccountID, b.Events, about); err != nil {
			return err
		}
		out = b
		return nil
	})
	if err != nil {
		return nil, mapError("claiming events", err, "account not found", "")
	}
	return out, nil
}

// AckEventBatch deletes the batch's events by ID: events stored while the
// batch was out stay for the next one.
func (db *DB) AckEventBatch(ctx context.Context, b *sealpost.EventBatch) error {
	ids := make([]int64, len(b.Events))
	for i, e := range b.Events {
		ids[i] = e.ID
	}
	idList, err := json.Marshal(ids)
	if err != nil {
		return internal("encoding event ids", err)
	}
	return db.updateLeasedOutbox(ctx, b, "acknowledging events", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM events WHERE account_id = ? AND id IN (SELECT value FROM json_each(?))`,
			b.AccountID, string(idList)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE outbox_state SET lease_owner = NULL, lease_until = 0, next_attempt_at = 0,
			attempts = 0, failing_since = 0 WHERE account_id = ?`, b.AccountID)
		return err
	})
}

// RetryEventBatch takes FailingSince from this process's clock when a run
// of failures starts: the batch does not carry the time it was claimed.
func (db *DB) RetryEventBatch(ctx context.Context, b *sealpost.EventBatch, next time.Time) error {
	failed := now().UnixNano()
	return db.updateLeasedOutbox(ctx, b, "deferring events", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE outbox_state SET lease_owner = NULL, lease_until = 0, next_attempt_at = ?,
			attempts = attempts + 1, failing_since = CASE WHEN failing_since = 0 THEN ? ELSE failing_since END
			WHERE account_id = ?`, next.UnixNano(), failed, b.AccountID)
		return err
	})
}

// updateLeasedOutbox runs fn in a write transaction if b's account's outbox
// is still leased to b.LeaseOwner, and fails with ECONFLICT otherwise.
func (db *DB) updateLeasedOutbox(ctx context.Context, b *sealpost.EventBatch, op string, fn func(tx *sql.Tx) error) error {
	err := db.writeTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var owner sql.NullString
		err := tx.QueryRowContext(ctx, `SELECT lease_owner FROM outbox_state WHERE account_id = ?`, b.AccountID).Scan(&owner)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && (!owner.Valid || owner.String != b.LeaseOwner)) {
			return errLeaseLost
		}
		if err != nil {
			return err
		}
		return fn(tx)
	})
	if errors.Is(err, errLeaseLost) {
		return sealpost.Errorf(sealpost.ECONFLICT, "events of account %d are not leased to %s", b.AccountID, b.LeaseOwner)
	}
	if err != nil {
		return mapError(op, err, "account not found", "")
	}
	return nil
}

// completeEvents adds to the events of accountID the categories and custom
// args of the messages they are about (about[i] for events[i], 0 for
// none), read once per message and once per body.
func completeEvents(ctx context.Context, tx *sql.Tx, accountID int64, events []sealpost.StoredEvent, about []int64) error {
	msgs := make(map[int64]*sealpost.Message)
	bodies := make(map[int64]*sealpost.MessageBody)
	for _, id := range about {
		if _, seen := msgs[id]; seen || id == 0 {
			continue
		}
		var categories, customArgs string
		var bodyID sql.NullInt64
		err := tx.QueryRowContext(ctx, `SELECT categories, custom_args, body_id FROM messages WHERE id = ? AND account_id = ?`, id, accountID).
			Scan(&categories, &customArgs, &bodyID)
		if errors.Is(err, sql.ErrNoRows) {
			msgs[id] = nil
			continue
		}
		if err != nil {
			return err
		}
		m := &sealpost.Message{ID: id}
		if err := json.Unmarshal([]byte(categories), &m.Categories); err != nil {
			return fmt.Errorf("decoding categories of message %d: %w", id, err)
		}
		if err := json.Unmarshal([]byte(customArgs), &m.CustomArgs); err != nil {
			return fmt.Errorf("decoding custom args of message %d: %w", id, err)
		}
		if bodyID.Valid {
			if m.Body = bodies[bodyID.Int64]; m.Body == nil {
				var c, a sql.NullString
				if err := tx.QueryRowContext(ctx, `SELECT categories, custom_args FROM message_bodies WHERE id = ?`, bodyID.Int64).Scan(&c, &a); err != nil {
					return fmt.Errorf("loading body %d of message %d: %w", bodyID.Int64, id, err)
				}
				m.Body = &sealpost.MessageBody{ID: bodyID.Int64}
				if m.Body.Categories, m.Body.CustomArgs, err = decodeEventArgs(c, a); err != nil {
					return fmt.Errorf("body %d: %w", bodyID.Int64, err)
				}
				bodies[bodyID.Int64] = m.Body
			}
		}
		msgs[id] = m
	}
	return sealpost.CompleteStoredEvents(events, about, msgs)
}
