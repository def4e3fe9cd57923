package httpapi

import (
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
)

// SendGrid's bodies (its Cancel Scheduled Sends reference).
const (
	wantInvalidBatch        = `{"errors":[{"field":"batch_id","message":"invalid batch id"}]}`
	wantInvalidBatchPath    = `{"errors":[{"field":null,"message":"invalid batch id"}]}`
	wantBatchNotFound       = `{"errors":[{"field":null,"message":"batch id not found"}]}`
	wantScheduledSendExists = `{"errors":[{"field":"batch_id","message":"a status for this batch id exists, try PATCH to update the status"}]}`
	wantScheduledSendLimit  = `{"errors":[{"field":null,"message":"max limit reached"}]}`
)

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
			{"validate another account's", request{method: "GET", path: "/v3/mail/batch/" + id, token: otherKey}, 400, wantInvalidBatchPath},
			{"validate the subuser's as the parent", request{method: "GET", path: "/v3/mail/batch/" + kidID, token: full}, 400, wantInvalidBatchPath},
			{"validate the subuser's on its behalf", request{method: "GET", path: "/v3/mail/batch/" + kidID, token: full, obo: kid.Username}, 200, `{"batch_id":"` + kidID + `"}`},
			{"validate a malformed id", request{method: "GET", path: "/v3/mail/batch/a.b", token: full}, 400, wantInvalidBatchPath},
			{"create without the scope", request{method: "POST", path: "/v3/mail/batch", token: sendOnly}, 403, wantForbidden},
			{"list without the scope", request{method: "GET", path: "/v3/user/scheduled_sends", token: sendOnly}, 403, wantForbidden},
			{"list, none", request{method: "GET", path: "/v3/user/scheduled_sends", token: full}, 200, `[]`},
			{"get, none", request{method: "GET", path: "/v3/user/scheduled_sends/" + id, token: full}, 200, `[]`},
			{"patch, none set", request{method: "PATCH", path: "/v3/user/scheduled_sends/" + id, token: full, body: `{"status":"pause"}`}, 404, wantBatchNotFound},
			{"delete, none set", request{method: "DELETE", path: "/v3/user/scheduled_sends/" + id, token: full}, 404, wantBatchNotFound},
			{"pause another account's", request{method: "POST", path: "/v3/user/scheduled_sends", token: otherKey, body: `{"batch_id":"` + id + `","status":"pause"}`}, 400, wantInvalidBatch},
			{"bad status", request{method: "POST", path: "/v3/user/scheduled_sends", token: full, body: `{"batch_id":"` + id + `","status":"stop"}`}, 400, ""},
			{"pause", request{method: "POST", path: "/v3/user/scheduled_sends", token: full, body: `{"batch_id":"` + id + `","status":"pause"}`}, 201, `{"batch_id":"` + id + `","status":"pause"}`},
			{"pause again", request{method: "POST", path: "/v3/user/scheduled_sends", token: full, body: `{"batch_id":"` + id + `","status":"cancel"}`}, 400, wantScheduledSendExists},
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
				`{"errors":[{"field":"send_at","message":"Scheduling more than 72 hours in advance is forbidden."}]}`},
			{"send one personalization 73 hours ahead", request{method: "POST", path: "/v3/mail/send", token: full,
				body: `{"personalizations":[{"to":[{"email":"a@example.com"}],"send_at":` + strconv.FormatInt(time.Now().Add(73*time.Hour).Unix(), 10) + `}],"from":{"email":"s@example.com"},"subject":"s","content":[{"type":"text/plain","value":"x"}]}`},
				400, `{"errors":[{"field":"personalizations.0.send_at","message":"Scheduling more than 72 hours in advance is forbidden."}]}`},
		} {
			e.do(c.r).want(t, c.what, c.status, c.body)
		}
	})
}

// TestScheduledSendCap: an account may have SendGrid's 10 batches paused
// or cancelled at once; the 11th POST is SendGrid's 400, a PATCH of one of
// the ten is not a new one, and a DELETE frees a place. Each account (a
// subuser apart from its parent) has its own ten.
func TestScheduledSendCap(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		e := newEnv(t, open)
		parent := e.user("parent")
		kid := e.subuser(parent, "kid")
		key := e.key(parent)
		newBatch := func(obo string) string {
			t.Helper()
			res := e.do(request{method: "POST", path: "/v3/mail/batch", token: key, obo: obo})
			var b batchIDBody
			if res.status != http.StatusCreated || json.Unmarshal([]byte(res.body), &b) != nil {
				t.Fatalf("POST /v3/mail/batch: %d %s", res.status, res.body)
			}
			return b.BatchID
		}
		status := func(id, st string) string { return `{"batch_id":"` + id + `","status":"` + st + `"}` }
		var ids []string
		for i := range sealpost.MaxScheduledSends {
			id := newBatch("")
			ids = append(ids, id)
			st := []string{"pause", "cancel"}[i%2]
			e.do(request{method: "POST", path: "/v3/user/scheduled_sends", token: key, body: status(id, st)}).want(t, "status "+strconv.Itoa(i), 201, status(id, st))
		}
		over := newBatch("")
		post := request{method: "POST", path: "/v3/user/scheduled_sends", token: key, body: status(over, "pause")}
		e.do(post).want(t, "the 11th", 400, wantScheduledSendLimit)
		e.do(request{method: "POST", path: "/v3/user/scheduled_sends", token: key, body: status(ids[0], "cancel")}).want(t, "one of the ten again", 400, wantScheduledSendExists)
		e.do(request{method: "PATCH", path: "/v3/user/scheduled_sends/" + ids[0], token: key, body: `{"status":"cancel"}`}).want(t, "changing one of the ten", 204, "")
		kidBatch := newBatch(kid.Username)
		e.do(request{method: "POST", path: "/v3/user/scheduled_sends", token: key, obo: kid.Username, body: status(kidBatch, "pause")}).want(t, "the subuser's first", 201, "")
		e.do(request{method: "GET", path: "/v3/user/scheduled_sends/" + over, token: key}).want(t, "the refused one has none", 200, `[]`)
		e.do(request{method: "DELETE", path: "/v3/user/scheduled_sends/" + ids[1], token: key}).want(t, "freeing a place", 204, "")
		e.do(post).want(t, "the 11th after a delete", 201, status(over, "pause"))
	})
}
