package httpapi

import (
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
)

const wantInvalidBatch = `{"errors":[{"field":"batch_id","message":"invalid batch id"}]}`

// TestMailBatchesAndScheduledSends walks the batch and scheduled-send
// routes: their statuses and bodies, another account's batch looking like
// a missing one, on-behalf-of, and the scopes each route needs.
func TestMailBatchesAndScheduledSends(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		e := newEnv(t, open)
		parent := e.user("parent")
		kid := e.subuser(parent, "kid")
		other := e.user("other")
		full := e.key(parent)
		otherKey := e.key(other)
		sendOnly := e.key(parent, sealpost.ScopeMailSend)

		res := e.do(request{method: "POST", path: "/v3/mail/batch", token: full})
		var b struct {
			BatchID string `json:"batch_id"`
		}
		if res.status != http.StatusCreated || json.Unmarshal([]byte(res.body), &b) != nil || !sealpost.ValidBatchID(b.BatchID) {
			t.Fatalf("POST /v3/mail/batch: %d %s", res.status, res.body)
		}
		id := b.BatchID
		kidRes := e.do(request{method: "POST", path: "/v3/mail/batch", token: full, obo: kid.Username})
		if kidRes.status != http.StatusCreated || json.Unmarshal([]byte(kidRes.body), &b) != nil {
			t.Fatalf("POST /v3/mail/batch on behalf of the subuser: %d %s", kidRes.status, kidRes.body)
		}
		kidID := b.BatchID

		mailBody := func(batch string, sendAt int64) string {
			return `{"personalizations":[{"to":[{"email":"a@example.com"}]}],"from":{"email":"s@example.com"},"subject":"s",` +
				`"content":[{"type":"text/plain","value":"x"}],"batch_id":"` + batch + `","send_at":` + strconv.FormatInt(sendAt, 10) + `}`
		}
		soon := time.Now().Add(time.Hour).Unix()
		for _, c := range []struct {
			what   string
			r      request
			status int
			body   string
		}{
			{"validate", request{method: "GET", path: "/v3/mail/batch/" + id, token: full}, 200, `{"batch_id":"` + id + `"}`},
			{"validate another account's", request{method: "GET", path: "/v3/mail/batch/" + id, token: otherKey}, 400, wantInvalidBatch},
			{"validate the subuser's as the parent", request{method: "GET", path: "/v3/mail/batch/" + kidID, token: full}, 400, wantInvalidBatch},
			{"validate the subuser's on its behalf", request{method: "GET", path: "/v3/mail/batch/" + kidID, token: full, obo: kid.Username}, 200, `{"batch_id":"` + kidID + `"}`},
			{"validate a malformed id", request{method: "GET", path: "/v3/mail/batch/a.b", token: full}, 400, wantInvalidBatch},
			{"create without the scope", request{method: "POST", path: "/v3/mail/batch", token: sendOnly}, 403, wantForbidden},
			{"list without the scope", request{method: "GET", path: "/v3/user/scheduled_sends", token: sendOnly}, 403, wantForbidden},
			{"list, none", request{method: "GET", path: "/v3/user/scheduled_sends", token: full}, 200, `[]`},
			{"get, none", request{method: "GET", path: "/v3/user/scheduled_sends/" + id, token: full}, 200, `[]`},
			{"patch, none set", request{method: "PATCH", path: "/v3/user/scheduled_sends/" + id, token: full, body: `{"status":"pause"}`}, 404, ""},
			{"delete, none set", request{method: "DELETE", path: "/v3/user/scheduled_sends/" + id, token: full}, 404, ""},
			{"pause another account's", request{method: "POST", path: "/v3/user/scheduled_sends", token: otherKey, body: `{"batch_id":"` + id + `","status":"pause"}`}, 400, wantInvalidBatch},
			{"bad status", request{method: "POST", path: "/v3/user/scheduled_sends", token: full, body: `{"batch_id":"` + id + `","status":"stop"}`}, 400, ""},
			{"pause", request{method: "POST", path: "/v3/user/scheduled_sends", token: full, body: `{"batch_id":"` + id + `","status":"pause"}`}, 201, `{"batch_id":"` + id + `","status":"pause"}`},
			{"pause again", request{method: "POST", path: "/v3/user/scheduled_sends", token: full, body: `{"batch_id":"` + id + `","status":"cancel"}`}, 400, ""},
			{"cancel", request{method: "PATCH", path: "/v3/user/scheduled_sends/" + id, token: full, body: `{"status":"cancel"}`}, 204, ""},
			{"list", request{method: "GET", path: "/v3/user/scheduled_sends", token: full}, 200, `[{"batch_id":"` + id + `","status":"cancel"}]`},
			{"get", request{method: "GET", path: "/v3/user/scheduled_sends/" + id, token: full}, 200, `[{"batch_id":"` + id + `","status":"cancel"}]`},
			{"list of the subuser", request{method: "GET", path: "/v3/user/scheduled_sends", token: full, obo: kid.Username}, 200, `[]`},
			{"list of another account", request{method: "GET", path: "/v3/user/scheduled_sends", token: otherKey}, 200, `[]`},
			{"delete another account's", request{method: "DELETE", path: "/v3/user/scheduled_sends/" + id, token: otherKey}, 400, wantInvalidBatch},
			{"delete", request{method: "DELETE", path: "/v3/user/scheduled_sends/" + id, token: full}, 204, ""},
			{"send in the batch", request{method: "POST", path: "/v3/mail/send", token: full, body: mailBody(id, soon)}, 202, ""},
			{"send in another account's batch", request{method: "POST", path: "/v3/mail/send", token: otherKey, body: mailBody(id, soon)}, 400, wantInvalidBatch},
			{"send in an unknown batch", request{method: "POST", path: "/v3/mail/send", token: full, body: mailBody("nope", soon)}, 400, wantInvalidBatch},
			{"send 73 hours ahead", request{method: "POST", path: "/v3/mail/send", token: full, body: mailBody(id, time.Now().Add(73*time.Hour).Unix())}, 400,
				`{"errors":[{"field":"send_at","message":"The send_at parameter must be a unix timestamp no more than 72 hours in the future."}]}`},
		} {
			e.do(c.r).want(t, c.what, c.status, c.body)
		}
	})
}
