package sealpost

import (
	"strings"
	"testing"
)

func TestNormalizeDomain(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string // want "" means refused
	}{
		{"example.com", "example.com"},
		{"Example.COM", "example.com"},
		{"example.com.", "example.com"},
		{"MAIL.Example.Org.", "mail.example.org"},
		{"bücher.example", "xn--bcher-kva.example"},
		{"BÜCHER.example", "xn--bcher-kva.example"},
		{"xn--bcher-kva.example", "xn--bcher-kva.example"},
		{"XN--BCHER-KVA.EXAMPLE", "xn--bcher-kva.example"},
		{"ｅｘａｍｐｌｅ.com", "example.com"}, // full-width letters map to ASCII
		{"例え.テスト", "xn--r8jz45g.xn--zckzah"},
		{"a-b.c0", "a-b.c0"},
		{"1.example", "1.example"},
		{strings.Repeat("a", 63) + ".example", strings.Repeat("a", 63) + ".example"},

		{"", ""},
		{".", ""},
		{"com", ""},
		{"com.", ""},
		{"example..com", ""},
		{".example.com", ""},
		{"example.com..", ""},
		{"-example.com", ""},
		{"example-.com", ""},
		{"exa mple.com", ""},
		{" example.com", ""},
		{"example.com ", ""},
		{"exa_mple.com", ""},
		{"*.example.com", ""},
		{"user@example.com", ""},
		{"example.com/x", ""},
		{"example.com:25", ""},
		{"192.0.2.1", ""},
		{"[192.0.2.1]", ""},
		{"::1", ""},
		{"xn--.example", ""},
		{"xn--zz-zz.example", ""}, // not valid Punycode
		{strings.Repeat("a", 64) + ".example", ""},
		{strings.Repeat("abcdefghi.", 26) + "com", ""}, // 263 octets
		{"exa\x00mple.com", ""},
		{"\xffexample.com", ""},
		{"exa\u200bmple.com", "example.com"}, // UTS #46 maps zero-width space and soft hyphen to nothing
		{"exa\u00admple.com", "example.com"},
		{"ß.example", "xn--zca.example"},     // IDNA2008, not transitional: ß is kept
		{"example.com\u3002", "example.com"}, // ideographic full stop as the trailing dot
		{"EXAMPLE\u3002com", "example.com"},
	}
	for _, tc := range tests {
		got, err := NormalizeDomain(tc.in)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("NormalizeDomain(%q) = %q, want an error", tc.in, got)
		case tc.want != "" && err != nil:
			t.Errorf("NormalizeDomain(%q): %v, want %q", tc.in, err, tc.want)
		case got != tc.want:
			t.Errorf("NormalizeDomain(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestNormalizeDomainErrorsNameTheProblem(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"":          "empty",
		"localhost": "at least two labels",
		"10.0.0.1":  "address",
		"a..b":      "not a valid domain name",
	} {
		_, err := NormalizeDomain(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("NormalizeDomain(%q) error %v, want one saying %q", in, err, want)
		}
	}
}

func TestStrongestAndRaises(t *testing.T) {
	t.Parallel()
	p := func(tls, cert bool, v TLSVersion) EnforcedTLS {
		return EnforcedTLS{RequireTLS: tls, RequireValidCert: cert, Version: v}
	}
	tests := []struct {
		name          string
		account, dom  EnforcedTLS
		strongest     EnforcedTLS
		domainRaises  bool
		accountRaises bool
	}{
		{"equal", p(true, false, TLS12), p(true, false, TLS12), p(true, false, TLS12), false, false},
		{"domain stronger in every field", p(false, false, TLS11), p(true, true, TLS13), p(true, true, TLS13), true, false},
		{"domain weaker", p(true, true, TLS13), p(false, false, TLS11), p(true, true, TLS13), false, true},
		{"domain raises only the version", p(true, true, TLS12), p(true, false, TLS13), p(true, true, TLS13), true, true},
		{"domain raises only the certificate", p(true, false, TLS13), p(false, true, TLS11), p(true, true, TLS13), true, true},
		{"domain raises only require_tls", p(false, false, TLS11), p(true, false, TLS11), p(true, false, TLS11), true, false},
		// require_valid_cert makes TLS mandatory by itself: require_tls
		// beside it adds nothing.
		{"domain adds require_tls to a valid certificate", p(false, true, TLS12), p(true, false, TLS12), p(true, true, TLS12), false, true},
		// A version binds nothing while TLS is optional.
		{"opportunistic domain with a higher version", p(true, false, TLS11), p(false, false, TLS13), p(true, false, TLS11), false, true},
		{"both opportunistic, versions differ", p(false, false, TLS11), p(false, false, TLS13), p(false, false, TLS13), false, false},
	}
	for _, tc := range tests {
		if got := Strongest(tc.account, tc.dom); got != tc.strongest {
			t.Errorf("%s: Strongest = %+v, want %+v", tc.name, got, tc.strongest)
		}
		if got := Strongest(tc.dom, tc.account); got != tc.strongest {
			t.Errorf("%s: Strongest is not symmetric: %+v", tc.name, got)
		}
		if got := tc.dom.Raises(tc.account); got != tc.domainRaises {
			t.Errorf("%s: domain.Raises(account) = %v, want %v", tc.name, got, tc.domainRaises)
		}
		if got := tc.account.Raises(tc.dom); got != tc.accountRaises {
			t.Errorf("%s: account.Raises(domain) = %v, want %v", tc.name, got, tc.accountRaises)
		}
	}
}

// FuzzNormalizeDomain: the domain comes from a URL path. Whatever it is,
// the answer is an error or a name that is its own normal form, ASCII
// lower-case, within DNS limits.
func FuzzNormalizeDomain(f *testing.F) {
	for _, s := range []string{"example.com", "Bücher.Example.", "xn--bcher-kva.example", "a..b", "192.0.2.1", "", ".", "ｅｘａｍｐｌｅ.com", "例え.テスト", "xn--zz-zz.example", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := NormalizeDomain(s)
		if err != nil {
			if got != "" {
				t.Fatalf("NormalizeDomain(%q) = %q with error %v", s, got, err)
			}
			return
		}
		if len(got) > maxDomainLength || got != strings.ToLower(got) || strings.HasSuffix(got, ".") {
			t.Fatalf("NormalizeDomain(%q) = %q: not a normal form", s, got)
		}
		for i := 0; i < len(got); i++ {
			if got[i] >= 0x80 {
				t.Fatalf("NormalizeDomain(%q) = %q: not ASCII", s, got)
			}
		}
		again, err := NormalizeDomain(got)
		if err != nil || again != got {
			t.Fatalf("NormalizeDomain(%q) = %q, but NormalizeDomain(%q) = %q, %v", s, got, got, again, err)
		}
		if dotted, err := NormalizeDomain(got + "."); err != nil || dotted != got {
			t.Fatalf("NormalizeDomain(%q.) = %q, %v, want %q", got, dotted, err, got)
		}
	})
}
