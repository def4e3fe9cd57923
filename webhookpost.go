package sealpost

import (
	"context"
	"net/url"
	"time"
)

// EventWebhookPost is one attempt to post to an account's Event Webhook,
// kept so that the account can see how its receiver has been answering.
type EventWebhookPost struct {
	AccountID int64
	At        time.Time // when the post started
	// Host is the URL's host (and port) only: the path, query and
	// userinfo of a webhook URL often carry the receiver's secrets, and a
	// record outlives the settings that held them.
	Host   string
	Events int // events in the body
	// Status is the receiver's HTTP status; 0 when there was no answer to
	// show.
	Status int
	// Error says in words why the post failed; empty when it worked.
	Error    string
	Duration time.Duration
	// Test marks a post of POST /v3/user/webhooks/event/test.
	Test bool
}

// MaxEventWebhookPosts is how many posts are kept per account: recording
// one drops the older ones, so that no account's history grows however
// often its receiver is posted to.
const MaxEventWebhookPosts = 100

// EventWebhookPostService keeps the recent posts of each account's Event
// Webhook.
type EventWebhookPostService interface {
	// RecordEventWebhookPost stores p and forgets all but the newest
	// MaxEventWebhookPosts of its account.
	RecordEventWebhookPost(ctx context.Context, p EventWebhookPost) error
	// EventWebhookPosts returns the account's newest posts, newest first,
	// at most limit of them.
	EventWebhookPosts(ctx context.Context, accountID int64, limit int) ([]EventWebhookPost, error)
}

// WebhookHost is the part of a webhook URL that is safe to log and to show:
// its host and port.
func WebhookHost(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return ""
	}
	return u.Host
}
