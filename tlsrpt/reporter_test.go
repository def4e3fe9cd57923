package tlsrpt_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
	"github.com/sealpost/sealpost/tlsrpt"
)

type fakeStore struct {
	mu       sync.Mutex
	counts   []sealpost.TLSRPTCount
	claims   map[int64]string
	enqueued []*sealpost.Message
}

func (s *fakeStore) TLSRPTCounts(_ context.Context, day int64, accountID int64) ([]sealpost.TLSRPTCount, error) {
	return s.counts, nil
}

func (s *fakeStore) ClaimTLSRPTRun(_ context.Context, day int64, node string, _ time.Time) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.claims[day]; ok {
		return false, nil
	}
	s.claims[day] = node
	return true, nil
}

func (s *fakeStore) EnqueueMessages(_ context.Context, msgs []*sealpost.Message, _ []sealpost.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.enqueued = append(s.enqueued, msgs...)
	return nil
}

type txtMap map[string][]string

func (m txtMap) LookupTXT(_ context.Context, name string) ([]string, error) {
	if v, ok := m[name]; ok {
		return v, nil
	}
	return nil, errors.New("no such name")
}

func gunzipReport(t *testing.T, gz []byte) sealpost.TLSReport {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatalf("not gzip: %v", err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	var rep sealpost.TLSReport
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatalf("not a report: %v", err)
	}
	return rep
}

func TestReporterSendsToHTTPSAndMailtoOnce(t *testing.T) {
	day := sealpost.RegistryDay(time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC))
	posted := make(chan []byte, 4)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ct := r.Header.Get("Content-Type"); ct != "application/tlsrpt+gzip" {
			t.Errorf("Content-Type = %q", ct)
		}
		b, _ := io.ReadAll(r.Body)
		posted <- b
	}))
	defer srv.Close()
	store := &fakeStore{claims: map[int64]string{}, counts: []sealpost.TLSRPTCount{
		{AccountID: 1, PolicyDomain: "rpt.example", Day: day, PolicyType: "sts", MXHost: "mx.rpt.example", ResultType: "", ReceivingIP: "127.0.0.2", Sessions: 3},
		{AccountID: 1, PolicyDomain: "rpt.example", Day: day, PolicyType: "sts", MXHost: "mx.rpt.example", ResultType: "certificate-expired", ReceivingIP: "127.0.0.2", Sessions: 2},
		{AccountID: 1, PolicyDomain: "rpt.example", Day: day, PolicyType: "no-policy-found", MXHost: "mx2.rpt.example", ResultType: "starttls-not-supported", ReceivingIP: "127.0.0.3", Sessions: 1},
		{AccountID: 1, PolicyDomain: "silent.example", Day: day, PolicyType: "no-policy-found", MXHost: "mx.silent.example", ResultType: "", ReceivingIP: "127.0.0.4", Sessions: 7},
	}}
	mk := func(node string) *tlsrpt.Reporter {
		return &tlsrpt.Reporter{
			Store:    store,
			Resolver: txtMap{"_smtp._tls.rpt.example": {"v=TLSRPTv1; rua=" + srv.URL + "/rua,mailto:tlsrpt@rpt.example"}},
			Client:   srv.Client(),
			Meta:     sealpost.TLSReportMeta{OrganizationName: "Sender Org", ContactInfo: "postmaster@sender.example"},
			From:     "tlsrpt@sender.example", FromAccountID: 9, Node: node,
		}
	}
	for _, node := range []string{"a", "b"} {
		if _, err := mk(node).RunOnce(t.Context(), day); err != nil {
			t.Fatalf("node %s: %v", node, err)
		}
	}
	if len(posted) != 1 {
		t.Fatalf("%d posts, want exactly one across two nodes", len(posted))
	}
	rep := gunzipReport(t, <-posted)
	var ok, failed int64
	for _, p := range rep.Policies {
		ok += p.Summary.Successful
		failed += p.Summary.Failed
		if p.Policy.PolicyDomain != "rpt.example" {
			t.Errorf("policy of %s in rpt.example's report", p.Policy.PolicyDomain)
		}
	}
	if ok != 3 || failed != 3 {
		t.Errorf("report counts %d successes, %d failures; want 3, 3", ok, failed)
	}

	if len(store.enqueued) != 1 {
		t.Fatalf("%d messages queued, want one for the mailto: rua", len(store.enqueued))
	}
	m := store.enqueued[0]
	if m.AccountID != 9 || m.From != "tlsrpt@sender.example" || m.Recipients[0].Email != "tlsrpt@rpt.example" ||
		len(m.Categories) != 1 || m.Categories[0] != sealpost.TLSReportCategory {
		t.Errorf("queued message = %+v", m)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(m.Body.Data))
	if err != nil {
		t.Fatal(err)
	}
	if got := msg.Header.Get("TLS-Report-Domain"); got != "rpt.example" {
		t.Errorf("TLS-Report-Domain = %q", got)
	}
	if got := msg.Header.Get("TLS-Report-Submitter"); got != "sender.example" {
		t.Errorf("TLS-Report-Submitter = %q", got)
	}
	if got, want := msg.Header.Get("Subject"), "Report Domain: rpt.example Submitter: sender.example Report-ID: <"+rep.ReportID+">"; got != want {
		t.Errorf("Subject = %q, want %q", got, want)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["report-type"] != "tlsrpt" {
		t.Fatalf("Content-Type = %q (%v)", msg.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	var found bool
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(part.Header.Get("Content-Type"), "application/tlsrpt+gzip") {
			gz, err := io.ReadAll(base64.NewDecoder(base64.StdEncoding, part))
			if err != nil {
				t.Fatal(err)
			}
			if got := gunzipReport(t, gz); got.ReportID != rep.ReportID {
				t.Errorf("attached report %q, want %q", got.ReportID, rep.ReportID)
			}
			found = true
		}
	}
	if !found {
		t.Error("no application/tlsrpt+gzip part")
	}
}

func TestReporterPlanSkipsDomainsWithoutRecord(t *testing.T) {
	store := &fakeStore{counts: []sealpost.TLSRPTCount{{PolicyDomain: "silent.example", Day: 5, PolicyType: "no-policy-found", MXHost: "mx", Sessions: 1}}}
	r := &tlsrpt.Reporter{Store: store, Resolver: txtMap{"_smtp._tls.silent.example": {"v=spf1 -all"}}}
	plans, err := r.Plan(t.Context(), 5)
	if err != nil || len(plans) != 0 {
		t.Errorf("Plan = %+v, %v; want none", plans, err)
	}
}
