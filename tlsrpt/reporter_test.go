package tlsrpt_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
	"github.com/sealpost/sealpost/internal/testclock"
	"github.com/sealpost/sealpost/tlsrpt"
)

// fakeStore keeps the store's TLS report state in memory; the stores'
// own contract is storetest's.
type fakeStore struct {
	mu       sync.Mutex
	counts   []sealpost.TLSRPTCount // of every day
	claims   map[int64]string
	sends    []*leasedSend
	enqueued []*sealpost.Message
}

type leasedSend struct {
	sealpost.TLSRPTSend
	owner string
	until time.Time
}

func (s *fakeStore) TLSRPTCounts(_ context.Context, day int64, accountID int64) ([]sealpost.TLSRPTCount, error) {
	var out []sealpost.TLSRPTCount
	for _, c := range s.counts {
		if c.Day == day {
			out = append(out, c)
		}
	}
	return out, nil
}

func (s *fakeStore) ClaimTLSRPTRun(_ context.Context, day int64, node string, _ time.Time, sends []sealpost.TLSRPTSend) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.claims[day]; ok {
		return false, nil
	}
	s.claims[day] = node
	for _, send := range sends {
		s.sends = append(s.sends, &leasedSend{TLSRPTSend: send})
	}
	return true, nil
}

func (s *fakeStore) UnclaimedTLSRPTDays(_ context.Context, first, last int64) ([]int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var days []int64
	for _, c := range s.counts {
		if _, claimed := s.claims[c.Day]; !claimed && c.Day >= first && c.Day <= last && !slices.Contains(days, c.Day) {
			days = append(days, c.Day)
		}
	}
	slices.Sort(days)
	return days, nil
}

func (s *fakeStore) ClaimTLSRPTSends(_ context.Context, node string, now time.Time, lease time.Duration, max int) ([]sealpost.TLSRPTSend, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []sealpost.TLSRPTSend
	for _, l := range s.sends {
		if len(out) < max && !l.NextAttemptAt.After(now) && !l.until.After(now) {
			l.owner, l.until = node, now.Add(lease)
			out = append(out, l.TLSRPTSend)
		}
	}
	return out, nil
}

func (s *fakeStore) FinishTLSRPTSend(_ context.Context, node string, send sealpost.TLSRPTSend, done bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, l := range s.sends {
		if l.Day == send.Day && l.PolicyDomain == send.PolicyDomain && l.RUA == send.RUA && l.owner == node {
			if done {
				s.sends = slices.Delete(s.sends, i, i+1)
			} else {
				*l = leasedSend{TLSRPTSend: send}
			}
			return nil
		}
	}
	return sealpost.Errorf(sealpost.ECONFLICT, "not leased")
}

func (s *fakeStore) pending() []sealpost.TLSRPTSend {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []sealpost.TLSRPTSend
	for _, l := range s.sends {
		out = append(out, l.TLSRPTSend)
	}
	return out
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
	return nil, &net.DNSError{Err: "no such host (NXDOMAIN)", Name: name, IsNotFound: true}
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

// flakyTXT fails its first failures lookups of every name with err, then
// answers from records; it counts the lookups.
type flakyTXT struct {
	records  txtMap
	failures int
	err      error
	mu       sync.Mutex
	lookups  int
}

func (f *flakyTXT) LookupTXT(ctx context.Context, name string) ([]string, error) {
	f.mu.Lock()
	f.lookups++
	n := f.lookups
	f.mu.Unlock()
	if n <= f.failures {
		return nil, f.err
	}
	return f.records.LookupTXT(ctx, name)
}

// A lookup of the TLS-RPT record that fails for a reason a later one may
// get past is tried again, LookupTries times in all, before the domain's
// report is left out; NXDOMAIN is not tried again.
func TestReporterPlanRetriesFailedLookups(t *testing.T) {
	servfail := &net.DNSError{Err: "server answered SERVFAIL", Name: "_smtp._tls.rpt.example", IsTemporary: true}
	nxdomain := &net.DNSError{Err: "no such host (NXDOMAIN)", Name: "_smtp._tls.rpt.example", IsNotFound: true}
	records := txtMap{"_smtp._tls.rpt.example": {"v=TLSRPTv1; rua=mailto:tlsrpt@rpt.example"}}
	tests := []struct {
		name        string
		failures    int
		err         error
		wantPlanned bool
		wantLookups int
	}{
		{"answered at once", 0, nil, true, 1},
		{"passing SERVFAIL", 2, servfail, true, 3},
		{"SERVFAIL throughout", 5, servfail, false, 3},
		{"NXDOMAIN", 5, nxdomain, false, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			store := &fakeStore{counts: []sealpost.TLSRPTCount{{PolicyDomain: "rpt.example", Day: 5, PolicyType: "no-policy-found", MXHost: "mx", Sessions: 1}}}
			res := &flakyTXT{records: records, failures: tc.failures, err: tc.err}
			r := &tlsrpt.Reporter{Store: store, Resolver: res, LookupTries: 3, LookupWait: time.Millisecond}
			plans, err := r.Plan(t.Context(), 5)
			if err != nil {
				t.Fatal(err)
			}
			if got := len(plans) == 1; got != tc.wantPlanned {
				t.Errorf("planned %d reports, want planned=%v", len(plans), tc.wantPlanned)
			}
			if res.lookups != tc.wantLookups {
				t.Errorf("%d lookups, want %d", res.lookups, tc.wantLookups)
			}
		})
	}
}

// A post that fails is kept and retried, by whichever node, after the
// backoff; one that keeps failing is given up after GiveUpAfter.
func TestReporterRetriesFailedPosts(t *testing.T) {
	day := sealpost.RegistryDay(time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC))
	var mu sync.Mutex
	failing := map[string]int{"/flaky": 1, "/down": 1 << 30} // failures left per path
	posted := map[string]int{}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if failing[r.URL.Path] > 0 {
			failing[r.URL.Path]--
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		posted[r.URL.Path]++
	}))
	defer srv.Close()
	store := &fakeStore{claims: map[int64]string{}, counts: []sealpost.TLSRPTCount{
		{AccountID: 1, PolicyDomain: "flaky.example", Day: day, PolicyType: "no-policy-found", MXHost: "mx", Sessions: 1},
		{AccountID: 1, PolicyDomain: "down.example", Day: day, PolicyType: "no-policy-found", MXHost: "mx", Sessions: 1},
	}}
	clk := testclock.New(time.Date(2026, 12, 7, 0, 30, 0, 0, time.UTC))
	mk := func(node string) *tlsrpt.Reporter {
		return &tlsrpt.Reporter{Store: store, Client: srv.Client(), Node: node, Now: clk.Now,
			Resolver: txtMap{
				"_smtp._tls.flaky.example": {"v=TLSRPTv1; rua=" + srv.URL + "/flaky"},
				"_smtp._tls.down.example":  {"v=TLSRPTv1; rua=" + srv.URL + "/down"},
			},
			Meta: sealpost.TLSReportMeta{OrganizationName: "Sender Org", ContactInfo: "postmaster@sender.example"},
		}
	}
	if claimed, err := mk("a").RunOnce(t.Context(), day); !claimed || err != nil {
		t.Fatalf("RunOnce = %v, %v", claimed, err)
	}
	if p := store.pending(); len(p) != 2 || p[0].Attempts != 1 || p[0].NextAttemptAt != clk.Now().Add(5*time.Minute) || p[0].LastError == "" {
		t.Fatalf("after the first attempts: %+v, want both kept, due again in 5 minutes", p)
	}
	// Not yet due: nothing is posted.
	clk.Add(4 * time.Minute)
	if err := mk("b").SendDue(t.Context()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(posted) != 0 {
		t.Errorf("posted before the retry was due: %v", posted)
	}
	mu.Unlock()
	// Another node retries: the flaky rua now takes it, once.
	clk.Add(time.Minute)
	if err := mk("b").SendDue(t.Context()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if posted["/flaky"] != 1 {
		t.Errorf("flaky rua got %d reports, want 1", posted["/flaky"])
	}
	mu.Unlock()
	if p := store.pending(); len(p) != 1 || p[0].PolicyDomain != "down.example" || p[0].Attempts != 2 || p[0].NextAttemptAt != clk.Now().Add(10*time.Minute) {
		t.Fatalf("pending = %+v, want down.example's only, due in 10 minutes", p)
	}
	// A day on, the rua that is still down is given up.
	for range 40 {
		clk.Add(time.Hour)
		if err := mk("a").SendDue(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if p := store.pending(); len(p) != 0 {
		t.Errorf("pending after a day = %+v, want the failing report given up", p)
	}
	mu.Lock()
	defer mu.Unlock()
	if posted["/flaky"] != 1 || posted["/down"] != 0 {
		t.Errorf("posted = %v", posted)
	}
}

// Days no node reported (every node was down at their midnight) are sent
// by the next run, each once, within the catch-up window.
func TestReporterCatchesUpMissedDays(t *testing.T) {
	today := sealpost.RegistryDay(time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC))
	var mu sync.Mutex
	var reports []sealpost.TLSReport
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rep := gunzipReport(t, b)
		mu.Lock()
		reports = append(reports, rep)
		mu.Unlock()
	}))
	defer srv.Close()
	count := func(day int64) sealpost.TLSRPTCount {
		return sealpost.TLSRPTCount{AccountID: 1, PolicyDomain: "rpt.example", Day: day, PolicyType: "no-policy-found", MXHost: "mx", Sessions: 1}
	}
	store := &fakeStore{claims: map[int64]string{}, counts: []sealpost.TLSRPTCount{
		count(today - 30), // outside the window
		count(today - 2),  // missed: no run that night
		count(today - 1),
		count(today), // not over yet
	}}
	clk := testclock.New(time.Date(2026, 12, 7, 0, 20, 0, 0, time.UTC))
	for _, node := range []string{"a", "b"} {
		r := &tlsrpt.Reporter{Store: store, Client: srv.Client(), Node: node, Now: clk.Now,
			Resolver: txtMap{"_smtp._tls.rpt.example": {"v=TLSRPTv1; rua=" + srv.URL}},
			Meta:     sealpost.TLSReportMeta{OrganizationName: "Sender Org", ContactInfo: "postmaster@sender.example"}}
		if err := r.CatchUp(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	var got []string
	for _, r := range reports {
		got = append(got, r.DateRange.Start.Format(time.DateOnly))
	}
	if want := []string{"2026-12-05", "2026-12-06"}; !slices.Equal(got, want) {
		t.Errorf("reports of %v, want %v, each once across two nodes", got, want)
	}
}

// Reports sent on demand are not sent again by the daily run.
func TestReporterSendOnDemandClaimsTheDay(t *testing.T) {
	day := sealpost.RegistryDay(time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC))
	var mu sync.Mutex
	posts := 0
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		posts++
		mu.Unlock()
	}))
	defer srv.Close()
	store := &fakeStore{claims: map[int64]string{}, counts: []sealpost.TLSRPTCount{
		{AccountID: 1, PolicyDomain: "rpt.example", Day: day, PolicyType: "no-policy-found", MXHost: "mx", Sessions: 1},
	}}
	clk := testclock.New(time.Date(2026, 12, 7, 0, 10, 0, 0, time.UTC))
	r := &tlsrpt.Reporter{Store: store, Client: srv.Client(), Node: "cli", Now: clk.Now,
		Resolver: txtMap{"_smtp._tls.rpt.example": {"v=TLSRPTv1; rua=" + srv.URL}},
		Meta:     sealpost.TLSReportMeta{OrganizationName: "Sender Org", ContactInfo: "postmaster@sender.example"}}
	if err := r.Send(t.Context(), day); err != nil {
		t.Fatal(err)
	}
	r.Node = "a"
	if err := r.CatchUp(t.Context()); err != nil {
		t.Fatal(err)
	}
	// On demand, a claimed day is sent again all the same.
	if err := r.Send(t.Context(), day); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if posts != 2 {
		t.Errorf("%d posts, want 2: one per send on demand, none by the daily run", posts)
	}
}
