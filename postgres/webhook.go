package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sealpost/sealpost"
)

// webhookBoolColumns are the settings' boolean columns, named as the JSON
// members of sealpost.EventWebhookPatch.Bools so that a patch maps onto them
// one to one.
var webhookBoolColumns = []string{
	"enabled", "group_resubscribe", "delivered", "group_unsubscribe", "spam_report",
	"bounce", "deferred", "unsubscribe", "processed", "open", "click", "dropped",
}

// webhookSelectColumns reads a settings row, or the defaults when the
// LEFT JOIN found none. Queries name the table w.
var webhookSelectColumns = func() string {
	cols := []string{"COALESCE(w.url, '')"}
	for _, c := range webhookBoolColumns {
		cols = append(cols, "COALESCE(w."+c+", false)")
	}
	return strings.Join(cols, ", ")
}()

// webhookUpsert creates the row from the defaults or updates it, each
// column taking its parameter unless that is NULL (absent from the patch).
// The row lock ON CONFLICT takes serialises concurrent patches from any node,
// so patches of different fields merge instead of overwriting each other.
var webhookUpsert = func() string {
	cols := []string{"account_id", "url"}
	vals := []string{"$1", "COALESCE($2, '')"}
	sets := []string{"url = COALESCE($2, w.url)"}
	ret := []string{"w.url"}
	for i, c := range webhookBoolColumns {
		p := fmt.Sprintf("$%d::boolean", i+3)
		cols = append(cols, c)
		vals = append(vals, "COALESCE("+p+", false)")
		sets = append(sets, c+" = COALESCE("+p+", w."+c+")")
		ret = append(ret, "w."+c)
	}
	return "INSERT INTO event_webhooks AS w (" + strings.Join(cols, ", ") + ") VALUES (" + strings.Join(vals, ", ") +
		") ON CONFLICT (account_id) DO UPDATE SET " + strings.Join(sets, ", ") +
		" RETURNING " + strings.Join(ret, ", ")
}()

func scanWebhookSettings(row pgx.Row) (sealpost.EventWebhookSettings, error) {
	var s sealpost.EventWebhookSettings
	err := row.Scan(&s.URL, &s.Enabled, &s.GroupResubscribe, &s.Delivered, &s.GroupUnsubscribe, &s.SpamReport,
		&s.Bounce, &s.Deferred, &s.Unsubscribe, &s.Processed, &s.Open, &s.Click, &s.Dropped)
	return s, err
}

func (db *DB) EventWebhookSettings(ctx context.Context, accountID int64) (sealpost.EventWebhookSettings, error) {
	s, err := scanWebhookSettings(db.pool.QueryRow(ctx, `
		SELECT `+webhookSelectColumns+`
		FROM accounts a LEFT JOIN event_webhooks w ON w.account_id = a.id
		WHERE a.id = $1`, accountID))
	return s, storeErr(err, "account")
}

// UpdateEventWebhookSettings applies patch in one statement; an unknown
// account fails the foreign key, which storeErr reports as ENOTFOUND.
func (db *DB) UpdateEventWebhookSettings(ctx context.Context, accountID int64, patch sealpost.EventWebhookPatch) (sealpost.EventWebhookSettings, error) {
	args := make([]any, 0, 2+len(webhookBoolColumns))
	args = append(args, accountID, patch.URL)
	for _, c := range webhookBoolColumns {
		var v *bool // NULL keeps the stored value
		if b, ok := patch.Bools[c]; ok {
			v = &b
		}
		args = append(args, v)
	}
	var s sealpost.EventWebhookSettings
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var oldURL string
		if patch.URL != nil {
			err := tx.QueryRow(ctx, `SELECT url FROM event_webhooks WHERE account_id = $1 FOR UPDATE`, accountID).Scan(&oldURL)
			if err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
		}
		var err error
		if s, err = scanWebhookSettings(tx.QueryRow(ctx, webhookUpsert, args...)); err != nil {
			return err
		}
		if patch.URL != nil && *patch.URL != oldURL {
			// A new URL is a new endpoint: the old one's backoff must
			// not keep the account's events from it. Attempts stay, so
			// that it is served in the failing lane until a post works.
			_, err = tx.Exec(ctx, `UPDATE outbox_accounts SET next_attempt_at = DEFAULT WHERE account_id = $1`, accountID)
		}
		return err
	})
	if err != nil {
		return sealpost.EventWebhookSettings{}, storeErr(err, "account")
	}
	return s, nil
}

func (db *DB) EventWebhookSigningKey(ctx context.Context, accountID int64) ([]byte, error) {
	var key []byte
	err := db.pool.QueryRow(ctx, `
		SELECT w.signing_key
		FROM accounts a LEFT JOIN event_webhooks w ON w.account_id = a.id
		WHERE a.id = $1`, accountID).Scan(&key)
	if err != nil {
		return nil, storeErr(err, "account")
	}
	return key, nil
}

func (db *DB) SetEventWebhookSigningKey(ctx context.Context, accountID int64, key []byte) error {
	if len(key) == 0 {
		key = nil // an empty key is no key: NULL, not an empty BYTEA
	}
	_, err := db.pool.Exec(ctx, `
		INSERT INTO event_webhooks (account_id, signing_key) VALUES ($1, $2)
		ON CONFLICT (account_id) DO UPDATE SET signing_key = excluded.signing_key`,
		accountID, key)
	return storeErr(err, "account")
}

func (db *DB) EventWebhookBacklog(ctx context.Context, accountID int64) (sealpost.EventWebhookBacklog, error) {
	var b sealpost.EventWebhookBacklog
	var oldest, failing *time.Time
	var next *int64
	err := db.pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM (SELECT 1 FROM outbox_events WHERE account_id = a.id LIMIT $1) w),
		(SELECT created_at FROM outbox_events WHERE account_id = a.id ORDER BY id LIMIT 1),
		COALESCE(s.attempts, 0), s.next_attempt_at, s.failing_since
		FROM accounts a LEFT JOIN outbox_accounts s ON s.account_id = a.id
		WHERE a.id = $2`, sealpost.MaxBacklogCount, accountID).Scan(&b.Pending, &oldest, &b.Attempts, &next, &failing)
	if err != nil {
		return sealpost.EventWebhookBacklog{}, storeErr(err, "account")
	}
	if oldest != nil {
		b.Oldest = *oldest
	}
	// The smallest BIGINT is "due whenever it has events".
	if next != nil && *next > 0 {
		b.NextAttempt = time.Unix(0, *next)
	}
	if failing != nil {
		b.FailingSince = *failing
	}
	return b, nil
}
