package sealpost

import (
	"context"
	"math"
	"net/url"
	"time"
)

// EventWebhookSettings is an account's one Event Webhook, exactly the object
// GET /v3/user/webhooks/event/settings returns (SendGrid's classic API).
type EventWebhookSettings struct {
	Enabled          bool   `json:"enabled"`
	URL              string `json:"url"`
	GroupResubscribe bool   `json:"group_resubscribe"`
	Delivered        bool   `json:"delivered"`
	GroupUnsubscribe bool   `json:"group_unsubscribe"`
	SpamReport       bool   `json:"spam_report"`
	Bounce           bool   `json:"bounce"`
	Deferred         bool   `json:"deferred"`
	Unsubscribe      bool   `json:"unsubscribe"`
	Processed        bool   `json:"processed"`
	Open             bool   `json:"open"`
	Click            bool   `json:"click"`
	Dropped          bool   `json:"dropped"`
}

// Wants reports whether events of kind are posted under s.
func (s EventWebhookSettings) Wants(kind EventKind) bool {
	if !s.Enabled || s.URL == "" {
		return false
	}
	switch kind {
	case EventProcessed:
		return s.Processed
	case EventDelivered:
		return s.Delivered
	case EventDeferred:
		return s.Deferred
	case EventBounce:
		return s.Bounce
	case EventDropped:
		return s.Dropped
	}
	return false
}

// EventWebhookPatch is a merge update of EventWebhookSettings: absent
// members keep their stored value.
type EventWebhookPatch struct {
	Bools map[string]bool // keyed by JSON member name
	URL   *string
}

// Apply returns s with the patch's present members replaced.
func (p EventWebhookPatch) Apply(s EventWebhookSettings) EventWebhookSettings {
	set := map[string]*bool{
		"enabled": &s.Enabled, "group_resubscribe": &s.GroupResubscribe, "delivered": &s.Delivered,
		"group_unsubscribe": &s.GroupUnsubscribe, "spam_report": &s.SpamReport, "bounce": &s.Bounce,
		"deferred": &s.Deferred, "unsubscribe": &s.Unsubscribe, "processed": &s.Processed,
		"open": &s.Open, "click": &s.Click, "dropped": &s.Dropped,
	}
	for k, v := range p.Bools {
		if ptr, ok := set[k]; ok {
			*ptr = v
		}
	}
	if p.URL != nil {
		s.URL = *p.URL
	}
	return s
}

// Validate reports what keeps s from being stored: an enabled webhook
// needs a URL to post to.
func (s EventWebhookSettings) Validate() *FieldError {
	if s.Enabled && s.URL == "" {
		return &FieldError{Field: "url", Message: "url is required when the webhook is enabled"}
	}
	return nil
}

// ValidateWebhookURL reports a problem with a webhook URL, or nil. An
// empty URL is allowed in settings (a disabled webhook needs none).
func validateWebhookURL(u string) string {
	if u == "" {
		return ""
	}
	if len(u) > 2048 {
		return "url must be at most 2048 characters"
	}
	parsed, err := url.Parse(u)
	if err != nil || (parsed.Scheme != "http" && parsed.Scheme != "https") || parsed.Host == "" {
		return "url must be an absolute http or https URL"
	}
	return ""
}

// ValidateWebhookURL reports a problem with a URL that must be present, such
// as the one of POST /v3/user/webhooks/event/test.
func ValidateWebhookURL(field, u string) *FieldError {
	if u == "" {
		return &FieldError{Field: field, Message: field + " is required"}
	}
	if msg := validateWebhookURL(u); msg != "" {
		return &FieldError{Field: field, Message: msg}
	}
	return nil
}

// EventWebhookService keeps accounts' Event Webhook settings and signing
// keys. A new account's webhook is disabled with every kind off.
type EventWebhookService interface {
	EventWebhookSettings(ctx context.Context, accountID int64) (EventWebhookSettings, error)
	UpdateEventWebhookSettings(ctx context.Context, accountID int64, patch EventWebhookPatch) (EventWebhookSettings, error)
	// EventWebhookSigningKey returns the account's ECDSA P-256 private key
	// as PKCS#8 DER, or nil when signing is off.
	EventWebhookSigningKey(ctx context.Context, accountID int64) ([]byte, error)
	// SetEventWebhookSigningKey stores key (PKCS#8 DER) and turns signing
	// on, or turns it off when key is nil.
	SetEventWebhookSigningKey(ctx context.Context, accountID int64, key []byte) error
}

// EventBatch is the oldest waiting events of one account, leased to one
// poster so that an account's events are posted in order, one batch at a
// time, by one node.
type EventBatch struct {
	AccountID int64
	Events    []StoredEvent
	// Attempts is how many posts of the account's head events have failed
	// in a row; FailingSince is when the first of them failed (zero when
	// none has).
	Attempts     int
	FailingSince time.Time
	LeaseOwner   string
}

// OutboxLane sorts the accounts with events waiting by how their last post
// went, so that endpoints known to fail can be served apart from healthy
// ones and never hold up their posts.
type OutboxLane int

const (
	// AnyOutbox is every account.
	AnyOutbox OutboxLane = iota
	// HealthyOutbox is the accounts whose last post did not fail
	// (Attempts is 0).
	HealthyOutbox
	// FailingOutbox is the accounts whose last post failed and that are
	// backing off (Attempts above 0).
	FailingOutbox
)

// AttemptsRange is the range of failed attempts (EventBatch.Attempts) of
// the accounts in l, both ends included.
func (l OutboxLane) AttemptsRange() (lo, hi int) {
	switch l {
	case HealthyOutbox:
		return 0, 0
	case FailingOutbox:
		return 1, math.MaxInt32
	}
	return 0, math.MaxInt32
}

// OutboxService is the durable outbox of events waiting to be posted.
type OutboxService interface {
	// ClaimEventBatch leases the oldest waiting events (at most max) of one
	// account whose outbox is due (no live lease, next attempt at or before
	// now) to owner until now+lease. It returns nil when none is due. Of the
	// due accounts it takes the one served least recently, so that claims go
	// round the accounts and none keeps the posters to itself.
	ClaimEventBatch(ctx context.Context, owner string, now time.Time, lease time.Duration, max int) (*EventBatch, error)
	// ClaimEventBatchInLane is ClaimEventBatch narrowed to the accounts
	// of lane.
	ClaimEventBatchInLane(ctx context.Context, owner string, lane OutboxLane, now time.Time, lease time.Duration, max int) (*EventBatch, error)
	// AckEventBatch deletes the batch's events (posted, or given up on),
	// clears the failure count and releases the lease. ECONFLICT when the
	// lease is no longer owner's.
	AckEventBatch(ctx context.Context, b *EventBatch) error
	// RetryEventBatch keeps the events, counts a failure (setting
	// FailingSince on the first) and makes the account due again at next.
	RetryEventBatch(ctx context.Context, b *EventBatch, next time.Time) error
}

// EventWebhookBacklog is what waits to be posted to one account's Event
// Webhook, as far as the outbox knows it.
type EventWebhookBacklog struct {
	// Pending counts the events waiting, up to MaxBacklogCount (more
	// reads as MaxBacklogCount).
	Pending int64
	// Oldest is when the first event in line was stored; zero when none.
	Oldest time.Time
	// Attempts counts the failed posts of the current head batch.
	Attempts int
	// NextAttempt is when the next post is due after a failure; zero when
	// it is due as soon as a poster is free.
	NextAttempt time.Time
	// FailingSince is the first failed post of the current run of
	// failures; zero when the last post worked.
	FailingSince time.Time
}

// MaxBacklogCount bounds the count of waiting events, so that reading the
// backlog of an account whose receiver has been down for days costs no
// more than reading a short one.
const MaxBacklogCount = 10000

// EventWebhookBacklogService reads the backlog of an account's Event
// Webhook.
type EventWebhookBacklogService interface {
	// EventWebhookBacklog is ENOTFOUND for an unknown account.
	EventWebhookBacklog(ctx context.Context, accountID int64) (EventWebhookBacklog, error)
}
