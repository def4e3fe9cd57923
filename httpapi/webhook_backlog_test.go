package httpapi

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
)

const pathWebhookBacklog = "/v3/user/webhooks/event/backlog"

// TestWebhookBacklog: the acting account's waiting events and its retry
// state, with null for what is unset; the route needs the settings' read
// scope.
func TestWebhookBacklog(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		e := newEnv(t, open)
		alice := e.user("alice")
		token := e.key(alice, sealpost.ScopeEventWebhookRead)
		e.do(request{method: http.MethodGet, path: pathWebhookBacklog, token: token}).want(t, "nothing waiting", http.StatusOK,
			`{"pending":0,"pending_capped":false,"oldest_event":null,"attempts":0,"next_attempt":null,"failing_since":null}`)
		e.do(request{method: http.MethodGet, path: pathWebhookBacklog, token: e.key(alice, sealpost.ScopeMailSend)}).
			want(t, "without the scope", http.StatusForbidden, wantForbidden)

		if _, err := e.store.UpdateEventWebhookSettings(t.Context(), alice.ID, sealpost.EventWebhookPatch{
			URL: new("https://hooks.example.com/a"), Bools: map[string]bool{"enabled": true, "processed": true}}); err != nil {
			t.Fatal(err)
		}
		m := &sealpost.Message{AccountID: alice.ID, XMessageID: "x-backlog", SMTPID: "<backlog@t>", From: "s@example.com",
			Body: &sealpost.MessageBody{Data: []byte("Subject: x\r\n\r\nx\r\n")}, CreatedAt: time.Now(),
			Recipients: []sealpost.Recipient{{Email: "r@example.com", Domain: "example.com", SGMessageID: "backlog.0"}}}
		var events []sealpost.Event
		for i := range 3 {
			events = append(events, sealpost.Event{AccountID: alice.ID, Kind: sealpost.EventProcessed, SGEventID: fmt.Sprint("ev", i),
				Payload: []byte(fmt.Sprintf(`{"event":"processed","sg_event_id":"ev%d"}`, i))})
		}
		if err := e.store.EnqueueMessages(t.Context(), []*sealpost.Message{m}, events); err != nil {
			t.Fatal(err)
		}
		res := e.do(request{method: http.MethodGet, path: pathWebhookBacklog, token: token})
		if res.status != http.StatusOK || !strings.HasPrefix(res.body, `{"pending":3,"pending_capped":false,"oldest_event":"`) ||
			!strings.HasSuffix(res.body, `","attempts":0,"next_attempt":null,"failing_since":null}`) {
			t.Errorf("three waiting: %d %s", res.status, res.body)
		}
	})
}
