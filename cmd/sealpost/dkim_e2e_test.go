package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	msgauth "github.com/emersion/go-msgauth/dkim"

	"github.com/sealpost/sealpost/delivery/mxtest"
)

// TestAuthenticatedDomainEndToEnd: through the real service, a domain is
// authenticated, its key and return path records are published in DNS
// (--dns-server) and validated; mail from the domain then reaches the MX
// with MAIL FROM at the return path and a signature that go-msgauth and
// python3-dkim verify.
func TestAuthenticatedDomainEndToEnd(t *testing.T) {
	t.Parallel()
	h := mxtest.New(t)
	mx := h.AddMX("dest.test", 10, mxtest.Behavior{})
	m, key := destinationMain(t, h, "127.0.0.0/8")

	status, body := apiDo(t, m, http.MethodPost, "/v3/whitelabel/domains", key, `{"domain":"brand.test","subdomain":"em9","custom_dkim_selector":"b2c"}`)
	if status != http.StatusCreated {
		t.Fatalf("create: %d %s", status, body)
	}
	type record struct{ Host, Data string }
	var created struct {
		ID  int64
		DNS struct {
			MailServer   record `json:"mail_server"`
			SubdomainSPF record `json:"subdomain_spf"`
			DKIM         record
		}
	}
	if err := json.Unmarshal([]byte(body), &created); err != nil {
		t.Fatal(err)
	}
	dns := created.DNS
	if dns.MailServer != (record{"em9.brand.test", "sealpost.test"}) || dns.SubdomainSPF != (record{"em9.brand.test", "v=spf1 a:sealpost.test ~all"}) ||
		dns.DKIM.Host != "b2c._domainkey.brand.test" {
		t.Fatalf("records to publish: %+v", dns)
	}
	var parts []string
	for rest := dns.DKIM.Data; rest != ""; {
		n := min(len(rest), 255)
		parts, rest = append(parts, rest[:n]), rest[n:]
	}
	h.DNS().SetTXT(dns.DKIM.Host, parts)
	h.DNS().SetTXT(dns.SubdomainSPF.Host, []string{dns.SubdomainSPF.Data})
	h.DNS().SetMX(dns.MailServer.Host, mxtest.MX{Pref: 10, Host: dns.MailServer.Data})
	status, body = apiDo(t, m, http.MethodPost, fmt.Sprintf("/v3/whitelabel/domains/%d/validate", created.ID), key, "")
	want := fmt.Sprintf(`{"id":%d,"valid":true,"validation_results":{"dkim1":{"valid":true,"reason":null},"dkim2":{"valid":true,"reason":null},`+
		`"mail_cname":{"valid":true,"reason":null},"spf":{"valid":true,"reason":null}}}`, created.ID)
	if status != http.StatusOK || body != want {
		t.Fatalf("validate: %d %s\nwant %s", status, body, want)
	}

	status, body = apiDo(t, m, http.MethodPost, "/v3/mail/send", key,
		`{"personalizations":[{"to":[{"email":"rcpt@dest.test"}]}],"from":{"email":"news@brand.test"},"subject":"end to end","content":[{"type":"text/plain","value":"signed\nmail"}]}`)
	if status != http.StatusAccepted {
		t.Fatalf("mail send: %d %s", status, body)
	}
	waitFor(t, "the message at the MX", 60*time.Second, func() bool { return len(mx.Accepted()) == 1 })
	d := mx.Accepted()[0]
	if !strings.HasPrefix(d.From, "bounces+") || !strings.HasSuffix(d.From, "@em9.brand.test") {
		t.Errorf("MAIL FROM %q, want a bounce address at em9.brand.test", d.From)
	}
	verifs, err := msgauth.VerifyWithOptions(bytes.NewReader(d.Data), &msgauth.VerifyOptions{
		LookupTXT: func(name string) ([]string, error) { return []string{dns.DKIM.Data}, nil },
	})
	if err != nil || len(verifs) != 1 || verifs[0].Err != nil || verifs[0].Domain != "brand.test" {
		t.Errorf("verification = %+v, %v; want one valid signature by brand.test\n%s", verifs, err, d.Data)
	}
	if exec.Command("/usr/bin/python3", "-c", "import dkim.dknewkey").Run() != nil {
		t.Log("python3-dkim is not installed: only go-msgauth verified")
		return
	}
	cmd := exec.Command("/usr/bin/python3", "-c", `
import sys, dkim
record = sys.argv[1].encode()
sys.exit(0 if dkim.verify(sys.stdin.buffer.read(), dnsfunc=lambda name, timeout=5: record) else 1)
`, dns.DKIM.Data)
	cmd.Dir = t.TempDir()
	cmd.Stdin = bytes.NewReader(d.Data)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("python3-dkim refused the signature: %v %s", err, out)
	}
}
