package postgres

import (
	"context"
	"time"

	"github.com/sealpost/sealpost"
)

// Placeholders until the queue, outbox and webhook tables land.

func (db *DB) EventWebhookSettings(ctx context.Context, accountID int64) (sealpost.EventWebhookSettings, error) {
	return sealpost.EventWebhookSettings{}, sealpost.Errorf(sealpost.EINTERNAL, "not implemented")
}

func (db *DB) UpdateEventWebhookSettings(ctx context.Context, accountID int64, patch sealpost.EventWebhookPatch) (sealpost.EventWebhookSettings, error) {
	return sealpost.EventWebhookSettings{}, sealpost.Errorf(sealpost.EINTERNAL, "not implemented")
}

func (db *DB) EventWebhookSigningKey(ctx context.Context, accountID int64) ([]byte, error) {
	return nil, sealpost.Errorf(sealpost.EINTERNAL, "not implemented")
}

func (db *DB) SetEventWebhookSigningKey(ctx context.Context, accountID int64, key []byte) error {
	return sealpost.Errorf(sealpost.EINTERNAL, "not implemented")
}

func (db *DB) EnqueueMessages(ctx context.Context, msgs []*sealpost.Message, events []sealpost.Event) error {
	return sealpost.Errorf(sealpost.EINTERNAL, "not implemented")
}

func (db *DB) ClaimDeliveries(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]*sealpost.Delivery, error) {
	return nil, sealpost.Errorf(sealpost.EINTERNAL, "not implemented")
}

func (db *DB) CompleteDelivery(ctx context.Context, owner string, c sealpost.DeliveryCompletion) error {
	return sealpost.Errorf(sealpost.EINTERNAL, "not implemented")
}

func (db *DB) RecipientStates(ctx context.Context, accountID int64, xMessageID string) ([]sealpost.Recipient, error) {
	return nil, sealpost.Errorf(sealpost.EINTERNAL, "not implemented")
}

func (db *DB) ClaimEventBatch(ctx context.Context, owner string, now time.Time, lease time.Duration, max int) (*sealpost.EventBatch, error) {
	return nil, sealpost.Errorf(sealpost.EINTERNAL, "not implemented")
}

func (db *DB) AckEventBatch(ctx context.Context, b *sealpost.EventBatch) error {
	return sealpost.Errorf(sealpost.EINTERNAL, "not implemented")
}

func (db *DB) RetryEventBatch(ctx context.Context, b *sealpost.EventBatch, next time.Time) error {
	return sealpost.Errorf(sealpost.EINTERNAL, "not implemented")
}
