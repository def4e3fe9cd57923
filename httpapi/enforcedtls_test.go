package httpapi

import (
	"net/http"
	"strings"
	"testing"

	"github.com/sealpost/sealpost"
)

func TestEnforcedTLSDefault(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		e := newEnv(t, open)
		token := e.key(e.user("alice"))
		res := e.do(request{method: http.MethodGet, path: pathTLS, token: token})
		res.want(t, "GET default", http.StatusOK, wantDefaultTLS)
	})
}

func TestEnforcedTLSPatchInvalid(t *testing.T) {
	t.Parallel()
	const (
		notJSON   = `{"errors":[{"field":null,"message":"request body is not valid JSON"}]}`
		notObject = `{"errors":[{"field":null,"message":"request body must be a JSON object"}]}`
		badVer    = `{"errors":[{"field":"version","message":"version must be one of 1.1, 1.2, 1.3"}]}`
		badTLS    = `{"errors":[{"field":"require_tls","message":"require_tls must be a boolean"}]}`
		badCert   = `{"errors":[{"field":"require_valid_cert","message":"require_valid_cert must be a boolean"}]}`
	)
	tests := []struct {
		name, body, want string
	}{
		{"empty body", ``, notJSON},
		{"not JSON", `require_tls=true`, notJSON},
		{"truncated", `{"require_tls":true`, notJSON},
		{"trailing garbage", `{"require_tls":true} x`, notJSON},
		{"two objects", `{}{}`, notJSON},
		{"array", `[]`, notObject},
		{"string", `"x"`, notObject},
		{"number", `1`, notObject},
		{"null", `null`, notObject},
		{"true", `true`, notObject},
		{"version as string", `{"version":"1.2"}`, badVer},
		{"version null", `{"version":null}`, badVer},
		{"version 1.0", `{"version":1.0}`, badVer},
		{"version 1.4", `{"version":1.4}`, badVer},
		{"version 2", `{"version":2}`, badVer},
		{"version 1", `{"version":1}`, badVer},
		{"version 12", `{"version":12}`, badVer},
		{"version -1.2", `{"version":-1.2}`, badVer},
		{"version true", `{"version":true}`, badVer},
		{"version array", `{"version":[1.2]}`, badVer},
		{"require_tls yes", `{"require_tls":"yes"}`, badTLS},
		{"require_tls null", `{"require_tls":null}`, badTLS},
		{"require_tls 1", `{"require_tls":1}`, badTLS},
		{"require_tls string true", `{"require_tls":"true"}`, badTLS},
		{"require_valid_cert object", `{"require_valid_cert":{}}`, badCert},
		{"valid field with bad one", `{"require_tls":true,"version":"1.3"}`, badVer},
		{"several problems", `{"require_tls":"yes","require_valid_cert":null,"version":1.4}`,
			`{"errors":[{"field":"require_tls","message":"require_tls must be a boolean"},` +
				`{"field":"require_valid_cert","message":"require_valid_cert must be a boolean"},` +
				`{"field":"version","message":"version must be one of 1.1, 1.2, 1.3"}]}`},
	}
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		e := newEnv(t, open)
		acct := e.user("alice")
		token := e.key(acct)
		// A non-default starting point, so that "unchanged" is not also "default".
		start := `{"require_tls":true,"require_valid_cert":false,"version":1.2}`
		e.do(request{method: http.MethodPatch, path: pathTLS, token: token, body: start}).
			want(t, "setup", http.StatusOK, start)
		for _, tc := range tests {
			res := e.do(request{method: http.MethodPatch, path: pathTLS, token: token, body: tc.body})
			res.want(t, tc.name, http.StatusBadRequest, tc.want)
			e.do(request{method: http.MethodGet, path: pathTLS, token: token}).
				want(t, tc.name+": GET after", http.StatusOK, start)
		}
	})
}

func TestEnforcedTLSPatchMerge(t *testing.T) {
	t.Parallel()
	type step struct {
		body, want string
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"empty object is a no-op", []step{
			{`{}`, wantDefaultTLS},
			{` { } `, wantDefaultTLS},
		}},
		{"unknown fields are ignored", []step{
			{`{"foo":1,"Version":"x","require_TLS":"no"}`, wantDefaultTLS},
			{`{"require_tls":true,"extra":[null]}`, `{"require_tls":true,"require_valid_cert":false,"version":1.1}`},
		}},
		{"StrongGrid style: both booleans, never version", []step{
			{`{"version":1.3}`, `{"require_tls":false,"require_valid_cert":false,"version":1.3}`},
			{`{"require_tls":true,"require_valid_cert":true}`, `{"require_tls":true,"require_valid_cert":true,"version":1.3}`},
			{`{"require_tls":false,"require_valid_cert":true}`, `{"require_tls":false,"require_valid_cert":true,"version":1.3}`},
		}},
		{"Go omitempty style: only true fields", []step{
			{`{"require_valid_cert":true}`, `{"require_tls":false,"require_valid_cert":true,"version":1.1}`},
			{`{"require_tls":true}`, `{"require_tls":true,"require_valid_cert":true,"version":1.1}`},
			{`{"version":1.2}`, `{"require_tls":true,"require_valid_cert":true,"version":1.2}`},
		}},
		{"every version spelling", []step{
			{`{"version":1.2}`, `{"require_tls":false,"require_valid_cert":false,"version":1.2}`},
			{`{"version":1.30}`, `{"require_tls":false,"require_valid_cert":false,"version":1.3}`},
			{`{"version":11e-1}`, `{"require_tls":false,"require_valid_cert":false,"version":1.1}`},
		}},
		{"full object round-trips", []step{
			{`{"require_tls":true,"require_valid_cert":true,"version":1.3}`, `{"require_tls":true,"require_valid_cert":true,"version":1.3}`},
			{`{"require_tls":false,"require_valid_cert":false,"version":1.1}`, wantDefaultTLS},
		}},
	}
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, open)
				acct := e.user("alice")
				token := e.key(acct)
				for i, st := range tc.steps {
					res := e.do(request{method: http.MethodPatch, path: pathTLS, token: token, body: st.body})
					res.want(t, "PATCH "+st.body, http.StatusOK, st.want)
					e.do(request{method: http.MethodGet, path: pathTLS, token: token}).
						want(t, "GET after step "+string(rune('0'+i)), http.StatusOK, st.want)
				}
			})
		}
	})
}

func TestEnforcedTLSScopes(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		e := newEnv(t, open)
		acct := e.user("alice")
		readOnly := e.key(acct, sealpost.ScopeEnforcedTLSRead)
		writeOnly := e.key(acct, sealpost.ScopeEnforcedTLSUpdate)
		neither := e.key(acct, sealpost.ScopeAPIKeysRead)

		e.do(request{method: http.MethodGet, path: pathTLS, token: readOnly}).want(t, "GET read-only", http.StatusOK, wantDefaultTLS)
		e.do(request{method: http.MethodPatch, path: pathTLS, token: readOnly, body: `{"require_tls":true}`}).
			want(t, "PATCH read-only", http.StatusForbidden, wantForbidden)
		e.do(request{method: http.MethodGet, path: pathTLS, token: writeOnly}).want(t, "GET write-only", http.StatusForbidden, wantForbidden)
		e.do(request{method: http.MethodGet, path: pathTLS, token: neither}).want(t, "GET no scope", http.StatusForbidden, wantForbidden)
		// The scope is checked before the body, so a forbidden caller learns
		// nothing about its body either.
		e.do(request{method: http.MethodPatch, path: pathTLS, token: neither, body: `nonsense`}).
			want(t, "PATCH no scope bad body", http.StatusForbidden, wantForbidden)
		e.do(request{method: http.MethodPatch, path: pathTLS, token: writeOnly, body: `{"require_tls":true}`}).
			want(t, "PATCH write-only", http.StatusOK, `{"require_tls":true,"require_valid_cert":false,"version":1.1}`)
		if got := e.setting(acct); !got.RequireTLS {
			t.Errorf("stored setting %+v after PATCH", got)
		}
	})
}

func TestEnforcedTLSUnauthorized(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		e := newEnv(t, open)
		acct := e.user("alice")
		token := e.key(acct)
		id, _, _ := sealpost.ParseToken(token)
		tests := []struct {
			name, auth string
		}{
			{"none", ""},
			{"basic", "Basic dXNlcjpwYXNz"},
			{"bearer only", "Bearer"},
			{"bearer empty", "Bearer "},
			{"no SG prefix", "Bearer " + strings.TrimPrefix(token, "SG.")},
			{"wrong secret", "Bearer SG." + id + ".wrongsecret"},
			{"unknown id", "Bearer SG.nosuchkeyid.secret"},
			{"token without scheme", token},
			{"extra dot", "Bearer " + token + ".x"},
		}
		for _, tc := range tests {
			h := http.Header{}
			if tc.auth != "" {
				h.Set("Authorization", tc.auth)
			}
			res := e.do(request{method: http.MethodGet, path: pathTLS, header: h})
			res.want(t, tc.name, http.StatusUnauthorized, wantUnauthorized)
			if res.header.Get(headerRateLimit) != "" {
				t.Errorf("%s: rate-limit headers on an unauthenticated response", tc.name)
			}
		}
		// Scheme is case-insensitive, as in RFC 9110.
		h := http.Header{"Authorization": {"bearer " + token}}
		e.do(request{method: http.MethodGet, path: pathTLS, header: h}).want(t, "lower-case bearer", http.StatusOK, wantDefaultTLS)
	})
}
