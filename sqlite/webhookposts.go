package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/sealpost/sealpost"
)

func (db *DB) RecordEventWebhookPost(ctx context.Context, p sealpost.EventWebhookPost) error {
	err := db.writeTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO event_webhook_posts
			(account_id, at, host, events, status, error, duration, test) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			p.AccountID, p.At.UnixNano(), p.Host, p.Events, p.Status, p.Error, int64(p.Duration), p.Test); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM event_webhook_posts WHERE account_id = ? AND id <= (
			SELECT id FROM event_webhook_posts WHERE account_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)`,
			p.AccountID, p.AccountID, sealpost.MaxEventWebhookPosts)
		return err
	})
	return domainError("recording event webhook post", err, "account not found", "")
}

func (db *DB) EventWebhookPosts(ctx context.Context, accountID int64, limit int) ([]sealpost.EventWebhookPost, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT at, host, events, status, error, duration, test
		FROM event_webhook_posts WHERE account_id = ? ORDER BY id DESC LIMIT ?`, accountID, limit)
	if err != nil {
		return nil, mapError("reading event webhook posts", err, "", "")
	}
	defer rows.Close()
	var out []sealpost.EventWebhookPost
	for rows.Next() {
		p := sealpost.EventWebhookPost{AccountID: accountID}
		var at, duration int64
		if err := rows.Scan(&at, &p.Host, &p.Events, &p.Status, &p.Error, &duration, &p.Test); err != nil {
			return nil, mapError("reading event webhook posts", err, "", "")
		}
		p.At, p.Duration = fromUnixNano(at), time.Duration(duration)
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, mapError("reading event webhook posts", err, "", "")
	}
	return out, nil
}
