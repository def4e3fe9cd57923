package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sealpost/sealpost"
)

// activityDialect is PostgreSQL's SQL for the Email Activity queries.
// LIKE is made to ignore the case of ASCII letters only, as SQLite's does,
// so that both stores answer a query alike.
type activityDialect struct{}

func (activityDialect) Placeholder(n int) string { return sealpost.PlaceholderDollar(n) }

func (activityDialect) Like(col, ph string) string {
	return `translate(` + col + `, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz') LIKE ` + ph + `::text ESCAPE '\'`
}

func (activityDialect) HasCategory(arg func(any) string, value string) string {
	return `(m.categories @> jsonb_build_array(` + arg(value) + `::text)
		OR EXISTS (SELECT 1 FROM message_bodies b WHERE b.id = m.body_id AND b.categories @> jsonb_build_array(` + arg(value) + `::text)))`
}

// queueActivityEvents adds to b the statement that keeps the events about
// recipients in the Email Activity history.
func queueActivityEvents(b *pgx.Batch, events []sealpost.Event) {
	var accounts, at []int64
	var msgIDs, kinds []string
	var payloads [][]byte
	now := time.Now()
	for _, e := range events {
		if e.SGMessageID == "" {
			continue
		}
		accounts = append(accounts, e.AccountID)
		msgIDs = append(msgIDs, e.SGMessageID)
		kinds = append(kinds, string(e.Kind))
		at = append(at, unixNanos(sealpost.ActivityEventTime(e, now)))
		p := []byte(e.Payload)
		if p == nil {
			p = []byte{}
		}
		payloads = append(payloads, p)
	}
	if len(accounts) == 0 {
		return
	}
	b.Queue(`
		INSERT INTO activity_events (account_id, sg_message_id, kind, at, payload)
		SELECT a, s, k, t, p
		FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::bytea[]) WITH ORDINALITY AS e(a, s, k, t, p, n)
		ORDER BY n`,
		accounts, msgIDs, kinds, at, payloads)
}

// ListActivity walks recipients_activity_idx from the latest event down,
// testing the query on each row, until limit match.
func (db *DB) ListActivity(ctx context.Context, accountID int64, q *sealpost.ActivityQuery, since time.Time, limit int) ([]sealpost.ActivityMessage, error) {
	where, args := q.SQL(activityDialect{}, []any{accountID, unixNanos(since), limit})
	rows, err := db.pool.Query(ctx, `SELECT r.sg_message_id, m.mail_from, m.subject, r.email, r.state, r.last_event_at
		FROM recipients r JOIN messages m ON m.id = r.message_id
		WHERE r.account_id = $1 AND r.last_event_at >= $2 AND `+where+`
		ORDER BY r.last_event_at DESC, r.id DESC LIMIT $3`, args...)
	if err != nil {
		return nil, storeErr(err, "activity")
	}
	defer rows.Close()
	out := []sealpost.ActivityMessage{}
	for rows.Next() {
		var a sealpost.ActivityMessage
		var state string
		var last int64
		if err := rows.Scan(&a.MsgID, &a.FromEmail, &a.Subject, &a.ToEmail, &state, &last); err != nil {
			return nil, storeErr(err, "activity")
		}
		a.State, a.LastEventTime = sealpost.RecipientState(state), fromUnixNanos(last)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, storeErr(err, "activity")
	}
	return out, nil
}

func (db *DB) ActivityDetail(ctx context.Context, accountID int64, msgID string, since time.Time) (*sealpost.ActivityDetail, error) {
	d := &sealpost.ActivityDetail{}
	var state string
	var cats, args, bodyCats, bodyArgs []byte
	var last int64
	err := db.pool.QueryRow(ctx, `SELECT r.sg_message_id, m.mail_from, m.subject, r.email, r.state, r.last_event_at,
			m.categories::text, m.custom_args::text, b.categories::text, b.custom_args::text
		FROM recipients r JOIN messages m ON m.id = r.message_id LEFT JOIN message_bodies b ON b.id = m.body_id
		WHERE r.account_id = $1 AND r.sg_message_id = $2 AND r.last_event_at >= $3
		ORDER BY r.id LIMIT 1`, accountID, msgID, unixNanos(since)).
		Scan(&d.MsgID, &d.FromEmail, &d.Subject, &d.ToEmail, &state, &last, &cats, &args, &bodyCats, &bodyArgs)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, sealpost.Errorf(sealpost.ENOTFOUND, "message %q not found", msgID)
	}
	if err != nil {
		return nil, storeErr(err, "activity")
	}
	d.State, d.LastEventTime = sealpost.RecipientState(state), fromUnixNanos(last)
	m := &sealpost.Message{Body: &sealpost.MessageBody{}}
	for _, f := range []struct {
		raw []byte
		dst any
	}{{cats, &m.Categories}, {args, &m.CustomArgs}, {bodyCats, &m.Body.Categories}, {bodyArgs, &m.Body.CustomArgs}} {
		if f.raw == nil {
			continue
		}
		if err := json.Unmarshal(f.raw, f.dst); err != nil {
			return nil, fmt.Errorf("postgres: decoding the categories or custom args of %q: %w", msgID, err)
		}
	}
	d.Categories, d.CustomArgs = m.EventCategories(), m.EventCustomArgs()

	rows, err := db.pool.Query(ctx, `SELECT kind, at, payload FROM activity_events
		WHERE account_id = $1 AND sg_message_id = $2 ORDER BY id`, accountID, msgID)
	if err != nil {
		return nil, storeErr(err, "activity")
	}
	defer rows.Close()
	d.Events = []sealpost.ActivityEvent{}
	for rows.Next() {
		var e sealpost.ActivityEvent
		var kind string
		var at int64
		if err := rows.Scan(&kind, &at, &e.Payload); err != nil {
			return nil, storeErr(err, "activity")
		}
		e.Kind, e.At = sealpost.EventKind(kind), fromUnixNanos(at)
		d.Events = append(d.Events, e)
	}
	if err := rows.Err(); err != nil {
		return nil, storeErr(err, "activity")
	}
	return d, nil
}

// PruneActivity deletes in chunks, each its own statement, so that a large
// backlog never holds locks on many rows for long.
func (db *DB) PruneActivity(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	for {
		tag, err := db.pool.Exec(ctx, `DELETE FROM activity_events WHERE id IN (
			SELECT id FROM activity_events WHERE at < $1 LIMIT $2)`, unixNanos(before), sealpost.ActivityPruneChunk)
		if err != nil {
			return total, storeErr(err, "activity")
		}
		if total += tag.RowsAffected(); tag.RowsAffected() < sealpost.ActivityPruneChunk {
			return total, nil
		}
	}
}
