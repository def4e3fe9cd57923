package httpapi_test

import (
	"testing"
	"time"

	"github.com/sealpost/sealpost"
	"github.com/sealpost/sealpost/httpapi"
)

func TestMailSendSchedule(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0).UTC()
	const pz = `{"to":[{"email":"a@example.com"}]}`
	tail := `"from":{"email":"s@example.com"},"subject":"s","content":[{"type":"text/plain","value":"x"}]`
	for _, c := range []struct {
		name    string
		body    string
		problem string // field of the one problem, "" for none
		sendAt  []time.Time
	}{
		{"none", `{"personalizations":[` + pz + `],` + tail + `}`, "", []time.Time{{}}},
		{"top level", `{"personalizations":[` + pz + `],"send_at":1800003600,` + tail + `}`, "", []time.Time{now.Add(time.Hour)}},
		{"personalization wins", `{"personalizations":[` + pz + `,{"to":[{"email":"b@example.com"}],"send_at":1800000060}],"send_at":1800003600,` + tail + `}`,
			"", []time.Time{now.Add(time.Hour), now.Add(time.Minute)}},
		{"past", `{"personalizations":[` + pz + `],"send_at":1,` + tail + `}`, "", []time.Time{time.Unix(1, 0).UTC()}},
		{"72 hours exactly", `{"personalizations":[` + pz + `],"send_at":1800259200,` + tail + `}`, "", []time.Time{now.Add(72 * time.Hour)}},
		{"beyond 72 hours", `{"personalizations":[` + pz + `],"send_at":1800259201,` + tail + `}`, "send_at", nil},
		{"personalization beyond 72 hours", `{"personalizations":[{"to":[{"email":"a@example.com"}],"send_at":1900000000}],` + tail + `}`, "personalizations.0.send_at", nil},
		{"not an integer", `{"personalizations":[` + pz + `],"send_at":1.5,` + tail + `}`, "send_at", nil},
		{"a string", `{"personalizations":[` + pz + `],"send_at":"1800003600",` + tail + `}`, "send_at", nil},
		{"negative", `{"personalizations":[` + pz + `],"send_at":-1,` + tail + `}`, "send_at", nil},
		{"batch id malformed", `{"personalizations":[` + pz + `],"batch_id":"a b",` + tail + `}`, "batch_id", nil},
		{"batch id not a string", `{"personalizations":[` + pz + `],"batch_id":1,` + tail + `}`, "batch_id", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			ms, err := httpapi.ParseMailSend([]byte(c.body))
			if err == nil {
				err = ms.CheckSchedule(now)
			}
			if c.problem != "" {
				fields := sealpost.ErrorFields(err)
				if len(fields) != 1 || fields[0].Field != c.problem {
					t.Fatalf("problems %v (err %v), want one on %s", fields, err, c.problem)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			msgs, err := ms.Messages(1, "xid", now, "sealpost.test")
			if err != nil {
				t.Fatal(err)
			}
			for i, m := range msgs {
				if !m.SendAt.Equal(c.sendAt[i]) {
					t.Errorf("message %d: SendAt %v, want %v", i, m.SendAt, c.sendAt[i])
				}
				due := now
				if c.sendAt[i].After(now) {
					due = c.sendAt[i]
				}
				if !m.DueAt().Equal(due) {
					t.Errorf("message %d: DueAt %v, want %v", i, m.DueAt(), due)
				}
			}
		})
	}
}
