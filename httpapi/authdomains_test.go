package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/sealpost/sealpost"
)

// fakeDNS answers TXT and MX lookups from maps, as a zone the test edits.
type fakeDNS struct {
	mu      sync.Mutex
	records map[string][]string
	mx      map[string][]string
}

func newFakeDNS() *fakeDNS {
	return &fakeDNS{records: map[string][]string{}, mx: map[string][]string{}}
}

func (f *fakeDNS) LookupTXT(_ context.Context, name string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.records[name], nil
}

func (f *fakeDNS) LookupMX(_ context.Context, name string) ([]*net.MX, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	hosts, ok := f.mx[name]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
	}
	var out []*net.MX
	for i, h := range hosts {
		out = append(out, &net.MX{Host: h, Pref: uint16(10 * (i + 1))})
	}
	return out, nil
}

func (f *fakeDNS) set(name string, records ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.records[name] = records
}

func (f *fakeDNS) setMX(name string, hosts ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mx[name] = hosts
}

// TestAuthenticatedDomainsAPI: create answers the TXT record to publish;
// validate checks it through DNS and records the result; get, list and
// delete; scopes and on-behalf-of apply; every answer conforms to
// SendGrid's document.
func TestAuthenticatedDomainsAPI(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		zone := newFakeDNS()
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
		res.want(t, "validate", http.StatusOK, fmt.Sprintf(`{"id":%d,"valid":true,"validation_results":{"dkim1":{"valid":true,"reason":null},"dkim2":{"valid":true,"reason":null},`+
			`"mail_cname":{"valid":false,"reason":"Expected your MX record at em.example.com to be \"localhost\" but found none."},`+
			`"spf":{"valid":false,"reason":"Expected TXT record at em.example.com to be \"v=spf1 a:localhost ~all\" but found none."}}}`, created.ID))
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

		d, err := sealpost.AuthenticatedDomainRequest{Domain: "example.com", KeyAlgorithm: sealpost.DKIMKeyEd25519}.Make()
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

// TestAuthenticatedDomainReturnPathAndUpdate: the records of SendGrid's
// manual-security form (the return path's MX and SPF, the key's TXT at the
// custom selector, the root domain's SPF with custom_spf); validation
// records the return path apart from the key; PATCH changes default and
// custom_spf, one default per account, with SendGrid's 400s and 404s.
func TestAuthenticatedDomainReturnPathAndUpdate(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		zone := newFakeDNS()
		e := newEnv(t, open, func(c *Config) { c.DNS = zone; c.Hostname = "mta.sealpost.example" })
		alice := e.user("alice")
		sub := e.subuser(alice, "alice-sub")
		token := e.key(alice)
		create := func(body string) authDomainBody {
			t.Helper()
			res := e.do(request{method: http.MethodPost, path: "/v3/whitelabel/domains", token: token, body: body})
			res.want(t, "create "+body, http.StatusCreated, "")
			var b authDomainBody
			if err := json.Unmarshal([]byte(res.body), &b); err != nil {
				t.Fatal(err)
			}
			return b
		}
		brand := create(`{"domain":"brand.example","custom_dkim_selector":"AB1","custom_spf":true,"default":true}`)
		rp := brand.Subdomain + ".brand.example"
		if len(brand.Subdomain) != 6 || !strings.HasPrefix(brand.Subdomain, "em") || !brand.CustomSPF || !brand.Default {
			t.Errorf("created %+v; want a made em#### subdomain, custom_spf and default", brand)
		}
		dns := brand.DNS
		if dns.DKIM.Host != "ab1._domainkey.brand.example" || dns.DKIM.Type != "txt" || dns.DKIM1 != dns.DKIM ||
			dns.MailServer == nil || *dns.MailServer != (dnsRecordBody{Type: "mx", Host: rp, Data: "mta.sealpost.example"}) || dns.MailCNAME != *dns.MailServer ||
			dns.SubdomainSPF == nil || *dns.SubdomainSPF != (dnsRecordBody{Type: "txt", Host: rp, Data: "v=spf1 a:mta.sealpost.example -all"}) ||
			dns.DomainSPF == nil || *dns.DomainSPF != (dnsRecordBody{Type: "txt", Host: "brand.example", Data: "v=spf1 include:" + rp + " -all"}) {
			t.Errorf("dns %+v", dns)
		}
		for _, body := range []string{
			`{"domain":"x.example","custom_dkim_selector":"ab"}`,
			`{"domain":"x.example","custom_dkim_selector":"a.b"}`,
			`{"domain":"x.example","custom_dkim_selector":7}`,
			`{"domain":"x.example","custom_spf":"yes"}`,
		} {
			res := e.do(request{method: http.MethodPost, path: "/v3/whitelabel/domains", token: token, body: body})
			res.want(t, "create "+body, http.StatusBadRequest, "")
			var field string
			for _, f := range []string{"custom_dkim_selector", "custom_spf"} {
				if strings.Contains(body, f) {
					field = f
				}
			}
			if !strings.Contains(res.body, `"field":"`+field+`"`) {
				t.Errorf("create %s: %s; want the error on %s", body, res.body, field)
			}
		}

		// The key and the return path are published: all valid.
		zone.set(dns.DKIM.Host, dns.DKIM.Data)
		zone.set(rp, "v=spf1  a:MTA.sealpost.example  -all")
		zone.setMX(rp, "mta.sealpost.example.")
		validate := fmt.Sprintf("/v3/whitelabel/domains/%d/validate", brand.ID)
		res := e.do(request{method: http.MethodPost, path: validate, token: token})
		res.want(t, "validate", http.StatusOK, fmt.Sprintf(`{"id":%d,"valid":true,"validation_results":{"dkim1":{"valid":true,"reason":null},"dkim2":{"valid":true,"reason":null},`+
			`"mail_cname":{"valid":true,"reason":null},"spf":{"valid":true,"reason":null}}}`, brand.ID))
		if d, err := e.store.AuthenticatedDomain(t.Context(), alice.ID, brand.ID); err != nil || !d.Valid || !d.ReturnPathValid {
			t.Errorf("stored after validation: %+v, %v", d, err)
		}
		// The MX moved elsewhere: the key stays valid, the return path not.
		zone.setMX(rp, "mx.elsewhere.example.")
		res = e.do(request{method: http.MethodPost, path: validate, token: token})
		if !strings.Contains(res.body, `"mail_cname":{"valid":false,"reason":"Expected your MX record at `+rp+` to be \"mta.sealpost.example\" but found \"mx.elsewhere.example\"."}`) ||
			!strings.HasPrefix(res.body, fmt.Sprintf(`{"id":%d,"valid":true`, brand.ID)) {
			t.Errorf("validate with the MX elsewhere: %s", res.body)
		}
		if d, err := e.store.AuthenticatedDomain(t.Context(), alice.ID, brand.ID); err != nil || !d.Valid || d.ReturnPathValid {
			t.Errorf("stored after the MX moved: %+v, %v", d, err)
		}

		other := create(`{"domain":"other.example","subdomain":"mail"}`)
		one := func(id int64) string { return fmt.Sprintf("/v3/whitelabel/domains/%d", id) }
		res = e.do(request{method: http.MethodPatch, path: one(other.ID), token: token, body: `{"default":true}`})
		res.want(t, "make the other the default", http.StatusOK, "")
		var patched authDomainBody
		if err := json.Unmarshal([]byte(res.body), &patched); err != nil {
			t.Fatal(err)
		}
		if patched.ID != other.ID || !patched.Default || patched.CustomSPF || patched.Subdomain != "mail" || patched.DNS.DomainSPF != nil {
			t.Errorf("patched %+v", patched)
		}
		res = e.do(request{method: http.MethodGet, path: one(brand.ID), token: token})
		if !strings.Contains(res.body, `"default":false`) {
			t.Errorf("the former default after another became it: %s", res.body)
		}
		res = e.do(request{method: http.MethodPatch, path: one(brand.ID), token: token, body: `{"custom_spf":false}`})
		res.want(t, "custom_spf off", http.StatusOK, "")
		if !strings.Contains(res.body, `"custom_spf":false`) || strings.Contains(res.body, `,"domain_spf"`) || !strings.Contains(res.body, "v=spf1 a:mta.sealpost.example ~all") {
			t.Errorf("after custom_spf off: %s", res.body)
		}

		readOnly := e.key(alice, sealpost.ScopeWhitelabelRead)
		for _, tc := range []struct {
			name, path, token, obo, body string
			status                       int
			field                        string
		}{
			{"not a boolean", one(brand.ID), token, "", `{"default":"yes"}`, http.StatusBadRequest, "default"},
			{"not an object", one(brand.ID), token, "", `[]`, http.StatusBadRequest, ""},
			{"unknown id", one(brand.ID + 100), token, "", `{"default":true}`, http.StatusNotFound, ""},
			{"id not a number", "/v3/whitelabel/domains/x", token, "", `{"default":true}`, http.StatusNotFound, ""},
			{"without the scope", one(brand.ID), readOnly, "", `{"default":true}`, http.StatusForbidden, ""},
			{"another account's", one(brand.ID), token, sub.Username, `{"default":true}`, http.StatusNotFound, ""},
		} {
			res := e.do(request{method: http.MethodPatch, path: tc.path, token: tc.token, obo: tc.obo, body: tc.body})
			res.want(t, tc.name, tc.status, "")
			if tc.field != "" && !strings.Contains(res.body, `"field":"`+tc.field+`"`) {
				t.Errorf("%s: %s; want the error on %s", tc.name, res.body, tc.field)
			}
		}
		res = e.do(request{method: http.MethodGet, path: one(brand.ID), token: token})
		if !strings.Contains(res.body, `"default":false`) {
			t.Errorf("a refused PATCH changed the domain: %s", res.body)
		}
	})
}

// TestAuthenticatedDomainSubusers: a parent associates a validated domain
// with its subuser, reads and removes the association by username; the
// subuser may then send as the domain under --require-authenticated-sender
// and does not see the domain among its own; SendGrid's 400s and 404s.
func TestAuthenticatedDomainSubusers(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		zone := newFakeDNS()
		e := newEnv(t, open, func(c *Config) { c.DNS = zone; c.RequireAuthenticatedSender = true })
		alice := e.user("alice")
		sub := e.subuser(alice, "alice-sub")
		bob := e.user("bob")
		e.subuser(bob, "bob-sub")
		token, subToken, bobToken := e.key(alice), e.key(sub), e.key(bob)
		res := e.do(request{method: http.MethodPost, path: "/v3/whitelabel/domains", token: token, body: `{"domain":"parent.example","subdomain":"em"}`})
		res.want(t, "create", http.StatusCreated, "")
		var d authDomainBody
		if err := json.Unmarshal([]byte(res.body), &d); err != nil {
			t.Fatal(err)
		}
		associate := fmt.Sprintf("/v3/whitelabel/domains/%d/subuser", d.ID)
		assigned := "/v3/whitelabel/domains/subuser?username=alice-sub"
		send := func(token string) response {
			return e.do(request{method: http.MethodPost, path: "/v3/mail/send", token: token,
				body: `{"personalizations":[{"to":[{"email":"rcpt@dest.example"}]}],"from":{"email":"news@parent.example"},"subject":"s","content":[{"type":"text/plain","value":"v"}]}`})
		}

		res = e.do(request{method: http.MethodPost, path: associate, token: token, body: `{"username":"alice-sub"}`})
		res.want(t, "associate an unvalidated domain", http.StatusBadRequest, "")
		zone.set(d.DNS.DKIM.Host, d.DNS.DKIM.Data)
		e.do(request{method: http.MethodPost, path: associate[:len(associate)-len("subuser")] + "validate", token: token}).want(t, "validate", http.StatusOK, "")

		e.do(request{method: http.MethodGet, path: assigned, token: token}).want(t, "get before associating", http.StatusNotFound, "")
		send(subToken).want(t, "the subuser sends before associating", http.StatusForbidden, string(bodySenderIdentity))

		res = e.do(request{method: http.MethodPost, path: associate, token: token, body: `{"username":"alice-sub"}`})
		res.want(t, "associate", http.StatusCreated, "")
		var got authDomainBody
		if err := json.Unmarshal([]byte(res.body), &got); err != nil {
			t.Fatal(err)
		}
		if got.ID != d.ID || got.Domain != "parent.example" || got.Username != "alice-sub" || got.UserID != sub.ID || !got.Valid || got.DNS.MailServer == nil {
			t.Errorf("associated %+v", got)
		}
		res = e.do(request{method: http.MethodGet, path: assigned, token: token})
		res.want(t, "get", http.StatusOK, "")
		if !strings.Contains(res.body, fmt.Sprintf(`"id":%d,`, d.ID)) || !strings.Contains(res.body, `"username":"alice-sub"`) {
			t.Errorf("get: %s", res.body)
		}
		send(subToken).want(t, "the subuser sends as the associated domain", http.StatusAccepted, "")
		res = e.do(request{method: http.MethodGet, path: "/v3/whitelabel/domains", token: subToken})
		res.want(t, "the subuser's own list", http.StatusOK, "[]")

		for _, tc := range []struct {
			name, method, path, token, obo, body string
			status                               int
			field                                string
		}{
			{"no username", http.MethodPost, associate, token, "", `{}`, http.StatusBadRequest, "username"},
			{"username not a string", http.MethodPost, associate, token, "", `{"username":7}`, http.StatusBadRequest, "username"},
			{"another account's subuser", http.MethodPost, associate, token, "", `{"username":"bob-sub"}`, http.StatusBadRequest, "username"},
			{"the parent itself", http.MethodPost, associate, token, "", `{"username":"alice"}`, http.StatusBadRequest, "username"},
			{"another account's domain", http.MethodPost, associate, bobToken, "", `{"username":"bob-sub"}`, http.StatusNotFound, ""},
			{"by the subuser", http.MethodPost, associate, subToken, "", `{"username":"alice-sub"}`, http.StatusForbidden, ""},
			{"on behalf of the subuser", http.MethodPost, associate, token, "alice-sub", `{"username":"alice-sub"}`, http.StatusForbidden, ""},
			{"get without username", http.MethodGet, "/v3/whitelabel/domains/subuser", token, "", "", http.StatusBadRequest, "username"},
			{"get another's subuser", http.MethodGet, "/v3/whitelabel/domains/subuser?username=bob-sub", token, "", "", http.StatusBadRequest, "username"},
			{"delete without username", http.MethodDelete, "/v3/whitelabel/domains/subuser", token, "", "", http.StatusBadRequest, "username"},
			{"delete without the scope", http.MethodDelete, assigned, e.key(alice, sealpost.ScopeWhitelabelRead), "", "", http.StatusForbidden, ""},
		} {
			res := e.do(request{method: tc.method, path: tc.path, token: tc.token, obo: tc.obo, body: tc.body})
			res.want(t, tc.name, tc.status, "")
			if tc.field != "" && !strings.Contains(res.body, `"field":"`+tc.field+`"`) {
				t.Errorf("%s: %s; want the error on %s", tc.name, res.body, tc.field)
			}
		}

		e.do(request{method: http.MethodDelete, path: assigned, token: token}).want(t, "disassociate", http.StatusNoContent, "")
		e.do(request{method: http.MethodDelete, path: assigned, token: token}).want(t, "disassociate twice", http.StatusNotFound, "")
		e.do(request{method: http.MethodGet, path: assigned, token: token}).want(t, "get after disassociating", http.StatusNotFound, "")
		send(subToken).want(t, "the subuser sends after disassociating", http.StatusForbidden, string(bodySenderIdentity))
	})
}
