package sealpost

import (
	"context"
	"slices"
	"time"
)

// Message is one personalization of an accepted mail send, rendered to the
// RFC 5322 bytes that go over SMTP. A mail send with three personalizations
// becomes three Messages sharing one XMessageID.
type Message struct {
	ID        int64 // assigned by the store
	AccountID int64
	// XMessageID is the X-Message-Id header the mail send answered with.
	XMessageID string
	// SMTPID is the Message-ID header, angle brackets included; events carry
	// it as smtp-id.
	SMTPID string
	// From is the envelope sender (MAIL FROM).
	From string
	// Subject is the message's subject as the mail send gave it, for the
	// Email Activity feed.
	Subject string
	// Body holds the bytes this message shares with the other messages of
	// its mail send, stored once however many messages refer to it. The
	// complete message (header, blank line, body, CRLF line ends) is Layout
	// applied to Body; see Render.
	Body *MessageBody
	// Layout is this message's own part: its own bytes (recipient header
	// fields, Message-ID, overrides) and the slices of Body between them.
	// Empty, the message is Body.Data as is.
	Layout []byte
	// Categories and CustomArgs are this message's own, besides its Body's
	// (the request's): a personalization's custom_args. Every event about
	// the message carries both, merged: see EventCategories and
	// EventCustomArgs.
	Categories []string
	CustomArgs map[string]string
	Recipients []Recipient
	CreatedAt  time.Time
	// SendAt is the send_at the mail send asked for; zero, or not after
	// CreatedAt, means at once (see DueAt).
	SendAt time.Time
	// BatchID is the mail batch (batch_id) the send belongs to, whose
	// scheduled-send status can hold its mail or cancel it; empty for none.
	BatchID string
}

// MessageBody is what the messages of one mail send share: the header
// fields no personalization overrides, and the MIME body. A store keeps one
// copy of it however many messages refer to it, so that what a mail send
// stores grows with its request, not with the request's size times its
// personalizations.
type MessageBody struct {
	ID   int64 // assigned by the store
	Data []byte
	// Categories and CustomArgs are the request's categories and
	// custom_args, which every event about every message of the send
	// carries. They are kept once with the body, and kept after Data is
	// forgotten: events waiting to be posted still need them.
	Categories []string
	CustomArgs map[string]string
}

// EventCategories are the categories every event about m carries: its
// body's, then its own.
func (m *Message) EventCategories() []string {
	if m.Body == nil || len(m.Body.Categories) == 0 {
		return m.Categories
	}
	if len(m.Categories) == 0 {
		return m.Body.Categories
	}
	return slices.Concat(m.Body.Categories, m.Categories)
}

// EventCustomArgs are the custom args every event about m carries: its
// body's, over which its own win.
func (m *Message) EventCustomArgs() map[string]string {
	if m.Body == nil || len(m.Body.CustomArgs) == 0 {
		return m.CustomArgs
	}
	if len(m.CustomArgs) == 0 {
		return m.Body.CustomArgs
	}
	return mergeStrings(m.Body.CustomArgs, m.CustomArgs, false)
}

// Recipient is one envelope recipient (to, cc or bcc) of a Message.
type Recipient struct {
	ID     int64 // assigned by the store
	Email  string
	Domain string // lower case, the part after the last @
	// SGMessageID is <XMessageID>.<suffix>, unique per recipient; every
	// event about this recipient carries it as sg_message_id.
	SGMessageID string
	State       RecipientState
}

// RecipientState is where one recipient's delivery stands.
type RecipientState string

const (
	StateQueued    RecipientState = "queued"    // waiting for a (next) attempt
	StateDelivered RecipientState = "delivered" // the MX accepted it
	StateBounced   RecipientState = "bounced"   // permanent failure, or retries ran out
	StateBlocked   RecipientState = "blocked"   // no MX met the Enforced TLS policy
	StateDropped   RecipientState = "dropped"   // never attempted again: the account was disabled
)

// Final reports whether no further attempt will be made.
func (s RecipientState) Final() bool { return s != StateQueued }

// Delivery is the unit of work a delivery worker claims: the still-queued
// recipients of one message at one domain, delivered in one SMTP
// transaction.
type Delivery struct {
	ID         int64
	Message    *Message // Recipients holds only this delivery's queued recipients
	Domain     string
	Attempts   int // attempts already made before this one
	CreatedAt  time.Time
	LeaseOwner string
	LeaseUntil time.Time
	// Cancelled reports that the delivery was never attempted and its
	// mail batch's scheduled send is cancelled: it is to be discarded,
	// not sent.
	Cancelled bool
}

// RecipientUpdate is the new state of one recipient after an attempt.
type RecipientUpdate struct {
	RecipientID int64
	State       RecipientState
}

// DeliveryCompletion is what a worker records after an attempt, atomically:
// the recipients' new states, the events they caused, and when to try the
// still-queued ones again.
type DeliveryCompletion struct {
	DeliveryID int64
	Recipients []RecipientUpdate
	Events     []Event
	// NextAttemptAt applies when some recipient is still queued.
	NextAttemptAt time.Time
	// Unattempted hands the delivery back without having tried it (a node
	// shutting down with work claimed ahead): the attempt count stays.
	Unattempted bool
	// Observations are what the attempt learnt of the MX hosts it reached,
	// for the registry of recipient domains; recorded in the same
	// transaction as the rest.
	Observations []HostObservation
}

// QueueService is the durable delivery queue. On PostgreSQL several nodes
// share it: a claimed delivery is leased to one owner, and a lease that runs
// out (its node crashed) makes the delivery claimable again.
type QueueService interface {
	// EnqueueMessages stores msgs and their recipients (one delivery per
	// message and domain, due at the message's DueAt, in its BatchID) together with events (processed), in one
	// transaction: when it returns nil, all of it is durable. It also
	// counts the recipients per domain and day for the registry of
	// recipient domains (DomainRecipients). It sets the
	// IDs in msgs and their bodies. Messages sharing one *MessageBody share
	// one stored copy of it; its Data is forgotten once no message
	// referring to it has a delivery pending, its Categories and
	// CustomArgs are kept for the events. An event about a message (its
	// Message set) must be about one of msgs or one already stored
	// (EINVALID otherwise), and is stored referring to it.
	EnqueueMessages(ctx context.Context, msgs []*Message, events []Event) error
	// ClaimDeliveries leases up to limit due deliveries (next attempt at or
	// before now, no live lease) to owner until now+lease, oldest due first.
	// A delivery never attempted whose batch is paused is not due; one
	// whose batch is cancelled is claimed with Cancelled set.
	ClaimDeliveries(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]*Delivery, error)
	// CompleteDelivery records an attempt of a delivery leased to owner and
	// releases the lease. It fails with ECONFLICT, changing nothing, when the
	// lease is no longer owner's.
	CompleteDelivery(ctx context.Context, owner string, c DeliveryCompletion) error
	// RecipientStates returns every recipient of the messages with the given
	// X-Message-Id that belong to accountID, in enqueue order.
	RecipientStates(ctx context.Context, accountID int64, xMessageID string) ([]Recipient, error)
}

// MessageRows is how a store keeps messages: each distinct body once, and
// per message either a layout referring to one of them or, for a message
// without a body, the whole message.
type MessageRows struct {
	// Bodies are the distinct bodies of the messages, in order of first
	// use, with the account of the message that used each first.
	Bodies      []*MessageBody
	BodyAccount []int64
	// BodyNeeded reports whether some message with recipients uses the
	// body; nothing will ever read one that none does.
	BodyNeeded []bool
	// Body is, per message, the index of its body in Bodies, or -1.
	Body []int
	// Data is, per message, what is kept of it besides the body: its
	// layout, or its whole message when it has no body.
	Data [][]byte
}

// SplitMessages returns the rows that store msgs. It fails with EINVALID
// on a message without a body whose layout refers to one.
func SplitMessages(msgs []*Message) (MessageRows, error) {
	r := MessageRows{Body: make([]int, len(msgs)), Data: make([][]byte, len(msgs))}
	index := make(map[*MessageBody]int)
	for i, m := range msgs {
		if m.Body == nil {
			data, err := m.Render()
			if err != nil {
				return MessageRows{}, Errorf(EINVALID, "message %s: layout without a body: %v", m.SMTPID, err)
			}
			r.Body[i], r.Data[i] = -1, data
			continue
		}
		k, ok := index[m.Body]
		if !ok {
			k = len(r.Bodies)
			index[m.Body] = k
			r.Bodies = append(r.Bodies, m.Body)
			r.BodyAccount = append(r.BodyAccount, m.AccountID)
			r.BodyNeeded = append(r.BodyNeeded, false)
		}
		r.BodyNeeded[k] = r.BodyNeeded[k] || len(m.Recipients) > 0
		r.Body[i], r.Data[i] = k, m.Layout
	}
	return r, nil
}
