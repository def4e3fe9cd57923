package httpapi

import (
	"net/http"
	"strings"
	"testing"

	"github.com/sealpost/sealpost"
)

// Hostile but well-formed mail sends are a client's problem, never a 500:
// each is either accepted whole or refused with a 400.
func TestMailSendHostileInputNever500(t *testing.T) {
	tests := []struct {
		name string
		body string
	}{
		{"NUL in category", `{"personalizations":[{"to":[{"email":"a@example.com"}]}],"from":{"email":"s@example.com"},"subject":"s","content":[{"type":"text/plain","value":"b"}],"categories":["a\u0000b"]}`},
		{"NUL in custom arg value", `{"personalizations":[{"to":[{"email":"a@example.com"}]}],"from":{"email":"s@example.com"},"subject":"s","content":[{"type":"text/plain","value":"b"}],"custom_args":{"k":"a\u0000b"}}`},
		{"NUL in custom arg key", `{"personalizations":[{"to":[{"email":"a@example.com"}]}],"from":{"email":"s@example.com"},"subject":"s","content":[{"type":"text/plain","value":"b"}],"custom_args":{"k\u0000":"v"}}`},
		{"NUL in content", `{"personalizations":[{"to":[{"email":"a@example.com"}]}],"from":{"email":"s@example.com"},"subject":"s","content":[{"type":"text/plain","value":"a\u0000b"}]}`},
		{"lone surrogate in custom arg", `{"personalizations":[{"to":[{"email":"a@example.com"}]}],"from":{"email":"s@example.com"},"subject":"s","content":[{"type":"text/plain","value":"b"}],"custom_args":{"k":"\ud800"}}`},
		{"huge number subject", `{"personalizations":[{"to":[{"email":"a@example.com"}]}],"from":{"email":"s@example.com"},"subject":1e999999,"content":[{"type":"text/plain","value":"b"}]}`},
		{"deep nesting", `{"x":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`},
	}
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		e := newEnv(t, open)
		token := e.key(e.user("sender"), sealpost.ScopeMailSend)
		for _, tt := range tests {
			res := e.do(request{method: http.MethodPost, path: pathMailSend, token: token, body: tt.body})
			if res.status != http.StatusAccepted && res.status != http.StatusBadRequest {
				t.Errorf("%s: %d %s", tt.name, res.status, res.body)
			}
		}
	})
}
