package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/sendgrid/sendgrid-go"
	"github.com/sendgrid/sendgrid-go/helpers/mail"

	"github.com/sealpost/sealpost/delivery/mxtest"
	"github.com/sealpost/sealpost/postgres/pgtest"
)

// TestScheduledSendWithOfficialGoClient: with sendgrid-go's SetSendAt and
// SetBatchID, mail is not delivered before its send_at, a send_at in the
// past goes at once, a paused batch is held until its pause is deleted,
// a cancelled batch never goes, and a send_at beyond 72 hours or an
// unknown batch_id is refused.
//
// On PostgreSQL it runs on two nodes sharing the database: mail is sent
// through one, the batches are paused, resumed and cancelled through the
// other, and both deliver.
func TestScheduledSendWithOfficialGoClient(t *testing.T) {
	t.Parallel()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		h := mxtest.New(t)
		m, key := destinationMain(t, h, "127.0.0.0/8")
		testScheduledSend(t, h, m, m, key)
	})
	t.Run("postgres two nodes", func(t *testing.T) {
		t.Parallel()
		h := mxtest.New(t)
		url := pgtest.URL(t)
		cfg := DefaultConfig()
		cfg.RateLimit = 100000
		cfg.DNSServer = h.DNSAddr()
		cfg.SMTPPort = h.Port()
		cfg.TLSCAFile = h.CAFile()
		cfg.HeloHostname = "sealpost.test"
		cfg.AllowDestinations = "127.0.0.0/8"
		a, key, _ := startMainWith(t, url, cfg)
		b, _, _ := startMainWith(t, url, cfg)
		testScheduledSend(t, h, a, b, key)
	})
}

// testScheduledSend sends mail through m and controls its batches through
// control.
func testScheduledSend(t *testing.T, h *mxtest.Harness, m, control *Main, key string) {
	mx := h.AddMX("sched.test", 10, mxtest.Behavior{})

	newBatch := func() string {
		t.Helper()
		req := sendgrid.GetRequest(key, "/v3/mail/batch", control.URL())
		req.Method = "POST"
		resp, err := sendgrid.API(req)
		if err != nil || resp.StatusCode != http.StatusCreated {
			t.Fatalf("POST /v3/mail/batch: %v %v", err, resp)
		}
		var b struct {
			BatchID string `json:"batch_id"`
		}
		if err := json.Unmarshal([]byte(resp.Body), &b); err != nil || b.BatchID == "" {
			t.Fatalf("batch body %q: %v", resp.Body, err)
		}
		return b.BatchID
	}
	scheduledSend := func(method, path, body string, want int) {
		t.Helper()
		if code, got := apiDo(t, control, method, path, key, body); code != want {
			t.Fatalf("%s %s: %d %s, want %d", method, path, code, got, want)
		}
	}
	client := sendgrid.NewSendClient(key)
	client.Request.BaseURL = m.URL() + "/v3/mail/send"
	send := func(subject string, sendAt int64, batch string) (int, string) {
		t.Helper()
		msg := mail.NewSingleEmail(mail.NewEmail("", "sender@sealpost.test"), subject,
			mail.NewEmail("", "rcpt@sched.test"), "scheduled", "")
		msg.Content = msg.Content[:1]
		msg.SetSendAt(int(sendAt))
		if batch != "" {
			msg.SetBatchID(batch)
		}
		resp, err := client.Send(msg)
		if err != nil {
			t.Fatalf("sending %s: %v", subject, err)
		}
		return resp.StatusCode, resp.Body
	}
	arrived := func(subject string) bool {
		for _, d := range mx.Accepted() {
			if bytes.Contains(d.Data, []byte("Subject: "+subject+"\r\n")) {
				return true
			}
		}
		return false
	}

	paused, cancelled := newBatch(), newBatch()
	scheduledSend("GET", "/v3/mail/batch/"+paused, "", http.StatusOK)
	sendAt := time.Now().Add(8 * time.Second).Truncate(time.Second).Add(time.Second)
	for _, c := range []struct {
		subject string
		at      int64
		batch   string
	}{
		{"later", sendAt.Unix(), ""},
		{"paused", sendAt.Unix(), paused},
		{"cancelled", sendAt.Unix(), cancelled},
		{"past", time.Now().Add(-time.Hour).Unix(), ""},
	} {
		if code, body := send(c.subject, c.at, c.batch); code != http.StatusAccepted {
			t.Fatalf("sending %s: %d %s", c.subject, code, body)
		}
	}
	scheduledSend("POST", "/v3/user/scheduled_sends", `{"batch_id":"`+paused+`","status":"pause"}`, http.StatusCreated)
	scheduledSend("POST", "/v3/user/scheduled_sends", `{"batch_id":"`+cancelled+`","status":"pause"}`, http.StatusCreated)
	scheduledSend("PATCH", "/v3/user/scheduled_sends/"+cancelled, `{"status":"cancel"}`, http.StatusNoContent)
	scheduledSend("POST", "/v3/user/scheduled_sends", `{"batch_id":"`+cancelled+`","status":"pause"}`, http.StatusBadRequest)

	waitFor(t, "the mail with a past send_at", 30*time.Second, func() bool { return arrived("past") })
	// Until a moment before send_at nothing scheduled may have arrived.
	// On a machine so loaded that the moment has passed already, there
	// is nothing left to check.
	time.Sleep(time.Until(sendAt.Add(-time.Second)))
	if time.Until(sendAt) > 500*time.Millisecond {
		for _, s := range []string{"later", "paused", "cancelled"} {
			if arrived(s) {
				t.Fatalf("%q delivered before its send_at", s)
			}
		}
	} else {
		t.Logf("send_at came before the check; not checked")
	}
	waitFor(t, "the scheduled mail", 60*time.Second, func() bool { return arrived("later") })
	if time.Now().Before(sendAt) {
		t.Fatalf("delivered at %v, before send_at %v", time.Now(), sendAt)
	}
	// Due as long as "later", which went: several polls later, the held
	// and the cancelled mail are still not there.
	time.Sleep(3 * time.Second)
	if arrived("paused") || arrived("cancelled") {
		t.Fatalf("paused %v, cancelled %v: delivered", arrived("paused"), arrived("cancelled"))
	}
	scheduledSend("DELETE", "/v3/user/scheduled_sends/"+paused, "", http.StatusNoContent)
	waitFor(t, "the resumed batch's mail", 60*time.Second, func() bool { return arrived("paused") })
	if arrived("cancelled") {
		t.Fatal("the cancelled batch's mail was delivered")
	}

	tooFar := time.Now().Add(73 * time.Hour).Unix()
	if code, body := send("too far", tooFar, ""); code != http.StatusBadRequest || !bytes.Contains([]byte(body), []byte(`"field":"send_at"`)) {
		t.Fatalf("send_at 73h ahead: %d %s, want 400 on send_at", code, body)
	}
	if code, body := send("unknown batch", 0, "NoSuchBatch"+strconv.Itoa(1)); code != http.StatusBadRequest || body != `{"errors":[{"field":"batch_id","message":"invalid batch id"}]}` {
		t.Fatalf("unknown batch_id: %d %s, want 400", code, body)
	}
}
