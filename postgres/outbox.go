package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sealpost/sealpost"
)

// errNothingToPost rolls back a claim that leased an account whose events
// were all acknowledged in the meantime.
var errNothingToPost = errors.New("no events to post")

// ClaimEventBatch leases one account's outbox and reads its head events in
// one transaction. The state row is taken FOR UPDATE SKIP LOCKED, so nodes
// claiming at the same moment take different accounts instead of queueing
// behind one; a row another node leased and committed meanwhile is checked
// again against its new lease and passed over. Accounts are served least
// recently served first (then oldest waiting event first), so that one with
// a backlog goes behind the others after each batch.
func (db *DB) ClaimEventBatch(ctx context.Context, owner string, now time.Time, lease time.Duration, max int) (*sealpost.EventBatch, error) {
	return db.ClaimEventBatchInLane(ctx, owner, sealpost.AnyOutbox, now, lease, max)
}

// ClaimEventBatchInLane is ClaimEventBatch among the accounts of lane.
func (db *DB) ClaimEventBatchInLane(ctx context.Context, owner string, lane sealpost.OutboxLane, now time.Time, lease time.Duration, max int) (*sealpost.EventBatch, error) {
	if max < 1 {
		return nil, sealpost.Invalid(sealpost.FieldError{Field: "max", Message: "a batch holds at least one event"})
	}
	var batch *sealpost.EventBatch
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		b := &sealpost.EventBatch{LeaseOwner: owner}
		var attempts int32
		var failingSince *time.Time
		lo, hi := lane.AttemptsRange()
		err := tx.QueryRow(ctx, `
			WITH candidate AS (
				SELECT s.account_id FROM outbox_accounts s
				WHERE (s.lease_until IS NULL OR s.lease_until <= $2) AND s.next_attempt_at <= $2 AND s.attempts BETWEEN $4 AND $5
					AND EXISTS (SELECT 1 FROM outbox_events e WHERE e.account_id = s.account_id)
				ORDER BY s.served_at, (SELECT min(e.id) FROM outbox_events e WHERE e.account_id = s.account_id)
				LIMIT 1
				FOR UPDATE SKIP LOCKED
			)
			UPDATE outbox_accounts s SET lease_owner = $1, lease_until = $3, served_at = $2
			FROM candidate c WHERE s.account_id = c.account_id
			RETURNING s.account_id, s.attempts, s.failing_since`,
			owner, unixNanos(now), unixNanos(now.Add(lease)), lo, hi).Scan(&b.AccountID, &attempts, &failingSince)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		b.Attempts = int(attempts)
		if failingSince != nil {
			b.FailingSince = failingSince.UTC()
		}
		rows, err := tx.Query(ctx, `
			SELECT id, kind, payload, message_id, created_at FROM outbox_events
			WHERE account_id = $1 ORDER BY id LIMIT $2`, b.AccountID, max)
		if err != nil {
			return err
		}
		var about []int64
		b.Events, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (sealpost.StoredEvent, error) {
			var e sealpost.StoredEvent
			var kind string
			var payload []byte
			var messageID *int64
			if err := row.Scan(&e.ID, &kind, &payload, &messageID, &e.CreatedAt); err != nil {
				return e, err
			}
			e.Kind = sealpost.EventKind(kind)
			e.Payload = payload
			e.CreatedAt = e.CreatedAt.UTC()
			var id int64
			if messageID != nil {
				id = *messageID
			}
			about = append(about, id)
			return e, nil
		})
		if err != nil {
			return err
		}
		if err := completeEvents(ctx, tx, b.AccountID, b.Events, about); err != nil {
			return err
		}
		// The candidate's EXISTS was evaluated on the statement's snapshot;
		// an acknowledgement that committed after it can have emptied the
		// account.
		if len(b.Events) == 0 {
			return errNothingToPost
		}
		batch = b
		return nil
	})
	if errors.Is(err, errNothingToPost) {
		return nil, nil
	}
	if err != nil {
		return nil, storeErr(err, "event batch")
	}
	return batch, nil
}

func errBatchLeaseLost() error {
	return sealpost.Errorf(sealpost.ECONFLICT, "event batch is not leased to this owner")
}

// AckEventBatch releases the lease and deletes the batch's events in one
// statement, so that both happen only while the lease is b's. An expired
// lease nobody else took is still b's.
func (db *DB) AckEventBatch(ctx context.Context, b *sealpost.EventBatch) error {
	ids := make([]int64, len(b.Events))
	for i, e := range b.Events {
		ids[i] = e.ID
	}
	var released int
	err := db.pool.QueryRow(ctx, `
		WITH released AS (
			UPDATE outbox_accounts SET
				lease_owner = NULL, lease_until = NULL,
				attempts = 0, failing_since = NULL, next_attempt_at = DEFAULT
			WHERE account_id = $1 AND lease_owner = $2
			RETURNING account_id
		), deleted AS (
			DELETE FROM outbox_events
			WHERE account_id = (SELECT account_id FROM released) AND id = ANY($3)
		)
		SELECT count(*) FROM released`,
		b.AccountID, b.LeaseOwner, ids).Scan(&released)
	if err != nil {
		return storeErr(err, "event batch")
	}
	if released == 0 {
		return errBatchLeaseLost()
	}
	return nil
}

// RetryEventBatch takes FailingSince from the database's clock, the one
// clock every node shares.
func (db *DB) RetryEventBatch(ctx context.Context, b *sealpost.EventBatch, next time.Time) error {
	tag, err := db.pool.Exec(ctx, `
		UPDATE outbox_accounts SET
			attempts = attempts + 1,
			failing_since = COALESCE(failing_since, now()),
			next_attempt_at = $3,
			lease_owner = NULL, lease_until = NULL
		WHERE account_id = $1 AND lease_owner = $2`,
		b.AccountID, b.LeaseOwner, unixNanos(next))
	if err != nil {
		return storeErr(err, "event batch")
	}
	if tag.RowsAffected() == 0 {
		return errBatchLeaseLost()
	}
	return nil
}

// completeEvents adds to the events of accountID the categories and custom
// args of the messages they are about (about[i] for events[i], 0 for
// none). Those of a body are read once however many of the batch's
// messages share it.
func completeEvents(ctx context.Context, tx pgx.Tx, accountID int64, events []sealpost.StoredEvent, about []int64) error {
	msgs := make(map[int64]*sealpost.Message)
	var ids []int64
	for _, id := range about {
		if _, seen := msgs[id]; !seen && id != 0 {
			msgs[id] = nil
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	rows, err := tx.Query(ctx, `SELECT id, categories, custom_args, body_id FROM messages WHERE id = ANY($1) AND account_id = $2`, ids, accountID)
	if err != nil {
		return err
	}
	bodySeen := make(map[int64]bool)
	var bodyIDs []int64
	for rows.Next() {
		m := &sealpost.Message{}
		var bodyID *int64
		if err := rows.Scan(&m.ID, &m.Categories, &m.CustomArgs, &bodyID); err != nil {
			rows.Close()
			return err
		}
		msgs[m.ID] = m
		if bodyID != nil {
			if !bodySeen[*bodyID] {
				bodySeen[*bodyID] = true
				bodyIDs = append(bodyIDs, *bodyID)
			}
			m.Body = &sealpost.MessageBody{ID: *bodyID}
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if len(bodyIDs) > 0 {
		bodies := make(map[int64]*sealpost.MessageBody, len(bodyIDs))
		rows, err := tx.Query(ctx, `SELECT id, categories, custom_args FROM message_bodies WHERE id = ANY($1)`, bodyIDs)
		if err != nil {
			return err
		}
		for rows.Next() {
			b := &sealpost.MessageBody{}
			if err := rows.Scan(&b.ID, &b.Categories, &b.CustomArgs); err != nil {
				rows.Close()
				return err
			}
			bodies[b.ID] = b
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, m := range msgs {
			if m != nil && m.Body != nil && bodies[m.Body.ID] != nil {
				m.Body = bodies[m.Body.ID]
			}
		}
	}
	return sealpost.CompleteStoredEvents(events, about, msgs)
}
