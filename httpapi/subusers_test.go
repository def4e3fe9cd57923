package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
)

func TestSubusers(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		e := newEnv(t, open)
		p := e.user("parent")
		other := e.user("other")
		e.subuser(other, "others-child")
		full := e.key(p)
		otherFull := e.key(other)

		var ids []int64
		for i, name := range []string{"alpha", "bravo", "charlie"} {
			body := fmt.Sprintf(`{"username":%q,"email":"%s@example.com","password":"s3cret-Pass","ips":["192.0.2.%d"]}`, name, name, i)
			res := e.do(request{method: http.MethodPost, path: "/v3/subusers", token: full, body: body})
			var got struct {
				UserID int64 `json:"user_id"`
			}
			if res.status != http.StatusOK || json.Unmarshal([]byte(res.body), &got) != nil || got.UserID == 0 {
				t.Fatalf("create %s: %d %s", name, res.status, res.body)
			}
			want := fmt.Sprintf(`{"username":%q,"user_id":%d,"email":"%s@example.com","credit_allocation":{"type":"unlimited"}}`, name, got.UserID, name)
			res.want(t, "create "+name, http.StatusOK, want)
			ids = append(ids, got.UserID)
		}
		// password and ips are optional.
		res := e.do(request{method: http.MethodPost, path: "/v3/subusers", token: full, body: `{"username":"delta","email":"d@example.com"}`})
		res.want(t, "create without password and ips", http.StatusOK, "")
		var delta struct {
			UserID int64 `json:"user_id"`
		}
		_ = json.Unmarshal([]byte(res.body), &delta)
		ids = append(ids, delta.UserID)

		entry := func(i int, name, email string, disabled bool) string {
			return fmt.Sprintf(`{"disabled":%t,"id":%d,"username":%q,"email":%q}`, disabled, ids[i], name, email)
		}
		all := []string{
			entry(0, "alpha", "alpha@example.com", false),
			entry(1, "bravo", "bravo@example.com", false),
			entry(2, "charlie", "charlie@example.com", false),
			entry(3, "delta", "d@example.com", false),
		}
		list := func(query string) response {
			return e.do(request{method: http.MethodGet, path: "/v3/subusers" + query, token: full})
		}
		list("").want(t, "list", http.StatusOK, "["+strings.Join(all, ",")+"]")
		list("?username=bravo").want(t, "filter", http.StatusOK, "["+all[1]+"]")
		list("?username=nobody").want(t, "filter no match", http.StatusOK, "[]")
		list("?username=others-child").want(t, "filter another parent's", http.StatusOK, "[]")
		list("?limit=2").want(t, "limit", http.StatusOK, "["+all[0]+","+all[1]+"]")
		list("?limit=2&offset=2").want(t, "limit offset", http.StatusOK, "["+all[2]+","+all[3]+"]")
		list("?offset=3").want(t, "offset", http.StatusOK, "["+all[3]+"]")
		list("?offset=10").want(t, "offset past the end", http.StatusOK, "[]")
		e.do(request{method: http.MethodGet, path: "/v3/subusers", token: otherFull}).
			want(t, "other parent's list", http.StatusOK, fmt.Sprintf(`[{"disabled":false,"id":%d,"username":"others-child","email":"others-child@example.net"}]`, mustAccount(t, e, "others-child").ID))

		for _, tc := range []struct{ query, want string }{
			{"?limit=abc", `{"errors":[{"field":"limit","message":"limit must be an integer from 1 to 2147483647"}]}`},
			{"?limit=0", `{"errors":[{"field":"limit","message":"limit must be an integer from 1 to 2147483647"}]}`},
			{"?limit=-1", `{"errors":[{"field":"limit","message":"limit must be an integer from 1 to 2147483647"}]}`},
			{"?limit=99999999999999999999", `{"errors":[{"field":"limit","message":"limit must be an integer from 1 to 2147483647"}]}`},
			{"?offset=-5", `{"errors":[{"field":"offset","message":"offset must be an integer from 0 to 2147483647"}]}`},
			{"?offset=1.5&limit=", `{"errors":[{"field":"limit","message":"limit must be an integer from 1 to 2147483647"}` +
				`,{"field":"offset","message":"offset must be an integer from 0 to 2147483647"}]}`},
			{"?limit=1&limit=2", `{"errors":[{"field":"limit","message":"limit must be given once"}]}`},
			{"?username=a%00b", `{"errors":[{"field":"username","message":"username may contain only letters, digits and . _ @ + -"}]}`},
			{"?username=%zz", `{"errors":[{"field":null,"message":"query string is malformed"}]}`},
		} {
			list(tc.query).want(t, "list "+tc.query, http.StatusBadRequest, tc.want)
		}

		sub := func(method, name, body string) response {
			return e.do(request{method: method, path: "/v3/subusers/" + name, token: full, body: body})
		}
		sub(http.MethodPatch, "bravo", `{"disabled":true}`).want(t, "disable", http.StatusNoContent, "")
		list("?username=bravo").want(t, "disabled in list", http.StatusOK, "["+entry(1, "bravo", "bravo@example.com", true)+"]")
		sub(http.MethodPatch, "bravo", `{"disabled":false}`).want(t, "enable", http.StatusNoContent, "")
		list("?username=bravo").want(t, "enabled in list", http.StatusOK, "["+all[1]+"]")
		for _, tc := range []struct{ name, body, want string }{
			{"missing", `{}`, `{"errors":[{"field":"disabled","message":"disabled is required"}]}`},
			{"string", `{"disabled":"true"}`, `{"errors":[{"field":"disabled","message":"disabled must be a boolean"}]}`},
			{"null", `{"disabled":null}`, `{"errors":[{"field":"disabled","message":"disabled must be a boolean"}]}`},
			{"not object", `true`, `{"errors":[{"field":null,"message":"request body must be a JSON object"}]}`},
		} {
			sub(http.MethodPatch, "bravo", tc.body).want(t, "PATCH "+tc.name, http.StatusBadRequest, tc.want)
		}

		// Another parent's subuser, a top-level account and a missing name
		// all look the same.
		for _, name := range []string{"others-child", "other", "parent", "nobody", "bad%20name"} {
			sub(http.MethodPatch, name, `{"disabled":true}`).want(t, "PATCH "+name, http.StatusNotFound, wantNotFound)
			sub(http.MethodDelete, name, "").want(t, "DELETE "+name, http.StatusNotFound, wantNotFound)
		}
		if a := mustAccount(t, e, "others-child"); a.Disabled {
			t.Errorf("another parent's subuser was disabled")
		}

		sub(http.MethodDelete, "charlie", "").want(t, "delete", http.StatusNoContent, "")
		sub(http.MethodDelete, "charlie", "").want(t, "delete again", http.StatusNotFound, wantNotFound)
		list("").want(t, "list after delete", http.StatusOK, "["+all[0]+","+all[1]+","+all[3]+"]")
		if _, err := e.store.AccountByUsername(t.Context(), "charlie"); sealpost.ErrorCode(err) != sealpost.ENOTFOUND {
			t.Errorf("deleted subuser still stored: %v", err)
		}
	})
}

func mustAccount(t *testing.T, e *env, username string) *sealpost.Account {
	t.Helper()
	a, err := e.store.AccountByUsername(t.Context(), username)
	if err != nil {
		t.Fatalf("AccountByUsername(%q): %v", username, err)
	}
	return a
}

func TestSubusersCreateInvalid(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		e := newEnv(t, open)
		p := e.user("parent")
		e.user("taken")
		full := e.key(p)
		tests := []struct{ name, body, want string }{
			{"empty object", `{}`, `{"errors":[{"field":"username","message":"username is required"},{"field":"email","message":"email is required"}]}`},
			{"username wrong type", `{"username":7,"email":"a@example.com"}`, `{"errors":[{"field":"username","message":"username must be a string"}]}`},
			{"username space", `{"username":"a b","email":"a@example.com"}`, `{"errors":[{"field":"username","message":"username may contain only letters, digits and . _ @ + -"}]}`},
			{"username control", `{"username":"a\u0001","email":"a@example.com"}`, `{"errors":[{"field":"username","message":"username may contain only letters, digits and . _ @ + -"}]}`},
			{"username invalid UTF-8", "{\"username\":\"a\xc3\",\"email\":\"a@example.com\"}", `{"errors":[{"field":"username","message":"username must be valid UTF-8"}]}`},
			{"username too long", `{"username":"` + strings.Repeat("u", 65) + `","email":"a@example.com"}`, `{"errors":[{"field":"username","message":"username must be at most 64 characters"}]}`},
			{"username account-id", `{"username":"account-id7","email":"a@example.com"}`, `{"errors":[{"field":"username","message":"username must not start with account-id"}]}`},
			{"email invalid", `{"username":"ok","email":"nope"}`, `{"errors":[{"field":"email","message":"email must be a valid email address"}]}`},
			{"email C1 control", `{"username":"ok","email":"a\u0085b@example.com"}`, `{"errors":[{"field":"email","message":"email must be a valid email address"}]}`},
			{"email null", `{"username":"ok","email":null}`, `{"errors":[{"field":"email","message":"email must be a string"}]}`},
			{"password not string", `{"username":"ok","email":"a@example.com","password":123}`, `{"errors":[{"field":"password","message":"password must be a string"}]}`},
			{"ips not array", `{"username":"ok","email":"a@example.com","ips":"192.0.2.1"}`, `{"errors":[{"field":"ips","message":"ips must be an array of strings"}]}`},
			{"ips of numbers", `{"username":"ok","email":"a@example.com","ips":[1]}`, `{"errors":[{"field":"ips","message":"ips must be an array of strings"}]}`},
			{"everything wrong", `{"username":"","email":"x","password":false,"ips":{}}`,
				`{"errors":[{"field":"username","message":"username is required"},{"field":"email","message":"email must be a valid email address"},` +
					`{"field":"password","message":"password must be a string"},{"field":"ips","message":"ips must be an array of strings"}]}`},
			{"duplicate username", `{"username":"taken","email":"a@example.com"}`, `{"errors":[{"field":"username","message":"username is already taken"}]}`},
			{"not JSON", `username=x`, `{"errors":[{"field":null,"message":"request body is not valid JSON"}]}`},
		}
		for _, tc := range tests {
			e.do(request{method: http.MethodPost, path: "/v3/subusers", token: full, body: tc.body}).
				want(t, tc.name, http.StatusBadRequest, tc.want)
		}
		e.do(request{method: http.MethodGet, path: "/v3/subusers", token: full}).want(t, "nothing created", http.StatusOK, "[]")
	})
}

func TestSubusersForbidden(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		e := newEnv(t, open)
		p := e.user("parent")
		s := e.subuser(p, "child")
		c := e.customer(p)
		full := e.key(p)
		readOnly := e.key(p, sealpost.ScopeSubusersRead)
		childKey := e.key(s)
		customerKey := e.key(c)
		body := `{"username":"grandchild","email":"g@example.com"}`
		for _, tc := range []struct {
			name string
			r    request
		}{
			{"parent acting as its subuser", request{method: http.MethodPost, token: full, obo: "child", body: body}},
			{"parent acting as its customer", request{method: http.MethodGet, token: full, obo: "account-id " + c.PublicID}},
			{"subuser key", request{method: http.MethodPost, token: childKey, body: body}},
			{"customer key", request{method: http.MethodGet, token: customerKey}},
			{"key without subusers.create", request{method: http.MethodPost, token: readOnly, body: body}},
		} {
			tc.r.path = "/v3/subusers"
			e.do(tc.r).want(t, tc.name, http.StatusForbidden, wantForbidden)
		}
		e.do(request{method: http.MethodDelete, path: "/v3/subusers/child", token: readOnly}).
			want(t, "delete without subusers.delete", http.StatusForbidden, wantForbidden)
		if _, err := e.store.AccountByUsername(t.Context(), "grandchild"); sealpost.ErrorCode(err) != sealpost.ENOTFOUND {
			t.Errorf("a forbidden create stored an account: %v", err)
		}
	})
}

func TestPartnerAccounts(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		e := newEnv(t, open)
		p := e.user("reseller")
		other := e.user("other")
		full := e.key(p)
		e.customer(other)

		list := func(token string) []string {
			res := e.do(request{method: http.MethodGet, path: "/v3/partners/accounts", token: token})
			var got struct {
				Accounts []struct {
					ID        string `json:"id"`
					CreatedAt string `json:"created_at"`
				} `json:"accounts"`
			}
			if res.status != http.StatusOK || json.Unmarshal([]byte(res.body), &got) != nil || got.Accounts == nil {
				t.Fatalf("list: %d %s", res.status, res.body)
			}
			var ids []string
			for _, a := range got.Accounts {
				created, err := time.Parse(time.RFC3339, a.CreatedAt)
				if d := time.Since(created); err != nil || d < -time.Minute || d > time.Minute {
					t.Errorf("created_at %q is not a recent RFC 3339 time", a.CreatedAt)
				}
				ids = append(ids, a.ID)
			}
			return ids
		}
		if ids := list(full); len(ids) != 0 {
			t.Errorf("fresh reseller lists %v", ids)
		}

		var created []string
		for _, body := range []string{
			`{"profile":{"email":"shop@example.com","first_name":"Ada","company_name":"Shop"},"offerings":[{"name":"org.ei.free.v1","type":"package","quantity":1}]}`,
			`{}`,
			`{"profile":{}}`,
		} {
			res := e.do(request{method: http.MethodPost, path: "/v3/partners/accounts", token: full, body: body})
			var got struct {
				AccountID string `json:"account_id"`
			}
			if res.status != http.StatusCreated || json.Unmarshal([]byte(res.body), &got) != nil || !strings.HasPrefix(got.AccountID, "sg") {
				t.Fatalf("create %s: %d %s", body, res.status, res.body)
			}
			res.want(t, "create body", http.StatusCreated, `{"account_id":"`+got.AccountID+`"}`)
			created = append(created, got.AccountID)
			a, err := e.store.AccountByPublicID(t.Context(), got.AccountID)
			if err != nil || a.Kind != sealpost.KindCustomer || a.ParentID != p.ID {
				t.Errorf("stored customer account: %+v, %v", a, err)
			}
		}
		if got := list(full); strings.Join(got, ",") != strings.Join(created, ",") {
			t.Errorf("list = %v, want %v", got, created)
		}

		// The new account is usable through on-behalf-of at once.
		e.do(request{method: http.MethodGet, path: pathTLS, token: full, obo: "account-id " + created[0]}).
			want(t, "acting as new customer", http.StatusOK, wantDefaultTLS)

		for _, tc := range []struct{ name, body, want string }{
			{"profile not object", `{"profile":"x"}`, `{"errors":[{"message":"profile must be an object","field":"profile","error_id":"10-40000"}]}`},
			{"profile email invalid", `{"profile":{"email":"no"}}`, `{"errors":[{"message":"profile.email must be a valid email address","field":"profile.email","error_id":"10-40002"}]}`},
			{"profile field wrong type", `{"profile":{"phone":5}}`, `{"errors":[{"message":"profile.phone must be a string","field":"profile.phone","error_id":"10-40000"}]}`},
			{"offerings not array", `{"offerings":{}}`, `{"errors":[{"message":"offerings must be an array","field":"offerings","error_id":"10-40000"}]}`},
			{"offering not object", `{"offerings":["x"]}`, `{"errors":[{"message":"offerings[0] must be an object","field":"offerings[0]","error_id":"10-40000"}]}`},
			{"offering bad fields", `{"offerings":[{"name":1,"quantity":1.5}]}`,
				`{"errors":[{"message":"offerings[0].name must be a string","field":"offerings[0].name","error_id":"10-40000"},{"message":"offerings[0].quantity must be a non-negative integer","field":"offerings[0].quantity","error_id":"10-40000"}]}`},
			{"not JSON", `{`, `{"errors":[{"message":"request body is not valid JSON","field":"","error_id":"10-40000"}]}`},
		} {
			e.do(request{method: http.MethodPost, path: "/v3/partners/accounts", token: full, body: tc.body}).
				want(t, tc.name, http.StatusBadRequest, tc.want)
		}
		if got := list(full); len(got) != len(created) {
			t.Errorf("refused creates stored accounts: %v", got)
		}

		s := e.subuser(p, "child")
		for _, tc := range []struct {
			name string
			r    request
		}{
			{"subuser key", request{method: http.MethodPost, token: e.key(s), body: `{}`}},
			{"parent acting as subuser", request{method: http.MethodGet, token: full, obo: "child"}},
			{"key without partners scope", request{method: http.MethodGet, token: e.key(p, sealpost.ScopePartnerAccountsCreate)}},
		} {
			tc.r.path = "/v3/partners/accounts"
			e.do(tc.r).want(t, tc.name, http.StatusForbidden, provisioningForm[wantForbidden])
		}

		// Every other error in the Account Provisioning form too, but a bad
		// key's: SendGrid refuses it before the API is reached, with the
		// generic body.
		e.do(request{method: http.MethodGet, path: "/v3/partners/accounts", obo: "account-id sgnone", token: full}).
			want(t, "unknown account", http.StatusNotFound, `{"errors":[{"message":"on-behalf-of names no account of yours","field":"on-behalf-of","error_id":"10-40400"}]}`)
		e.do(request{method: http.MethodDelete, path: "/v3/partners/accounts", token: full}).
			want(t, "wrong method", http.StatusMethodNotAllowed, provisioningForm[wantMethod])
		e.do(request{method: http.MethodGet, path: "/v3/partners/accounts", token: "SG.nope.nope"}).
			want(t, "bad key", http.StatusUnauthorized, wantUnauthorized)
	})
}
