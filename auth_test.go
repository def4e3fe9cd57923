package sealpost_test

import (
	"strings"
	"testing"

	"github.com/sealpost/sealpost"
)

func TestParseToken(t *testing.T) {
	t.Parallel()
	key, token, err := sealpost.NewAPIKey(1, "k", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(token, "SG.") || len(key.ID) != 22 {
		t.Fatalf("token %q / id %q do not look like SendGrid's", token, key.ID)
	}
	id, secret, ok := sealpost.ParseToken(token)
	if !ok || id != key.ID || !key.Matches(secret) {
		t.Fatalf("ParseToken(%q) = %q, %q, %v", token, id, secret, ok)
	}
	if key.Matches(secret + "x") {
		t.Fatal("a different secret must not match")
	}
	if strings.Contains(string(key.SecretHash), secret) {
		t.Fatal("the secret must not be stored")
	}
	for _, bad := range []string{"", "SG.", "SG..", "SG.id.", "SG..secret", "XX.id.secret", "SG.id.sec.ret", "id.secret", "SG." + strings.Repeat("a", 65) + ".s"} {
		if _, _, ok := sealpost.ParseToken(bad); ok {
			t.Errorf("ParseToken(%q) accepted a malformed token", bad)
		}
	}
}

func TestParseOnBehalfOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    sealpost.OnBehalfOf
		invalid bool
	}{
		{in: "alice", want: sealpost.OnBehalfOf{Username: "alice"}},
		{in: "  alice ", want: sealpost.OnBehalfOf{Username: "alice"}},
		{in: "account-id sg123", want: sealpost.OnBehalfOf{AccountID: "sg123"}},
		{in: "Account-ID   sg123", want: sealpost.OnBehalfOf{AccountID: "sg123"}},
		{in: "account-id\tsg123", want: sealpost.OnBehalfOf{AccountID: "sg123"}},
		{in: "account-id", invalid: true},
		{in: "account-id   ", invalid: true},
		{in: "account-idsg123", invalid: true},
		{in: "", invalid: true},
		{in: "   ", invalid: true},
		{in: strings.Repeat("a", 300), invalid: true},
	}
	for _, tt := range tests {
		got, err := sealpost.ParseOnBehalfOf(tt.in)
		if tt.invalid {
			if sealpost.ErrorCode(err) != sealpost.EINVALID {
				t.Errorf("ParseOnBehalfOf(%q) = %+v, %v; want EINVALID", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseOnBehalfOf(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestNormalizeScopes(t *testing.T) {
	t.Parallel()
	full := sealpost.FullAccessScopes(sealpost.KindUser)
	got, err := sealpost.NormalizeScopes("scopes", []string{sealpost.ScopeMailSend, sealpost.ScopeEnforcedTLSRead, sealpost.ScopeMailSend}, sealpost.KindUser, full)
	if err != nil || strings.Join(got, " ") != sealpost.ScopeMailSend+" "+sealpost.ScopeEnforcedTLSRead {
		t.Fatalf("got %q, %v", got, err)
	}
	_, err = sealpost.NormalizeScopes("scopes", []string{sealpost.ScopeEnforcedTLSUpdate}, sealpost.KindUser, []string{sealpost.ScopeEnforcedTLSRead})
	if sealpost.ErrorCode(err) != sealpost.EINVALID {
		t.Fatalf("granting a scope the granter lacks: %v", err)
	}
	_, err = sealpost.NormalizeScopes("scopes", []string{sealpost.ScopeSubusersCreate}, sealpost.KindSubuser, full)
	if sealpost.ErrorCode(err) != sealpost.EINVALID {
		t.Fatalf("a subuser key must not get subuser scopes: %v", err)
	}
	_, err = sealpost.NormalizeScopes("scopes", []string{"no.such.scope", "nor.this"}, sealpost.KindUser, full)
	if n := len(sealpost.ErrorFields(err)); n != 2 {
		t.Fatalf("want both unknown scopes reported, got %d: %v", n, err)
	}
}

func FuzzParseOnBehalfOf(f *testing.F) {
	for _, s := range []string{"alice", "account-id sg123", "account-id", "Account-Id  x", "", "\x00", "account-id\t\t"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := sealpost.ParseOnBehalfOf(s)
		if err != nil {
			if sealpost.ErrorCode(err) != sealpost.EINVALID {
				t.Fatalf("non-validation error %v", err)
			}
			return
		}
		if (got.Username == "") == (got.AccountID == "") {
			t.Fatalf("exactly one of username and account id must be set: %+v", got)
		}
	})
}

func FuzzParseToken(f *testing.F) {
	for _, s := range []string{"SG.abc.def", "SG..", "Bearer SG.a.b", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, secret, ok := sealpost.ParseToken(s)
		if ok && ("SG."+id+"."+secret != s || id == "" || secret == "") {
			t.Fatalf("ParseToken(%q) = %q, %q: does not reassemble", s, id, secret)
		}
	})
}
