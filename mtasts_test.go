package sealpost

import (
	"slices"
	"strings"
	"testing"
)

func TestParseMTASTSRecord(t *testing.T) {
	t.Parallel()
	tests := []struct {
		rec    string
		id     string
		errHas string
	}{
		{rec: "v=STSv1; id=20160831085700Z;", id: "20160831085700Z"},
		{rec: "v=STSv1;id=abc", id: "abc"},
		{rec: "v=STSv1 ;\tid=abc ; ext-1.x=val ;", id: "abc"},
		{rec: "v=STSv1; id=abc; id=def", errHas: "twice"},
		{rec: "v=STSv1; id=", errHas: "id"},
		{rec: "v=STSv1; id=" + strings.Repeat("a", 33), errHas: "id"},
		{rec: "v=STSv1; id=a-b", errHas: "id"},
		{rec: "v=STSv1", errHas: "no fields"},
		{rec: "v=STSv1;", errHas: "no fields"},
		{rec: "v=STSv1; ext=1", errHas: "no id"},
		{rec: "v=STSv1; =x; id=a", errHas: "name=value"},
		{rec: "v=STSv1; id=a; bad=va=lue", errHas: "malformed"},
		{rec: "v=STSv1 id=a", errHas: "expected"},
		{rec: "v=STSv2; id=a", errHas: "does not start"},
	}
	for _, tt := range tests {
		r, err := ParseMTASTSRecord(tt.rec)
		if tt.errHas != "" {
			if err == nil || !strings.Contains(err.Error(), tt.errHas) {
				t.Errorf("%q: err %v, want one containing %q", tt.rec, err, tt.errHas)
			}
			continue
		}
		if err != nil || r.ID != tt.id {
			t.Errorf("%q: %+v %v, want id %q", tt.rec, r, err, tt.id)
		}
	}
}

func TestFindRecords(t *testing.T) {
	t.Parallel()
	if _, err := FindMTASTSRecord([]string{"spf", "v=STSv10; id=1"}); err != ErrNoRecord {
		t.Errorf("no MTA-STS record: %v", err)
	}
	if r, err := FindMTASTSRecord([]string{"spf", "v=STSv1; id=1"}); err != nil || r.ID != "1" {
		t.Errorf("one record: %+v %v", r, err)
	}
	if _, err := FindMTASTSRecord([]string{"v=STSv1; id=1", "v=STSv1; id=2"}); err == nil || err == ErrNoRecord {
		t.Errorf("two records: %v, want an error of its own", err)
	}
	if _, err := FindTLSRPTRecord(nil); err != ErrNoRecord {
		t.Errorf("no TLS-RPT record: %v", err)
	}
}

func TestParseMTASTSPolicy(t *testing.T) {
	t.Parallel()
	tests := []struct {
		body   string
		want   MTASTSPolicy
		errHas string
	}{
		{body: "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmax_age: 604800\r\n",
			want: MTASTSPolicy{Mode: "enforce", MX: []string{"mail.example.com", "*.example.net"}, MaxAge: 604800}},
		{body: "version: STSv1\nmode: testing\nmx: MX.Example.com\nmax_age: 0\nunknown: whatever\n",
			want: MTASTSPolicy{Mode: "testing", MX: []string{"mx.example.com"}, MaxAge: 0,
				Lines: []string{"version: STSv1", "mode: testing", "mx: MX.Example.com", "max_age: 0", "unknown: whatever"}}},
		{body: "version: STSv1\nmode: none\nmax_age: 86400", want: MTASTSPolicy{Mode: "none", MaxAge: 86400}},
		{body: "version: STSv1\nmode: enforce\nmax_age: 86400\n", errHas: "without any mx"},
		{body: "version: STSv1\nmode: enforce\nmode: none\nmx: a.b\nmax_age: 1\n", errHas: "twice"},
		{body: "version: STSv2\nmode: enforce\nmx: a.b\nmax_age: 1\n", errHas: "version"},
		{body: "version: STSv1\nmode: strict\nmx: a.b\nmax_age: 1\n", errHas: "mode"},
		{body: "version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 31557601\n", errHas: "exceeds"},
		{body: "version: STSv1\nmode: enforce\nmx: a.b\nmax_age: -1\n", errHas: "digits"},
		{body: "version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 12345678901\n", errHas: "digits"},
		{body: "version: STSv1\nmode: enforce\nmx: *.*.b\nmax_age: 1\n", errHas: "host name"},
		{body: "version: STSv1\nmode: enforce\nmx: a..b\nmax_age: 1\n", errHas: "host name"},
		{body: "version: STSv1\nmode: enforce\nmx: a.b\n", errHas: "no max_age"},
		{body: "version: STSv1\nmode enforce\nmx: a.b\nmax_age: 1\n", errHas: "key: value"},
		{body: strings.Repeat("a", MTASTSMaxPolicyBytes+1), errHas: "larger than"},
	}
	for _, tt := range tests {
		p, err := ParseMTASTSPolicy([]byte(tt.body))
		if tt.errHas != "" {
			if err == nil || !strings.Contains(err.Error(), tt.errHas) {
				t.Errorf("%q: err %v, want one containing %q", truncate(tt.body, 60), err, tt.errHas)
			}
			continue
		}
		if err != nil || p.Mode != tt.want.Mode || p.MaxAge != tt.want.MaxAge || !slices.Equal(p.MX, tt.want.MX) ||
			(tt.want.Lines != nil && !slices.Equal(p.Lines, tt.want.Lines)) {
			t.Errorf("%q: %+v %v, want %+v", tt.body, p, err, tt.want)
		}
	}
}

func TestParseTLSRPTRecord(t *testing.T) {
	t.Parallel()
	tests := []struct {
		rec    string
		rua    []string
		errHas string
	}{
		{rec: "v=TLSRPTv1; rua=mailto:reports@example.com", rua: []string{"mailto:reports@example.com"}},
		{rec: "v=TLSRPTv1;rua=mailto:a@example.com , https://r.example.com/x;", rua: []string{"mailto:a@example.com", "https://r.example.com/x"}},
		{rec: "v=TLSRPTv1; rua=mailto:a@example.com; ext=1", rua: []string{"mailto:a@example.com"}},
		{rec: "v=TLSRPTv1; rua=http://r.example.com/", errHas: "neither"},
		{rec: "v=TLSRPTv1; rua=mailto:nobody", errHas: "mailto"},
		{rec: "v=TLSRPTv1; rua=https:///x", errHas: "no host"},
		{rec: "v=TLSRPTv1; ext=1", errHas: "no rua"},
		{rec: "v=TLSRPTv1; rua=mailto:a@b.c; rua=mailto:d@e.f", errHas: "twice"},
		{rec: "v=TLSRPTv1; rua=mailto:a@b.c,", errHas: "not a URI"},
	}
	for _, tt := range tests {
		r, err := ParseTLSRPTRecord(tt.rec)
		if tt.errHas != "" {
			if err == nil || !strings.Contains(err.Error(), tt.errHas) {
				t.Errorf("%q: err %v, want one containing %q", tt.rec, err, tt.errHas)
			}
			continue
		}
		if err != nil || !slices.Equal(r.RUA, tt.rua) {
			t.Errorf("%q: %+v %v, want %v", tt.rec, r, err, tt.rua)
		}
	}
}

// The parsers read what any domain publishes: they must never panic, and
// what they accept must be what their grammar allows.

func FuzzParseMTASTSRecord(f *testing.F) {
	for _, s := range []string{"v=STSv1; id=20160831085700Z;", "v=STSv1;id=a;x=y", "v=STSv1 ; id=a ;", "v=STSv1; id=", "v=STSv1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rec string) {
		r, err := ParseMTASTSRecord(rec)
		if err != nil {
			return
		}
		if len(r.ID) < 1 || len(r.ID) > 32 || !isAlnum(r.ID) || !strings.HasPrefix(rec, "v=STSv1") {
			t.Fatalf("accepted %q as %+v", rec, r)
		}
	})
}

func FuzzParseMTASTSPolicy(f *testing.F) {
	for _, s := range []string{
		"version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmax_age: 604800\r\n",
		"version: STSv1\nmode: none\nmax_age: 0",
		"version: STSv1\nmode: testing\nmx: a\nmax_age: 31557600\nextra: \x00",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := ParseMTASTSPolicy(body)
		if err != nil {
			return
		}
		if p.Mode != "enforce" && p.Mode != "testing" && p.Mode != "none" {
			t.Fatalf("mode %q accepted", p.Mode)
		}
		if p.MaxAge < 0 || p.MaxAge > mtastsMaxMaxAge || (p.Mode != "none" && len(p.MX) == 0) {
			t.Fatalf("accepted %+v", p)
		}
		for _, mx := range p.MX {
			if checkMXPattern(mx) != nil || strings.ContainsAny(mx, " \t\r\n") {
				t.Fatalf("mx %q accepted", mx)
			}
		}
	})
}

func FuzzParseTLSRPTRecord(f *testing.F) {
	for _, s := range []string{"v=TLSRPTv1; rua=mailto:reports@example.com", "v=TLSRPTv1;rua=mailto:a@b.c , https://r.example/x;", "v=TLSRPTv1; rua="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rec string) {
		r, err := ParseTLSRPTRecord(rec)
		if err != nil {
			return
		}
		if len(r.RUA) == 0 {
			t.Fatalf("accepted %q without rua", rec)
		}
		for _, u := range r.RUA {
			if !strings.HasPrefix(strings.ToLower(u), "mailto:") && !strings.HasPrefix(strings.ToLower(u), "https:") {
				t.Fatalf("accepted rua %q", u)
			}
		}
	})
}
