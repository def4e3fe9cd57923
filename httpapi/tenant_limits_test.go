package httpapi

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
)

// tokenID is the key id part of a token.
func tokenID(t *testing.T, token string) string {
	t.Helper()
	id, _, ok := sealpost.ParseToken(token)
	if !ok {
		t.Fatalf("not a token: %q", token)
	}
	return id
}

// TestAPIKeysNarrowerKeyCannotTouchBroader: a key holding api_keys.update
// and api_keys.delete may not strip, rename or delete a key holding a
// scope it lacks, directly or through on-behalf-of, and the broader key
// keeps working.
func TestAPIKeysNarrowerKeyCannotTouchBroader(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		e := newEnv(t, open)
		p := e.user("parent")
		sub := e.subuser(p, "sub")
		full := e.key(p)
		keyAdmin := e.key(p, sealpost.ScopeAPIKeysRead, sealpost.ScopeAPIKeysUpdate, sealpost.ScopeAPIKeysDelete)
		reader := e.key(p, sealpost.ScopeAPIKeysRead)
		subFull := e.key(sub)
		fullScopes := `{"scopes":` + scopesJSON(sealpost.FullAccessScopes(sealpost.KindUser)) + `}`
		forbidden := string(bodyForbidden)

		cases := []struct {
			name   string
			method string
			target string
			obo    string
			body   string
		}{
			{"PUT strips the full-access key", http.MethodPut, full, "", `{"name":"stripped","scopes":["api_keys.read"]}`},
			{"PUT renames the full-access key", http.MethodPut, full, "", `{"name":"renamed"}`},
			{"PATCH renames the full-access key", http.MethodPatch, full, "", `{"name":"renamed"}`},
			{"DELETE revokes the full-access key", http.MethodDelete, full, "", ``},
			{"PUT strips the subuser's key on behalf of", http.MethodPut, subFull, "sub", `{"name":"stripped","scopes":["api_keys.read"]}`},
			{"PATCH renames the subuser's key on behalf of", http.MethodPatch, subFull, "sub", `{"name":"renamed"}`},
			{"DELETE revokes the subuser's key on behalf of", http.MethodDelete, subFull, "sub", ``},
		}
		for _, tc := range cases {
			e.do(request{method: tc.method, path: "/v3/api_keys/" + tokenID(t, tc.target), token: keyAdmin, obo: tc.obo, body: tc.body}).
				want(t, tc.name, http.StatusForbidden, forbidden)
		}
		e.do(request{method: http.MethodGet, path: "/v3/scopes", token: full}).
			want(t, "the full-access key afterwards", http.StatusOK, fullScopes)
		e.do(request{method: http.MethodGet, path: "/v3/scopes", token: subFull}).
			want(t, "the subuser's key afterwards", http.StatusOK, `{"scopes":`+scopesJSON(sealpost.FullAccessScopes(sealpost.KindSubuser))+`}`)

		// Granting a scope the caller lacks stays a 400, as before.
		res := e.do(request{method: http.MethodPut, path: "/v3/api_keys/" + tokenID(t, reader), token: keyAdmin, body: `{"name":"r","scopes":["mail.send"]}`})
		if res.status != http.StatusBadRequest || !strings.Contains(res.body, "cannot grant a scope the calling key lacks") {
			t.Errorf("PUT granting a scope the caller lacks: %d %s", res.status, res.body)
		}

		// Keys within the caller's scopes, its own included, stay in reach.
		e.do(request{method: http.MethodPut, path: "/v3/api_keys/" + tokenID(t, reader), token: keyAdmin, body: `{"name":"r2","scopes":["api_keys.update"]}`}).
			want(t, "PUT of a narrower key", http.StatusOK, `{"api_key_id":"`+tokenID(t, reader)+`","name":"r2","scopes":["api_keys.update"]}`)
		e.do(request{method: http.MethodPatch, path: "/v3/api_keys/" + tokenID(t, keyAdmin), token: keyAdmin, body: `{"name":"me"}`}).
			want(t, "PATCH of the calling key itself", http.StatusOK, `{"api_key_id":"`+tokenID(t, keyAdmin)+`","name":"me"}`)
		e.do(request{method: http.MethodDelete, path: "/v3/api_keys/" + tokenID(t, reader), token: keyAdmin}).
			want(t, "DELETE of a narrower key", http.StatusNoContent, "")
		// The parent's full-access key holds every scope a subuser's key
		// can, so it still manages the subuser's keys.
		e.do(request{method: http.MethodPatch, path: "/v3/api_keys/" + tokenID(t, subFull), token: full, obo: "sub", body: `{"name":"by parent"}`}).
			want(t, "PATCH of the subuser's key by the parent's full key", http.StatusOK, `{"api_key_id":"`+tokenID(t, subFull)+`","name":"by parent"}`)
		e.do(request{method: http.MethodDelete, path: "/v3/api_keys/" + tokenID(t, full), token: full}).
			want(t, "DELETE of the full-access key by itself", http.StatusNoContent, "")
	})
}

// fill POSTs n bodies to path, each of which must be answered status.
func (e *env) fill(t *testing.T, token, path string, n, status int, body func(i int) string) {
	t.Helper()
	for i := range n {
		if res := e.do(request{method: http.MethodPost, path: path, token: token, body: body(i)}); res.status != status {
			t.Fatalf("POST %s number %d: %d %s", path, i+1, res.status, res.body)
		}
	}
}

// TestAPIKeysCap: SendGrid's cap of 100 keys per account; the 101st is a
// 400 naming the limit, and another account is not affected.
func TestAPIKeysCap(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		e := newEnv(t, open)
		p := e.user("parent")
		e.subuser(p, "sub")
		full := e.key(p) // the account's first key
		e.fill(t, full, "/v3/api_keys", 99, http.StatusCreated, func(i int) string { return fmt.Sprintf(`{"name":"k%d"}`, i) })
		e.do(request{method: http.MethodPost, path: "/v3/api_keys", token: full, body: `{"name":"one too many"}`}).
			want(t, "the 101st key", http.StatusBadRequest, `{"errors":[{"field":null,"message":"There is a limit of 100 API Keys on your account."}]}`)
		e.do(request{method: http.MethodPost, path: "/v3/api_keys", token: full, obo: "sub", body: `{"name":"subuser's"}`}).
			want(t, "a key of the subuser", http.StatusCreated, "")
	})
}

// TestSubusersCap: a parent may own DefaultMaxSubusers subusers; the next
// is a 400 naming the limit.
func TestSubusersCap(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		e := newEnv(t, open)
		p := e.user("parent")
		other := e.user("other")
		full := e.key(p)
		e.fill(t, full, "/v3/subusers", 100, http.StatusOK, func(i int) string {
			return fmt.Sprintf(`{"username":"s%d","email":"s%d@example.net"}`, i, i)
		})
		e.do(request{method: http.MethodPost, path: "/v3/subusers", token: full, body: `{"username":"late","email":"late@example.net"}`}).
			want(t, "the 101st subuser", http.StatusBadRequest, `{"errors":[{"field":null,"message":"There is a limit of 100 subusers on your account."}]}`)
		e.do(request{method: http.MethodPost, path: "/v3/subusers", token: e.key(other), body: `{"username":"others","email":"o@example.net"}`}).
			want(t, "another parent's subuser", http.StatusOK, "")
	})
}

// TestMailSendRateLimitPerAccount: mail sends are limited per sending
// account, whichever of its keys sends; a subuser has an allowance of its
// own; the refusal is SendGrid's 429 with the X-RateLimit-* headers, and
// accepted sends still carry none.
func TestMailSendRateLimitPerAccount(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		e := newEnv(t, open, func(c *Config) { c.MailSendLimiter = newFixedWindow(3, time.Hour) })
		p := e.user("parent")
		sub := e.subuser(p, "sub")
		first, second := e.key(p, sealpost.ScopeMailSend), e.key(p)
		subKey := e.key(sub, sealpost.ScopeMailSend)
		noSend := e.key(p, sealpost.ScopeEnforcedTLSRead)
		body := simpleMail("r@example.com")

		// A key that may not send spends nothing of the allowance.
		e.do(request{method: http.MethodPost, path: pathMailSend, token: noSend, body: body}).
			want(t, "mail send without the scope", http.StatusForbidden, wantForbidden)
		for i, tok := range []string{first, second, first} {
			res := e.do(request{method: http.MethodPost, path: pathMailSend, token: tok, body: body})
			accepted(t, fmt.Sprintf("send %d", i+1), res)
			if exactHeader(res.header, headerRateLimit) != "" {
				t.Errorf("accepted send %d carries %s", i+1, headerRateLimit)
			}
		}
		for _, tc := range []struct{ name, token, obo string }{
			{"the fourth send, another key", second, ""},
			{"the fifth send, under on-behalf-of (ignored)", first, "sub"},
		} {
			res := e.do(request{method: http.MethodPost, path: pathMailSend, token: tc.token, obo: tc.obo, body: body})
			res.want(t, tc.name, http.StatusTooManyRequests, string(bodyTooManyRequests))
			if exactHeader(res.header, headerRateLimit) != "3" || exactHeader(res.header, headerRateRemain) != "0" || exactHeader(res.header, headerRateReset) == "" {
				t.Errorf("%s: rate limit headers %v", tc.name, res.header)
			}
		}
		accepted(t, "the subuser's own send", e.do(request{method: http.MethodPost, path: pathMailSend, token: subKey, body: body}))
		// Other endpoints keep their per-key limit only.
		e.do(request{method: http.MethodGet, path: "/v3/scopes", token: first}).want(t, "another endpoint", http.StatusOK, "")
	})
}

// TestMailSendOfDisabledSubuser: once disabled, a subuser's keys cannot
// send (401), and the parent's key under on-behalf-of sends as the parent,
// as mail send ignores the header; nothing is queued for the subuser.
func TestMailSendOfDisabledSubuser(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		e := newEnv(t, open)
		p := e.user("parent")
		sub := e.subuser(p, "sub")
		parentKey, subKey := e.key(p), e.key(sub, sealpost.ScopeMailSend)
		e.do(request{method: http.MethodPatch, path: "/v3/subusers/sub", token: parentKey, body: `{"disabled":true}`}).
			want(t, "disabling the subuser", http.StatusNoContent, "")
		body := simpleMail("r@example.com")
		e.do(request{method: http.MethodPost, path: pathMailSend, token: subKey, body: body}).
			want(t, "the disabled subuser's send", http.StatusUnauthorized, wantUnauthorized)
		xid := accepted(t, "the parent's send on behalf of the subuser", e.do(request{method: http.MethodPost, path: pathMailSend, token: parentKey, obo: "sub", body: body}))
		if got := e.recipientsOf(t, sub.ID, xid); len(got) != 0 {
			t.Errorf("the disabled subuser has recipients %q", got)
		}
		if got := e.recipientsOf(t, p.ID, xid); len(got) != 1 {
			t.Errorf("the parent has recipients %q, want one", got)
		}
	})
}
