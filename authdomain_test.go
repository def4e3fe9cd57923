package sealpost

import (
	"strings"
	"testing"
)

func TestSigningDomain(t *testing.T) {
	t.Parallel()
	domains := []AuthenticatedDomain{
		{ID: 1, Domain: "example.com", Valid: true},
		{ID: 2, Domain: "mail.example.com", Valid: true},
		{ID: 3, Domain: "unproven.example", Valid: false},
	}
	for _, tc := range []struct {
		from string
		want int64
	}{
		{"example.com", 1},
		{"EXAMPLE.com.", 1},
		{"news.example.com", 1},
		{"mail.example.com", 2},
		{"a.mail.example.com", 2},
		{"badexample.com", 0},
		{"example.com.evil", 0},
		{"unproven.example", 0},
		{"", 0},
	} {
		got := SigningDomain(domains, tc.from)
		var id int64
		if got != nil {
			id = got.ID
		}
		if id != tc.want || AuthenticatedFor(domains, tc.from) != (tc.want != 0) {
			t.Errorf("SigningDomain(%q) = %d, want %d", tc.from, id, tc.want)
		}
	}
}

func TestDKIMRecord(t *testing.T) {
	t.Parallel()
	for _, alg := range []string{DKIMKeyRSA, DKIMKeyEd25519} {
		d, err := AuthenticatedDomainRequest{Domain: "Example.COM", Subdomain: "em", Default: true, KeyAlgorithm: alg}.Make()
		if err != nil {
			t.Fatal(err)
		}
		record, err := d.DKIMRecord()
		if err != nil {
			t.Fatal(err)
		}
		if d.Domain != "example.com" || d.DKIMHost() != "sealpost._domainkey.example.com" || !strings.HasPrefix(record, "v=DKIM1; k="+alg+"; p=") {
			t.Errorf("%s: %+v record %q", alg, d, record)
		}
		other, _ := AuthenticatedDomainRequest{Domain: "example.com", KeyAlgorithm: alg}.Make()
		otherRecord, _ := other.DKIMRecord()
		for published, want := range map[string]bool{
			record:                                   true,
			strings.ReplaceAll(record, "; ", " ;\t"): true,
			otherRecord:                              false,
			"v=DKIM2; " + record[len("v=DKIM1; "):]:  false,
			"":                                       false,
		} {
			if DKIMRecordMatches(published, record) != want {
				t.Errorf("%s: DKIMRecordMatches(%q) != %v", alg, published, want)
			}
		}
	}
	if _, err := (AuthenticatedDomainRequest{Domain: "example.com", Subdomain: "a.b", Selector: "s-1", KeyAlgorithm: "dsa"}).Make(); ErrorCode(err) != EINVALID || len(ErrorFields(err)) != 3 {
		t.Errorf("bad subdomain, selector and algorithm: %v", err)
	}
}

// TestAuthenticatedDomainRequest: SendGrid's custom_dkim_selector (three
// letters or digits) names the key's record; without a subdomain one is
// made as SendGrid makes it.
func TestAuthenticatedDomainRequest(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		selector, wantHost string
		ok                 bool
	}{
		{"", "sealpost._domainkey.example.com", true},
		{"ab1", "ab1._domainkey.example.com", true},
		{"S2X", "s2x._domainkey.example.com", true},
		{"ab", "", false},
		{"abcd", "", false},
		{"a.b", "", false},
		{"a_b", "", false},
		{"äb", "", false},
	} {
		d, err := AuthenticatedDomainRequest{Domain: "example.com", Selector: tc.selector, KeyAlgorithm: DKIMKeyEd25519}.Make()
		if !tc.ok {
			if ErrorCode(err) != EINVALID || len(ErrorFields(err)) != 1 || ErrorFields(err)[0].Field != "custom_dkim_selector" {
				t.Errorf("selector %q: %v, want a custom_dkim_selector error", tc.selector, err)
			}
			continue
		}
		if err != nil || d.DKIMHost() != tc.wantHost {
			t.Errorf("selector %q: host %q, %v; want %q", tc.selector, d.DKIMHost(), err, tc.wantHost)
		}
		if len(d.Subdomain) != 6 || !strings.HasPrefix(d.Subdomain, "em") || d.ReturnPathHost() != d.Subdomain+".example.com" {
			t.Errorf("made subdomain %q, return path %q; want em and four digits", d.Subdomain, d.ReturnPathHost())
		}
	}
}

// TestSigningDomainFor: a domain covering From wins; otherwise the
// validated default signs, as SendGrid's fallback does.
func TestSigningDomainFor(t *testing.T) {
	t.Parallel()
	withDefault := []AuthenticatedDomain{
		{ID: 1, Domain: "example.com", Valid: true},
		{ID: 2, Domain: "brand.example", Valid: true, Default: true},
	}
	unvalidatedDefault := []AuthenticatedDomain{
		{ID: 1, Domain: "example.com", Valid: true},
		{ID: 2, Domain: "brand.example", Valid: false, Default: true},
	}
	assigned := &AuthenticatedDomain{ID: 9, Domain: "parent.example", Valid: true}
	unvalidatedAssigned := &AuthenticatedDomain{ID: 9, Domain: "parent.example"}
	own := withDefault[:1]
	for _, tc := range []struct {
		name     string
		domains  []AuthenticatedDomain
		assigned *AuthenticatedDomain
		from     string
		want     int64
	}{
		{"covering domain", withDefault, nil, "news.example.com", 1},
		{"the default", withDefault, nil, "other.test", 2},
		{"an unvalidated default", unvalidatedDefault, nil, "other.test", 0},
		{"no domains", nil, nil, "other.test", 0},
		{"own covering domain before the assigned one", withDefault, assigned, "example.com", 1},
		{"own default before the assigned one", withDefault, assigned, "parent.example", 2},
		{"the assigned domain covering From", own, assigned, "news.parent.example", 9},
		{"the assigned domain as the default", own, assigned, "other.test", 9},
		{"an unvalidated assigned domain", own, unvalidatedAssigned, "parent.example", 0},
		{"only an assigned domain", nil, assigned, "other.test", 9},
	} {
		got := SigningDomainFor(tc.domains, tc.assigned, tc.from)
		var id int64
		if got != nil {
			id = got.ID
		}
		if id != tc.want {
			t.Errorf("%s: SigningDomainFor(%q) = %d, want %d", tc.name, tc.from, id, tc.want)
		}
	}
}

// TestReturnPath: the envelope sender moves to the return path only once
// its records are validated; the SPF records shown and how published ones
// are matched.
func TestReturnPath(t *testing.T) {
	t.Parallel()
	d := AuthenticatedDomain{Domain: "example.com", Subdomain: "em1234"}
	if got := d.EnvelopeSender(7, 42); got != "" {
		t.Errorf("unvalidated return path: envelope sender %q, want none", got)
	}
	d.ReturnPathValid = true
	if got := d.EnvelopeSender(7, 42); got != "bounces+7-42@em1234.example.com" {
		t.Errorf("envelope sender %q", got)
	}
	if got := (AuthenticatedDomain{Domain: "example.com", ReturnPathValid: true}).EnvelopeSender(7, 42); got != "" {
		t.Errorf("no subdomain: envelope sender %q, want none", got)
	}
	want := d.ReturnPathSPF("mta.example.net")
	if want != "v=spf1 a:mta.example.net ~all" {
		t.Errorf("ReturnPathSPF = %q", want)
	}
	d.CustomSPF = true
	if got := d.ReturnPathSPF("mta.example.net"); got != "v=spf1 a:mta.example.net -all" {
		t.Errorf("custom ReturnPathSPF = %q", got)
	}
	if got := d.DomainSPF(); got != "v=spf1 include:em1234.example.com -all" {
		t.Errorf("DomainSPF = %q", got)
	}
	for published, ok := range map[string]bool{
		"v=spf1 a:mta.example.net ~all":         true,
		"V=SPF1  a:MTA.example.net\t~all":       true,
		"v=spf1   A:MTA.example.net ~all":       true,
		"v=spf1 a:mta.example.net -all":         false,
		"v=spf1 include:elsewhere.example ~all": false,
	} {
		if SPFRecordMatches(published, want) != ok {
			t.Errorf("SPFRecordMatches(%q) != %v", published, ok)
		}
	}
}
