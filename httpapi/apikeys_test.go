package httpapi

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/sealpost/sealpost"
)

// scopesJSON renders a scope list as the API does.
func scopesJSON(scopes []string) string {
	b, err := json.Marshal(scopes)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// createKey POSTs /v3/api_keys and checks the 201 body byte for byte,
// returning the new token.
func (e *env) createKey(t *testing.T, token, obo, body, name string, wantScopes []string) string {
	t.Helper()
	res := e.do(request{method: http.MethodPost, path: "/v3/api_keys", token: token, obo: obo, body: body})
	if res.status != http.StatusCreated {
		t.Fatalf("POST /v3/api_keys %s: %d %s", body, res.status, res.body)
	}
	var got struct {
		APIKey   string `json:"api_key"`
		APIKeyID string `json:"api_key_id"`
	}
	if err := json.Unmarshal([]byte(res.body), &got); err != nil {
		t.Fatalf("create body %s: %v", res.body, err)
	}
	id, _, ok := sealpost.ParseToken(got.APIKey)
	if !ok || id != got.APIKeyID {
		t.Fatalf("create body %s: api_key is not SG.<api_key_id>.<secret>", res.body)
	}
	want := `{"api_key":"` + got.APIKey + `","api_key_id":"` + id + `","name":"` + name + `","scopes":` + scopesJSON(wantScopes) + `}`
	if res.body != want {
		t.Errorf("create body\n got %s\nwant %s", res.body, want)
	}
	return got.APIKey
}

func TestAPIKeysCreate(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		e := newEnv(t, open)
		p := e.user("parent")
		full := e.key(p)

		t.Run("with scopes", func(t *testing.T) {
			tok := e.createKey(t, full, "",
				`{"name":"reader","scopes":["user.settings.enforced_tls.read","api_keys.read","user.settings.enforced_tls.read"]}`,
				"reader", []string{sealpost.ScopeAPIKeysRead, sealpost.ScopeEnforcedTLSRead})
			e.do(request{method: http.MethodGet, path: "/v3/scopes", token: tok}).
				want(t, "new key's scopes", http.StatusOK, `{"scopes":["api_keys.read","user.settings.enforced_tls.read"]}`)
			e.do(request{method: http.MethodGet, path: pathTLS, token: tok}).want(t, "new key reads", http.StatusOK, wantDefaultTLS)
			e.do(request{method: http.MethodPatch, path: pathTLS, token: tok, body: `{}`}).
				want(t, "new key lacks update", http.StatusForbidden, wantForbidden)
		})

		t.Run("without scopes is full access", func(t *testing.T) {
			tok := e.createKey(t, full, "", `{"name":"everything"}`, "everything", sealpost.FullAccessScopes(sealpost.KindUser))
			e.do(request{method: http.MethodGet, path: "/v3/scopes", token: tok}).
				want(t, "full key's scopes", http.StatusOK, `{"scopes":`+scopesJSON(sealpost.FullAccessScopes(sealpost.KindUser))+`}`)
		})

		t.Run("without scopes is bounded by the caller", func(t *testing.T) {
			limited := e.key(p, sealpost.ScopeAPIKeysCreate, sealpost.ScopeEnforcedTLSRead)
			e.createKey(t, limited, "", `{"name":"bounded"}`, "bounded",
				[]string{sealpost.ScopeAPIKeysCreate, sealpost.ScopeEnforcedTLSRead})
		})

		t.Run("empty scopes list", func(t *testing.T) {
			tok := e.createKey(t, full, "", `{"name":"nothing","scopes":[]}`, "nothing", []string{})
			e.do(request{method: http.MethodGet, path: pathTLS, token: tok}).want(t, "scopeless key", http.StatusForbidden, wantForbidden)
			e.do(request{method: http.MethodGet, path: "/v3/scopes", token: tok}).want(t, "scopeless /v3/scopes", http.StatusOK, `{"scopes":[]}`)
		})

		t.Run("cannot grant a scope the caller lacks", func(t *testing.T) {
			limited := e.key(p, sealpost.ScopeAPIKeysCreate, sealpost.ScopeEnforcedTLSRead)
			before := countKeys(t, e, p)
			e.do(request{method: http.MethodPost, path: "/v3/api_keys", token: limited,
				body: `{"name":"escalate","scopes":["user.settings.enforced_tls.read","user.settings.enforced_tls.update"]}`}).
				want(t, "escalation", http.StatusBadRequest,
					`{"errors":[{"field":"scopes","message":"cannot grant a scope the calling key lacks: user.settings.enforced_tls.update"}]}`)
			if after := countKeys(t, e, p); after != before {
				t.Errorf("a refused create stored a key: %d keys, was %d", after, before)
			}
		})

		t.Run("needs api_keys.create", func(t *testing.T) {
			noCreate := e.key(p, sealpost.ScopeAPIKeysRead)
			e.do(request{method: http.MethodPost, path: "/v3/api_keys", token: noCreate, body: `{"name":"x"}`}).
				want(t, "no create scope", http.StatusForbidden, wantForbidden)
		})

		t.Run("validation", func(t *testing.T) {
			tests := []struct{ name, body, want string }{
				{"no name", `{}`, `{"errors":[{"field":"name","message":"name is required"}]}`},
				{"blank name", `{"name":"  "}`, `{"errors":[{"field":"name","message":"name is required"}]}`},
				{"name null", `{"name":null}`, `{"errors":[{"field":"name","message":"name must be a string"}]}`},
				{"name number", `{"name":5}`, `{"errors":[{"field":"name","message":"name must be a string"}]}`},
				{"name control char", `{"name":"a\u0007b"}`, `{"errors":[{"field":"name","message":"name must not contain control characters or invalid UTF-8"}]}`},
				{"name C1 control char", `{"name":"a\u0085b"}`, `{"errors":[{"field":"name","message":"name must not contain control characters or invalid UTF-8"}]}`},
				{"name invalid UTF-8", "{\"name\":\"a\xffb\"}", `{"errors":[{"field":"name","message":"name must be valid UTF-8"}]}`},
				{"name too long", `{"name":"` + strings.Repeat("n", 101) + `"}`, `{"errors":[{"field":"name","message":"name must be at most 100 characters"}]}`},
				{"scopes not array", `{"name":"k","scopes":"mail.send"}`, `{"errors":[{"field":"scopes","message":"scopes must be an array of strings"}]}`},
				{"scopes null", `{"name":"k","scopes":null}`, `{"errors":[{"field":"scopes","message":"scopes must be an array of strings"}]}`},
				{"scope not string", `{"name":"k","scopes":[1]}`, `{"errors":[{"field":"scopes","message":"scopes must be an array of strings"}]}`},
				{"unknown scope", `{"name":"k","scopes":["root"]}`, `{"errors":[{"field":"scopes","message":"unknown scope: root"}]}`},
				{"every problem", `{"name":"","scopes":["root","mail.send","nope"]}`,
					`{"errors":[{"field":"name","message":"name is required"},{"field":"scopes","message":"unknown scope: root"},{"field":"scopes","message":"unknown scope: nope"}]}`},
				{"not an object", `["name"]`, `{"errors":[{"field":null,"message":"request body must be a JSON object"}]}`},
				{"not JSON", `{name:"x"}`, `{"errors":[{"field":null,"message":"request body is not valid JSON"}]}`},
			}
			before := countKeys(t, e, p)
			for _, tc := range tests {
				e.do(request{method: http.MethodPost, path: "/v3/api_keys", token: full, body: tc.body}).
					want(t, tc.name, http.StatusBadRequest, tc.want)
			}
			if after := countKeys(t, e, p); after != before {
				t.Errorf("refused creates stored keys: %d keys, was %d", after, before)
			}
		})
	})
}

func countKeys(t *testing.T, e *env, a *sealpost.Account) int {
	t.Helper()
	keys, err := e.store.APIKeys(t.Context(), a.ID)
	if err != nil {
		t.Fatal(err)
	}
	return len(keys)
}

func TestAPIKeysLifecycle(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		e := newEnv(t, open)
		p := e.user("parent")
		other := e.user("other")
		otherKeyID, _, _ := sealpost.ParseToken(e.key(other))
		// The managing key is made over the API too, so the list holds only
		// keys this test knows the names of.
		admin := e.createKey(t, e.key(p), "", `{"name":"admin"}`, "admin", sealpost.FullAccessScopes(sealpost.KindUser))
		adminID, _, _ := sealpost.ParseToken(admin)
		for _, k := range mustKeys(t, e, p) {
			if k.ID != adminID {
				if err := e.store.DeleteAPIKey(t.Context(), p.ID, k.ID, nil); err != nil {
					t.Fatal(err)
				}
			}
		}

		tok := e.createKey(t, admin, "", `{"name":"worker","scopes":["user.settings.enforced_tls.read"]}`,
			"worker", []string{sealpost.ScopeEnforcedTLSRead})
		id, _, _ := sealpost.ParseToken(tok)

		res := e.do(request{method: http.MethodGet, path: "/v3/api_keys", token: admin})
		wantList := map[string]string{adminID: "admin", id: "worker"}
		var list struct {
			Result []struct {
				Name     string `json:"name"`
				APIKeyID string `json:"api_key_id"`
			} `json:"result"`
		}
		if res.status != http.StatusOK || json.Unmarshal([]byte(res.body), &list) != nil || len(list.Result) != len(wantList) {
			t.Fatalf("list: %d %s", res.status, res.body)
		}
		for _, k := range list.Result {
			if wantList[k.APIKeyID] != k.Name {
				t.Errorf("list has %q named %q", k.APIKeyID, k.Name)
			}
		}
		if !strings.HasPrefix(res.body, `{"result":[{"name":"`) {
			t.Errorf("list body %s: want result entries with name first", res.body)
		}

		path := "/v3/api_keys/" + id
		e.do(request{method: http.MethodGet, path: path, token: admin}).
			want(t, "get", http.StatusOK, `{"result":[{"name":"worker","api_key_id":"`+id+`","scopes":["user.settings.enforced_tls.read"]}]}`)

		e.do(request{method: http.MethodPatch, path: path, token: admin, body: `{"name":"renamed"}`}).
			want(t, "rename", http.StatusOK, `{"api_key_id":"`+id+`","name":"renamed"}`)
		e.do(request{method: http.MethodPatch, path: path, token: admin, body: `{"scopes":[]}`}).
			want(t, "rename without name", http.StatusBadRequest, `{"errors":[{"field":"name","message":"name is required"}]}`)

		e.do(request{method: http.MethodPut, path: path, token: admin,
			body: `{"name":"replaced","scopes":["user.settings.enforced_tls.update","user.settings.enforced_tls.read"]}`}).
			want(t, "replace scopes", http.StatusOK,
				`{"api_key_id":"`+id+`","name":"replaced","scopes":["user.settings.enforced_tls.read","user.settings.enforced_tls.update"]}`)
		e.do(request{method: http.MethodPatch, path: pathTLS, token: tok, body: `{"version":1.3}`}).
			want(t, "key with replaced scopes", http.StatusOK, `{"require_tls":false,"require_valid_cert":false,"version":1.3}`)
		e.do(request{method: http.MethodPut, path: path, token: admin, body: `{"name":"kept"}`}).
			want(t, "PUT without scopes keeps them", http.StatusOK,
				`{"api_key_id":"`+id+`","name":"kept","scopes":["user.settings.enforced_tls.read","user.settings.enforced_tls.update"]}`)
		e.do(request{method: http.MethodPut, path: path, token: admin, body: `{"name":"x","scopes":["nope"]}`}).
			want(t, "PUT unknown scope", http.StatusBadRequest, `{"errors":[{"field":"scopes","message":"unknown scope: nope"}]}`)
		e.do(request{method: http.MethodGet, path: path, token: admin}).
			want(t, "refused PUT changed nothing", http.StatusOK,
				`{"result":[{"name":"kept","api_key_id":"`+id+`","scopes":["user.settings.enforced_tls.read","user.settings.enforced_tls.update"]}]}`)

		// A limited key cannot widen a key beyond its own scopes.
		updater := e.key(p, sealpost.ScopeAPIKeysUpdate, sealpost.ScopeEnforcedTLSRead)
		e.do(request{method: http.MethodPut, path: path, token: updater, body: `{"name":"x","scopes":["mail.send"]}`}).
			want(t, "PUT escalation", http.StatusBadRequest,
				`{"errors":[{"field":"scopes","message":"cannot grant a scope the calling key lacks: mail.send"}]}`)

		// Another account's key is not found, whatever the method.
		otherPath := "/v3/api_keys/" + otherKeyID
		for _, r := range []request{
			{method: http.MethodGet, path: otherPath},
			{method: http.MethodPatch, path: otherPath, body: `{"name":"mine"}`},
			{method: http.MethodPut, path: otherPath, body: `{"name":"mine","scopes":[]}`},
			{method: http.MethodDelete, path: otherPath},
			{method: http.MethodGet, path: "/v3/api_keys/no-such-key"},
		} {
			r.token = admin
			e.do(r).want(t, r.method+" another account's key", http.StatusNotFound, wantNotFound)
		}
		if _, err := e.store.APIKey(t.Context(), other.ID, otherKeyID); err != nil {
			t.Errorf("another account's key after the attempts: %v", err)
		}

		res = e.do(request{method: http.MethodDelete, path: path, token: admin})
		res.want(t, "delete", http.StatusNoContent, "")
		if res.body != "" || res.header.Get(headerContentType) != "" {
			t.Errorf("delete: body %q, Content-Type %q; want neither", res.body, res.header.Get(headerContentType))
		}
		e.do(request{method: http.MethodGet, path: pathTLS, token: tok}).
			want(t, "deleted key, very next request", http.StatusUnauthorized, wantUnauthorized)
		e.do(request{method: http.MethodDelete, path: path, token: admin}).
			want(t, "delete again", http.StatusNotFound, wantNotFound)

		// A key may delete itself; it is refused from then on.
		e.do(request{method: http.MethodDelete, path: "/v3/api_keys/" + adminID, token: admin}).want(t, "self-delete", http.StatusNoContent, "")
		e.do(request{method: http.MethodGet, path: "/v3/api_keys", token: admin}).want(t, "after self-delete", http.StatusUnauthorized, wantUnauthorized)
	})
}

func mustKeys(t *testing.T, e *env, a *sealpost.Account) []*sealpost.APIKey {
	t.Helper()
	keys, err := e.store.APIKeys(t.Context(), a.ID)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func TestAPIKeysOnBehalfOfSubuser(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		e := newEnv(t, open)
		p := e.user("parent")
		s := e.subuser(p, "child")
		c := e.customer(p)
		full := e.key(p)
		if _, err := e.store.UpdateEnforcedTLS(t.Context(), s.ID, sealpost.EnforcedTLSPatch{RequireValidCert: new(true)}); err != nil {
			t.Fatal(err)
		}
		childSetting := `{"require_tls":false,"require_valid_cert":true,"version":1.1}`

		// Full access for a subuser leaves out the tenancy scopes the
		// parent's key holds.
		tok := e.createKey(t, full, "child", `{"name":"for child"}`, "for child", sealpost.FullAccessScopes(sealpost.KindSubuser))
		e.do(request{method: http.MethodGet, path: pathTLS, token: tok}).want(t, "child's key reads child's setting", http.StatusOK, childSetting)
		e.do(request{method: http.MethodPatch, path: pathTLS, token: tok, body: `{"require_tls":true}`}).
			want(t, "child's key patches child's setting", http.StatusOK, `{"require_tls":true,"require_valid_cert":true,"version":1.1}`)
		if got := e.setting(p); got != sealpost.DefaultEnforcedTLS() {
			t.Errorf("parent's setting changed to %+v", got)
		}
		id, _, _ := sealpost.ParseToken(tok)
		if k, err := e.store.APIKey(t.Context(), s.ID, id); err != nil || k.AccountID != s.ID {
			t.Errorf("key created on behalf of the subuser: %+v, %v", k, err)
		}

		// The parent sees and manages the child's keys through the header,
		// and does not see them without it.
		res := e.do(request{method: http.MethodGet, path: "/v3/api_keys", token: full, obo: "child"})
		if res.status != http.StatusOK || !strings.Contains(res.body, id) {
			t.Errorf("parent listing child's keys: %d %s", res.status, res.body)
		}
		res = e.do(request{method: http.MethodGet, path: "/v3/api_keys", token: full})
		if res.status != http.StatusOK || strings.Contains(res.body, id) {
			t.Errorf("parent's own listing shows the child's key: %d %s", res.status, res.body)
		}
		e.do(request{method: http.MethodGet, path: "/v3/api_keys/" + id, token: full}).
			want(t, "child's key without the header", http.StatusNotFound, wantNotFound)

		// A subuser cannot be given scopes only a top-level account holds.
		e.do(request{method: http.MethodPost, path: "/v3/api_keys", token: full, obo: "child",
			body: `{"name":"x","scopes":["subusers.read"]}`}).
			want(t, "tenancy scope for a subuser", http.StatusBadRequest, `{"errors":[{"field":"scopes","message":"unknown scope: subusers.read"}]}`)

		// Customer accounts, named by account-id, work the same way.
		ctok := e.createKey(t, full, "account-id "+c.PublicID, `{"name":"for customer","scopes":["user.settings.enforced_tls.read"]}`,
			"for customer", []string{sealpost.ScopeEnforcedTLSRead})
		e.do(request{method: http.MethodGet, path: pathTLS, token: ctok}).want(t, "customer's key", http.StatusOK, wantDefaultTLS)

		// The child's key cannot act for anyone.
		e.do(request{method: http.MethodGet, path: "/v3/api_keys", token: tok, obo: "child"}).
			want(t, "subuser key with on-behalf-of", http.StatusForbidden, wantForbidden)

		e.do(request{method: http.MethodDelete, path: "/v3/api_keys/" + id, token: full, obo: "child"}).
			want(t, "parent deletes child's key", http.StatusNoContent, "")
		e.do(request{method: http.MethodGet, path: pathTLS, token: tok}).want(t, "deleted child key", http.StatusUnauthorized, wantUnauthorized)
	})
}

func TestDisabledSubuserKeys(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		e := newEnv(t, open)
		p := e.user("parent")
		e.subuser(p, "child")
		full := e.key(p)
		tok := e.createKey(t, full, "child", `{"name":"child key","scopes":["user.settings.enforced_tls.read"]}`,
			"child key", []string{sealpost.ScopeEnforcedTLSRead})
		e.do(request{method: http.MethodGet, path: pathTLS, token: tok}).want(t, "before disabling", http.StatusOK, wantDefaultTLS)

		e.do(request{method: http.MethodPatch, path: "/v3/subusers/child", token: full, body: `{"disabled":true}`}).
			want(t, "disable", http.StatusNoContent, "")
		e.do(request{method: http.MethodGet, path: pathTLS, token: tok}).want(t, "disabled subuser's key", http.StatusUnauthorized, wantUnauthorized)

		e.do(request{method: http.MethodPatch, path: "/v3/subusers/child", token: full, body: `{"disabled":false}`}).
			want(t, "enable", http.StatusNoContent, "")
		e.do(request{method: http.MethodGet, path: pathTLS, token: tok}).want(t, "re-enabled subuser's key", http.StatusOK, wantDefaultTLS)

		e.do(request{method: http.MethodDelete, path: "/v3/subusers/child", token: full}).want(t, "delete subuser", http.StatusNoContent, "")
		e.do(request{method: http.MethodGet, path: pathTLS, token: tok}).want(t, "deleted subuser's key", http.StatusUnauthorized, wantUnauthorized)
	})
}
