package sealpost

import (
	"encoding/json"
	"maps"
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

// Event is one event about one recipient, exactly the JSON object the Event
// Webhook posts.
type Event struct {
	AccountID int64
	Kind      EventKind
	// SGEventID is unique and URL-safe, for receivers to de-duplicate on.
	SGEventID string
	Payload   json.RawMessage
}

// StoredEvent is an Event waiting in the outbox.
type StoredEvent struct {
	ID        int64 // increasing in the order events were stored
	Kind      EventKind
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

// NewEvent builds the event of kind about rcpt of msg at time at. Custom
// args are merged at the top level; reserved keys win.
func NewEvent(kind EventKind, msg *Message, rcpt Recipient, at time.Time, d EventDetails) (Event, error) {
	id, err := newURLSafeID()
	if err != nil {
		return Event{}, err
	}
	obj := make(map[string]any, 12+len(msg.CustomArgs))
	for k, v := range msg.CustomArgs {
		obj[k] = v
	}
	fields := map[string]any{
		"email":         rcpt.Email,
		"timestamp":     at.Unix(),
		"event":         string(kind),
		"sg_event_id":   id,
		"sg_message_id": rcpt.SGMessageID,
		"smtp-id":       msg.SMTPID,
	}
	switch len(msg.Categories) {
	case 0:
	case 1:
		fields["category"] = msg.Categories[0]
	default:
		fields["category"] = msg.Categories
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
	maps.Copy(obj, fields)
	for _, k := range reservedEventKeys {
		if _, ours := fields[k]; !ours {
			delete(obj, k)
		}
	}
	payload, err := json.Marshal(obj)
	if err != nil {
		return Event{}, Errorf(EINTERNAL, "encoding event: %v", err)
	}
	return Event{AccountID: msg.AccountID, Kind: kind, SGEventID: id, Payload: payload}, nil
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
