package sealpost

import (
	"context"
	"strconv"
	"time"
)

// MaxScheduleAhead is how far ahead send_at may lie: SendGrid schedules
// mail up to 72 hours in advance.
const MaxScheduleAhead = 72 * time.Hour

// MaxScheduledSends is how many of an account's batches may have a status
// (paused or cancelled) at one time: SendGrid allows 10, and answers the
// next with a 400.
const MaxScheduledSends = 10

// SendGrid's messages (its mail send errors reference, and its Cancel
// Scheduled Sends reference for the rest).
const (
	msgSendAtTooFar = "Scheduling more than 72 hours in advance is forbidden."
	// MsgInvalidBatchID is SendGrid's answer to a batch id it never
	// created for the account, on the batch routes; sealpost gives it on
	// mail send too, where SendGrid documents none.
	MsgInvalidBatchID = "invalid batch id"
	// MsgScheduledSendExists answers a POST for a batch that has a status.
	MsgScheduledSendExists = "a status for this batch id exists, try PATCH to update the status"
	// MsgScheduledSendLimit answers a POST past MaxScheduledSends.
	MsgScheduledSendLimit = "max limit reached"
	// MsgBatchNotFound answers a PATCH or DELETE of a batch without a
	// status.
	MsgBatchNotFound = "batch id not found"
)

// BatchStatus is a scheduled send's status: what holds a mail batch's
// scheduled mail back.
type BatchStatus string

const (
	// BatchPause keeps the batch's mail queued, even past its send_at,
	// until the status is deleted.
	BatchPause BatchStatus = "pause"
	// BatchCancel discards the batch's mail when it falls due; SendGrid
	// sends nothing and reports no event for it.
	BatchCancel BatchStatus = "cancel"
)

// Valid reports whether s is one of SendGrid's statuses.
func (s BatchStatus) Valid() bool { return s == BatchPause || s == BatchCancel }

// ScheduledSend is a mail batch with a status set.
type ScheduledSend struct {
	BatchID string
	Status  BatchStatus
}

// BatchService keeps the mail batches (POST /v3/mail/batch) and their
// scheduled-send statuses. A batch belongs to the account that created it;
// every method fails with ENOTFOUND for a batch of another account, as for
// one that does not exist.
type BatchService interface {
	// CreateBatch stores a new batch of accountID.
	CreateBatch(ctx context.Context, accountID int64, batchID string) error
	// BatchExists reports whether accountID created batchID.
	BatchExists(ctx context.Context, accountID int64, batchID string) (bool, error)
	// SetScheduledSend sets the batch's status. With create it fails with
	// ECONFLICT when a status is already set, and with ELIMIT when
	// MaxScheduledSends of the account's batches have one (counted and
	// set atomically, on every node); without create, with ENOTFOUND when
	// none is set.
	SetScheduledSend(ctx context.Context, accountID int64, batchID string, status BatchStatus, create bool) error
	// ScheduledSends lists the account's batches that have a status, by
	// batch id.
	ScheduledSends(ctx context.Context, accountID int64) ([]ScheduledSend, error)
	// DeleteScheduledSend removes the batch's status, releasing its mail;
	// ENOTFOUND when none is set.
	DeleteScheduledSend(ctx context.Context, accountID int64, batchID string) error
}

// NewBatchID returns a new random batch id in SendGrid's form (letters,
// digits, - and _).
func NewBatchID() (string, error) { return newURLSafeID() }

// DueAt is when the message's first attempt is due: its send_at, or its
// acceptance when that is later.
func (m *Message) DueAt() time.Time {
	if m.SendAt.After(m.CreatedAt) {
		return m.SendAt
	}
	return m.CreatedAt
}

// CheckSchedule refuses a send_at more than MaxScheduleAhead after now;
// one in the past means at once, as SendGrid sends it.
func (ms *MailSend) CheckSchedule(now time.Time) error {
	var problems []FieldError
	limit := now.Add(MaxScheduleAhead).Unix()
	if ms.SendAt > limit {
		problems = append(problems, FieldError{Field: "send_at", Message: msgSendAtTooFar})
	}
	for i, pz := range ms.Personalizations {
		if pz.SendAt > limit {
			problems = append(problems, FieldError{Field: "personalizations." + strconv.Itoa(i) + ".send_at", Message: msgSendAtTooFar})
		}
	}
	if len(problems) > 0 {
		return Invalid(problems...)
	}
	return nil
}

// sendAtOf is when a personalization is to be sent: its own send_at, else
// the request's; zero for at once.
func (ms *MailSend) sendAtOf(pz Personalization) time.Time {
	at := pz.SendAt
	if at == 0 {
		at = ms.SendAt
	}
	if at <= 0 {
		return time.Time{}
	}
	return time.Unix(at, 0).UTC()
}

// ValidBatchID reports whether s has the form of a batch id: 1 to 100
// letters, digits, - and _.
func ValidBatchID(s string) bool {
	if s == "" || len(s) > 100 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// ScheduledSendMiss is the error of a store that could not change or
// delete a batch's status: ENOTFOUND for a batch accountID never created,
// and for one without a status.
func ScheduledSendMiss(ctx context.Context, b BatchService, accountID int64, batchID string) error {
	ok, err := b.BatchExists(ctx, accountID, batchID)
	switch {
	case err != nil:
		return err
	case !ok:
		return Errorf(ENOTFOUND, "%s", MsgInvalidBatchID)
	}
	return Errorf(ENOTFOUND, "batch id %s has no scheduled send status", batchID)
}

// CheckNewScheduledSend decides a status's creation from what a store read
// inside the transaction that will set it: whether accountID created the
// batch, whether it has a status, and how many of the account's batches
// have one.
func CheckNewScheduledSend(batchID string, exists, hasStatus bool, withStatus int) error {
	switch {
	case !exists:
		return Errorf(ENOTFOUND, "%s", MsgInvalidBatchID)
	case hasStatus:
		return Errorf(ECONFLICT, "batch id %s already has a scheduled send status", batchID)
	case withStatus >= MaxScheduledSends:
		return &Error{Code: ELIMIT, Fields: []FieldError{{Message: MsgScheduledSendLimit}}}
	}
	return nil
}
