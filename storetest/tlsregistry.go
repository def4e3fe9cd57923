package storetest

import (
	"testing"
	"time"

	"github.com/sealpost/sealpost"
)

// The registry contract: EnqueueMessages counts recipients per account,
// domain and day of the message; TLSRegistry lists the domains with
// recipients on sinceDay or later, with the latest facts per MX host
// (an older observation never replaces a newer one; a partial one keeps the
// host's versions) and the summary over every observation; an attempt's
// observations are stored with its completion, and not at all when the
// completion fails.

func registry(t *testing.T, s sealpost.Store, accountID, sinceDay int64) map[string]sealpost.RegistryDomain {
	t.Helper()
	got, err := s.TLSRegistry(t.Context(), accountID, sinceDay)
	if err != nil {
		t.Fatalf("TLSRegistry(%d): %v", accountID, err)
	}
	out := map[string]sealpost.RegistryDomain{}
	for _, d := range got {
		out[d.Domain] = d
	}
	return out
}

func tls13(host string) sealpost.TLSFacts {
	return sealpost.TLSFacts{TLS: true, Version: "1.3", Cipher: "TLS_AES_128_GCM_SHA256", Verified: true, MXHost: host, MXIP: "127.0.0.1"}
}

func testTLSRegistryCounts(t *testing.T, s sealpost.Store) {
	a := createUser(t, s, "reg-a")
	b := createUser(t, s, "reg-b")
	now := baseTime()
	old := now.Add(-10 * 24 * time.Hour)
	enqueue(t, s, []*sealpost.Message{
		newMessage(a.ID, "x1", now, "one@Plain.example", "two@plain.example", "three@good.example"),
		newMessage(a.ID, "x2", now, "four@plain.example"),
		newMessage(a.ID, "x3", old, "five@old.example", "six@plain.example"),
		newMessage(b.ID, "x4", now, "seven@plain.example"),
	})
	today := sealpost.RegistryDay(now)
	got := registry(t, s, a.ID, today)
	if len(got) != 2 || got["plain.example"].Recipients != 3 || got["good.example"].Recipients != 1 {
		t.Errorf("today's domains of a = %+v, want plain.example 3, good.example 1", got)
	}
	for _, d := range got {
		if len(d.Hosts) != 0 || !d.LastAttempt.IsZero() || d.HighestVersion != "" {
			t.Errorf("%s: facts %+v before any attempt, want none", d.Domain, d)
		}
	}
	got = registry(t, s, a.ID, today-10)
	if got["plain.example"].Recipients != 4 || got["old.example"].Recipients != 1 {
		t.Errorf("a's domains over 11 days = %+v, want plain.example 4, old.example 1", got)
	}
	if got := registry(t, s, b.ID, today-10); len(got) != 1 || got["plain.example"].Recipients != 1 {
		t.Errorf("b's domains = %+v, want only its own recipient", got)
	}
	// Deleting an account deletes its registry.
	if err := s.RecordObservations(t.Context(), []sealpost.HostObservation{
		{AccountID: b.ID, Domain: "plain.example", MXHost: "mx.plain.example", At: now, Facts: sealpost.TLSFacts{MXHost: "mx.plain.example"}},
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteAccount(t.Context(), b.ID); err != nil {
		t.Fatal(err)
	}
	if got := registry(t, s, b.ID, 0); len(got) != 0 {
		t.Errorf("a deleted account's registry = %+v, want empty", got)
	}
	if got := registry(t, s, a.ID, today); got["plain.example"].Recipients != 3 {
		t.Errorf("a's plain.example after b was deleted = %+v, want 3 recipients", got["plain.example"])
	}
}

func testTLSRegistryCompletion(t *testing.T, s sealpost.Store) {
	a := createUser(t, s, "reg-complete")
	other := createUser(t, s, "reg-other")
	now := baseTime()
	enqueue(t, s, []*sealpost.Message{newMessage(a.ID, "x1", now, "one@two.example", "two@two.example")})
	ds := claim(t, s, "node", now, time.Minute, 10)
	if len(ds) != 1 {
		t.Fatalf("claimed %d deliveries, want 1", len(ds))
	}
	d := ds[0]
	// The failure an MTA-STS policy in testing mode would have caused is
	// kept for TLS reporting.
	plain := sealpost.TLSFacts{MXHost: "mx2.two.example", MXIP: "127.0.0.2", ResultType: sealpost.ResultSTARTTLSNotSupported, MTASTSTestingResult: sealpost.ResultSTARTTLSNotSupported}
	c := sealpost.DeliveryCompletion{DeliveryID: d.ID, Observations: []sealpost.HostObservation{
		{AccountID: a.ID, Domain: "two.example", MXHost: "mx2.two.example", At: now, Facts: plain, Recipients: 2},
		{AccountID: a.ID, Domain: "two.example", MXHost: "MX1.two.example.", At: now.Add(time.Second), Facts: tls13("mx1.two.example"), Recipients: 2},
	}}
	for _, rc := range d.Message.Recipients {
		c.Recipients = append(c.Recipients, sealpost.RecipientUpdate{RecipientID: rc.ID, State: sealpost.StateDelivered})
	}
	// Another owner's completion fails and records nothing.
	if err := s.CompleteDelivery(t.Context(), "intruder", c); sealpost.ErrorCode(err) != sealpost.ECONFLICT {
		t.Fatalf("CompleteDelivery by another owner: %v, want ECONFLICT", err)
	}
	if got := registry(t, s, a.ID, 0)["two.example"]; len(got.Hosts) != 0 {
		t.Fatalf("hosts after a failed completion = %+v, want none", got.Hosts)
	}
	complete(t, s, "node", c)
	got := registry(t, s, a.ID, 0)["two.example"]
	if got.Recipients != 2 || got.HighestVersion != "1.3" || !got.ValidCertSeen || !got.LastAttempt.Equal(now.Add(time.Second)) {
		t.Errorf("summary = %+v, want 2 recipients, 1.3, valid cert, last attempt %v", got, now.Add(time.Second))
	}
	if len(got.Hosts) != 2 {
		t.Fatalf("hosts = %+v, want 2", got.Hosts)
	}
	h1, h2 := got.Hosts[0], got.Hosts[1]
	if h1.MXHost != "mx1.two.example" || h1.Facts != tls13("mx1.two.example") || h1.CertResult != "" {
		t.Errorf("host 1 = %+v, want mx1.two.example with TLS 1.3 facts", h1)
	}
	if h2.MXHost != "mx2.two.example" || h2.Facts != plain || !h2.At.Equal(now) {
		t.Errorf("host 2 = %+v, want mx2.two.example without TLS at %v", h2, now)
	}
	if got := registry(t, s, other.ID, 0); len(got) != 0 {
		t.Errorf("another account's registry = %+v, want empty", got)
	}
}

// testTLSRegistryResolution: an observation that says nothing new within
// sealpost.RegistryTimeResolution of the stored one leaves the stored times
// as they are; new facts, a higher version or a first valid certificate are
// stored at once, and a repeat a resolution later moves the times on.
func testTLSRegistryResolution(t *testing.T, s sealpost.Store) {
	a := createUser(t, s, "reg-resolution")
	t0 := baseTime()
	enqueue(t, s, []*sealpost.Message{newMessage(a.ID, "x1", t0, "one@d.example")})
	res := sealpost.RegistryTimeResolution
	tls12 := sealpost.TLSFacts{TLS: true, Version: "1.2", Cipher: "c", Verified: true, MXHost: "mx.d.example", MXIP: "127.0.0.1"}
	steps := []struct {
		name     string
		at       time.Time
		facts    sealpost.TLSFacts
		wantHost time.Time // the host's stored time after the step
		wantLast time.Time // the domain's last attempt after the step
	}{
		{"first", t0, tls12, t0, t0},
		{"the same facts again, within the resolution", t0.Add(res / 2), tls12, t0, t0},
		{"new facts, within the resolution", t0.Add(res * 6 / 10), tls13("mx.d.example"), t0.Add(res * 6 / 10), t0.Add(res * 6 / 10)},
		{"the same facts, a resolution later", t0.Add(res * 16 / 10), tls13("mx.d.example"), t0.Add(res * 16 / 10), t0.Add(res * 16 / 10)},
		{"a lower version within the resolution: new host facts, no news for the domain", t0.Add(res * 17 / 10), tls12,
			t0.Add(res * 17 / 10), t0.Add(res * 16 / 10)},
	}
	highest := ""
	for _, st := range steps {
		highest = max(highest, st.facts.Version)
		obs := sealpost.HostObservation{AccountID: a.ID, Domain: "d.example", MXHost: "mx.d.example", At: st.at, Facts: st.facts}
		if err := s.RecordObservations(t.Context(), []sealpost.HostObservation{obs}); err != nil {
			t.Fatalf("%s: RecordObservations: %v", st.name, err)
		}
		d := registry(t, s, a.ID, 0)["d.example"]
		if len(d.Hosts) != 1 || d.Hosts[0].Facts != st.facts || !d.Hosts[0].At.Equal(st.wantHost) {
			t.Errorf("%s: hosts %+v, want the facts of the step at %v", st.name, d.Hosts, st.wantHost)
		}
		if !d.LastAttempt.Equal(st.wantLast) || d.HighestVersion != highest || !d.ValidCertSeen {
			t.Errorf("%s: summary %+v, want last attempt %v", st.name, d, st.wantLast)
		}
	}
}

func testTLSRegistryLatest(t *testing.T, s sealpost.Store) {
	a := createUser(t, s, "reg-latest")
	now := baseTime()
	enqueue(t, s, []*sealpost.Message{newMessage(a.ID, "x1", now, "one@d.example")})
	record := func(obs ...sealpost.HostObservation) {
		t.Helper()
		if err := s.RecordObservations(t.Context(), obs); err != nil {
			t.Fatalf("RecordObservations: %v", err)
		}
	}
	obs := func(at time.Time, f sealpost.TLSFacts, certResult string) sealpost.HostObservation {
		return sealpost.HostObservation{AccountID: a.ID, Domain: "d.example", MXHost: "mx.d.example", At: at, Facts: f, CertResult: certResult}
	}
	expired := sealpost.TLSFacts{TLS: true, Version: "1.2", Cipher: "c", VerifyError: "x509: certificate has expired", MXHost: "mx.d.example"}
	// Two of one host in one call: the later one is kept.
	record(obs(now, tls13("mx.d.example"), ""), obs(now.Add(time.Minute), expired, sealpost.ResultCertificateExpired))
	h := registry(t, s, a.ID, 0)["d.example"]
	if len(h.Hosts) != 1 || h.Hosts[0].Facts != expired || h.Hosts[0].CertResult != sealpost.ResultCertificateExpired {
		t.Fatalf("hosts = %+v, want the expired certificate's facts", h.Hosts)
	}
	if h.HighestVersion != "1.3" || !h.ValidCertSeen {
		t.Errorf("summary = %+v, want 1.3 and a valid certificate seen", h)
	}
	// An older observation does not replace a newer one.
	record(obs(now.Add(-time.Hour), tls13("mx.d.example"), ""))
	if got := registry(t, s, a.ID, 0)["d.example"].Hosts[0]; got.Facts != expired {
		t.Errorf("after an older observation: %+v, want the newer facts kept", got.Facts)
	}
	// A handshake cut short by the attempt's own policy (no TLS, a
	// validation failure) keeps the versions the host was seen to offer.
	cut := sealpost.TLSFacts{MXHost: "mx.d.example", ResultType: sealpost.ResultValidationFailure}
	record(obs(now.Add(2*time.Minute), cut, ""))
	got := registry(t, s, a.ID, 0)["d.example"].Hosts[0]
	if !got.Facts.TLS || got.Facts.Version != "1.2" || got.Facts.VerifyError == "" || got.CertResult != sealpost.ResultCertificateExpired ||
		got.Facts.ResultType != sealpost.ResultValidationFailure || !got.At.Equal(now.Add(2*time.Minute)) {
		t.Errorf("after a partial observation: %+v, want TLS 1.2 and the certificate verdict kept, the new time and result type", got)
	}
	// No STARTTLS at all is a fact, not a partial observation.
	plain := sealpost.TLSFacts{MXHost: "mx.d.example", ResultType: sealpost.ResultSTARTTLSNotSupported}
	record(obs(now.Add(3*time.Minute), plain, ""))
	if got := registry(t, s, a.ID, 0)["d.example"].Hosts[0]; got.Facts != plain || got.CertResult != "" {
		t.Errorf("after no STARTTLS: %+v, want no TLS", got)
	}
	for _, bad := range []sealpost.HostObservation{
		{Domain: "d.example", MXHost: "mx", At: now},
		{AccountID: a.ID, MXHost: "mx", At: now},
		{AccountID: a.ID, Domain: "d.example", At: now},
		{AccountID: a.ID, Domain: "d.example", MXHost: "mx"},
	} {
		if err := s.RecordObservations(t.Context(), []sealpost.HostObservation{bad}); sealpost.ErrorCode(err) != sealpost.EINVALID {
			t.Errorf("RecordObservations(%+v): %v, want EINVALID", bad, err)
		}
	}
}

func testTLSRegistryPrune(t *testing.T, s sealpost.Store) {
	a := createUser(t, s, "reg-prune")
	now := baseTime()
	old := now.Add(-40 * 24 * time.Hour)
	enqueue(t, s, []*sealpost.Message{
		newMessage(a.ID, "x1", old, "one@old.example", "two@both.example"),
		newMessage(a.ID, "x2", now, "three@both.example"),
	})
	obs := []sealpost.HostObservation{
		{AccountID: a.ID, Domain: "old.example", MXHost: "mx.old.example", At: old, Facts: tls13("mx.old.example")},
		{AccountID: a.ID, Domain: "both.example", MXHost: "mx1.both.example", At: old, Facts: tls13("mx1.both.example")},
		{AccountID: a.ID, Domain: "both.example", MXHost: "mx2.both.example", At: now, Facts: sealpost.TLSFacts{MXHost: "mx2.both.example"}},
	}
	if err := s.RecordObservations(t.Context(), obs); err != nil {
		t.Fatal(err)
	}
	// Twice, as two nodes may.
	for range 2 {
		if err := s.PruneTLSRegistry(t.Context(), now.Add(-30*24*time.Hour)); err != nil {
			t.Fatalf("PruneTLSRegistry: %v", err)
		}
	}
	got := registry(t, s, a.ID, 0)
	if len(got) != 1 {
		t.Fatalf("after pruning: %+v, want both.example only", got)
	}
	both := got["both.example"]
	if both.Recipients != 1 || len(both.Hosts) != 1 || both.Hosts[0].MXHost != "mx2.both.example" {
		t.Errorf("both.example after pruning = %+v, want 1 recipient and mx2 only", both)
	}
}
