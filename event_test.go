package sealpost

import (
	"encoding/json"
	"testing"
	"time"
)

func TestNewEvent(t *testing.T) {
	msg := &Message{
		AccountID:  7,
		SMTPID:     "<abc@sealpost.test>",
		Categories: []string{"cat facts"},
		CustomArgs: map[string]string{"order": "42", "event": "forged", "sealpost": "forged", "tls": "forged"},
	}
	rcpt := Recipient{Email: "a@example.com", SGMessageID: "XID.0"}
	at := time.Unix(1513299569, 0)
	facts := &TLSFacts{TLS: true, Version: "1.3", Cipher: "TLS_AES_128_GCM_SHA256", Verified: true, MXHost: "mx.example.com"}
	tests := []struct {
		name string
		kind EventKind
		det  EventDetails
		want map[string]any // every key of the event but sg_event_id
	}{
		{"processed", EventProcessed, EventDetails{}, map[string]any{
			"email": "a@example.com", "timestamp": 1513299569.0, "event": "processed", "sg_message_id": "XID.0",
			"smtp-id": "<abc@sealpost.test>", "category": "cat facts", "order": "42",
		}},
		{"delivered", EventDelivered, EventDetails{Response: "250 OK", TLS: facts}, map[string]any{
			"email": "a@example.com", "timestamp": 1513299569.0, "event": "delivered", "sg_message_id": "XID.0",
			"smtp-id": "<abc@sealpost.test>", "category": "cat facts", "order": "42", "response": "250 OK", "tls": 1.0,
			"sealpost": map[string]any{"tls": true, "tls_version": "1.3", "tls_cipher": "TLS_AES_128_GCM_SHA256", "cert_verified": true, "mx_host": "mx.example.com"},
		}},
		{"deferred", EventDeferred, EventDetails{Response: "451 try later", Attempt: 2, TLS: &TLSFacts{}}, map[string]any{
			"email": "a@example.com", "timestamp": 1513299569.0, "event": "deferred", "sg_message_id": "XID.0",
			"smtp-id": "<abc@sealpost.test>", "category": "cat facts", "order": "42", "response": "451 try later", "attempt": "2",
			"sealpost": map[string]any{"tls": false, "cert_verified": false},
		}},
		{"blocked", EventBounce, EventDetails{Reason: BlockedReason, Status: BlockedStatus, Type: "blocked", TLS: &TLSFacts{ResultType: ResultSTARTTLSNotSupported}}, map[string]any{
			"email": "a@example.com", "timestamp": 1513299569.0, "event": "bounce", "sg_message_id": "XID.0",
			"smtp-id": "<abc@sealpost.test>", "category": "cat facts", "order": "42", "reason": "TLS required but not supported",
			"status": "5.7.10", "type": "blocked", "tls": 0.0,
			"sealpost": map[string]any{"tls": false, "cert_verified": false, "result_type": "starttls-not-supported"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := NewEvent(tc.kind, msg, rcpt, at, tc.det)
			if err != nil {
				t.Fatal(err)
			}
			posted, err := ev.Posted()
			if err != nil {
				t.Fatal(err)
			}
			var got map[string]any
			if err := json.Unmarshal(posted, &got); err != nil {
				t.Fatal(err)
			}
			id, _ := got["sg_event_id"].(string)
			if len(id) != 22 || id != ev.SGEventID {
				t.Errorf("sg_event_id = %q, want the 22-character id %q", id, ev.SGEventID)
			}
			delete(got, "sg_event_id")
			gotJSON, _ := json.Marshal(got)
			wantJSON, _ := json.Marshal(tc.want)
			if string(gotJSON) != string(wantJSON) {
				t.Errorf("event\n got %s\nwant %s", gotJSON, wantJSON)
			}
			if ev.AccountID != 7 || ev.Kind != tc.kind {
				t.Errorf("AccountID, Kind = %d, %s", ev.AccountID, ev.Kind)
			}
		})
	}
}

func TestNewEventCategories(t *testing.T) {
	msg := &Message{Categories: []string{"a", "b"}}
	ev, err := NewEvent(EventProcessed, msg, Recipient{Email: "x@y.z"}, time.Unix(1, 0), EventDetails{})
	if err != nil {
		t.Fatal(err)
	}
	posted, err := ev.Posted()
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Category []string `json:"category"`
	}
	if err := json.Unmarshal(posted, &got); err != nil || len(got.Category) != 2 {
		t.Errorf("several categories must be posted as an array: %s", posted)
	}
}

func TestEventWebhookWants(t *testing.T) {
	s := EventWebhookSettings{Enabled: true, URL: "http://h/", Delivered: true, Bounce: true}
	for kind, want := range map[EventKind]bool{EventDelivered: true, EventBounce: true, EventProcessed: false, EventDeferred: false} {
		if s.Wants(kind) != want {
			t.Errorf("Wants(%s) = %v", kind, !want)
		}
	}
	s.Enabled = false
	if s.Wants(EventDelivered) {
		t.Error("a disabled webhook wants nothing")
	}
}
