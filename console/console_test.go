package console

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
)

// TestCrossOriginRefused: a POST a browser marks as coming from another
// origin is refused before anything else; one from this origin, or from no
// browser, goes on (here to a sign-in the API refuses).
func TestCrossOriginRefused(t *testing.T) {
	t.Parallel()
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"errors":[{"field":null,"message":"authorization required"}]}`))
	})
	c, err := New(Config{API: api})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		headers map[string]string
		refused bool
	}{
		{"same origin", map[string]string{"Origin": "http://console.test:8080"}, false},
		{"same origin by fetch metadata", map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "http://console.test:8080"}, false},
		{"typed into the address bar", map[string]string{"Sec-Fetch-Site": "none"}, false},
		{"another host", map[string]string{"Origin": "http://evil.test:8080"}, true},
		{"another port", map[string]string{"Origin": "http://console.test:8081"}, true},
		{"cross-site by fetch metadata", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.test"}, true},
		{"a sibling subdomain", map[string]string{"Sec-Fetch-Site": "same-site", "Origin": "http://other.console.test:8080"}, true},
		{"not a browser", nil, false},
	}
	for _, tc := range tests {
		r := httptest.NewRequest(http.MethodPost, "http://console.test:8080/console/signin", strings.NewReader("api_key=SG.x"))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range tc.headers {
			r.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		c.ServeHTTP(w, r)
		refused := w.Code == http.StatusForbidden && strings.Contains(w.Body.String(), "cross-origin")
		if refused != tc.refused {
			t.Errorf("%s: %d %q, want refused %v", tc.name, w.Code, w.Body.String(), tc.refused)
		}
		if !tc.refused && w.Code != http.StatusUnauthorized {
			t.Errorf("%s: %d, want the API's 401 on the sign-in page", tc.name, w.Code)
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

// memorySessions is a SessionStore for tests of the cookie alone.
type memorySessions struct {
	mu       sync.Mutex
	sessions map[string]sealpost.ConsoleSession
}

func (m *memorySessions) CreateConsoleSession(_ context.Context, s sealpost.ConsoleSession, _ time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sessions[string(s.ID)] = s
	return nil
}

func (m *memorySessions) ConsoleSession(_ context.Context, id []byte, now time.Time) (sealpost.ConsoleSession, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.sessions[string(id)]
	if !ok || !s.ExpiresAt.After(now) {
		return sealpost.ConsoleSession{}, sealpost.Errorf(sealpost.ENOTFOUND, "console session not found")
	}
	return s, nil
}

func (m *memorySessions) DeleteConsoleSession(_ context.Context, id []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.sessions, string(id))
	return nil
}

// TestSessionCookie: the cookie is HttpOnly, SameSite=Strict, scoped to the
// console, Secure when the browser came over TLS (directly or through a
// proxy that says so), and holds no part of the key.
func TestSessionCookie(t *testing.T) {
	t.Parallel()
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer SG.the-key" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte(`{"scopes":[]}`))
	})
	sessions := &memorySessions{sessions: map[string]sealpost.ConsoleSession{}}
	c, err := New(Config{API: api, Sessions: sessions})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		tls        bool
		forwarded  string
		wantSecure bool
	}{
		{"plain HTTP", false, "", false},
		{"TLS", true, "", true},
		{"TLS ended by a proxy", false, "https", true},
	} {
		r := httptest.NewRequest(http.MethodPost, "http://console.test/console/signin", strings.NewReader("api_key=SG.the-key"))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if tc.tls {
			r.TLS = &tls.ConnectionState{}
		}
		if tc.forwarded != "" {
			r.Header.Set("X-Forwarded-Proto", tc.forwarded)
		}
		w := httptest.NewRecorder()
		c.ServeHTTP(w, r)
		if w.Code != http.StatusSeeOther {
			t.Fatalf("%s: sign-in %d %s", tc.name, w.Code, w.Body)
		}
		var session *http.Cookie
		for _, ck := range w.Result().Cookies() {
			if ck.Name == sessionCookie {
				session = ck
			}
		}
		if session == nil {
			t.Fatalf("%s: no session cookie", tc.name)
		}
		if !session.HttpOnly || session.SameSite != http.SameSiteStrictMode || session.Path != Prefix || session.Secure != tc.wantSecure {
			t.Errorf("%s: cookie %s, want HttpOnly, SameSite=Strict, Path=%s, Secure=%v", tc.name, session, Prefix, tc.wantSecure)
		}
		if strings.Contains(session.Value, "the-key") || strings.Contains(w.Header().Get("Location"), "the-key") {
			t.Errorf("%s: the key is in the cookie or the redirect", tc.name)
		}
	}
}
