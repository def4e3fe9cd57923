package sealpost

import (
	"encoding/json"
	"maps"
	"testing"
	"time"
)

// eventBeforeReferences is NewEvent as it was when every event was stored
// with its message's categories and custom args merged in, kept as the
// oracle of what Posted must still produce, byte for byte.
func eventBeforeReferences(id string, kind EventKind, categories []string, customArgs map[string]string, smtpID string, rcpt Recipient, at time.Time, d EventDetails) ([]byte, error) {
	obj := make(map[string]any, 12+len(customArgs))
	for k, v := range customArgs {
		obj[k] = v
	}
	fields := map[string]any{
		"email":         rcpt.Email,
		"timestamp":     at.Unix(),
		"event":         string(kind),
		"sg_event_id":   id,
		"sg_message_id": rcpt.SGMessageID,
		"smtp-id":       smtpID,
	}
	switch len(categories) {
	case 0:
	case 1:
		fields["category"] = categories[0]
	default:
		fields["category"] = categories
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
	return json.Marshal(obj)
}

// checkPostedAsBefore fails t unless every kind of event about msg posts
// the bytes the oracle gives for msg's merged categories and custom args.
func checkPostedAsBefore(t *testing.T, msg *Message, rcpt Recipient, d EventDetails) {
	t.Helper()
	at := time.Unix(1513299569, 0)
	for _, kind := range []EventKind{EventProcessed, EventDelivered, EventDeferred, EventBounce, EventDropped} {
		ev, err := NewEvent(kind, msg, rcpt, at, d)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ev.Posted()
		if err != nil {
			t.Fatalf("%s: Posted: %v", kind, err)
		}
		want, err := eventBeforeReferences(ev.SGEventID, kind, msg.EventCategories(), msg.EventCustomArgs(), msg.SMTPID, rcpt, at, d)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("%s event posted\n%s\nwant, as before events referred to their message,\n%s", kind, got, want)
		}
	}
}

func TestPostedEventMatchesMergedEvent(t *testing.T) {
	facts := &TLSFacts{TLS: true, Version: "1.3", Cipher: "TLS_AES_128_GCM_SHA256", Verified: true, MXHost: "mx.example.com", MXIP: "192.0.2.1"}
	body := func(cats []string, args map[string]string) *MessageBody {
		return &MessageBody{Data: []byte("x"), Categories: cats, CustomArgs: args}
	}
	tests := []struct {
		name string
		msg  *Message
		det  EventDetails
	}{
		{"nothing to merge", &Message{SMTPID: "<a@b>"}, EventDetails{}},
		{"no body", &Message{SMTPID: "<a@b>", Categories: []string{"one"}, CustomArgs: map[string]string{"k": "v"}}, EventDetails{Response: "250 OK", TLS: facts}},
		{"request's only", &Message{SMTPID: "<a@b>", Body: body([]string{"c1", "c2"}, map[string]string{"order": "42", "z": "last", "0": "first"})},
			EventDetails{Response: "451 later", Attempt: 3, TLS: &TLSFacts{}}},
		{"personalization overrides", &Message{SMTPID: "<a@b>", CustomArgs: map[string]string{"order": "own", "extra": "p"},
			Body: body([]string{"only"}, map[string]string{"order": "42", "shared": "s"})}, EventDetails{Reason: BlockedReason, Status: BlockedStatus, Type: "blocked", TLS: &TLSFacts{ResultType: ResultSTARTTLSNotSupported}}},
		{"reserved names dropped", &Message{SMTPID: "<a@b>", CustomArgs: map[string]string{"event": "forged", "tls": "x", "sealpost": "y", "category": "c"},
			Body: body(nil, map[string]string{"email": "forged", "timestamp": "0", "attempt": "9", "response": "r", "reason": "r", "status": "s", "type": "t", "smtp-id": "i", "sg_message_id": "m", "sg_event_id": "e"})},
			EventDetails{Response: "250 OK", Attempt: 2, TLS: facts}},
		{"reserved category dropped with no categories", &Message{SMTPID: "<a@b>", Body: body(nil, map[string]string{"category": "forged"})}, EventDetails{}},
		{"escaping", &Message{SMTPID: "<a&b@c>", CustomArgs: map[string]string{"<html>": "a & b < c > d \u2028 \"q\" \\ \x01"},
			Body: body([]string{"<cat>&"}, map[string]string{"ünïcode": "grüße ✓ 😀 中文", "bad utf8": "\xff\xfe"})}, EventDetails{Response: "250 <ok> & done"}},
		{"categories of body and message", &Message{SMTPID: "<a@b>", Categories: []string{"old row"}, Body: body([]string{"c"}, nil)}, EventDetails{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkPostedAsBefore(t, tc.msg, Recipient{Email: "a@example.com", SGMessageID: "XID.0"}, tc.det)
		})
	}
}

func FuzzPostedEventMatchesMergedEvent(f *testing.F) {
	f.Add("order", "42", "own", "p", "cat", "a@example.com", "250 OK")
	f.Add("event", "forged", "category", "x", "", "<x>@y", "")
	f.Add("\u2028", "<&>", "k", "\xff", "c1", "ü@ü", "\x00")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2, category, email, response string) {
		msg := &Message{SMTPID: "<" + email + ">", CustomArgs: map[string]string{k2: v2},
			Body: &MessageBody{CustomArgs: map[string]string{k1: v1, "fixed": v2}}}
		if category != "" {
			msg.Body.Categories = []string{category, category + "2"}[:1+len(category)%2]
		}
		checkPostedAsBefore(t, msg, Recipient{Email: email, SGMessageID: "XID." + k1}, EventDetails{Response: response, Attempt: len(v1)})
	})
}

// TestCompleteStoredEvents checks CompleteStoredEvents on a
// batch mixing events about messages, about a message no longer there, and
// complete ones.
func TestCompleteStoredEvents(t *testing.T) {
	shared := &MessageBody{Categories: []string{"c"}, CustomArgs: map[string]string{"k": "request"}}
	msgs := map[int64]*Message{
		1: {ID: 1, Body: shared, CustomArgs: map[string]string{"own": "1"}},
		2: {ID: 2, Body: shared},
	}
	events := []StoredEvent{
		{ID: 1, Payload: json.RawMessage(`{"event":"processed"}`)},
		{ID: 2, Payload: json.RawMessage(`{"event":"processed"}`)},
		{ID: 3, Payload: json.RawMessage(`{"event":"delivered"}`)},
		{ID: 4, Payload: json.RawMessage(`{"event":"old","k":"kept"}`)},
		{ID: 5, Payload: json.RawMessage(`{"event":"orphan"}`)},
	}
	if err := CompleteStoredEvents(events, []int64{1, 2, 1, 0, 9}, msgs); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`{"category":"c","event":"processed","k":"request","own":"1"}`,
		`{"category":"c","event":"processed","k":"request"}`,
		`{"category":"c","event":"delivered","k":"request","own":"1"}`,
		`{"event":"old","k":"kept"}`,
		`{"event":"orphan"}`,
	}
	for i, e := range events {
		if string(e.Payload) != want[i] {
			t.Errorf("event %d: %s, want %s", e.ID, e.Payload, want[i])
		}
	}
}
