package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sendgrid/rest"
	"github.com/sendgrid/sendgrid-go"

	"github.com/sealpost/sealpost"
)

const pathMessages = "/v3/messages"

// activityMail is one mail send to two recipients at two domains.
const activityMail = `{"personalizations":[{"to":[{"email":"ann@a.example"},{"email":"bob@b.example"}]}],` +
	`"from":{"email":"sender@example.com"},"subject":"Activity test","categories":["launch"],"custom_args":{"k":"v"},` +
	`"content":[{"type":"text/plain","value":"Hi"}]}`

type listBody struct {
	Messages []struct {
		FromEmail     string `json:"from_email"`
		MsgID         string `json:"msg_id"`
		Subject       string `json:"subject"`
		ToEmail       string `json:"to_email"`
		Status        string `json:"status"`
		LastEventTime string `json:"last_event_time"`
	} `json:"messages"`
}

func (b listBody) ids() []string {
	ids := []string{}
	for _, m := range b.Messages {
		ids = append(ids, m.MsgID)
	}
	return ids
}

// deliverAll completes every due delivery: a.example delivered over TLS
// 1.3, the others blocked for want of STARTTLS.
func deliverAll(t *testing.T, s sealpost.Store, at time.Time) {
	t.Helper()
	ds, err := s.ClaimDeliveries(t.Context(), "node", at.Add(time.Hour), time.Minute, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		c := sealpost.DeliveryCompletion{DeliveryID: d.ID}
		for _, rc := range d.Message.Recipients {
			state, kind := sealpost.StateBlocked, sealpost.EventBounce
			det := sealpost.EventDetails{Reason: sealpost.BlockedReason, Status: sealpost.BlockedStatus, Type: "blocked",
				TLS: &sealpost.TLSFacts{MXHost: "mx." + d.Domain, ResultType: sealpost.ResultSTARTTLSNotSupported}}
			if d.Domain == "a.example" {
				state, kind = sealpost.StateDelivered, sealpost.EventDelivered
				det = sealpost.EventDetails{Response: "250 ok", TLS: &sealpost.TLSFacts{TLS: true, Version: "1.3",
					Cipher: "TLS_AES_128_GCM_SHA256", Verified: true, MXHost: "mx.a.example", MXIP: "127.0.0.2"}}
			}
			e, err := sealpost.NewEvent(kind, d.Message, rc, at, det)
			if err != nil {
				t.Fatal(err)
			}
			c.Recipients = append(c.Recipients, sealpost.RecipientUpdate{RecipientID: rc.ID, State: state})
			c.Events = append(c.Events, e)
		}
		if err := s.CompleteDelivery(t.Context(), "node", c); err != nil {
			t.Fatal(err)
		}
	}
}

// TestActivityOfficialClient lists and reads messages with SendGrid's Go
// client, changing nothing but its host, on both stores.
func TestActivityOfficialClient(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		e := newEnv(t, open)
		p := e.user("parent")
		child := e.subuser(p, "child")
		key, childKey := e.key(p), e.key(child)
		xid := accepted(t, "mail send", e.do(request{method: http.MethodPost, path: pathMailSend, token: key, body: activityMail}))
		childXid := accepted(t, "the subuser's mail send", e.do(request{method: http.MethodPost, path: pathMailSend, token: childKey, body: simpleMail("cy@c.example")}))
		deliverAll(t, e.store, time.Now())
		ts := httptest.NewServer(e.handler())
		defer ts.Close()

		get := func(token, endpoint, subuser string, query map[string]string) (int, string) {
			t.Helper()
			r := sendgrid.GetRequestSubuser(token, endpoint, ts.URL, subuser)
			r.Method = rest.Get
			r.QueryParams = query
			res, err := sendgrid.MakeRequestWithContext(t.Context(), r)
			if err != nil {
				t.Fatalf("GET %s: %v", endpoint, err)
			}
			return res.StatusCode, res.Body
		}
		list := func(token, subuser string, query map[string]string) listBody {
			t.Helper()
			status, body := get(token, pathMessages, subuser, query)
			var b listBody
			if status != http.StatusOK || json.Unmarshal([]byte(body), &b) != nil {
				t.Fatalf("GET %s %v: %d %s", pathMessages, query, status, body)
			}
			return b
		}

		all := list(key, "", map[string]string{"limit": "10"})
		if got, want := all.ids(), []string{xid + ".1", xid + ".0"}; !slices.Equal(got, want) && !slices.Equal(got, []string{xid + ".0", xid + ".1"}) {
			t.Fatalf("the parent's messages %v, want %v", got, want)
		}
		for _, m := range all.Messages {
			want := map[string]string{xid + ".0": "delivered", xid + ".1": "not_delivered"}[m.MsgID]
			if m.Status != want || m.Subject != "Activity test" || m.FromEmail != "sender@example.com" {
				t.Errorf("entry %+v, want status %s", m, want)
			}
		}
		ann := list(key, "", map[string]string{"limit": "10", "query": `to_email="ann@a.example" AND (Contains(categories,"launch"))`})
		if got := ann.ids(); !slices.Equal(got, []string{xid + ".0"}) {
			t.Errorf("query for ann: %v", got)
		}
		if got := list(key, "", map[string]string{"query": `status="not_delivered"`}).ids(); !slices.Equal(got, []string{xid + ".1"}) {
			t.Errorf("query for the undelivered: %v", got)
		}
		if got := list(key, "", map[string]string{"limit": "1"}).ids(); len(got) != 1 {
			t.Errorf("limit 1 gave %v", got)
		}
		// The subuser's mail: on behalf of it, or with its own key; never
		// mixed with the parent's.
		if got := list(key, "child", nil).ids(); !slices.Equal(got, []string{childXid + ".0"}) {
			t.Errorf("on behalf of the subuser: %v", got)
		}
		if got := list(childKey, "", nil).ids(); !slices.Equal(got, []string{childXid + ".0"}) {
			t.Errorf("the subuser's own key: %v", got)
		}

		status, body := get(key, pathMessages+"/"+xid+".0", "", nil)
		if status != http.StatusOK {
			t.Fatalf("GET the message: %d %s", status, body)
		}
		var d struct {
			MsgID      string   `json:"msg_id"`
			Status     string   `json:"status"`
			Categories []string `json:"categories"`
			UniqueArgs string   `json:"unique_args"`
			Events     []struct {
				EventName string             `json:"event_name"`
				Processed string             `json:"processed"`
				MXServer  string             `json:"mx_server"`
				Sealpost  *sealpost.TLSFacts `json:"sealpost"`
			} `json:"events"`
		}
		if err := json.Unmarshal([]byte(body), &d); err != nil {
			t.Fatal(err)
		}
		if d.MsgID != xid+".0" || d.Status != "delivered" || !slices.Equal(d.Categories, []string{"launch"}) || d.UniqueArgs != `{"k":"v"}` {
			t.Errorf("detail %s", body)
		}
		if len(d.Events) != 2 || d.Events[0].EventName != "processed" || d.Events[1].EventName != "delivered" ||
			d.Events[1].MXServer != "mx.a.example" || d.Events[1].Sealpost == nil || d.Events[1].Sealpost.Version != "1.3" {
			t.Errorf("events %s", body)
		}
		for _, ev := range d.Events {
			if _, err := time.Parse(time.RFC3339, ev.Processed); err != nil {
				t.Errorf("event time %q: %v", ev.Processed, err)
			}
		}
		if status, body := get(key, pathMessages+"/"+xid+".1", "", nil); status != http.StatusOK ||
			!json.Valid([]byte(body)) || !containsAll(body, `"event_name":"bounced"`, `"bounce_type":"soft"`, `"reason":"TLS required but not supported"`,
			`"result_type":"starttls-not-supported"`) {
			t.Errorf("the blocked recipient's detail: %d %s", status, body)
		}
	})
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// TestActivityRefusals: bad parameters, scopes, other accounts' messages
// and messages past the retention.
func TestActivityRefusals(t *testing.T) {
	t.Parallel()
	now := time.Now()
	clock := now
	e := newEnv(t, openSQLite, func(c *Config) {
		c.ActivityRetention = time.Hour
		c.Now = func() time.Time { return clock }
	})
	p := e.user("parent")
	child := e.subuser(p, "child")
	other := e.user("other")
	key := e.key(p)
	xid := accepted(t, "mail send", e.do(request{method: http.MethodPost, path: pathMailSend, token: key, body: activityMail}))
	msg := pathMessages + "/" + xid + ".0"

	bad := func(query string) string { return pathMessages + "?query=" + url.QueryEscape(query) }
	tests := []struct {
		what   string
		req    request
		status int
		body   string
	}{
		{"unknown field", request{path: bad(`bad_field="x"`), token: key}, 400,
			`{"errors":[{"field":"query","message":"invalid syntax: 'bad_field' is not a known field"}]}`},
		{"unclosed string", request{path: bad(`to_email="x`), token: key}, 400,
			`{"errors":[{"field":"query","message":"invalid syntax: the string at 9 is not closed"}]}`},
		{"limit 0", request{path: pathMessages + "?limit=0", token: key}, 400,
			`{"errors":[{"field":"limit","message":"limit must be an integer from 1 to 1000"}]}`},
		{"limit over SendGrid's cap", request{path: pathMessages + "?limit=1001", token: key}, 400, ""},
		{"limit not a number", request{path: pathMessages + "?limit=ten", token: key}, 400, ""},
		{"limit at the cap", request{path: pathMessages + "?limit=1000", token: key}, 200, ""},
		{"without messages.read", request{path: pathMessages, token: e.key(p, sealpost.ScopeMailSend)}, 403, string(bodyForbidden)},
		{"detail without messages.read", request{path: msg, token: e.key(p, sealpost.ScopeMailSend)}, 403, string(bodyForbidden)},
		{"with messages.read only", request{path: msg, token: e.key(p, sealpost.ScopeMessagesRead)}, 200, ""},
		{"another account's message", request{path: msg, token: e.key(other)}, 404,
			`{"errors":[{"field":"message_id","message":"not found"}]}`},
		{"the parent's message on behalf of its subuser", request{path: msg, token: key, obo: child.Username}, 404, ""},
		{"the parent's message by its subuser", request{path: msg, token: e.key(child)}, 404, ""},
		{"no such message", request{path: pathMessages + "/nosuch", token: key}, 404, ""},
		{"POST", request{method: http.MethodPost, path: pathMessages, token: key}, 405, ""},
	}
	for _, tc := range tests {
		if tc.req.method == "" {
			tc.req.method = http.MethodGet
		}
		e.do(tc.req).want(t, tc.what, tc.status, tc.body)
	}
	if res := e.do(request{method: http.MethodGet, path: pathMessages, token: e.key(other)}); res.body != `{"messages":[]}` {
		t.Errorf("another account's list: %d %s", res.status, res.body)
	}

	// Past the retention the message is neither listed nor found.
	clock = now.Add(2 * time.Hour)
	e.do(request{method: http.MethodGet, path: pathMessages, token: key}).want(t, "list past the retention", 200, `{"messages":[]}`)
	e.do(request{method: http.MethodGet, path: msg, token: key}).want(t, "detail past the retention", 404, "")
}
