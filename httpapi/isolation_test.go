package httpapi

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/sealpost/sealpost"
)

// TestIsolation checks every caller key against every on-behalf-of value on
// GET and PATCH, against a model small enough to trust by reading: a call
// acts as the caller's own account, or as a subuser (named by username) or
// customer account (named by account-id) of a top-level caller; a key of a
// subuser or customer sending the header is 403; anything else named is the
// same 404. After every PATCH, every account's setting is read back from the
// store, so a PATCH that leaks to a second account fails.
func TestIsolation(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		e := newEnv(t, open)
		p1, p2 := e.user("parent-one"), e.user("parent-two")
		s1, s2 := e.subuser(p1, "sub-one"), e.subuser(p2, "sub-two")
		c1, c2 := e.customer(p1), e.customer(p2)
		accounts := []*sealpost.Account{p1, p2, s1, s2, c1, c2}
		names := map[int64]string{p1.ID: "P1", p2.ID: "P2", s1.ID: "S1", s2.ID: "S2", c1.ID: "C1", c2.ID: "C2"}

		type caller struct {
			name  string
			acct  *sealpost.Account
			token string
			read  bool // holds user.settings.enforced_tls.read
			write bool // holds user.settings.enforced_tls.update
		}
		var callers []caller
		for _, a := range accounts {
			callers = append(callers, caller{names[a.ID] + " full", a, e.key(a), true, true})
		}
		callers = append(callers,
			caller{"P1 read-only", p1, e.key(p1, sealpost.ScopeEnforcedTLSRead), true, false},
			caller{"P1 update-only", p1, e.key(p1, sealpost.ScopeEnforcedTLSUpdate), false, true},
			caller{"P2 no TLS scopes", p2, e.key(p2, sealpost.ScopeAPIKeysRead, sealpost.ScopeSubusersRead), false, false},
			caller{"S1 read-only", s1, e.key(s1, sealpost.ScopeEnforcedTLSRead), true, false},
			caller{"C2 update-only", c2, e.key(c2, sealpost.ScopeEnforcedTLSUpdate), false, true},
		)

		// Each header value with the account it names when used correctly
		// (nil: it names nothing actable), and whether it is malformed.
		type obo struct {
			value     string
			target    *sealpost.Account
			malformed bool
		}
		oboValues := []obo{{value: ""}}
		for _, a := range accounts {
			switch a.Kind {
			case sealpost.KindSubuser:
				oboValues = append(oboValues,
					obo{value: a.Username, target: a},
					obo{value: "account-id " + a.Username},
				)
			case sealpost.KindCustomer:
				oboValues = append(oboValues,
					obo{value: "account-id " + a.PublicID, target: a},
					obo{value: "ACCOUNT-ID   " + a.PublicID, target: a},
					obo{value: a.PublicID},
				)
			case sealpost.KindUser:
				oboValues = append(oboValues,
					obo{value: a.Username},
					obo{value: "account-id " + a.Username},
				)
			}
			oboValues = append(oboValues, obo{value: "account-id " + strconv.FormatInt(a.ID, 10)})
		}
		oboValues = append(oboValues,
			obo{value: "no-such-subuser"},
			obo{value: "account-id sg000000000000000000000000"},
			obo{value: "account-id no-such-account"},
			obo{value: "account-id", malformed: true},
			obo{value: "account-idsgx", malformed: true},
		)

		// The model: each account's setting as it must be.
		model := map[int64]sealpost.EnforcedTLS{}
		for _, a := range accounts {
			model[a.ID] = sealpost.DefaultEnforcedTLS()
		}
		versions := []sealpost.TLSVersion{sealpost.TLS11, sealpost.TLS12, sealpost.TLS13}
		patches := 0

		t.Logf("%d callers x %d on-behalf-of values x 2 methods", len(callers), len(oboValues))
		for _, c := range callers {
			for _, o := range oboValues {
				for _, method := range []string{http.MethodGet, http.MethodPatch} {
					what := fmt.Sprintf("%s, %s, on-behalf-of %q", c.name, method, o.value)

					// Expected outcome, in the contract's order.
					var wantStatus int
					var wantBody string
					var target *sealpost.Account
					needScope := c.read
					if method == http.MethodPatch {
						needScope = c.write
					}
					switch {
					case !needScope:
						wantStatus, wantBody = http.StatusForbidden, wantForbidden
					case o.value == "":
						target = c.acct
					case c.acct.Kind != sealpost.KindUser:
						wantStatus, wantBody = http.StatusForbidden, wantForbidden
					case o.malformed:
						wantStatus = http.StatusBadRequest
					case o.target != nil && o.target.ParentID == c.acct.ID:
						target = o.target
					default:
						wantStatus, wantBody = http.StatusNotFound, wantOBONotFound
					}

					var body string
					if method == http.MethodPatch {
						patches++
						next := sealpost.EnforcedTLS{
							RequireTLS:       patches%2 == 1,
							RequireValidCert: patches%3 == 1,
							Version:          versions[patches%3],
						}
						body = fmt.Sprintf(`{"require_tls":%t,"require_valid_cert":%t,"version":%s}`,
							next.RequireTLS, next.RequireValidCert, next.Version)
						if target != nil {
							model[target.ID] = next
						}
					}
					if target != nil {
						wantStatus = http.StatusOK
						wantBody = settingJSON(model[target.ID])
					}

					res := e.do(request{method: method, path: pathTLS, token: c.token, obo: o.value, body: body})
					res.want(t, what, wantStatus, wantBody)
					if wantStatus == http.StatusBadRequest && !containsField(res.body, "on-behalf-of") {
						t.Errorf("%s: 400 body %s does not name on-behalf-of", what, res.body)
					}
					if exactHeader(res.header, headerRateLimit) == "" {
						t.Errorf("%s: no rate-limit headers on an authenticated response", what)
					}
					if method == http.MethodPatch {
						for _, a := range accounts {
							if got := e.setting(a); got != model[a.ID] {
								t.Errorf("%s: %s's stored setting is %+v, want %+v", what, names[a.ID], got, model[a.ID])
							}
						}
					}
				}
			}
		}
	})
}

func settingJSON(s sealpost.EnforcedTLS) string {
	return fmt.Sprintf(`{"require_tls":%t,"require_valid_cert":%t,"version":%s}`, s.RequireTLS, s.RequireValidCert, s.Version)
}

func containsField(body, field string) bool {
	return strings.Contains(body, `"field":"`+field+`"`)
}

// TestOnBehalfOfHeaderCase sends the header over a real connection in the
// spellings clients use: the server must treat them alike.
func TestOnBehalfOfHeaderCase(t *testing.T) {
	t.Parallel()
	e := newEnv(t, openSQLite)
	p := e.user("parent")
	s := e.subuser(p, "child")
	token := e.key(p)
	if _, err := e.store.UpdateEnforcedTLS(t.Context(), s.ID, sealpost.EnforcedTLSPatch{RequireTLS: new(true)}); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(e.handler())
	defer ts.Close()
	for _, name := range []string{"on-behalf-of", "On-Behalf-Of", "ON-BEHALF-OF"} {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, ts.URL+pathTLS, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header[name] = []string{"child"} // raw, not canonicalised by the client
		res, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		want := `{"require_tls":true,"require_valid_cert":false,"version":1.1}`
		if res.StatusCode != http.StatusOK || string(b) != want {
			t.Errorf("header %q: got %d %s, want 200 %s", name, res.StatusCode, b, want)
		}
	}
}
