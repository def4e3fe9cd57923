package sealpost

import (
	"context"
	"encoding/json"
	"time"
)

// SendGrid's Email Activity statuses of a message (one recipient of a mail
// send): what GET /v3/messages reports and its status filter matches.
const (
	ActivityProcessed    = "processed"     // accepted, not delivered yet (queued, maybe deferred)
	ActivityDelivered    = "delivered"     // the recipient's MX took it
	ActivityNotDelivered = "not_delivered" // bounced, blocked or dropped: it never will be
)

// DefaultActivityRetention is how long the Email Activity API lists a
// message after its last event when nothing else is configured: SendGrid's
// 30 days of history.
const DefaultActivityRetention = 30 * 24 * time.Hour

// MaxActivityLimit and DefaultActivityLimit are SendGrid's bounds on the
// limit parameter of GET /v3/messages.
const (
	MaxActivityLimit     = 1000
	DefaultActivityLimit = 10
)

// ActivityStatus is the Email Activity status of a recipient in state s.
func ActivityStatus(s RecipientState) string {
	switch s {
	case StateDelivered:
		return ActivityDelivered
	case StateQueued:
		return ActivityProcessed
	}
	return ActivityNotDelivered
}

// activityStates are the recipient states an Email Activity status stands
// for, the inverse of ActivityStatus.
func activityStates(status string) []RecipientState {
	switch status {
	case ActivityProcessed:
		return []RecipientState{StateQueued}
	case ActivityDelivered:
		return []RecipientState{StateDelivered}
	case ActivityNotDelivered:
		return []RecipientState{StateBounced, StateBlocked, StateDropped}
	}
	return nil
}

// ActivityMessage is one entry of the Email Activity feed: one recipient of
// one message, which SendGrid calls a message. MsgID is the recipient's
// sg_message_id, the id every event about it carries.
type ActivityMessage struct {
	MsgID         string
	FromEmail     string
	Subject       string
	ToEmail       string
	State         RecipientState
	LastEventTime time.Time
}

// ActivityEvent is one event about an activity message, as it was built:
// Payload holds the event's own fields (NewEvent's), the TLS facts under
// "sealpost" among them.
type ActivityEvent struct {
	Kind    EventKind
	At      time.Time
	Payload json.RawMessage
}

// ActivityDetail is an activity message with its categories, custom args
// and every event kept about it, oldest first.
type ActivityDetail struct {
	ActivityMessage
	Categories []string
	CustomArgs map[string]string
	Events     []ActivityEvent
}

// ActivityService is the Email Activity history: the queries behind
// GET /v3/messages and GET /v3/messages/{msg_id}, and their retention.
type ActivityService interface {
	// ListActivity returns up to limit of the account's activity messages
	// that match q (nil: all) and whose last event is at or after since,
	// latest event first.
	ListActivity(ctx context.Context, accountID int64, q *ActivityQuery, since time.Time, limit int) ([]ActivityMessage, error)
	// ActivityDetail returns the account's activity message msgID with its
	// events, ENOTFOUND when it has none whose last event is at or after
	// since.
	ActivityDetail(ctx context.Context, accountID int64, msgID string, since time.Time) (*ActivityDetail, error)
	// PruneActivity deletes the kept events that happened before t and
	// reports how many. It touches nothing the queue or the outbox read.
	PruneActivity(ctx context.Context, before time.Time) (int64, error)
}

// ActivityEventTime is when e happened: its At, or stored when it has none.
func ActivityEventTime(e Event, stored time.Time) time.Time {
	if e.At.IsZero() {
		return stored
	}
	return e.At
}

// LastEventTime is the time of the latest of events (see
// ActivityEventTime), false when there are none: a delivery's completion
// moves its recipients' last event time there.
func LastEventTime(events []Event, stored time.Time) (time.Time, bool) {
	var last time.Time
	for _, e := range events {
		if t := ActivityEventTime(e, stored); t.After(last) {
			last = t
		}
	}
	return last, len(events) > 0
}

// ActivityPruneChunk is how many kept events PruneActivity deletes per
// transaction.
const ActivityPruneChunk = 5000
