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
		d, err := NewAuthenticatedDomain("Example.COM", "em", true, alg)
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
		other, _ := NewAuthenticatedDomain("example.com", "", false, alg)
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
	if _, err := NewAuthenticatedDomain("example.com", "a.b", false, "dsa"); ErrorCode(err) != EINVALID || len(ErrorFields(err)) != 2 {
		t.Errorf("bad subdomain and algorithm: %v", err)
	}
}
