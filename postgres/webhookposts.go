package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sealpost/sealpost"
)

func (db *DB) RecordEventWebhookPost(ctx context.Context, p sealpost.EventWebhookPost) error {
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO event_webhook_posts
			(account_id, at, host, events, status, error, duration, test) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			p.AccountID, p.At.UnixNano(), p.Host, p.Events, p.Status, p.Error, int64(p.Duration), p.Test); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM event_webhook_posts WHERE account_id = $1 AND id <= (
			SELECT id FROM event_webhook_posts WHERE account_id = $1 ORDER BY id DESC LIMIT 1 OFFSET $2)`,
			p.AccountID, sealpost.MaxEventWebhookPosts)
		return err
	})
	return storeErr(err, "account")
}

func (db *DB) EventWebhookPosts(ctx context.Context, accountID int64, limit int) ([]sealpost.EventWebhookPost, error) {
	rows, err := db.pool.Query(ctx, `SELECT at, host, events, status, error, duration, test
		FROM event_webhook_posts WHERE account_id = $1 ORDER BY id DESC LIMIT $2`, accountID, limit)
	if err != nil {
		return nil, storeErr(err, "event webhook posts")
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (sealpost.EventWebhookPost, error) {
		p := sealpost.EventWebhookPost{AccountID: accountID}
		var at, duration int64
		err := row.Scan(&at, &p.Host, &p.Events, &p.Status, &p.Error, &duration, &p.Test)
		p.At, p.Duration = time.Unix(0, at).UTC(), time.Duration(duration)
		return p, err
	})
	return out, storeErr(err, "event webhook posts")
}
