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

// activityDialect is SQLite's SQL for the Email Activity queries. LIKE
// already ignores the case of ASCII letters, and only theirs.
type activityDialect struct{}

func (activityDialect) Placeholder(n int) string { return sealpost.PlaceholderQuestion(n) }

func (activityDialect) Like(col, ph string) string { return col + ` LIKE ` + ph + ` ESCAPE '\'` }

func (activityDialect) HasCategory(arg func(any) string, value string) string {
	return `(EXISTS (SELECT 1 FROM json_each(m.categories) WHERE value = ` + arg(value) + `)
		OR EXISTS (SELECT 1 FROM message_bodies b, json_each(b.categories) WHERE b.id = m.body_id AND value = ` + arg(value) + `))`
}

// ListActivity walks recipients_activity from the latest event down,
// testing the query on each row, until limit match.
func (db *DB) ListActivity(ctx context.Context, accountID int64, q *sealpost.ActivityQuery, since time.Time, limit int) ([]sealpost.ActivityMessage, error) {
	where, args := q.SQL(activityDialect{}, []any{accountID, since.UnixNano()})
	args = append(args, limit)
	rows, err := db.read.QueryContext(ctx, `SELECT r.sg_message_id, m.mail_from, m.subject, r.email, r.state, r.last_event_at
		FROM recipients r JOIN messages m ON m.id = r.message_id
		WHERE r.account_id = ? AND r.last_event_at >= ? AND `+where+`
		ORDER BY r.last_event_at DESC, r.id DESC LIMIT ?`, args...)
	if err != nil {
		return nil, internal("listing activity", err)
	}
	defer rows.Close()
	out := []sealpost.ActivityMessage{}
	for rows.Next() {
		var a sealpost.ActivityMessage
		var state string
		var last int64
		if err := rows.Scan(&a.MsgID, &a.FromEmail, &a.Subject, &a.ToEmail, &state, &last); err != nil {
			return nil, internal("listing activity", err)
		}
		a.State, a.LastEventTime = sealpost.RecipientState(state), fromUnixNano(last)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, internal("listing activity", err)
	}
	return out, nil
}

func (db *DB) ActivityDetail(ctx context.Context, accountID int64, msgID string, since time.Time) (*sealpost.ActivityDetail, error) {
	d := &sealpost.ActivityDetail{}
	var state, cats, args string
	var bodyCats, bodyArgs sql.NullString
	var last, created int64
	err := db.read.QueryRowContext(ctx, `SELECT r.sg_message_id, m.mail_from, m.subject, r.email, r.state, r.last_event_at, m.created_at,
			m.categories, m.custom_args, b.categories, b.custom_args
		FROM recipients r JOIN messages m ON m.id = r.message_id LEFT JOIN message_bodies b ON b.id = m.body_id
		WHERE r.account_id = ? AND r.sg_message_id = ? AND r.last_event_at >= ?
		ORDER BY r.id LIMIT 1`, accountID, msgID, since.UnixNano()).
		Scan(&d.MsgID, &d.FromEmail, &d.Subject, &d.ToEmail, &state, &last, &created, &cats, &args, &bodyCats, &bodyArgs)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, sealpost.Errorf(sealpost.ENOTFOUND, "message %q not found", msgID)
	}
	if err != nil {
		return nil, internal("reading activity", err)
	}
	d.State, d.LastEventTime = sealpost.RecipientState(state), fromUnixNano(last)
	m := &sealpost.Message{Body: &sealpost.MessageBody{}}
	if err := json.Unmarshal([]byte(cats), &m.Categories); err != nil {
		return nil, internal("reading activity", fmt.Errorf("decoding categories: %w", err))
	}
	if err := json.Unmarshal([]byte(args), &m.CustomArgs); err != nil {
		return nil, internal("reading activity", fmt.Errorf("decoding custom args: %w", err))
	}
	if m.Body.Categories, m.Body.CustomArgs, err = decodeEventArgs(bodyCats, bodyArgs); err != nil {
		return nil, internal("reading activity", err)
	}
	d.Categories, d.CustomArgs = m.EventCategories(), m.EventCustomArgs()

	rows, err := db.read.QueryContext(ctx, `SELECT kind, at, payload FROM activity_events
		WHERE account_id = ? AND sg_message_id = ? ORDER BY id`, accountID, msgID)
	if err != nil {
		return nil, internal("reading activity events", err)
	}
	defer rows.Close()
	d.Events = []sealpost.ActivityEvent{sealpost.ProcessedActivityEvent(fromUnixNano(created))}
	for rows.Next() {
		var e sealpost.ActivityEvent
		var kind string
		var at int64
		if err := rows.Scan(&kind, &at, &e.Payload); err != nil {
			return nil, internal("reading activity events", err)
		}
		e.Kind, e.At = sealpost.EventKind(kind), fromUnixNano(at)
		d.Events = append(d.Events, e)
	}
	if err := rows.Err(); err != nil {
		return nil, internal("reading activity events", err)
	}
	return d, nil
}

// PruneActivity deletes in chunks, each its own transaction, so that a
// large backlog never holds the one writer for long.
func (db *DB) PruneActivity(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	for {
		var n int64
		err := db.writeTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, `DELETE FROM activity_events WHERE id IN (
				SELECT id FROM activity_events WHERE at < ? LIMIT ?)`, before.UnixNano(), sealpost.ActivityPruneChunk)
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		})
		if err != nil {
			return total, mapError("pruning activity", err, "", "")
		}
		if total += n; n < sealpost.ActivityPruneChunk {
			return total, nil
		}
	}
}
