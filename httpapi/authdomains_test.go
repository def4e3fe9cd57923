package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/sealpost/sealpost"
)

// fakeTXT answers TXT lookups from a map, as a zone the test edits.
type fakeTXT struct {
	mu      sync.Mutex
	records map[string][]string
}

func (f *fakeTXT) LookupTXT(_ context.Context, name string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.records[name], nil
}

func (f *fakeTXT) set(name string, records ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.records[name] = records
}

// TestAuthenticatedDomainsAPI: create answers the TXT record to publish;
// validate checks it through DNS and records the result; get, list and
// delete; scopes and on-behalf-of apply; every answer conforms to
// SendGrid's document.
func TestAuthenticatedDomainsAPI(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		zone := &fakeTXT{records: map[string][]string{}}
		e := newEnv(t, open, func(c *Config) { c.DNS = zone })
		alice := e.user("alice")
		sub := e.subuser(alice, "alice-sub")
		token := e.key(alice)

		res := e.do(request{method: http.MethodPost, path: "/v3/whitelabel/domains", token: token,
			body: `{"domain":"Example.COM","subdomain":"em","default":true,"automatic_security":false}`})
		res.want(t, "create", http.StatusCreated, "")
		var created authDomainBody
		if err := json.Unmarshal([]byte(res.body), &created); err != nil {
			t.Fatal(err)
		}
		if created.Domain != "example.com" || created.Subdomain != "em" || !created.Default || created.Valid || created.AutomaticSecurity ||
			created.KeyAlgorithm != "rsa" || created.DNS.DKIM1.Type != "txt" || created.DNS.DKIM1.Host != "sealpost._domainkey.example.com" ||
			!strings.HasPrefix(created.DNS.DKIM1.Data, "v=DKIM1; k=rsa; p=MII") || created.UserID != alice.ID || created.Username != "alice" {
			t.Errorf("created %+v", created)
		}

		res = e.do(request{method: http.MethodPost, path: "/v3/whitelabel/domains", token: token, body: `{"domain":"example.com"}`})
		res.want(t, "create twice", http.StatusBadRequest, "")
		res = e.do(request{method: http.MethodPost, path: "/v3/whitelabel/domains", token: token, body: `{"domain":"example.com","automatic_security":true}`})
		res.want(t, "automatic security", http.StatusBadRequest, "")
		res = e.do(request{method: http.MethodPost, path: "/v3/whitelabel/domains", token: token, body: `{"subdomain":"em"}`})
		res.want(t, "no domain", http.StatusBadRequest, "")
		res = e.do(request{method: http.MethodPost, path: "/v3/whitelabel/domains", token: token, body: `{"domain":"example.org","key_algorithm":"dsa"}`})
		res.want(t, "unknown algorithm", http.StatusBadRequest, "")

		validate := fmt.Sprintf("/v3/whitelabel/domains/%d/validate", created.ID)
		res = e.do(request{method: http.MethodPost, path: validate, token: token})
		res.want(t, "validate before publishing", http.StatusOK, "")
		if !strings.Contains(res.body, `"valid":false`) || !strings.Contains(res.body, "found none") {
			t.Errorf("validate before publishing: %s", res.body)
		}
		// Published in two strings and with other spacing, as zones do.
		data := created.DNS.DKIM1.Data
		zone.set("sealpost._domainkey.example.com", "v=DKIM1;k=rsa;  "+data[len("v=DKIM1; k=rsa; "):])
		res = e.do(request{method: http.MethodPost, path: validate, token: token})
		res.want(t, "validate", http.StatusOK, fmt.Sprintf(`{"id":%d,"valid":true,"validation_results":{"dkim1":{"valid":true,"reason":null},"dkim2":{"valid":true,"reason":null}}}`, created.ID))
		d, err := e.store.AuthenticatedDomain(t.Context(), alice.ID, created.ID)
		if err != nil || !d.Valid {
			t.Errorf("stored after validation: %+v, %v", d, err)
		}

		one := fmt.Sprintf("/v3/whitelabel/domains/%d", created.ID)
		res = e.do(request{method: http.MethodGet, path: one, token: token})
		res.want(t, "get", http.StatusOK, "")
		if !strings.Contains(res.body, `"valid":true`) {
			t.Errorf("get after validation: %s", res.body)
		}
		res = e.do(request{method: http.MethodGet, path: "/v3/whitelabel/domains", token: token})
		res.want(t, "list", http.StatusOK, "")
		if !strings.HasPrefix(res.body, "[{") || strings.Count(res.body, `"domain":`) != 1 {
			t.Errorf("list: %s", res.body)
		}

		// The subuser, through on-behalf-of, sees only its own.
		res = e.do(request{method: http.MethodGet, path: one, token: token, obo: sub.Username})
		res.want(t, "another account's domain", http.StatusNotFound, "")
		res = e.do(request{method: http.MethodPost, path: "/v3/whitelabel/domains", token: token, obo: sub.Username,
			body: `{"domain":"sub.example","key_algorithm":"ed25519"}`})
		res.want(t, "create on behalf of", http.StatusCreated, "")
		if !strings.Contains(res.body, `"data":"v=DKIM1; k=ed25519; p=`) {
			t.Errorf("ed25519 domain: %s", res.body)
		}
		res = e.do(request{method: http.MethodGet, path: "/v3/whitelabel/domains", token: token, obo: sub.Username})
		if strings.Count(res.body, `"domain":`) != 1 || !strings.Contains(res.body, "sub.example") {
			t.Errorf("subuser's list: %s", res.body)
		}

		readOnly := e.key(alice, sealpost.ScopeWhitelabelRead)
		res = e.do(request{method: http.MethodDelete, path: one, token: readOnly})
		res.want(t, "delete without the scope", http.StatusForbidden, "")
		res = e.do(request{method: http.MethodDelete, path: one, token: token})
		res.want(t, "delete", http.StatusNoContent, "")
		res = e.do(request{method: http.MethodGet, path: one, token: token})
		res.want(t, "get after delete", http.StatusNotFound, "")
	})
}

// TestRequireAuthenticatedSender: with the setting, a mail send is refused
// with SendGrid's Sender Identity 403 unless every From domain is within a
// validated authenticated domain of the account.
func TestRequireAuthenticatedSender(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		e := newEnv(t, open, func(c *Config) { c.RequireAuthenticatedSender = true })
		alice := e.user("alice")
		token := e.key(alice)
		send := func(from, override string) response {
			p := `{"to":[{"email":"rcpt@dest.example"}]}`
			if override != "" {
				p = `{"to":[{"email":"rcpt@dest.example"}],"from":{"email":"` + override + `"}}`
			}
			return e.do(request{method: http.MethodPost, path: "/v3/mail/send", token: token,
				body: `{"personalizations":[` + p + `],"from":{"email":"` + from + `"},"subject":"s","content":[{"type":"text/plain","value":"v"}]}`})
		}
		refused := string(bodySenderIdentity)
		send("news@example.com", "").want(t, "before any domain", http.StatusForbidden, refused)

		d, err := sealpost.NewAuthenticatedDomain("example.com", "", false, sealpost.DKIMKeyEd25519)
		if err != nil {
			t.Fatal(err)
		}
		stored, err := e.store.CreateAuthenticatedDomain(t.Context(), alice.ID, d)
		if err != nil {
			t.Fatal(err)
		}
		send("news@example.com", "").want(t, "domain not validated", http.StatusForbidden, refused)
		if err := e.store.SetAuthenticatedDomainValid(t.Context(), alice.ID, stored.ID, true); err != nil {
			t.Fatal(err)
		}
		send("news@example.com", "").want(t, "validated domain", http.StatusAccepted, "")
		send("news@Mail.Example.com", "").want(t, "a subdomain", http.StatusAccepted, "")
		send("news@badexample.com", "").want(t, "a look-alike domain", http.StatusForbidden, refused)
		send("news@example.com", "news@other.example").want(t, "a personalization's from", http.StatusForbidden, refused)
	})
}
