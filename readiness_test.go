package sealpost

import (
	"testing"
	"time"
)

func TestPermits(t *testing.T) {
	t.Parallel()
	tls13 := TLSFacts{TLS: true, Version: "1.3", Verified: true}
	tls12 := TLSFacts{TLS: true, Version: "1.2", Verified: true}
	badCert := TLSFacts{TLS: true, Version: "1.3"}
	tests := []struct {
		name       string
		policy     EnforcedTLS
		facts      TLSFacts
		certResult string
		ok         bool
		resultType string
	}{
		{"opportunistic takes plaintext", DefaultEnforcedTLS(), TLSFacts{}, "", true, ""},
		{"require_tls without TLS", EnforcedTLS{RequireTLS: true, Version: TLS11}, TLSFacts{}, "", false, ResultSTARTTLSNotSupported},
		{"require_tls 1.2 at 1.2", EnforcedTLS{RequireTLS: true, Version: TLS12}, tls12, "", true, ""},
		{"require_tls 1.3 at 1.2", EnforcedTLS{RequireTLS: true, Version: TLS13}, tls12, "", false, ResultValidationFailure},
		{"require_tls 1.1 at 1.0", EnforcedTLS{RequireTLS: true, Version: TLS11}, TLSFacts{TLS: true, Version: "1.0"}, "", false, ResultValidationFailure},
		{"require_tls ignores the certificate", EnforcedTLS{RequireTLS: true, Version: TLS13}, badCert, ResultCertificateExpired, true, ""},
		{"require_valid_cert, expired", EnforcedTLS{RequireValidCert: true, Version: TLS11}, badCert, ResultCertificateExpired, false, ResultCertificateExpired},
		{"require_valid_cert, unknown cause", EnforcedTLS{RequireValidCert: true, Version: TLS11}, badCert, "", false, ResultValidationFailure},
		{"require_valid_cert, the version first", EnforcedTLS{RequireValidCert: true, Version: TLS13}, TLSFacts{TLS: true, Version: "1.2"}, ResultCertificateHostMismatch, false, ResultValidationFailure},
		{"require_valid_cert 1.3 met", EnforcedTLS{RequireValidCert: true, Version: TLS13}, tls13, "", true, ""},
	}
	for _, tc := range tests {
		ok, rt := tc.policy.Permits(tc.facts, tc.certResult)
		if ok != tc.ok || rt != tc.resultType {
			t.Errorf("%s: Permits = %v %q, want %v %q", tc.name, ok, rt, tc.ok, tc.resultType)
		}
	}
}

func TestPreviewPolicyBestHost(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 1, 10, 0, 0, 500, time.UTC)
	host := func(name string, f TLSFacts, cert string) HostFacts {
		return HostFacts{MXHost: name, Facts: f, CertResult: cert}
	}
	domains := []RegistryDomain{
		// One good host of two is enough.
		{Domain: "one-good.example", Recipients: 9, LastAttempt: at, Hosts: []HostFacts{
			host("mx1", TLSFacts{}, ""), host("mx2", TLSFacts{TLS: true, Version: "1.3", Verified: true}, "")}},
		// Neither meets 1.3 with a valid certificate: the best is the 1.3 one.
		{Domain: "both-bad.example", Recipients: 3, LastAttempt: at, Hosts: []HostFacts{
			host("mx1", TLSFacts{TLS: true, Version: "1.2", Verified: true}, ""),
			host("mx2", TLSFacts{TLS: true, Version: "1.3", VerifyError: "x"}, ResultCertificateHostMismatch)}},
		{Domain: "plain.example", Recipients: 3, LastAttempt: at, Hosts: []HostFacts{host("mx", TLSFacts{}, "")}},
		{Domain: "queued.example", Recipients: 4},
		{Domain: "outside-the-window.example", Hosts: []HostFacts{host("mx", TLSFacts{}, "")}},
	}
	p := PreviewPolicy(EnforcedTLS{RequireValidCert: true, Version: TLS13}, 7, domains)
	if p.DomainsSeen != 4 || p.RecipientsSeen != 19 || p.Unknown != (PreviewCount{1, 4}) || p.WouldBlock != (PreviewCount{2, 6}) {
		t.Fatalf("counts = %+v", p)
	}
	if len(p.Domains) != 2 || p.Domains[0].Domain != "both-bad.example" || p.Domains[1].Domain != "plain.example" {
		t.Fatalf("domains = %+v, want both-bad then plain (equal recipients, by name)", p.Domains)
	}
	b := p.Domains[0]
	if b.ResultType != ResultCertificateHostMismatch || b.Best.TLSVersion == nil || *b.Best.TLSVersion != "1.3" || b.Best.CertValid ||
		!b.LastAttempt.Equal(at.Truncate(time.Second)) {
		t.Errorf("both-bad.example = %+v, want judged by its TLS 1.3 host", b)
	}
	if p.Domains[1].Best.TLSVersion != nil || p.Domains[1].ResultType != ResultSTARTTLSNotSupported {
		t.Errorf("plain.example = %+v", p.Domains[1])
	}
}

func TestHostObservationCertResultAndPartial(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		o          HostObservation
		certResult string
		partial    bool
	}{
		{"valid", HostObservation{Facts: TLSFacts{TLS: true, Verified: true}}, "", false},
		{"plaintext", HostObservation{Facts: TLSFacts{}}, "", false},
		{"no STARTTLS under a policy", HostObservation{Facts: TLSFacts{ResultType: ResultSTARTTLSNotSupported}}, "", false},
		{"the observer's type", HostObservation{Facts: TLSFacts{TLS: true, VerifyError: "x"}, CertResult: ResultCertificateExpired}, ResultCertificateExpired, false},
		{"a probe's type in the facts", HostObservation{Facts: TLSFacts{TLS: true, VerifyError: "x", ResultType: ResultCertificateNotTrusted}}, ResultCertificateNotTrusted, false},
		{"no type known", HostObservation{Facts: TLSFacts{TLS: true}}, ResultValidationFailure, false},
		{"version cut short", HostObservation{Facts: TLSFacts{ResultType: ResultValidationFailure}}, "", true},
		{"certificate refused", HostObservation{Facts: TLSFacts{VerifyError: "x", ResultType: ResultCertificateExpired}, CertResult: ResultCertificateExpired}, ResultCertificateExpired, true},
	}
	for _, tc := range tests {
		if got := tc.o.CertResultOf(); got != tc.certResult {
			t.Errorf("%s: CertResultOf = %q, want %q", tc.name, got, tc.certResult)
		}
		if got := tc.o.Partial(); got != tc.partial {
			t.Errorf("%s: Partial = %v, want %v", tc.name, got, tc.partial)
		}
	}
}

func TestDomainRecipients(t *testing.T) {
	t.Parallel()
	day1 := time.Date(2026, 12, 1, 23, 59, 59, 0, time.UTC)
	day2 := day1.Add(2 * time.Second)
	msgs := []*Message{
		{AccountID: 2, CreatedAt: day1, Recipients: []Recipient{{Email: "a@B.example"}, {Email: "c@b.example", Domain: "b.example"}}},
		{AccountID: 1, CreatedAt: day2, Recipients: []Recipient{{Email: "d@b.example", Domain: "b.example"}}},
		{AccountID: 2, Recipients: []Recipient{{Email: "e@a.example", Domain: "a.example"}}},
	}
	got := DomainRecipients(msgs, day2)
	want := []DomainDayCount{
		{1, "b.example", RegistryDay(day2), 1},
		{2, "a.example", RegistryDay(day2), 1},
		{2, "b.example", RegistryDay(day1), 2},
	}
	if len(got) != len(want) {
		t.Fatalf("DomainRecipients = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("DomainRecipients[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
	if RegistryDay(day1)+1 != RegistryDay(day2) {
		t.Errorf("days %d and %d: want consecutive", RegistryDay(day1), RegistryDay(day2))
	}
}
