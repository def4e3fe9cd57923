package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/sealpost/sealpost"
)

const pathDomainPolicies = "/v3/user/settings/enforced_tls/domains"

// withoutTimes returns a policy body (or a list of them) with its
// timestamps checked for presence and removed, re-encoded so that it
// compares as a string.
func withoutTimes(t testing.TB, body string) string {
	t.Helper()
	strip := func(m map[string]any) {
		for _, k := range []string{"created_at", "updated_at"} {
			if n, ok := m[k].(float64); !ok || n <= 0 {
				t.Errorf("%s is %v in %s", k, m[k], body)
			}
			delete(m, k)
		}
	}
	var v any
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	switch v := v.(type) {
	case map[string]any:
		if list, ok := v["result"].([]any); ok {
			for _, p := range list {
				strip(p.(map[string]any))
			}
		} else if _, ok := v["domain"]; ok {
			strip(v)
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// policyJSON is a policy body as the routes answer it, without times;
// json.Marshal sorts the keys, as withoutTimes's re-encoding does.
func policyJSON(domain string, p sealpost.EnforcedTLS, effective bool, eff sealpost.EnforcedTLS) string {
	return fmt.Sprintf(`{"domain":%q,"effective":%v,"effective_policy":{"require_tls":%v,"require_valid_cert":%v,"version":%v},"require_tls":%v,"require_valid_cert":%v,"version":%v}`,
		domain, effective, eff.RequireTLS, eff.RequireValidCert, eff.Version, p.RequireTLS, p.RequireValidCert, p.Version)
}

func tlsSetting(requireTLS, requireValidCert bool, v sealpost.TLSVersion) sealpost.EnforcedTLS {
	return sealpost.EnforcedTLS{RequireTLS: requireTLS, RequireValidCert: requireValidCert, Version: v}
}

type domainPolicyStep struct {
	what   string
	r      request
	status int
	body   string // without times; "" checks none
}

func runDomainPolicySteps(t *testing.T, e *env, steps []domainPolicyStep) {
	t.Helper()
	for _, st := range steps {
		res := e.do(st.r)
		got := res.body
		if res.status < 300 && got != "" {
			got = withoutTimes(t, got)
		}
		if res.status != st.status || (st.body != "" && got != st.body) {
			t.Errorf("%s: %s %s: got %d %s\nwant %d %s", st.what, st.r.method, st.r.path, res.status, got, st.status, st.body)
		}
	}
}

// TestDomainPolicies walks a policy's life: creation with a domain in any
// spelling, idempotent replacement, whether it raises the account's
// setting as that changes, listing and deletion.
func TestDomainPolicies(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		e := newEnv(t, open)
		a := e.user("alice")
		key := e.key(a)
		one := pathDomainPolicies + "/"
		strong := tlsSetting(true, false, sealpost.TLS12)
		strongBody := `{"require_tls":true,"require_valid_cert":false,"version":1.2}`
		idn := tlsSetting(true, false, sealpost.TLS13)
		idnBody := `{"version":1.3,"require_valid_cert":false,"require_tls":true}`
		runDomainPolicySteps(t, e, []domainPolicyStep{
			{"list, none", request{method: "GET", path: pathDomainPolicies, token: key}, 200, `{"result":[]}`},
			{"get, none", request{method: "GET", path: one + "example.com", token: key}, 404, wantNotFound},
			{"delete, none", request{method: "DELETE", path: one + "example.com", token: key}, 404, wantNotFound},
			{"create in another spelling", request{method: "PUT", path: one + "Example.COM.", token: key, body: strongBody}, 201,
				policyJSON("example.com", strong, true, strong)},
			{"the same again", request{method: "PUT", path: one + "example.com", token: key, body: strongBody}, 200,
				policyJSON("example.com", strong, true, strong)},
			{"get in another spelling", request{method: "GET", path: one + "EXAMPLE.com", token: key}, 200,
				policyJSON("example.com", strong, true, strong)},
			{"create an internationalised domain", request{method: "PUT", path: one + "B%C3%BCcher.example", token: key, body: idnBody}, 201,
				policyJSON("xn--bcher-kva.example", idn, true, idn)},
			{"get it by its A-label", request{method: "GET", path: one + "xn--bcher-kva.example", token: key}, 200,
				policyJSON("xn--bcher-kva.example", idn, true, idn)},
			// The account now demands a valid certificate with TLS 1.2, which
			// makes TLS mandatory: the example.com policy adds nothing; the
			// other still raises the version.
			{"raise the account's setting", request{method: "PATCH", path: pathTLS, token: key, body: `{"require_valid_cert":true,"version":1.2}`}, 200, ""},
			{"get, no longer effective", request{method: "GET", path: one + "example.com", token: key}, 200,
				policyJSON("example.com", strong, false, tlsSetting(false, true, sealpost.TLS12))},
			{"list", request{method: "GET", path: pathDomainPolicies, token: key}, 200,
				`{"result":[` + policyJSON("example.com", strong, false, tlsSetting(false, true, sealpost.TLS12)) + `,` +
					policyJSON("xn--bcher-kva.example", idn, true, tlsSetting(true, true, sealpost.TLS13)) + `]}`},
			{"replace", request{method: "PUT", path: one + "example.com", token: key, body: `{"require_tls":true,"require_valid_cert":true,"version":1.3}`}, 200,
				policyJSON("example.com", tlsSetting(true, true, sealpost.TLS13), true, tlsSetting(true, true, sealpost.TLS13))},
			{"delete in another spelling", request{method: "DELETE", path: one + "Example.Com.", token: key}, 204, ""},
			{"delete again", request{method: "DELETE", path: one + "example.com", token: key}, 404, wantNotFound},
			{"get after delete", request{method: "GET", path: one + "example.com", token: key}, 404, wantNotFound},
			{"create after delete", request{method: "PUT", path: one + "example.com", token: key, body: strongBody}, 201, ""},
			// Kept, though it demands less than the account: TLS 1.3 binds
			// nothing while the policy makes TLS optional.
			{"a weaker policy", request{method: "PUT", path: one + "weak.example", token: key, body: `{"require_tls":false,"require_valid_cert":false,"version":1.3}`}, 201,
				policyJSON("weak.example", tlsSetting(false, false, sealpost.TLS13), false, tlsSetting(false, true, sealpost.TLS12))},
		})
	})
}

// TestDomainPolicyPutKeepsTimesWhenUnchanged: a tool that applies its
// state again and again sees no change, not even of updated_at.
func TestDomainPolicyPutKeepsTimesWhenUnchanged(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		e := newEnv(t, open)
		a := e.user("alice")
		key := e.key(a)
		r := request{method: "PUT", path: pathDomainPolicies + "/example.com", token: key, body: `{"require_tls":true,"require_valid_cert":true,"version":1.2}`}
		first := e.do(r)
		first.want(t, "create", 201, "")
		again := e.do(r)
		again.want(t, "repeat", 200, first.body)
	})
}

// TestDomainPolicyInvalid: every problem of a PUT is listed with its
// field, in the account setting's own words, and nothing is stored.
func TestDomainPolicyInvalid(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		e := newEnv(t, open)
		a := e.user("alice")
		key := e.key(a)
		one := pathDomainPolicies + "/"
		full := `{"require_tls":true,"require_valid_cert":false,"version":1.2}`
		for _, tc := range []struct {
			what, domain, body, want string
		}{
			{"empty object", "example.com", `{}`,
				`{"errors":[{"field":"require_tls","message":"require_tls is required"},{"field":"require_valid_cert","message":"require_valid_cert is required"},{"field":"version","message":"version is required"}]}`},
			{"wrong types and a missing field", "example.com", `{"require_tls":"yes","version":"1.2"}`,
				`{"errors":[{"field":"require_tls","message":"require_tls must be a boolean"},{"field":"require_valid_cert","message":"require_valid_cert is required"},{"field":"version","message":"version must be one of 1.1, 1.2, 1.3"}]}`},
			{"nulls", "example.com", `{"require_tls":null,"require_valid_cert":false,"version":null}`,
				`{"errors":[{"field":"require_tls","message":"require_tls must be a boolean"},{"field":"version","message":"version must be one of 1.1, 1.2, 1.3"}]}`},
			{"an unknown version", "example.com", `{"require_tls":true,"require_valid_cert":false,"version":1.0}`,
				`{"errors":[{"field":"version","message":"version must be one of 1.1, 1.2, 1.3"}]}`},
			{"a bad domain and a bad body", "a..b", `{"require_tls":1}`,
				`{"errors":[{"field":"domain","message":"domain \"a..b\" is not a valid domain name"},{"field":"require_tls","message":"require_tls must be a boolean"},{"field":"require_valid_cert","message":"require_valid_cert is required"},{"field":"version","message":"version is required"}]}`},
			{"a single label", "localhost", full,
				`{"errors":[{"field":"domain","message":"domain \"localhost\" must have at least two labels"}]}`},
			{"an address", "192.0.2.1", full,
				`{"errors":[{"field":"domain","message":"domain \"192.0.2.1\" is an address, not a domain name"}]}`},
			{"an escaped slash", "a%2Fb.example", full,
				`{"errors":[{"field":"domain","message":"domain \"a/b.example\" is not a valid domain name"}]}`},
			{"a wildcard", "*.example.com", full,
				`{"errors":[{"field":"domain","message":"domain \"*.example.com\" is not a valid domain name"}]}`},
			{"not JSON", "example.com", `{"require_tls":`,
				`{"errors":[{"field":null,"message":"request body is not valid JSON"}]}`},
			{"an array", "example.com", `[]`,
				`{"errors":[{"field":null,"message":"request body must be a JSON object"}]}`},
			{"no body", "example.com", ``,
				`{"errors":[{"field":null,"message":"request body is not valid JSON"}]}`},
			{"invalid UTF-8 in an unknown member", "example.com", "{\"require_tls\":true,\"require_valid_cert\":false,\"version\":1.2,\"x\":\"\xff\"}",
				`{"errors":[{"field":null,"message":"request body must be valid UTF-8"}]}`},
		} {
			e.do(request{method: "PUT", path: one + tc.domain, token: key, body: tc.body}).want(t, tc.what, 400, tc.want)
		}
		e.do(request{method: "GET", path: one + "a..b", token: key}).want(t, "get a bad domain", 400,
			`{"errors":[{"field":"domain","message":"domain \"a..b\" is not a valid domain name"}]}`)
		e.do(request{method: "DELETE", path: one + "a..b", token: key}).want(t, "delete a bad domain", 400,
			`{"errors":[{"field":"domain","message":"domain \"a..b\" is not a valid domain name"}]}`)
		e.do(request{method: "GET", path: pathDomainPolicies, token: key}).want(t, "list after refusals", 200, `{"result":[]}`)
		e.do(request{method: "POST", path: one + "example.com", token: key, body: full}).want(t, "POST", 405, wantMethod)
	})
}

// TestDomainPolicyScopesAndAccounts: the Enforced TLS read scope reads,
// its update scope changes; a parent manages its subusers' and customer
// accounts' policies on their behalf; no account sees another's.
func TestDomainPolicyScopesAndAccounts(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		e := newEnv(t, open)
		parent := e.user("parent")
		kid := e.subuser(parent, "kid")
		cust := e.customer(parent)
		other := e.user("other")
		full := e.key(parent)
		reader := e.key(parent, sealpost.ScopeEnforcedTLSRead)
		updater := e.key(parent, sealpost.ScopeEnforcedTLSUpdate)
		sendOnly := e.key(parent, sealpost.ScopeMailSend)
		kidKey := e.key(kid)
		otherKey := e.key(other)
		one := pathDomainPolicies + "/example.com"
		body := `{"require_tls":true,"require_valid_cert":false,"version":1.2}`
		p := tlsSetting(true, false, sealpost.TLS12)
		mine := policyJSON("example.com", p, true, p)
		kidBody := `{"require_tls":false,"require_valid_cert":true,"version":1.3}`
		kp := tlsSetting(false, true, sealpost.TLS13)
		kids := policyJSON("example.com", kp, true, kp)
		custOBO := "account-id " + cust.PublicID
		runDomainPolicySteps(t, e, []domainPolicyStep{
			{"put without any scope of it", request{method: "PUT", path: one, token: sendOnly, body: body}, 403, wantForbidden},
			{"list without any scope of it", request{method: "GET", path: pathDomainPolicies, token: sendOnly}, 403, wantForbidden},
			{"put with the read scope", request{method: "PUT", path: one, token: reader, body: body}, 403, wantForbidden},
			{"put with the update scope", request{method: "PUT", path: one, token: updater, body: body}, 201, mine},
			{"get with the update scope", request{method: "GET", path: one, token: updater}, 403, wantForbidden},
			{"list with the update scope", request{method: "GET", path: pathDomainPolicies, token: updater}, 403, wantForbidden},
			{"get with the read scope", request{method: "GET", path: one, token: reader}, 200, mine},
			{"list with the read scope", request{method: "GET", path: pathDomainPolicies, token: reader}, 200, `{"result":[` + mine + `]}`},
			{"delete with the read scope", request{method: "DELETE", path: one, token: reader}, 403, wantForbidden},
			{"no policy for the subuser", request{method: "GET", path: one, token: full, obo: kid.Username}, 404, wantNotFound},
			{"put on behalf of the subuser", request{method: "PUT", path: one, token: full, obo: kid.Username, body: kidBody}, 201, kids},
			{"the subuser's own key sees it", request{method: "GET", path: one, token: kidKey}, 200, kids},
			{"the parent's is unchanged", request{method: "GET", path: one, token: full}, 200, mine},
			{"put on behalf of the customer", request{method: "PUT", path: one, token: full, obo: custOBO, body: body}, 201, mine},
			{"list on behalf of the customer", request{method: "GET", path: pathDomainPolicies, token: full, obo: custOBO}, 200, `{"result":[` + mine + `]}`},
			{"a subuser may not act on behalf of another", request{method: "GET", path: pathDomainPolicies, token: kidKey, obo: "parent"}, 403, wantForbidden},
			{"on behalf of an unknown subuser", request{method: "GET", path: pathDomainPolicies, token: full, obo: "nobody"}, 404, wantOBONotFound},
			{"on behalf of another's subuser", request{method: "PUT", path: one, token: otherKey, obo: kid.Username, body: body}, 404, wantOBONotFound},
			{"another account lists none", request{method: "GET", path: pathDomainPolicies, token: otherKey}, 200, `{"result":[]}`},
			{"another account's get", request{method: "GET", path: one, token: otherKey}, 404, wantNotFound},
			{"another account's delete", request{method: "DELETE", path: one, token: otherKey}, 404, wantNotFound},
			{"delete on behalf of the subuser", request{method: "DELETE", path: one, token: full, obo: kid.Username}, 204, ""},
			{"the parent's survives", request{method: "GET", path: one, token: full}, 200, mine},
			{"the customer's survives", request{method: "GET", path: one, token: full, obo: custOBO}, 200, mine},
			{"delete with the update scope", request{method: "DELETE", path: one, token: updater}, 204, ""},
			{"no key", request{method: "GET", path: pathDomainPolicies}, 401, wantUnauthorized},
		})
	})
}

// TestDomainPolicyCap: the account's 1,001st domain is refused with the
// limit's message; replacing one of the thousand is not.
func TestDomainPolicyCap(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		e := newEnv(t, open)
		a := e.user("alice")
		key := e.key(a)
		ctx := context.Background()
		for i := range sealpost.MaxDomainTLSPoliciesPerAccount {
			p := sealpost.DomainTLSPolicy{Domain: fmt.Sprintf("d%d.example", i), Policy: tlsSetting(true, false, sealpost.TLS12)}
			if _, _, err := e.store.PutDomainTLSPolicy(ctx, a.ID, p); err != nil {
				t.Fatal(err)
			}
		}
		body := `{"require_tls":true,"require_valid_cert":true,"version":1.3}`
		e.do(request{method: "PUT", path: pathDomainPolicies + "/one-more.example", token: key, body: body}).want(t, "past the cap", http.StatusBadRequest,
			`{"errors":[{"field":"domain","message":"There is a limit of 1000 per-domain TLS policies on your account."}]}`)
		e.do(request{method: "PUT", path: pathDomainPolicies + "/d7.example", token: key, body: body}).want(t, "a replacement at the cap", http.StatusOK, "")
	})
}
