package storetest

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
)

// The TLS reporting contract: a completion's delivery observations are
// counted per account, policy domain, day, policy type, MX host, result
// and receiving IP, adding up across completions; probes and the
// deliveries of reports are not counted.

func testTLSRPTCounts(t *testing.T, s sealpost.Store) {
	a := createUser(t, s, "rpt-a")
	b := createUser(t, s, "rpt-b")
	now := baseTime()
	day := sealpost.RegistryDay(now)
	enqueue(t, s, []*sealpost.Message{
		newMessage(a.ID, "r1", now, "one@rpt.example"),
		newMessage(b.ID, "r2", now, "two@rpt.example"),
	})
	sts := sealpost.TLSFacts{TLS: true, Verified: true, MXHost: "mx.rpt.example", MXIP: "127.0.0.2", MTASTS: "testing"}
	testing := sts
	testing.Verified, testing.MTASTSTestingResult = false, sealpost.ResultCertificateNotTrusted
	blocked := sealpost.TLSFacts{MXHost: "mx2.rpt.example", MXIP: "127.0.0.3", ResultType: sealpost.ResultSTARTTLSNotSupported}
	ds := claim(t, s, "node", now, time.Minute, 10)
	if len(ds) != 2 {
		t.Fatalf("claimed %d deliveries, want 2", len(ds))
	}
	for _, d := range ds {
		acct := d.Message.AccountID
		obs := func(f sealpost.TLSFacts, recipients int, report bool) sealpost.HostObservation {
			return sealpost.HostObservation{AccountID: acct, Domain: "rpt.example", MXHost: f.MXHost, At: now, Facts: f, Recipients: recipients, TLSReport: report}
		}
		c := sealpost.DeliveryCompletion{DeliveryID: d.ID, Observations: []sealpost.HostObservation{
			obs(sts, 1, false), obs(sts, 1, false), obs(testing, 1, false), obs(blocked, 1, false),
			obs(sts, 1, true), // a report's delivery
		}}
		for _, rc := range d.Message.Recipients {
			c.Recipients = append(c.Recipients, sealpost.RecipientUpdate{RecipientID: rc.ID, State: sealpost.StateDelivered})
		}
		complete(t, s, "node", c)
	}
	// A probe counts in the registry, never in reports.
	if err := s.RecordObservations(t.Context(), []sealpost.HostObservation{
		{AccountID: a.ID, Domain: "rpt.example", MXHost: "mx.rpt.example", At: now, Facts: sts},
	}); err != nil {
		t.Fatal(err)
	}
	want := func(acct int64, n int64) []sealpost.TLSRPTCount {
		return []sealpost.TLSRPTCount{
			{AccountID: acct, PolicyDomain: "rpt.example", Day: day, PolicyType: "no-policy-found", MXHost: "mx2.rpt.example", ResultType: sealpost.ResultSTARTTLSNotSupported, ReceivingIP: "127.0.0.3", Sessions: n},
			{AccountID: acct, PolicyDomain: "rpt.example", Day: day, PolicyType: "sts", MXHost: "mx.rpt.example", ResultType: "", ReceivingIP: "127.0.0.2", Sessions: 2 * n},
			{AccountID: acct, PolicyDomain: "rpt.example", Day: day, PolicyType: "sts", MXHost: "mx.rpt.example", ResultType: sealpost.ResultCertificateNotTrusted, ReceivingIP: "127.0.0.2", Sessions: n},
		}
	}
	got, err := s.TLSRPTCounts(t.Context(), day, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want(a.ID, 1)) {
		t.Errorf("a's counts =\n%+v\nwant\n%+v", got, want(a.ID, 1))
	}
	all, err := s.TLSRPTCounts(t.Context(), day, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 6 {
		t.Errorf("every account's counts = %+v, want 3 rows per account", all)
	}
	if got, _ := s.TLSRPTCounts(t.Context(), day-1, 0); len(got) != 0 {
		t.Errorf("the day before: %+v, want none", got)
	}
	if err := s.PruneTLSRegistry(t.Context(), now.Add(48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.TLSRPTCounts(t.Context(), day, 0); len(got) != 0 {
		t.Errorf("after pruning: %+v, want none", got)
	}
}

func testTLSRPTRunClaimedOnce(t *testing.T, s sealpost.Store) {
	day := sealpost.RegistryDay(baseTime()) + 1000
	const nodes = 8
	var wg sync.WaitGroup
	won := make(chan string, nodes)
	for i := range nodes {
		wg.Go(func() {
			node := string(rune('a' + i))
			ok, err := s.ClaimTLSRPTRun(t.Context(), day, node, time.Now())
			if err != nil {
				t.Errorf("claim by %s: %v", node, err)
			}
			if ok {
				won <- node
			}
		})
	}
	wg.Wait()
	close(won)
	if n := len(won); n != 1 {
		t.Errorf("%d nodes claimed the day, want exactly 1", n)
	}
	if ok, err := s.ClaimTLSRPTRun(t.Context(), day+1, "a", time.Now()); err != nil || !ok {
		t.Errorf("claim of the next day = %v, %v; want claimed", ok, err)
	}
}
