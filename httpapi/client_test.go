package httpapi

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/sendgrid/rest"
	"github.com/sendgrid/sendgrid-go"

	"github.com/sealpost/sealpost"
)

// TestOfficialGoClient drives the server with SendGrid's own Go client,
// changing nothing but its host.
func TestOfficialGoClient(t *testing.T) {
	t.Parallel()
	e := newEnv(t, openSQLite)
	p := e.user("parent")
	e.subuser(p, "child")
	key := e.key(p)
	ts := httptest.NewServer(e.handler())
	defer ts.Close()

	call := func(what string, req func() (int, string, error), wantStatus int, wantBody string) {
		t.Helper()
		status, body, err := req()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if status != wantStatus || (wantBody != "" && body != wantBody) {
			t.Errorf("%s: %d %s, want %d %s", what, status, body, wantStatus, wantBody)
		}
	}
	request := func(method, endpoint, subuser, body string) func() (int, string, error) {
		return func() (int, string, error) {
			r := sendgrid.GetRequestSubuser(key, endpoint, ts.URL, subuser)
			r.Method = rest.Method(method)
			r.Body = []byte(body)
			res, err := sendgrid.MakeRequestWithContext(t.Context(), r)
			if err != nil {
				return 0, "", err
			}
			if ct := http.Header(res.Headers).Get("Content-Type"); res.Body != "" && ct != contentTypeJSON {
				t.Errorf("%s %s: Content-Type %q", method, endpoint, ct)
			}
			return res.StatusCode, res.Body, nil
		}
	}
	call("GET", request(http.MethodGet, pathTLS, "", ""), http.StatusOK, wantDefaultTLS)
	call("PATCH", request(http.MethodPatch, pathTLS, "", `{"require_tls":true,"version":1.2}`),
		http.StatusOK, `{"require_tls":true,"require_valid_cert":false,"version":1.2}`)
	call("PATCH on behalf of the subuser", request(http.MethodPatch, pathTLS, "child", `{"require_valid_cert":true}`),
		http.StatusOK, `{"require_tls":false,"require_valid_cert":true,"version":1.1}`)
	call("GET on behalf of the subuser", request(http.MethodGet, pathTLS, "child", ""),
		http.StatusOK, `{"require_tls":false,"require_valid_cert":true,"version":1.1}`)
	call("GET on behalf of a stranger", request(http.MethodGet, pathTLS, "stranger", ""), http.StatusNotFound, wantOBONotFound)
	call("bad PATCH", request(http.MethodPatch, pathTLS, "", `{"version":"1.3"}`),
		http.StatusBadRequest, `{"errors":[{"field":"version","message":"version must be one of 1.1, 1.2, 1.3"}]}`)
	call("create key", request(http.MethodPost, "/v3/api_keys", "", `{"name":"ci","scopes":["mail.send"]}`), http.StatusCreated, "")
	call("subusers", request(http.MethodGet, "/v3/subusers", "", ""), http.StatusOK, "")

	if got := e.setting(p); got != (sealpost.EnforcedTLS{RequireTLS: true, Version: sealpost.TLS12}) {
		t.Errorf("parent's setting %+v", got)
	}
}
