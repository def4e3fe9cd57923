package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/sealpost/sealpost"
)

// eventWebhookSQL reads through accounts so that an account without a row
// reads as the default and a missing account as no row at all.
const eventWebhookSQL = `SELECT
	COALESCE(w.enabled, 0), COALESCE(w.url, ''), COALESCE(w.group_resubscribe, 0),
	COALESCE(w.delivered, 0), COALESCE(w.group_unsubscribe, 0), COALESCE(w.spam_report, 0),
	COALESCE(w.bounce, 0), COALESCE(w.deferred, 0), COALESCE(w.unsubscribe, 0),
	COALESCE(w.processed, 0), COALESCE(w.open, 0), COALESCE(w.click, 0), COALESCE(w.dropped, 0)
 FROM accounts a LEFT JOIN event_webhooks w ON w.account_id = a.id
 WHERE a.id = ?`

func scanEventWebhook(row scanner) (sealpost.EventWebhookSettings, error) {
	var s sealpost.EventWebhookSettings
	err := row.Scan(&s.Enabled, &s.URL, &s.GroupResubscribe, &s.Delivered, &s.GroupUnsubscribe, &s.SpamReport,
		&s.Bounce, &s.Deferred, &s.Unsubscribe, &s.Processed, &s.Open, &s.Click, &s.Dropped)
	return s, err
}

func (db *DB) EventWebhookSettings(ctx context.Context, accountID int64) (sealpost.EventWebhookSettings, error) {
	s, err := scanEventWebhook(db.read.QueryRowContext(ctx, eventWebhookSQL, accountID))
	if err != nil {
		return sealpost.EventWebhookSettings{}, mapError("reading Event Webhook settings", err, "account not found", "")
	}
	return s, nil
}

// UpdateEventWebhookSettings reads, patches and writes under the write lock,
// so concurrent patches each apply to the value the one before left.
func (db *DB) UpdateEventWebhookSettings(ctx context.Context, accountID int64, patch sealpost.EventWebhookPatch) (sealpost.EventWebhookSettings, error) {
	var out sealpost.EventWebhookSettings
	err := db.writeTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		cur, err := scanEventWebhook(tx.QueryRowContext(ctx, eventWebhookSQL, accountID))
		if err != nil {
			return err
		}
		s := patch.Apply(cur)
		_, err = tx.ExecContext(ctx, `INSERT INTO event_webhooks (account_id, enabled, url, group_resubscribe,
				delivered, group_unsubscribe, spam_report, bounce, deferred, unsubscribe, processed, open, click, dropped)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (account_id) DO UPDATE SET
				enabled = excluded.enabled, url = excluded.url, group_resubscribe = excluded.group_resubscribe,
				delivered = excluded.delivered, group_unsubscribe = excluded.group_unsubscribe,
				spam_report = excluded.spam_report, bounce = excluded.bounce, deferred = excluded.deferred,
				unsubscribe = excluded.unsubscribe, processed = excluded.processed, open = excluded.open,
				click = excluded.click, dropped = excluded.dropped`,
			accountID, s.Enabled, s.URL, s.GroupResubscribe, s.Delivered, s.GroupUnsubscribe, s.SpamReport,
			s.Bounce, s.Deferred, s.Unsubscribe, s.Processed, s.Open, s.Click, s.Dropped)
		if err != nil {
			return err
		}
		if s.URL != cur.URL {
			// A new URL is a new endpoint: the old one's backoff must
			// not keep the account's events from it. Attempts stay, so
			// that it is served in the failing lane until a post works.
			if _, err := tx.ExecContext(ctx, `UPDATE outbox_state SET next_attempt_at = 0 WHERE account_id = ?`, accountID); err != nil {
				return err
			}
		}
		out = s
		return nil
	})
	if err != nil {
		return sealpost.EventWebhookSettings{}, mapError("updating Event Webhook settings", err, "account not found", "")
	}
	return out, nil
}

func (db *DB) EventWebhookSigningKey(ctx context.Context, accountID int64) ([]byte, error) {
	var key []byte
	err := db.read.QueryRowContext(ctx,
		`SELECT w.signing_key FROM accounts a LEFT JOIN event_webhooks w ON w.account_id = a.id WHERE a.id = ?`,
		accountID).Scan(&key)
	if err != nil {
		return nil, mapError("reading Event Webhook signing key", err, "account not found", "")
	}
	if len(key) == 0 {
		return nil, nil
	}
	return key, nil
}

// SetEventWebhookSigningKey relies on the foreign key for a missing
// account; an empty key, like nil, turns signing off.
func (db *DB) SetEventWebhookSigningKey(ctx context.Context, accountID int64, key []byte) error {
	var stored any // NULL: a nil []byte would bind as an empty blob
	if len(key) > 0 {
		stored = key
	}
	_, err := db.write.ExecContext(ctx,
		`INSERT INTO event_webhooks (account_id, signing_key) VALUES (?, ?)
		 ON CONFLICT (account_id) DO UPDATE SET signing_key = excluded.signing_key`,
		accountID, stored)
	if err != nil {
		return mapError("storing Event Webhook signing key", err, "account not found", "")
	}
	return nil
}

func (db *DB) EventWebhookBacklog(ctx context.Context, accountID int64) (sealpost.EventWebhookBacklog, error) {
	var b sealpost.EventWebhookBacklog
	var oldest sql.NullInt64
	var next, failing int64
	err := db.read.QueryRowContext(ctx, `SELECT
		(SELECT count(*) FROM (SELECT 1 FROM events WHERE account_id = a.id LIMIT ?)),
		(SELECT created_at FROM events WHERE account_id = a.id ORDER BY id LIMIT 1),
		COALESCE(s.attempts, 0), COALESCE(s.next_attempt_at, 0), COALESCE(s.failing_since, 0)
		FROM accounts a LEFT JOIN outbox_state s ON s.account_id = a.id
		WHERE a.id = ?`, sealpost.MaxBacklogCount, accountID).Scan(&b.Pending, &oldest, &b.Attempts, &next, &failing)
	if err != nil {
		return sealpost.EventWebhookBacklog{}, mapError("reading Event Webhook backlog", err, "account not found", "")
	}
	if oldest.Valid {
		b.Oldest = time.Unix(0, oldest.Int64)
	}
	if next > 0 {
		b.NextAttempt = time.Unix(0, next)
	}
	if failing > 0 {
		b.FailingSince = time.Unix(0, failing)
	}
	return b, nil
}
