package sealpost

import (
	"strings"
	"testing"
	"time"
)

func TestProbeObservations(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 7, 2, 0, 0, 0, time.UTC)
	p := &TLSProbe{Domain: "example.com", ProbedAt: at, MXHosts: []ProbedHost{
		{Host: "good.example.com", Address: "192.0.2.1", STARTTLS: true, TLSVersions: []string{"1.2", "1.3"}, Cipher: "TLS_AES_128_GCM_SHA256",
			Certificate: &ProbedCertificate{Valid: true}},
		{Host: "expired.example.com", Address: "192.0.2.2", STARTTLS: true, TLSVersions: []string{"1.2"}, Cipher: "C",
			Certificate: &ProbedCertificate{ResultType: ResultCertificateExpired, Error: "x509: expired"}},
		{Host: "plain.example.com", Address: "192.0.2.3"},
		{Host: "broken.example.com", Address: "192.0.2.4", STARTTLS: true},
		{Host: "dead.example.com"}, // never reached: nothing learnt
	}}
	want := []TLSFacts{
		{TLS: true, Version: "1.3", Cipher: "TLS_AES_128_GCM_SHA256", Verified: true, MXHost: "good.example.com", MXIP: "192.0.2.1"},
		{TLS: true, Version: "1.2", Cipher: "C", VerifyError: "x509: expired", MXHost: "expired.example.com", MXIP: "192.0.2.2", ResultType: ResultCertificateExpired},
		{MXHost: "plain.example.com", MXIP: "192.0.2.3", ResultType: ResultSTARTTLSNotSupported},
		{MXHost: "broken.example.com", MXIP: "192.0.2.4", ResultType: ResultValidationFailure},
	}
	obs := p.Observations(42)
	if len(obs) != len(want) {
		t.Fatalf("%d observations, want %d: %+v", len(obs), len(want), obs)
	}
	for i, o := range obs {
		if o.AccountID != 42 || o.Domain != "example.com" || o.MXHost != want[i].MXHost || !o.At.Equal(at) || o.Recipients != 0 || o.Facts != want[i] {
			t.Errorf("observation %d: %+v, want facts %+v", i, o, want[i])
		}
	}
}

func TestProbePolicies(t *testing.T) {
	t.Parallel()
	ps := ProbePolicies()
	seen := map[EnforcedTLS]bool{}
	for _, p := range ps {
		if !p.Version.Valid() || seen[p] {
			t.Errorf("policy %+v invalid or repeated", p)
		}
		seen[p] = true
	}
	if len(ps) != 7 || ps[0] != DefaultEnforcedTLS() || ps[0].Mandatory() {
		t.Errorf("policies %+v: want seven, the default first", ps)
	}
}

func TestValidateProbeDomain(t *testing.T) {
	t.Parallel()
	for d, ok := range map[string]bool{
		"example.com": true, "Example.COM.": true, "xn--bcher-kva.example": true, "a-b.c1.example": true,
		"": false, "localhost": false, "127.0.0.1": false, "a..b": false, "-a.example": false, "a-.example": false,
		"a_b.example": false, "bücher.example": false, "a b.example": false, "x.123": false,
		strings.Repeat("a", 63) + ".example": true, strings.Repeat("a", 63) + "a.example": false,
	} {
		if got := ValidateProbeDomain("domain", d) == nil; got != ok {
			t.Errorf("%q: valid %v, want %v", d, got, ok)
		}
	}
}
