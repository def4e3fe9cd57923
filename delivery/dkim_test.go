package delivery_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	msgauth "github.com/emersion/go-msgauth/dkim"

	"github.com/sealpost/sealpost"
	"github.com/sealpost/sealpost/delivery"
	"github.com/sealpost/sealpost/delivery/mxtest"
	"github.com/sealpost/sealpost/dkim"
)

// authenticate gives the world's account a validated domain and publishes
// its key in the fake DNS, split into 255-byte strings as a zone would.
func (w *runnerWorld) authenticate(domain, algorithm string) string {
	w.t.Helper()
	_, record := w.authenticateDomain(sealpost.AuthenticatedDomainRequest{Domain: domain, Subdomain: "em", KeyAlgorithm: algorithm}, false)
	return record
}

// authenticateDomain stores req's domain for the world's account,
// validated, its return path too when returnPath, and publishes its key.
func (w *runnerWorld) authenticateDomain(req sealpost.AuthenticatedDomainRequest, returnPath bool) (sealpost.AuthenticatedDomain, string) {
	w.t.Helper()
	ctx := context.Background()
	d, err := req.Make()
	if err != nil {
		w.t.Fatal(err)
	}
	stored, err := w.store.CreateAuthenticatedDomain(ctx, w.account.ID, d)
	if err != nil {
		w.t.Fatal(err)
	}
	if err := w.store.SetAuthenticatedDomainValid(ctx, w.account.ID, stored.ID, true); err != nil {
		w.t.Fatal(err)
	}
	if err := w.store.SetReturnPathValid(ctx, w.account.ID, stored.ID, returnPath); err != nil {
		w.t.Fatal(err)
	}
	record, err := stored.DKIMRecord()
	if err != nil {
		w.t.Fatal(err)
	}
	full := record
	var parts []string
	for len(record) > 255 {
		parts, record = append(parts, record[:255]), record[255:]
	}
	w.h.DNS().SetTXT(stored.DKIMHost(), append(parts, record))
	return stored, full
}

// verifyDKIM checks data's signatures with go-msgauth's verifier, which
// fetches the key from the fake DNS through sealpost's own resolver.
func verifyDKIM(t *testing.T, client *delivery.Client, data []byte) ([]*msgauth.Verification, error) {
	t.Helper()
	return msgauth.VerifyWithOptions(bytes.NewReader(data), &msgauth.VerifyOptions{
		LookupTXT: func(name string) ([]string, error) { return client.LookupTXT(context.Background(), name) },
	})
}

// dkimpyVerifier is the python3-dkim check script: it reads the message on
// stdin and answers from the record in argv instead of DNS.
const dkimpyVerifier = `
import sys, dkim
record = sys.argv[1].encode()
ok = dkim.verify(sys.stdin.buffer.read(), dnsfunc=lambda name, timeout=5: record)
sys.exit(0 if ok else 1)
`

// verifyDkimpy checks data with Debian's python3-dkim (dkimpy), a verifier
// written apart from go-msgauth; it reports false when dkimpy is missing.
func verifyDkimpy(t *testing.T, record string, data []byte) (verified, ran bool) {
	t.Helper()
	if exec.Command("/usr/bin/python3", "-c", "import dkim").Run() != nil {
		return false, false
	}
	cmd := exec.Command("/usr/bin/python3", "-c", dkimpyVerifier, record)
	cmd.Stdin = bytes.NewReader(data)
	out, err := cmd.CombinedOutput()
	if err != nil && len(out) > 0 {
		t.Logf("dkimpy: %s", out)
	}
	return err == nil, true
}

func sendFrom(from string, content []map[string]string, attachments []map[string]string) string {
	req := map[string]any{
		"personalizations": []any{map[string]any{"to": []any{map[string]string{"email": "rcpt@dkim-dest.test"}}}},
		"from":             map[string]string{"email": from, "name": "Sender, Inc."},
		"subject":          "signed mail",
		"content":          content,
	}
	if attachments != nil {
		req["attachments"] = attachments
	}
	b, _ := json.Marshal(req)
	return string(b)
}

// TestRunnerSignsAuthenticatedMail: mail from an authenticated, validated
// domain (or a subdomain of it) reaches the MX with a signature that an
// independent verifier accepts, for plain, multipart and attachment
// messages and both key kinds; a relay that changes the body breaks it;
// mail from another domain goes unsigned.
func TestRunnerSignsAuthenticatedMail(t *testing.T) {
	t.Parallel()
	plain := []map[string]string{{"type": "text/plain", "value": "the body of the message\nwith two lines  and  spaces \n"}}
	multipart := []map[string]string{
		{"type": "text/plain", "value": "plain part"},
		{"type": "text/html", "value": "<p>html part</p>"},
	}
	attachment := []map[string]string{{
		"content": base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("attached bytes\x00\x01"), 200)), "filename": "data.bin", "type": "application/octet-stream",
	}}
	for _, algorithm := range []string{sealpost.DKIMKeyRSA, sealpost.DKIMKeyEd25519} {
		t.Run(algorithm, func(t *testing.T) {
			t.Parallel()
			w := newRunnerWorld(t)
			w.runner.Signer = &dkim.Signer{Domains: w.store}
			client := w.runner.Deliverer.(*delivery.Client)
			record := w.authenticate("signer.test", algorithm)
			mx := w.h.AddMX("dkim-dest.test", 10, mxtest.Behavior{})
			w.send(sendFrom("news@signer.test", plain, nil))
			w.send(sendFrom("news@mail.signer.test", multipart, nil))
			w.send(sendFrom("news@signer.test", plain, attachment))
			w.send(sendFrom("news@other.test", plain, nil))
			w.drain()
			accepted := mx.Accepted()
			if len(accepted) != 4 {
				t.Fatalf("the MX accepted %d messages, want 4", len(accepted))
			}
			signed := 0
			for _, d := range accepted {
				data := d.Data
				if bytes.Contains(data, []byte("From: \"Sender, Inc.\" <news@other.test>")) {
					if bytes.Contains(data, []byte("DKIM-Signature")) {
						t.Errorf("mail from an unauthenticated domain was signed:\n%s", data)
					}
					continue
				}
				signed++
				verifs, err := verifyDKIM(t, client, data)
				if err != nil || len(verifs) != 1 || verifs[0].Err != nil || verifs[0].Domain != "signer.test" {
					t.Errorf("verification = %+v, %v; want one valid signature by signer.test\n%s", verifs, err, data)
					continue
				}
				header := string(data[:bytes.Index(data, []byte("\r\n\r\n"))])
				sig := header[strings.Index(header, "DKIM-Signature:"):]
				sig = strings.Join(strings.Fields(sig), "")
				for _, want := range []string{"c=relaxed/relaxed", "a=" + map[string]string{"rsa": "rsa-sha256", "ed25519": "ed25519-sha256"}[algorithm]} {
					if !strings.Contains(sig, want) {
						t.Errorf("signature lacks %s: %s", want, sig)
					}
				}
				hTag := sig[strings.Index(sig, ";h=")+3:]
				hTag = strings.ToLower(hTag[:strings.IndexByte(hTag, ';')])
				if strings.Count(":"+hTag+":", ":from:") != 2 || !strings.Contains(hTag, "subject") || !strings.Contains(hTag, "to") {
					t.Errorf("h=%s; want From oversigned, Subject and To signed", hTag)
				}

				// A relay that adds a footer to the body: the body hash
				// no longer matches.
				relayed := append(bytes.TrimSuffix(bytes.Clone(data), []byte("\r\n")), []byte("\r\n-- \r\nadded by a list\r\n")...)
				verifs, err = verifyDKIM(t, client, relayed)
				if err != nil || len(verifs) != 1 || verifs[0].Err == nil {
					t.Errorf("the relayed message verified: %+v, %v", verifs, err)
				}
				if ok, ran := verifyDkimpy(t, record, data); ran && !ok {
					t.Errorf("dkimpy refused the signature\n%s", data)
				} else if !ran {
					t.Log("python3-dkim is not installed: only go-msgauth verified")
				}
				if ok, ran := verifyDkimpy(t, record, relayed); ran && ok {
					t.Errorf("dkimpy accepted the relayed message")
				}
			}
			if signed != 3 {
				t.Errorf("%d messages checked as signed, want 3", signed)
			}
		})
	}
}

type failingSigner struct{}

func (failingSigner) Sign(context.Context, int64, []byte) ([]byte, *sealpost.AuthenticatedDomain, error) {
	return nil, nil, sealpost.Errorf(sealpost.EUNAVAILABLE, "database down")
}

// TestRunnerDefersUnsignableMail: mail that cannot be signed is held, not
// sent unsigned where the domain's DMARC policy would have it refused.
func TestRunnerDefersUnsignableMail(t *testing.T) {
	t.Parallel()
	w := newRunnerWorld(t)
	w.runner.Signer = failingSigner{}
	mx := w.h.AddMX("dkim-dest.test", 10, mxtest.Behavior{})
	xid := w.send(sendFrom("news@signer.test", []map[string]string{{"type": "text/plain", "value": "v"}}, nil))
	w.drain()
	if n := len(mx.Accepted()); n != 0 {
		t.Errorf("the MX accepted %d messages", n)
	}
	if st := w.states(xid); st["rcpt@dkim-dest.test"] != sealpost.StateQueued {
		t.Errorf("state = %v, want queued", st)
	}
	evs := w.events()
	if len(evs) != 1 || evs[0]["event"] != "deferred" || evs[0]["response"] != "the message could not be DKIM-signed" {
		t.Errorf("events = %v, want one deferral saying the message could not be signed", evs)
	}
}

// TestRunnerSendsSignedMailFromTheReturnPath: once its return path is
// validated, mail signed for an authenticated domain leaves with SendGrid's
// bounce address at the return path as MAIL FROM, and its signature still
// verifies; with the return path unvalidated, and for unsigned mail, the
// mail send's sender stays. Mail whose From no domain covers is signed
// with the account's default domain (d= the default), from its return
// path.
func TestRunnerSendsSignedMailFromTheReturnPath(t *testing.T) {
	t.Parallel()
	plain := []map[string]string{{"type": "text/plain", "value": "the body\n"}}
	w := newRunnerWorld(t)
	w.runner.Signer = &dkim.Signer{Domains: w.store}
	client := w.runner.Deliverer.(*delivery.Client)
	ready, readyRecord := w.authenticateDomain(sealpost.AuthenticatedDomainRequest{Domain: "ready.test", Subdomain: "em1234", Selector: "s7x"}, true)
	w.authenticateDomain(sealpost.AuthenticatedDomainRequest{Domain: "pending.test", Subdomain: "em", KeyAlgorithm: sealpost.DKIMKeyEd25519}, false)
	mx := w.h.AddMX("dkim-dest.test", 10, mxtest.Behavior{})
	w.send(sendFrom("news@ready.test", plain, nil))
	w.send(sendFrom("news@pending.test", plain, nil))
	w.send(sendFrom("news@other.test", plain, nil))
	w.drain()

	// The default comes last: until then other.test's mail is unsigned.
	brand, _ := w.authenticateDomain(sealpost.AuthenticatedDomainRequest{Domain: "brand.test", Subdomain: "em42", Default: true, KeyAlgorithm: sealpost.DKIMKeyEd25519}, true)
	w.send(sendFrom("news@fallback.test", plain, nil))
	w.drain()

	accepted := mx.Accepted()
	if len(accepted) != 4 {
		t.Fatalf("the MX accepted %d messages, want 4", len(accepted))
	}
	byFrom := map[string]mxtest.Delivery{}
	for _, d := range accepted {
		for _, from := range []string{"ready.test", "pending.test", "other.test", "fallback.test"} {
			if bytes.Contains(d.Data, []byte("<news@"+from+">")) {
				byFrom[from] = d
			}
		}
	}
	for _, tc := range []struct {
		from, wantMailFrom, wantSigner string
	}{
		{"ready.test", "bounces+" + itoa(w.account.ID) + "-", "ready.test"},
		{"pending.test", "news@pending.test", "pending.test"},
		{"other.test", "news@other.test", ""},
		{"fallback.test", "bounces+" + itoa(w.account.ID) + "-", "brand.test"},
	} {
		d, ok := byFrom[tc.from]
		if !ok {
			t.Errorf("%s: no message reached the MX", tc.from)
			continue
		}
		if !strings.HasPrefix(d.From, tc.wantMailFrom) {
			t.Errorf("%s: MAIL FROM %q, want %q...", tc.from, d.From, tc.wantMailFrom)
		}
		if strings.HasPrefix(tc.wantMailFrom, "bounces+") {
			wantHost := map[string]string{"ready.test": ready.ReturnPathHost(), "brand.test": brand.ReturnPathHost()}[tc.wantSigner]
			if !strings.HasSuffix(d.From, "@"+wantHost) {
				t.Errorf("%s: MAIL FROM %q, want an address at %s", tc.from, d.From, wantHost)
			}
		}
		verifs, err := verifyDKIM(t, client, d.Data)
		if tc.wantSigner == "" {
			if len(verifs) != 0 {
				t.Errorf("%s: signed by %+v, want unsigned", tc.from, verifs)
			}
			continue
		}
		if err != nil || len(verifs) != 1 || verifs[0].Err != nil || verifs[0].Domain != tc.wantSigner {
			t.Errorf("%s: verification = %+v, %v; want one valid signature by %s", tc.from, verifs, err, tc.wantSigner)
		}
	}
	if sig := byFrom["ready.test"].Data; !bytes.Contains(sig, []byte("s=s7x;")) {
		t.Errorf("the custom selector is not the signature's s=:\n%s", sig)
	}
	if ok, ran := verifyDkimpy(t, readyRecord, byFrom["ready.test"].Data); ran && !ok {
		t.Errorf("dkimpy refused the signature of mail sent from the return path")
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// enqueueReport queues a TLS report message from the world's account to
// rcpt, as the reporter does.
func (w *runnerWorld) enqueueReport(xid, from, rcpt string) {
	w.t.Helper()
	report := &sealpost.Message{AccountID: w.account.ID, XMessageID: xid, SMTPID: "<" + xid + "@sealpost.test>", From: from,
		Body:       &sealpost.MessageBody{Data: []byte("From: " + from + "\r\nTo: " + rcpt + "\r\nSubject: report\r\n\r\nreport\r\n")},
		Categories: []string{sealpost.TLSReportCategory},
		Recipients: []sealpost.Recipient{{Email: rcpt, Domain: rcpt[strings.LastIndexByte(rcpt, '@')+1:], SGMessageID: xid + ".0"}},
		CreatedAt:  w.clock.Now()}
	if err := w.store.EnqueueMessages(context.Background(), []*sealpost.Message{report}, nil); err != nil {
		w.t.Fatal(err)
	}
}

// TestRunnerHoldsUnsignableTLSReports: a TLS report whose From domain the
// account has not authenticated is deferred, not sent unsigned; once the
// domain is authenticated and validated, the next attempt sends it signed.
// Other mail of the account still goes unsigned meanwhile.
func TestRunnerHoldsUnsignableTLSReports(t *testing.T) {
	t.Parallel()
	w := newRunnerWorld(t)
	w.runner.Signer = &dkim.Signer{Domains: w.store}
	mx := w.h.AddMX("dkim-dest.test", 10, mxtest.Behavior{})
	w.enqueueReport("tlsrpt-1", "tlsrpt@reports.test", "r@dkim-dest.test")
	w.send(sendFrom("news@reports.test", []map[string]string{{"type": "text/plain", "value": "v"}}, nil))
	w.drain()
	if n := len(mx.Accepted()); n != 1 {
		t.Fatalf("the MX accepted %d messages, want the ordinary one only", n)
	}
	if st := w.states("tlsrpt-1"); st["r@dkim-dest.test"] != sealpost.StateQueued {
		t.Errorf("report state = %v, want queued", st)
	}
	var deferred bool
	for _, e := range w.events() {
		if e["sg_message_id"] == "tlsrpt-1.0" {
			deferred = e["event"] == "deferred" && strings.Contains(e["response"].(string), "cannot be DKIM-signed")
		}
	}
	if !deferred {
		t.Error("no deferral of the report saying it cannot be signed")
	}

	w.authenticate("reports.test", sealpost.DKIMKeyEd25519)
	w.clock.Add(2 * time.Minute)
	w.drain()
	if n := len(mx.Accepted()); n != 2 {
		t.Fatalf("the MX accepted %d messages, want the report too once the domain is authenticated", n)
	}
	vs, err := verifyDKIM(t, w.runner.Deliverer.(*delivery.Client), mx.Accepted()[1].Data)
	if err != nil || len(vs) != 1 || vs[0].Err != nil || vs[0].Domain != "reports.test" {
		t.Errorf("report signature: %v %+v", err, vs)
	}
}

// TestRunnerSendsTLSReportsUnderTheDefaultPolicy: RFC 8460 3 has reports
// delivered despite TLS failures, so a report goes opportunistically, in
// clear if need be, whatever the account's Enforced TLS, its policy for the
// domain, or the domain's MTA-STS and DANE ask; ordinary mail is held to
// them.
func TestRunnerSendsTLSReportsUnderTheDefaultPolicy(t *testing.T) {
	t.Parallel()
	w := newRunnerWorld(t)
	yes := true
	w.setPolicy(sealpost.EnforcedTLSPatch{RequireTLS: &yes, RequireValidCert: &yes})
	w.runner.DomainPolicies = fakeDomainPolicies{policies: map[string]sealpost.EnforcedTLS{
		"rua.test": {RequireTLS: true, RequireValidCert: true, Version: sealpost.TLS13},
	}}
	client := w.runner.Deliverer.(*delivery.Client)
	client.MTASTS = enforceMTASTS("elsewhere.test")
	client.DANE = fakeDANE{}
	mx := w.h.AddMX("rua.test", 10, mxtest.Behavior{STARTTLS: mxtest.NoSTARTTLS})
	w.enqueueReport("tlsrpt-1", "tlsrpt@sealpost.test", "r@rua.test")
	xid := w.send(mailTo("someone@rua.test"))
	w.drain()
	w.clock.Add(2 * time.Minute)
	w.drain() // MTA-STS defers the first attempt before blocking
	if st := w.states("tlsrpt-1"); st["r@rua.test"] != sealpost.StateDelivered {
		t.Errorf("report state = %v, want delivered", st)
	}
	if st := w.states(xid); st["someone@rua.test"] == sealpost.StateDelivered {
		t.Errorf("ordinary mail state = %v, want held to the policies", st)
	}
	if n := len(mx.Accepted()); n != 1 {
		t.Errorf("the MX accepted %d messages, want the report only", n)
	}
}
