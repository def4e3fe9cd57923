package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/sealpost/sealpost"
	"github.com/sealpost/sealpost/delivery"
	"github.com/sealpost/sealpost/delivery/mxtest"
	"github.com/sealpost/sealpost/tlsrpt"
)

// ruaReceiver is an https: rua: it keeps the reports posted to it, after
// answering the first failures posts with 503.
type ruaReceiver struct {
	mu       sync.Mutex
	reports  map[string]sealpost.TLSReport // by policy domain
	errs     []string
	failures int
	posts    int
}

func (r *ruaReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.posts++; r.posts <= r.failures {
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	if ct := req.Header.Get("Content-Type"); ct != "application/tlsrpt+gzip" {
		r.errs = append(r.errs, "Content-Type "+ct)
	}
	zr, err := gzip.NewReader(req.Body)
	if err != nil {
		r.errs = append(r.errs, "not gzip: "+err.Error())
		return
	}
	raw, _ := io.ReadAll(zr)
	var rep sealpost.TLSReport
	if err := json.Unmarshal(raw, &rep); err != nil || len(rep.Policies) == 0 {
		r.errs = append(r.errs, fmt.Sprintf("not a report (%v): %s", err, raw))
		return
	}
	r.reports[rep.Policies[0].Policy.PolicyDomain] = rep
}

func totals(rep sealpost.TLSReport) (ok, failed int64, results map[string]int64) {
	results = map[string]int64{}
	for _, p := range rep.Policies {
		ok += p.Summary.Successful
		failed += p.Summary.Failed
		for _, f := range p.FailureDetails {
			results[p.Policy.PolicyType+" "+f.ResultType] += f.FailedSessionCount
		}
	}
	return ok, failed, results
}

// TestTLSReportsEndToEnd: a day of deliveries through the real service to
// domains publishing TLS-RPT (one whose host has TLS, one whose MTA-STS
// policy in testing mode its host fails, one whose mail the account's
// Enforced TLS blocks), then "sealpost tlsrpt send" posts each domain its
// report over HTTPS, and the counts in it are the sessions the API counted.
func TestTLSReportsEndToEnd(t *testing.T) {
	t.Parallel()
	forEachStore(t, testTLSReports)
}

// serveRUA starts rua as an https: rua at rua.test and returns its URL.
func serveRUA(t *testing.T, h *mxtest.Harness, rua *ruaReceiver) string {
	ln := h.Listen()
	h.DNS().SetA("rua.test", ln.Addr().(*net.TCPAddr).IP.String())
	srv := &http.Server{Handler: rua, ErrorLog: log.New(io.Discard, "", 0),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{h.CA().Issue(t, mxtest.Options{DNSNames: []string{"rua.test"}})}}}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { srv.Close() })
	return fmt.Sprintf("https://rua.test:%d/tlsrpt", ln.Addr().(*net.TCPAddr).Port)
}

func testTLSReports(t *testing.T, database string) {
	h := mxtest.New(t)
	noTLS := mxtest.Behavior{STARTTLS: mxtest.NoSTARTTLS}
	h.AddMX("rpt-ok.test", 10, mxtest.Behavior{})
	h.AddMX("rpt-testing.test", 10, noTLS)
	// An extension field, which reports quote with the rest as fetched.
	publishSTS(t, h, "rpt-testing.test", "1", stsPolicy("testing", "*.rpt-testing.test")+"x-note: e2e\r\n")
	blockedMX := h.AddMX("rpt-blocked.test", 10, noTLS)

	rua := &ruaReceiver{reports: map[string]sealpost.TLSReport{}}
	ruaURL := serveRUA(t, h, rua)
	for _, d := range []string{"rpt-testing.test", "rpt-blocked.test"} {
		h.DNS().SetTXT("_smtp._tls."+d, []string{"v=TLSRPTv1; rua=" + ruaURL})
	}
	// rpt-ok.test also wants its report by mail, at a host without TLS
	// that the account's Enforced TLS (turned on below) would refuse.
	mailbox := h.AddMX("rpt-mailbox.test", 10, noTLS)
	h.DNS().SetTXT("_smtp._tls.rpt-ok.test", []string{"v=TLSRPTv1; rua=" + ruaURL + ",mailto:tlsrpt@rpt-mailbox.test"})

	m, key, closeMain := policyNode(t, h, database, nil)
	day := time.Now().UTC().Format(time.DateOnly)
	// sessions answers the account's counts of today, by policy domain.
	sessions := func() map[string][2]int64 {
		status, body := apiDo(t, m, "GET", "/v3/tls/reports?date="+day, key, "")
		if status != http.StatusOK {
			t.Fatalf("GET /v3/tls/reports: %d %s", status, body)
		}
		var out struct{ Reports []sealpost.TLSReport }
		if err := json.Unmarshal([]byte(body), &out); err != nil {
			t.Fatal(err)
		}
		got := map[string][2]int64{}
		for _, r := range out.Reports {
			ok, failed, _ := totals(r)
			got[r.Policies[0].Policy.PolicyDomain] = [2]int64{ok, failed}
		}
		return got
	}
	policySend(t, m, key, "rpt-ok.test")
	policySend(t, m, key, "rpt-ok.test")
	policySend(t, m, key, "rpt-testing.test")
	waitFor(t, "the first sessions counted", 60*time.Second, func() bool {
		s := sessions()
		return s["rpt-ok.test"] == [2]int64{2, 0} && s["rpt-testing.test"] == [2]int64{0, 1}
	})
	if status, body := apiDo(t, m, "PATCH", "/v3/user/settings/enforced_tls", key, `{"require_tls":true}`); status != http.StatusOK {
		t.Fatalf("PATCH enforced_tls: %d %s", status, body)
	}
	policySend(t, m, key, "rpt-blocked.test")
	waitFor(t, "the blocked session counted", 60*time.Second, func() bool { return sessions()["rpt-blocked.test"][1] >= 1 })
	// The operator authenticates the reports' From domain, as SendGrid's
	// API has it, so that mailto: reports are DKIM-signed.
	authenticateDomain(t, h, m, key, "sender.test")
	closeMain()
	if blockedMX.AcceptedCount() != 0 {
		t.Errorf("the blocked domain's host accepted %d messages", blockedMX.AcceptedCount())
	}

	args := []string{"tlsrpt", "send", "--date", day, "--database", database, "--dns-server", h.DNSAddr(),
		"--allow-destinations", "127.0.0.0/8", "--tls-ca-file", h.CAFile(), "--tlsrpt-organization", "Sealpost Test",
		"--tlsrpt-account", "admin", "--tlsrpt-from", "tlsrpt@sender.test"}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), append(args, "--dry-run"), func(string) string { return "" }, &stdout, &stderr); code != 0 {
		t.Fatalf("dry run: exit %d: %s", code, stderr.String())
	}
	var planned []struct {
		Report sealpost.TLSReport
		RUA    []string
	}
	if err := json.Unmarshal(stdout.Bytes(), &planned); err != nil || len(planned) != 3 {
		t.Fatalf("dry run printed %d reports (%v): %s", len(planned), err, stdout.String())
	}
	if len(rua.reports) != 0 {
		t.Fatal("the dry run sent reports")
	}
	stderr.Reset()
	if code := run(context.Background(), args, func(string) string { return "" }, io.Discard, &stderr); code != 0 {
		t.Fatalf("send: exit %d: %s", code, stderr.String())
	}
	rua.mu.Lock()
	defer rua.mu.Unlock()
	if len(rua.errs) > 0 {
		t.Fatalf("rua received: %v", rua.errs)
	}
	want := map[string]struct {
		ok, failed int64
		results    map[string]int64
	}{
		"rpt-ok.test":      {2, 0, map[string]int64{}},
		"rpt-testing.test": {0, 1, map[string]int64{"sts starttls-not-supported": 1}},
	}
	for domain, w := range want {
		rep, found := rua.reports[domain]
		if !found {
			t.Errorf("no report reached %s's rua", domain)
			continue
		}
		ok, failed, results := totals(rep)
		if ok != w.ok || failed != w.failed || fmt.Sprint(results) != fmt.Sprint(w.results) {
			t.Errorf("%s: %d ok, %d failed, %v; want %d, %d, %v", domain, ok, failed, results, w.ok, w.failed, w.results)
		}
		if rep.OrganizationName != "Sealpost Test" || rep.ReportID == "" || rep.DateRange.Start.Format(time.DateOnly) != day {
			t.Errorf("%s: report %+v", domain, rep)
		}
	}
	// The MTA-STS policy as fetched, its mx patterns, and where the failed
	// session came from and went to.
	sts := rua.reports["rpt-testing.test"].Policies[0]
	wantLines := []string{"version: STSv1", "mode: testing", "mx: *.rpt-testing.test", "max_age: 604800", "x-note: e2e"}
	if sts.Policy.PolicyType != "sts" || fmt.Sprint(sts.Policy.PolicyString) != fmt.Sprint(wantLines) ||
		fmt.Sprint(sts.Policy.MXHost) != "[*.rpt-testing.test]" || len(sts.FailureDetails) != 1 {
		t.Errorf("rpt-testing.test policy = %+v, want the policy's lines and mx patterns", sts)
	} else if f := sts.FailureDetails[0]; !net.ParseIP(f.SendingMTAIP).IsLoopback() || f.ReceivingMXHostname != "mx1.rpt-testing.test" || f.ReceivingIP == "" {
		t.Errorf("rpt-testing.test failure = %+v, want sent from loopback to the host contacted", f)
	}
	// Every attempt at the blocked domain is a session, however many
	// retries the day saw: the report has what the database counted.
	rep := rua.reports["rpt-blocked.test"]
	_, failed, results := totals(rep)
	var planFailed int64
	for _, p := range planned {
		if p.Report.Policies[0].Policy.PolicyDomain == "rpt-blocked.test" {
			_, planFailed, _ = totals(p.Report)
		}
	}
	if failed < 1 || failed != planFailed || results["no-policy-found starttls-not-supported"] != failed {
		t.Errorf("blocked: %d failed %v, dry run said %d; want the same, all starttls-not-supported", failed, results, planFailed)
	}

	// The mailto: report went into the queue; a node delivers it under the
	// default policy (in clear here, though the account requires TLS),
	// DKIM-signed with the authenticated domain, and its own session is
	// not counted.
	m, _, _ = policyNode(t, h, database, nil)
	waitFor(t, "the report by mail", 60*time.Second, func() bool { return mailbox.AcceptedCount() == 1 })
	msg, err := mail.ReadMessage(bytes.NewReader(mailbox.Accepted()[0].Data))
	if err != nil {
		t.Fatal(err)
	}
	mt, params, _ := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if mt != "multipart/report" || params["report-type"] != "tlsrpt" || msg.Header.Get("TLS-Report-Domain") != "rpt-ok.test" ||
		msg.Header.Get("TLS-Report-Submitter") != "sender.test" ||
		msg.Header.Get("Subject") != "Report Domain: rpt-ok.test Submitter: sender.test Report-ID: <"+rua.reports["rpt-ok.test"].ReportID+">" {
		t.Errorf("report message header: %v", msg.Header)
	}
	if _, found := sessions()["rpt-mailbox.test"]; found {
		t.Error("the delivery of the report was counted")
	}
	dns := &delivery.Client{Resolver: delivery.NewResolver(h.DNSAddr())}
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(mailbox.Accepted()[0].Data), &dkim.VerifyOptions{
		LookupTXT: func(name string) ([]string, error) { return dns.LookupTXT(context.Background(), name) },
	})
	if err != nil || len(vs) != 1 || vs[0].Err != nil || vs[0].Domain != "sender.test" {
		t.Errorf("the report's DKIM signature: %v %+v, want one valid signature of sender.test", err, vs)
	}
	var attached bool
	_, params, _ = mime.ParseMediaType(msg.Header.Get("Content-Type"))
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for part, err := mr.NextPart(); err == nil; part, err = mr.NextPart() {
		if !strings.HasPrefix(part.Header.Get("Content-Type"), "application/tlsrpt+gzip") {
			continue
		}
		zr, err := gzip.NewReader(base64.NewDecoder(base64.StdEncoding, part))
		if err != nil {
			t.Fatal(err)
		}
		var rep sealpost.TLSReport
		if err := json.NewDecoder(zr).Decode(&rep); err != nil {
			t.Fatal(err)
		}
		ok, failed, _ := totals(rep)
		attached = rep.ReportID == rua.reports["rpt-ok.test"].ReportID && ok == 2 && failed == 0
	}
	if !attached {
		t.Error("the mailed report does not carry rpt-ok.test's report of 2 sessions")
	}
}

// authenticateDomain authenticates domain for key's account through the
// whitelabel API, publishes its DKIM record in the test DNS and has the
// API validate it.
func authenticateDomain(t *testing.T, h *mxtest.Harness, m *Main, key, domain string) {
	t.Helper()
	status, body := apiDo(t, m, "POST", "/v3/whitelabel/domains", key, `{"domain":"`+domain+`","automatic_security":false}`)
	if status != http.StatusCreated && status != http.StatusOK {
		t.Fatalf("POST /v3/whitelabel/domains: %d %s", status, body)
	}
	var created struct {
		ID  int64
		DNS map[string]struct{ Host, Data string }
	}
	if err := json.Unmarshal([]byte(body), &created); err != nil {
		t.Fatal(err)
	}
	rec := created.DNS["dkim1"]
	var parts []string
	for data := rec.Data; data != ""; {
		n := min(len(data), 255)
		parts, data = append(parts, data[:n]), data[n:]
	}
	h.DNS().SetTXT(rec.Host, parts)
	status, body = apiDo(t, m, "POST", fmt.Sprintf("/v3/whitelabel/domains/%d/validate", created.ID), key, "")
	if status != http.StatusOK || !strings.Contains(body, `"valid":true`) {
		t.Fatalf("validate: %d %s", status, body)
	}
}

// TestTLSReportsRetriedAndCaughtUp: on the real store, a day no node
// reported is claimed by the next run; its post fails, is kept, and is
// retried by another node once due, which the rua then takes, once.
func TestTLSReportsRetriedAndCaughtUp(t *testing.T) {
	t.Parallel()
	forEachStore(t, testTLSReportsRetried)
}

func testTLSReportsRetried(t *testing.T, database string) {
	h := mxtest.New(t)
	h.AddMX("rpt-retry.test", 10, mxtest.Behavior{})
	rua := &ruaReceiver{reports: map[string]sealpost.TLSReport{}, failures: 1}
	h.DNS().SetTXT("_smtp._tls.rpt-retry.test", []string{"v=TLSRPTv1; rua=" + serveRUA(t, h, rua)})
	m, key, closeMain := policyNode(t, h, database, nil)
	day := time.Now().UTC().Format(time.DateOnly)
	policySend(t, m, key, "rpt-retry.test")
	waitFor(t, "the session counted", 60*time.Second, func() bool {
		_, body := apiDo(t, m, "GET", "/v3/tls/reports?date="+day, key, "")
		return strings.Contains(body, `"policy-domain":"rpt-retry.test"`)
	})
	closeMain()

	cfg := DefaultConfig()
	cfg.DNSServer, cfg.TLSCAFile, cfg.AllowDestinations = h.DNSAddr(), h.CAFile(), "127.0.0.0/8"
	cfg.TLSRPT = TLSRPTConfig{Enabled: true, Organization: "Sealpost Test"}
	store, _, err := openStore(t.Context(), database, false, "")
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	dests, err := cfg.destinations()
	if err != nil {
		t.Fatal(err)
	}
	client, err := cfg.smtpClient(dests, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	// Every node was down through the night: the reporters wake up the
	// day after tomorrow, so today is a missed day within the window.
	var mu sync.Mutex
	now := time.Now().Add(48 * time.Hour)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	reporter := func(node string) *tlsrpt.Reporter {
		r, err := cfg.tlsrptReporter(t.Context(), store, client, dests, node, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		r.Now = clock
		return r
	}
	a, b := reporter("a"), reporter("b")
	if err := a.CatchUp(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := b.CatchUp(t.Context()); err != nil {
		t.Fatal(err)
	}
	rua.mu.Lock()
	if rua.posts != 1 || len(rua.reports) != 0 {
		t.Errorf("%d posts, %d reports taken; want the one claim's post, refused", rua.posts, len(rua.reports))
	}
	rua.mu.Unlock()
	mu.Lock()
	now = now.Add(tlsrpt.RetryBackoff(1))
	mu.Unlock()
	for _, r := range []*tlsrpt.Reporter{b, a} {
		if err := r.SendDue(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	rua.mu.Lock()
	defer rua.mu.Unlock()
	rep, ok := rua.reports["rpt-retry.test"]
	if rua.posts != 2 || !ok || rep.DateRange.Start.Format(time.DateOnly) != day {
		t.Errorf("%d posts, report %+v; want the retry to deliver the report of %s", rua.posts, rep, day)
	}
}
