package storetest

import (
	"reflect"
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
	policy := &sealpost.MTASTSPolicy{Mode: "testing", MX: []string{"mx.rpt.example", "*.rpt.example"}, MaxAge: 86400}
	policyLines := []string{"version: STSv1", "mode: testing", "mx: mx.rpt.example", "mx: *.rpt.example", "max_age: 86400"}
	ds := claim(t, s, "node", now, time.Minute, 10)
	if len(ds) != 2 {
		t.Fatalf("claimed %d deliveries, want 2", len(ds))
	}
	for _, d := range ds {
		acct := d.Message.AccountID
		obs := func(f sealpost.TLSFacts, recipients int, report bool) sealpost.HostObservation {
			o := sealpost.HostObservation{AccountID: acct, Domain: "rpt.example", MXHost: f.MXHost, At: now, Facts: f, Recipients: recipients,
				TLSReport: report, SendingIP: "127.0.0.9"}
			if f.MTASTS != "" {
				o.MTASTSPolicy = policy
			}
			return o
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
			{AccountID: acct, PolicyDomain: "rpt.example", Day: day, PolicyType: "no-policy-found", MXHost: "mx2.rpt.example", ResultType: sealpost.ResultSTARTTLSNotSupported, ReceivingIP: "127.0.0.3", SendingIP: "127.0.0.9", Sessions: n},
			{AccountID: acct, PolicyDomain: "rpt.example", Day: day, PolicyType: "sts", PolicyString: policyLines, PolicyMX: policy.MX,
				MXHost: "mx.rpt.example", ResultType: "", ReceivingIP: "127.0.0.2", SendingIP: "127.0.0.9", Sessions: 2 * n},
			{AccountID: acct, PolicyDomain: "rpt.example", Day: day, PolicyType: "sts", PolicyString: policyLines, PolicyMX: policy.MX,
				MXHost: "mx.rpt.example", ResultType: sealpost.ResultCertificateNotTrusted, ReceivingIP: "127.0.0.2", SendingIP: "127.0.0.9", Sessions: n},
		}
	}
	got, err := s.TLSRPTCounts(t.Context(), day, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want(a.ID, 1)) {
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
	// The day has counts and no claim: a run is to catch it up, until it
	// is claimed.
	if days, err := s.UnclaimedTLSRPTDays(t.Context(), day-3, day+3); err != nil || !reflect.DeepEqual(days, []int64{day}) {
		t.Errorf("unclaimed days = %v, %v; want [%d]", days, err, day)
	}
	if days, _ := s.UnclaimedTLSRPTDays(t.Context(), day-3, day-1); len(days) != 0 {
		t.Errorf("unclaimed days before the counted one = %v", days)
	}
	if ok, err := s.ClaimTLSRPTRun(t.Context(), day, "node", now, nil); err != nil || !ok {
		t.Fatalf("claim = %v, %v", ok, err)
	}
	if days, _ := s.UnclaimedTLSRPTDays(t.Context(), day-3, day+3); len(days) != 0 {
		t.Errorf("unclaimed days after the claim = %v, want none", days)
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
			ok, err := s.ClaimTLSRPTRun(t.Context(), day, node, time.Now(), nil)
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
	if ok, err := s.ClaimTLSRPTRun(t.Context(), day+1, "a", time.Now(), nil); err != nil || !ok {
		t.Errorf("claim of the next day = %v, %v; want claimed", ok, err)
	}
}

// The TLS report sends contract: sends come with the day's claim (and not
// with a lost one), are leased to one node at a time when due, and are
// kept with their retry state until finished done.
func testTLSRPTSends(t *testing.T, s sealpost.Store) {
	now := baseTime()
	day := sealpost.RegistryDay(now) + 2000
	send := func(rua string) sealpost.TLSRPTSend {
		return sealpost.TLSRPTSend{Day: day, PolicyDomain: "rpt.example", RUA: rua, Report: []byte(`{"report-id":"x"}`),
			NextAttemptAt: now, GiveUpAt: now.Add(24 * time.Hour)}
	}
	if ok, err := s.ClaimTLSRPTRun(t.Context(), day, "a", now, []sealpost.TLSRPTSend{send("https://a.example/"), send("mailto:r@rpt.example")}); err != nil || !ok {
		t.Fatalf("claim = %v, %v", ok, err)
	}
	// A lost claim adds nothing.
	if ok, err := s.ClaimTLSRPTRun(t.Context(), day, "b", now, []sealpost.TLSRPTSend{send("https://b.example/")}); err != nil || ok {
		t.Fatalf("second claim = %v, %v; want lost", ok, err)
	}
	if got, err := s.ClaimTLSRPTSends(t.Context(), "a", now.Add(-time.Second), time.Minute, 10); err != nil || len(got) != 0 {
		t.Fatalf("claimed before due: %+v, %v", got, err)
	}
	got, err := s.ClaimTLSRPTSends(t.Context(), "a", now, time.Minute, 10)
	if err != nil || len(got) != 2 {
		t.Fatalf("claimed %+v, %v; want both sends", got, err)
	}
	if g := got[0]; g.Day != day || g.PolicyDomain != "rpt.example" || string(g.Report) != `{"report-id":"x"}` ||
		!g.NextAttemptAt.Equal(now) || !g.GiveUpAt.Equal(now.Add(24*time.Hour)) {
		t.Errorf("claimed send = %+v", g)
	}
	if again, _ := s.ClaimTLSRPTSends(t.Context(), "b", now.Add(30*time.Second), time.Minute, 10); len(again) != 0 {
		t.Fatalf("leased sends claimed again: %+v", again)
	}
	var https, mailto sealpost.TLSRPTSend
	for _, g := range got {
		if g.RUA == "mailto:r@rpt.example" {
			mailto = g
		} else {
			https = g
		}
	}
	if err := s.FinishTLSRPTSend(t.Context(), "b", mailto, true); sealpost.ErrorCode(err) != sealpost.ECONFLICT {
		t.Errorf("finish by a node without the lease = %v, want ECONFLICT", err)
	}
	if err := s.FinishTLSRPTSend(t.Context(), "a", mailto, true); err != nil {
		t.Fatal(err)
	}
	https.Attempts, https.LastError, https.NextAttemptAt = 1, "rua answered 503", now.Add(5*time.Minute)
	if err := s.FinishTLSRPTSend(t.Context(), "a", https, false); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.ClaimTLSRPTSends(t.Context(), "b", now.Add(4*time.Minute), time.Minute, 10); len(got) != 0 {
		t.Fatalf("claimed before the retry is due: %+v", got)
	}
	got, err = s.ClaimTLSRPTSends(t.Context(), "b", now.Add(5*time.Minute), time.Minute, 10)
	if err != nil || len(got) != 1 || got[0].RUA != https.RUA || got[0].Attempts != 1 || got[0].LastError != "rua answered 503" {
		t.Fatalf("retry claimed %+v, %v; want the https send after one attempt", got, err)
	}
	if err := s.FinishTLSRPTSend(t.Context(), "b", got[0], true); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.ClaimTLSRPTSends(t.Context(), "a", now.Add(48*time.Hour), time.Minute, 10); len(got) != 0 {
		t.Errorf("finished sends claimed again: %+v", got)
	}
}

// Days missed while no node ran are found by their counts: each day with
// counts and no claim, oldest first, within the window asked for.
func testTLSRPTUnclaimedDays(t *testing.T, s sealpost.Store) {
	a := createUser(t, s, "rpt-days")
	now := baseTime()
	today := sealpost.RegistryDay(now)
	enqueue(t, s, []*sealpost.Message{newMessage(a.ID, "d1", now, "one@days.example")})
	ds := claim(t, s, "node", now, time.Minute, 10)
	if len(ds) != 1 {
		t.Fatalf("claimed %d deliveries, want 1", len(ds))
	}
	c := sealpost.DeliveryCompletion{DeliveryID: ds[0].ID}
	for _, back := range []int{9, 2, 1, 0} {
		c.Observations = append(c.Observations, sealpost.HostObservation{AccountID: a.ID, Domain: "days.example", MXHost: "mx.days.example",
			At: now.Add(-time.Duration(back) * 24 * time.Hour), Facts: sealpost.TLSFacts{TLS: true, MXHost: "mx.days.example"}, Recipients: 1})
	}
	for _, rc := range ds[0].Message.Recipients {
		c.Recipients = append(c.Recipients, sealpost.RecipientUpdate{RecipientID: rc.ID, State: sealpost.StateDelivered})
	}
	complete(t, s, "node", c)
	if days, err := s.UnclaimedTLSRPTDays(t.Context(), today-7, today-1); err != nil || !reflect.DeepEqual(days, []int64{today - 2, today - 1}) {
		t.Fatalf("unclaimed days = %v, %v; want the two before today within the week", days, err)
	}
	if ok, err := s.ClaimTLSRPTRun(t.Context(), today-2, "node", now, nil); err != nil || !ok {
		t.Fatalf("claim = %v, %v", ok, err)
	}
	if days, _ := s.UnclaimedTLSRPTDays(t.Context(), today-7, today-1); !reflect.DeepEqual(days, []int64{today - 1}) {
		t.Errorf("unclaimed days after claiming the first = %v, want [%d]", days, today-1)
	}
}
