package console

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/sealpost/sealpost"
)

func TestSameOrigin(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		tls     bool
		headers map[string]string
		want    bool
	}{
		{"same origin", false, map[string]string{"Origin": "http://console.test:8080"}, true},
		{"same origin, host in other case", false, map[string]string{"Origin": "http://CONSOLE.test:8080"}, true},
		{"another host", false, map[string]string{"Origin": "http://evil.test:8080"}, false},
		{"another port", false, map[string]string{"Origin": "http://console.test:8081"}, false},
		{"another scheme", false, map[string]string{"Origin": "https://console.test:8080"}, false},
		{"https page over TLS", true, map[string]string{"Origin": "https://console.test:8080"}, true},
		{"http page posting to TLS", true, map[string]string{"Origin": "http://console.test:8080"}, false},
		{"null origin, same site fetch", false, map[string]string{"Origin": "null", "Sec-Fetch-Site": "same-origin"}, true},
		{"null origin, cross-site fetch", false, map[string]string{"Origin": "null", "Sec-Fetch-Site": "cross-site"}, false},
		{"no origin, same-site (another subdomain) fetch", false, map[string]string{"Sec-Fetch-Site": "same-site"}, false},
		{"null origin alone", false, map[string]string{"Origin": "null"}, false},
		{"not a browser", false, nil, true},
	}
	for _, tc := range tests {
		r := httptest.NewRequest(http.MethodPost, "http://console.test:8080/console/tls", nil)
		if tc.tls {
			r.TLS = &tls.ConnectionState{}
		}
		for k, v := range tc.headers {
			r.Header.Set(k, v)
		}
		if got := sameOrigin(r); got != tc.want {
			t.Errorf("%s: sameOrigin = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestSealedKey: only the session's own token opens the key sealed for it,
// and a sealed key moved to another session's row does not open.
func TestSealedKey(t *testing.T) {
	t.Parallel()
	token := make([]byte, tokenBytes)
	other := make([]byte, tokenBytes)
	other[0] = 1
	sealed, err := sealKey(token, "SG.secret")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := openKey(token, sealed); err != nil || got != "SG.secret" {
		t.Fatalf("openKey with the token: %q, %v", got, err)
	}
	if _, err := openKey(other, sealed); err == nil {
		t.Error("openKey with another token succeeded")
	}
	if _, err := openKey(token, sealed[:5]); err == nil {
		t.Error("openKey of a truncated seal succeeded")
	}
	a, b := &session{token: token}, &session{token: other}
	if a.csrf() == b.csrf() || a.csrf() == "" {
		t.Error("two sessions share a CSRF token")
	}
}

func TestValidActing(t *testing.T) {
	t.Parallel()
	for v, want := range map[string]bool{
		"team-blue":               true,
		"account-id 12":           true,
		"":                        false,
		"a\r\nSet-Cookie: x=y":    false,
		"naïve":                   false,
		string(make([]byte, 257)): false,
	} {
		if got := validActing(v); got != want {
			t.Errorf("validActing(%q) = %v, want %v", v, got, want)
		}
	}
}

func TestBlockedWhy(t *testing.T) {
	t.Parallel()
	v12 := "1.2"
	tests := []struct {
		policy sealpost.EnforcedTLS
		d      sealpost.BlockedDomain
		want   string
	}{
		{sealpost.EnforcedTLS{RequireTLS: true, Version: sealpost.TLS11}, sealpost.BlockedDomain{ResultType: sealpost.ResultSTARTTLSNotSupported},
			"its mail servers offer no TLS"},
		{sealpost.EnforcedTLS{RequireTLS: true, Version: sealpost.TLS13}, sealpost.BlockedDomain{Best: sealpost.BestHostTLS{TLSVersion: &v12, CertValid: true}, ResultType: sealpost.ResultValidationFailure},
			"its mail servers offer TLS 1.2 at best; 1.3 is required"},
		{sealpost.EnforcedTLS{RequireValidCert: true, Version: sealpost.TLS12}, sealpost.BlockedDomain{Best: sealpost.BestHostTLS{TLSVersion: &v12}, ResultType: sealpost.ResultCertificateExpired},
			"no valid certificate: the mail server's certificate has expired"},
	}
	for _, tc := range tests {
		if got := blockedWhy(tc.policy, tc.d); got != tc.want {
			t.Errorf("blockedWhy(%+v, %+v) = %q, want %q", tc.policy, tc.d, got, tc.want)
		}
	}
}
