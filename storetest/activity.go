package storetest

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
)

// activityWorld is two accounts' mail: the user's message to ann (then
// delivered over TLS) and bob (then blocked), and its subuser's to cy
// (still queued, one deferral).
type activityWorld struct {
	user, sub     *sealpost.Account
	t0            time.Time
	ann, bob, cy  string // their msg_ids
	delivered, at time.Time
}

func newActivityWorld(t *testing.T, s sealpost.Store) activityWorld {
	t.Helper()
	w := activityWorld{t0: baseTime()}
	w.user = createUser(t, s, "activity-user")
	w.sub = createSubuser(t, s, w.user, "activity-sub")
	m1 := newMessage(w.user.ID, "actX1", w.t0, "ann@a.example", "Bob@B.example")
	m1.Subject = "Hello ann"
	m2 := newMessage(w.sub.ID, "actX2", w.t0.Add(time.Second), "cy@c.example")
	m2.Subject = "For cy"
	m2.Body.Categories = nil
	m2.Categories = []string{"sub only"}
	var processed []sealpost.Event
	for _, m := range []*sealpost.Message{m1, m2} {
		for _, r := range m.Recipients {
			e, err := sealpost.NewEvent(sealpost.EventProcessed, m, r, m.CreatedAt, sealpost.EventDetails{})
			if err != nil {
				t.Fatal(err)
			}
			processed = append(processed, e)
		}
	}
	enqueue(t, s, []*sealpost.Message{m1, m2}, processed...)
	w.ann, w.bob, w.cy = m1.Recipients[0].SGMessageID, m1.Recipients[1].SGMessageID, m2.Recipients[0].SGMessageID

	w.delivered, w.at = w.t0.Add(time.Minute), w.t0.Add(2*time.Minute)
	for _, d := range claim(t, s, "node", w.t0.Add(time.Hour), time.Minute, 10) {
		rc := d.Message.Recipients[0]
		c := sealpost.DeliveryCompletion{DeliveryID: d.ID}
		var e sealpost.Event
		var err error
		switch d.Domain {
		case "a.example":
			c.Recipients = []sealpost.RecipientUpdate{{RecipientID: rc.ID, State: sealpost.StateDelivered}}
			e, err = sealpost.NewEvent(sealpost.EventDelivered, d.Message, rc, w.delivered, sealpost.EventDetails{Response: "250 ok",
				TLS: &sealpost.TLSFacts{TLS: true, Version: "1.3", Cipher: "TLS_AES_128_GCM_SHA256", Verified: true, MXHost: "mx.a.example"}})
		case "b.example":
			c.Recipients = []sealpost.RecipientUpdate{{RecipientID: rc.ID, State: sealpost.StateBlocked}}
			e, err = sealpost.NewEvent(sealpost.EventBounce, d.Message, rc, w.at, sealpost.EventDetails{
				Reason: sealpost.BlockedReason, Status: sealpost.BlockedStatus, Type: "blocked",
				TLS: &sealpost.TLSFacts{MXHost: "mx.b.example", ResultType: sealpost.ResultSTARTTLSNotSupported}})
		default:
			c.Recipients = []sealpost.RecipientUpdate{{RecipientID: rc.ID, State: sealpost.StateQueued}}
			c.NextAttemptAt = w.t0.Add(24 * time.Hour)
			e, err = sealpost.NewEvent(sealpost.EventDeferred, d.Message, rc, w.at, sealpost.EventDetails{Response: "421 busy", Attempt: 1,
				TLS: &sealpost.TLSFacts{MXHost: "mx.c.example"}})
		}
		if err != nil {
			t.Fatal(err)
		}
		c.Events = []sealpost.Event{e}
		complete(t, s, "node", c)
	}
	return w
}

func listActivity(t *testing.T, s sealpost.Store, accountID int64, query string, since time.Time, limit int) []string {
	t.Helper()
	q, err := sealpost.ParseActivityQuery(query)
	if err != nil {
		t.Fatalf("ParseActivityQuery(%q): %v", query, err)
	}
	got, err := s.ListActivity(t.Context(), accountID, q, since, limit)
	if err != nil {
		t.Fatalf("ListActivity(%d, %q): %v", accountID, query, err)
	}
	ids := []string{}
	for _, m := range got {
		ids = append(ids, m.MsgID)
	}
	return ids
}

func testActivityList(t *testing.T, s sealpost.Store) {
	w := newActivityWorld(t, s)
	since := w.t0.Add(-time.Hour)
	got, err := s.ListActivity(t.Context(), w.user.ID, nil, since, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []sealpost.ActivityMessage{
		{MsgID: w.bob, FromEmail: "sender@example.com", Subject: "Hello ann", ToEmail: "Bob@B.example", State: sealpost.StateBlocked, LastEventTime: w.at},
		{MsgID: w.ann, FromEmail: "sender@example.com", Subject: "Hello ann", ToEmail: "ann@a.example", State: sealpost.StateDelivered, LastEventTime: w.delivered},
	}
	if len(got) != len(want) {
		t.Fatalf("ListActivity = %+v, want %+v", got, want)
	}
	for i := range want {
		if g := got[i]; g.MsgID != want[i].MsgID || g.FromEmail != want[i].FromEmail || g.Subject != want[i].Subject ||
			g.ToEmail != want[i].ToEmail || g.State != want[i].State || !g.LastEventTime.Equal(want[i].LastEventTime) {
			t.Errorf("entry %d = %+v, want %+v", i, g, want[i])
		}
	}
	if ids := listActivity(t, s, w.sub.ID, "", since, 10); !slices.Equal(ids, []string{w.cy}) {
		t.Errorf("the subuser's activity = %v, want only %s", ids, w.cy)
	}
	if ids := listActivity(t, s, w.user.ID, "", since, 1); !slices.Equal(ids, []string{w.bob}) {
		t.Errorf("limit 1 = %v, want the latest, %s", ids, w.bob)
	}
	// Past the retention: bob's last event is newer than ann's.
	if ids := listActivity(t, s, w.user.ID, "", w.delivered.Add(time.Second), 10); !slices.Equal(ids, []string{w.bob}) {
		t.Errorf("since after ann's last event = %v, want only %s", ids, w.bob)
	}
}

func testActivityQuery(t *testing.T, s sealpost.Store) {
	w := newActivityWorld(t, s)
	since := w.t0.Add(-time.Hour)
	ts := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	tests := []struct {
		query string
		want  []string
	}{
		{`to_email="ann@a.example"`, []string{w.ann}},
		{`to_email="ANN@a.example"`, []string{}},
		{`to_email LIKE "%@b.EXAMPLE"`, []string{w.bob}},
		{`to_email NOT LIKE "bob%"`, []string{w.ann}},
		{`from_email="sender@example.com"`, []string{w.bob, w.ann}},
		{`subject="Hello ann"`, []string{w.bob, w.ann}},
		{`subject LIKE "hello%" AND status="delivered"`, []string{w.ann}},
		{`status="not_delivered"`, []string{w.bob}},
		{`status="processed"`, []string{}},
		{`status IN ("processed", "delivered")`, []string{w.ann}},
		{`msg_id="` + w.ann + `"`, []string{w.ann}},
		{`msg_id LIKE "actX1%"`, []string{w.bob, w.ann}},
		{`Contains(categories, "cat facts")`, []string{w.bob, w.ann}},
		{`categories="request"`, []string{w.bob, w.ann}},
		{`categories="sub only"`, []string{}},
		{`NOT Contains(categories, "request")`, []string{}},
		{`last_event_time BETWEEN TIMESTAMP "` + ts(w.delivered) + `" AND TIMESTAMP "` + ts(w.delivered) + `"`, []string{w.ann}},
		{`last_event_time > "` + ts(w.delivered) + `"`, []string{w.bob}},
		{`last_event_time <= "` + ts(w.delivered) + `"`, []string{w.ann}},
		{`last_event_time = "` + ts(w.at) + `"`, []string{w.bob}},
		{`(to_email="ann@a.example" OR status="not_delivered") AND NOT subject="x"`, []string{w.bob, w.ann}},
		{`to_email="nobody@example.com" OR msg_id="` + w.cy + `"`, []string{}}, // the subuser's
		{`subject="' OR 1=1 --"`, []string{}},
	}
	for _, tc := range tests {
		if got := listActivity(t, s, w.user.ID, tc.query, since, 10); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.query, got, tc.want)
		}
	}
	if got := listActivity(t, s, w.sub.ID, `categories="sub only" AND status="processed"`, since, 10); !slices.Equal(got, []string{w.cy}) {
		t.Errorf("the subuser's own category: %v, want %s", got, w.cy)
	}
}

func testActivityDetail(t *testing.T, s sealpost.Store) {
	w := newActivityWorld(t, s)
	since := w.t0.Add(-time.Hour)
	d, err := s.ActivityDetail(t.Context(), w.user.ID, w.ann, since)
	if err != nil {
		t.Fatalf("ActivityDetail: %v", err)
	}
	if d.MsgID != w.ann || d.ToEmail != "ann@a.example" || d.Subject != "Hello ann" || d.State != sealpost.StateDelivered {
		t.Errorf("detail = %+v", d.ActivityMessage)
	}
	if want := []string{"request", "cat facts", "ünïcode"}; !slices.Equal(d.Categories, want) {
		t.Errorf("categories = %v, want %v", d.Categories, want)
	}
	if d.CustomArgs["order"] != "actX1" || d.CustomArgs["campaign"] != "ñ actX1" {
		t.Errorf("custom args = %v, want the message's over the request's", d.CustomArgs)
	}
	if len(d.Events) != 2 || d.Events[0].Kind != sealpost.EventProcessed || d.Events[1].Kind != sealpost.EventDelivered {
		t.Fatalf("events = %+v, want processed then delivered", d.Events)
	}
	if !d.Events[0].At.Equal(w.t0) || !d.Events[1].At.Equal(w.delivered) {
		t.Errorf("event times %v, %v, want %v, %v", d.Events[0].At, d.Events[1].At, w.t0, w.delivered)
	}
	var p struct {
		Event    string             `json:"event"`
		Sealpost *sealpost.TLSFacts `json:"sealpost"`
	}
	if err := json.Unmarshal(d.Events[1].Payload, &p); err != nil || p.Event != "delivered" || p.Sealpost == nil ||
		p.Sealpost.MXHost != "mx.a.example" || p.Sealpost.Version != "1.3" {
		t.Errorf("delivered payload %s (%v): want its TLS facts under sealpost", d.Events[1].Payload, err)
	}

	// Another account's message, even its own subuser's, is not found.
	_, err = s.ActivityDetail(t.Context(), w.user.ID, w.cy, since)
	wantCode(t, err, sealpost.ENOTFOUND, "the subuser's message read by its parent")
	_, err = s.ActivityDetail(t.Context(), w.sub.ID, w.ann, since)
	wantCode(t, err, sealpost.ENOTFOUND, "the parent's message read by its subuser")
	_, err = s.ActivityDetail(t.Context(), w.user.ID, "nosuch", since)
	wantCode(t, err, sealpost.ENOTFOUND, "an unknown msg_id")
	_, err = s.ActivityDetail(t.Context(), w.user.ID, w.ann, w.delivered.Add(time.Second))
	wantCode(t, err, sealpost.ENOTFOUND, "a message past the retention")

	d, err = s.ActivityDetail(t.Context(), w.sub.ID, w.cy, since)
	if err != nil {
		t.Fatal(err)
	}
	if d.State != sealpost.StateQueued || len(d.Events) != 2 || d.Events[1].Kind != sealpost.EventDeferred || !d.LastEventTime.Equal(w.at) {
		t.Errorf("deferred detail = %+v", d)
	}
}

func testActivityPrune(t *testing.T, s sealpost.Store) {
	w := newActivityWorld(t, s)
	n, err := s.PruneActivity(t.Context(), w.delivered)
	if err != nil {
		t.Fatalf("PruneActivity: %v", err)
	}
	if n != 3 { // the three processed events
		t.Errorf("PruneActivity deleted %d events, want 3", n)
	}
	d, err := s.ActivityDetail(t.Context(), w.user.ID, w.ann, w.t0.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Events) != 1 || d.Events[0].Kind != sealpost.EventDelivered {
		t.Errorf("events after the prune = %+v, want only the delivered one", d.Events)
	}
	// The queue is untouched: the recipients' states are all still there.
	if got := recipientStates(t, s, w.user.ID, "actX1"); len(got) != 2 {
		t.Errorf("recipient states after the prune = %+v", got)
	}
}
