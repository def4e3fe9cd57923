package sealpost

import (
	"encoding/json"
	"time"
)

// EventKind is a SendGrid event type.
type EventKind string

const (
	EventProcessed EventKind = "processed"
	EventDelivered EventKind = "delivered"
	EventDeferred  EventKind = "deferred"
	EventBounce    EventKind = "bounce"
	EventDropped   EventKind = "dropped"
)

// Event is one event about one recipient.
type Event struct {
	AccountID int64
	Kind      EventKind
	// SGEventID is unique and URL-safe, for receivers to de-duplicate on.
	SGEventID string
	// Payload is the JSON object the Event Webhook posts, but for the
	// categories and custom args of Message when Message is set: a store
	// keeps the event referring to the message, which keeps them once for
	// all its events (and the request's once for all its messages), and
	// completes the payload with CompletePayload when it hands the event
	// out to be posted. With Message nil, Payload is posted as it is.
	Payload json.RawMessage
	Message *Message
	// SGMessageID is the recipient the event is about, and At when it
	// happened: the Email Activity history keeps the event under them. An
	// event without SGMessageID is not kept there.
	SGMessageID string
	At          time.Time
}

// StoredEvent is an Event waiting in the outbox.
type StoredEvent struct {
	ID   int64 // increasing in the order events were stored
	Kind EventKind
	// Payload is complete, as Event.Posted gives it: the store has added
	// the categories and custom args of the event's message.
	Payload   json.RawMessage
	CreatedAt time.Time
}

// TLSFacts describe the TLS of the SMTP session an outcome came from. Events
// carry them under the reserved key "sealpost" so that no custom arg can
// collide with them.
type TLSFacts struct {
	TLS         bool   `json:"tls"`
	Version     string `json:"tls_version,omitempty"` // "1.2", "1.3"
	Cipher      string `json:"tls_cipher,omitempty"`
	Verified    bool   `json:"cert_verified"`
	VerifyError string `json:"cert_error,omitempty"`
	MXHost      string `json:"mx_host,omitempty"`
	MXIP        string `json:"mx_ip,omitempty"`
	// ResultType is the RFC 8460 result type of a policy failure:
	// starttls-not-supported, certificate-host-mismatch,
	// certificate-expired, certificate-not-trusted, validation-failure.
	ResultType string `json:"result_type,omitempty"`
}

// RFC 8460 result types.
const (
	ResultSTARTTLSNotSupported    = "starttls-not-supported"
	ResultCertificateHostMismatch = "certificate-host-mismatch"
	ResultCertificateExpired      = "certificate-expired"
	ResultCertificateNotTrusted   = "certificate-not-trusted"
	ResultValidationFailure       = "validation-failure"
)

// BlockedReason is SendGrid's reason on the bounce event of a recipient whose
// servers could not meet the Enforced TLS policy.
const (
	BlockedReason = "TLS required but not supported"
	BlockedStatus = "5.7.10"
)

// EventDetails are the kind-specific fields of an event. Zero fields are
// left out, except tls, which delivered and bounce always carry.
type EventDetails struct {
	Response string
	Attempt  int // deferred: 1 for the first deferral
	Reason   string
	Status   string
	Type     string // bounce: "bounce" or "blocked"
	TLS      *TLSFacts
}

// reservedEventKeys are the keys a custom arg may never override.
var reservedEventKeys = []string{
	"email", "timestamp", "event", "sg_event_id", "sg_message_id", "smtp-id",
	"category", "response", "attempt", "reason", "status", "type", "tls", "sealpost",
}

// IsReservedEventKey reports whether key is an event field that custom args
// cannot set.
func IsReservedEventKey(key string) bool {
	for _, k := range reservedEventKeys {
		if k == key {
			return true
		}
	}
	return false
}

// NewEvent builds the event of kind about rcpt of msg at time at. Its
// Payload holds the event's own fields only; the message's categories and
// custom args are added by CompletePayload (see Event.Posted) when the
// event is posted, so that storing an event does not copy them.
func NewEvent(kind EventKind, msg *Message, rcpt Recipient, at time.Time, d EventDetails) (Event, error) {
	id, err := newURLSafeID()
	if err != nil {
		return Event{}, err
	}
	fields := map[string]any{
		"email":         rcpt.Email,
		"timestamp":     at.Unix(),
		"event":         string(kind),
		"sg_event_id":   id,
		"sg_message_id": rcpt.SGMessageID,
		"smtp-id":       msg.SMTPID,
	}
	if d.Response != "" {
		fields["response"] = d.Response
	}
	if kind == EventDeferred && d.Attempt > 0 {
		fields["attempt"] = itoa(d.Attempt)
	}
	if d.Reason != "" {
		fields["reason"] = d.Reason
	}
	if d.Status != "" {
		fields["status"] = d.Status
	}
	if d.Type != "" {
		fields["type"] = d.Type
	}
	if d.TLS != nil {
		if kind == EventDelivered || kind == EventBounce {
			tlsInt := 0
			if d.TLS.TLS {
				tlsInt = 1
			}
			fields["tls"] = tlsInt
		}
		fields["sealpost"] = d.TLS
	}
	payload, err := json.Marshal(fields)
	if err != nil {
		return Event{}, Errorf(EINTERNAL, "encoding event: %v", err)
	}
	return Event{AccountID: msg.AccountID, Kind: kind, SGEventID: id, Payload: payload, Message: msg,
		SGMessageID: rcpt.SGMessageID, At: at}, nil
}

// Posted is the JSON object the Event Webhook posts for e: its Payload,
// completed with its Message's categories and custom args.
func (e Event) Posted() (json.RawMessage, error) {
	if e.Message == nil {
		return e.Payload, nil
	}
	return CompletePayload(e.Payload, e.Message.EventCategories(), e.Message.EventCustomArgs())
}

// CompletePayload adds to an event's own fields (as NewEvent encodes them)
// the categories and custom args of its message: the custom args at the
// top level, except those named like an event field, and the categories
// as "category", a string when there is one and an array otherwise. The
// result is the same bytes NewEvent produced when it merged them itself:
// keys sorted, values encoded by encoding/json.
func CompletePayload(own json.RawMessage, categories []string, customArgs map[string]string) (json.RawMessage, error) {
	if len(categories) == 0 && len(customArgs) == 0 {
		return own, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(own, &obj); err != nil {
		return nil, Errorf(EINTERNAL, "completing event: %v", err)
	}
	if obj == nil {
		return nil, Errorf(EINTERNAL, "completing event: payload %.40q is not an object", own)
	}
	for k, v := range customArgs {
		if _, set := obj[k]; set || IsReservedEventKey(k) {
			continue
		}
		enc, err := json.Marshal(v)
		if err != nil {
			return nil, Errorf(EINTERNAL, "encoding custom arg %q: %v", k, err)
		}
		obj[k] = enc
	}
	if len(categories) > 0 {
		var c any = categories
		if len(categories) == 1 {
			c = categories[0]
		}
		enc, err := json.Marshal(c)
		if err != nil {
			return nil, Errorf(EINTERNAL, "encoding categories: %v", err)
		}
		obj["category"] = enc
	}
	out, err := json.Marshal(obj)
	if err != nil {
		return nil, Errorf(EINTERNAL, "completing event: %v", err)
	}
	return out, nil
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// CompleteStoredEvents completes in place, with CompletePayload, the
// payloads of events a store kept referring to their messages: about[i] is
// the ID of the message events[i] is about, 0 when its payload is
// complete, and msgs holds those messages by ID, each with the categories
// and custom args of its Body. The merged ones are worked out once per
// message however many of its events the batch holds. An event whose
// message is not in msgs is left as it was stored: better posted without
// its custom args than holding up its account's outbox for good.
func CompleteStoredEvents(events []StoredEvent, about []int64, msgs map[int64]*Message) error {
	type merged struct {
		categories []string
		customArgs map[string]string
	}
	done := make(map[int64]merged)
	for i, id := range about {
		if id == 0 {
			continue
		}
		args, ok := done[id]
		if !ok {
			m := msgs[id]
			if m == nil {
				continue
			}
			args = merged{m.EventCategories(), m.EventCustomArgs()}
			done[id] = args
		}
		p, err := CompletePayload(events[i].Payload, args.categories, args.customArgs)
		if err != nil {
			return err
		}
		events[i].Payload = p
	}
	return nil
}
