// Package conformance checks sealpost's HTTP responses against SendGrid's
// published OpenAPI documents (spec/, from github.com/twilio/sendgrid-oai).
// Only tests import it: the test servers wrap sealpost's handler in
// Middleware, so every response an end-to-end test receives is validated
// against its operation's response schema, and a drift from SendGrid's
// shapes fails the test that made the request.
package conformance

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
)

//go:embed spec/*.json
var specFS embed.FS

// Implemented lists every SendGrid operation sealpost serves, as
// "METHOD spec-path". A response on one of them is validated against the
// operation's schema. A SendGrid operation missing here may only be
// answered with the unknown-route 404 or the 405, so a route added to
// sealpost without being added here fails the first test that calls it:
// the documents for the routes to come (domain authentication, the
// Email Activity CSV download) are already in spec/.
var Implemented = []string{
	"GET /v3/user/settings/enforced_tls",
	"PATCH /v3/user/settings/enforced_tls",
	"GET /v3/scopes",
	"GET /v3/api_keys",
	"POST /v3/api_keys",
	"GET /v3/api_keys/{api_key_id}",
	"PUT /v3/api_keys/{api_key_id}",
	"PATCH /v3/api_keys/{api_key_id}",
	"DELETE /v3/api_keys/{api_key_id}",
	"GET /v3/subusers",
	"POST /v3/subusers",
	"PATCH /v3/subusers/{subuser_name}",
	"DELETE /v3/subusers/{subuser_name}",
	"GET /v3/partners/accounts",
	"POST /v3/partners/accounts",
	"POST /v3/mail/send",
	"POST /v3/mail/batch",
	"GET /v3/mail/batch/{batch_id}",
	"GET /v3/user/scheduled_sends",
	"POST /v3/user/scheduled_sends",
	"GET /v3/user/scheduled_sends/{batch_id}",
	"PATCH /v3/user/scheduled_sends/{batch_id}",
	"DELETE /v3/user/scheduled_sends/{batch_id}",
	// The next four are SendGrid's single-webhook forms, which its
	// documents give only with a trailing {id}; see patchOptionalIDs.
	"GET /v3/user/webhooks/event/settings",
	"PATCH /v3/user/webhooks/event/settings",
	"GET /v3/user/webhooks/event/settings/signed",
	"PATCH /v3/user/webhooks/event/settings/signed",
	"POST /v3/user/webhooks/event/test",
	"GET /v3/messages",
	"GET /v3/messages/{msg_id}",
	"GET /v3/whitelabel/domains",
	"POST /v3/whitelabel/domains",
	"GET /v3/whitelabel/domains/{domain_id}",
	"PATCH /v3/whitelabel/domains/{domain_id}",
	"DELETE /v3/whitelabel/domains/{domain_id}",
	"POST /v3/whitelabel/domains/{id}/validate",
	"POST /v3/whitelabel/domains/{domain_id}/subuser",
	"GET /v3/whitelabel/domains/subuser",
	"DELETE /v3/whitelabel/domains/subuser",
}

// Unspecified lists sealpost's own routes, which no SendGrid document
// specifies: their responses are not checked against a schema. Any other
// path outside SendGrid's documents must be answered as an unknown route.
// A {name} segment matches any one segment of the escaped path.
var Unspecified = []string{
	"POST /v3/tls/probe",
	"GET /v3/tls/domains",
	"GET /v3/tls/reports",
	"GET /v3/user/webhooks/event/backlog",
	"GET /v3/user/webhooks/event/posts",
	"GET /healthz",
	"GET /readyz",
	"GET /metrics",
	"GET /v3/user/settings/enforced_tls/preview",
	"GET /v3/user/settings/enforced_tls/domains",
	"GET /v3/user/settings/enforced_tls/domains/{domain}",
	"PUT /v3/user/settings/enforced_tls/domains/{domain}",
	"DELETE /v3/user/settings/enforced_tls/domains/{domain}",
}

// Checker validates responses. It is safe for concurrent use.
type Checker struct {
	routers     []routers.Router
	implemented map[string]bool
	unspecified map[string]bool
	// genericError is the body of an answer to a path or method no
	// operation serves.
	genericError *openapi3.Schema
}

// load parses the embedded documents once per test binary; the result is
// never modified afterwards.
var load = sync.OnceValues(func() (*Checker, error) { return newChecker(specFS) })

// Load returns the Checker for the embedded documents.
func Load() (*Checker, error) { return load() }

func newChecker(fsys embed.FS) (*Checker, error) {
	generic, err := genericErrorResponse()
	if err != nil {
		return nil, err
	}
	c := &Checker{
		implemented:  set(Implemented),
		unspecified:  set(Unspecified),
		genericError: generic.Value.Content.Get("application/json").Schema.Value,
	}
	names, err := fs.Glob(fsys, "spec/*.json")
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, name := range names {
		data, err := fsys.ReadFile(name)
		if err != nil {
			return nil, err
		}
		doc, err := openapi3.NewLoader().LoadFromData(data)
		if err != nil {
			return nil, fmt.Errorf("loading %s: %w", name, err)
		}
		for _, p := range patches {
			if err := p(path.Base(name), doc); err != nil {
				return nil, fmt.Errorf("patching %s: %w", name, err)
			}
		}
		// Examples are documentation; several of SendGrid's do not match
		// their own schemas, and nothing here depends on them.
		r, err := legacy.NewRouter(doc, openapi3.DisableExamplesValidation())
		if err != nil {
			return nil, fmt.Errorf("routing %s: %w", name, err)
		}
		c.routers = append(c.routers, r)
		for p, item := range doc.Paths.Map() {
			for method := range item.Operations() {
				seen[method+" "+p] = true
			}
		}
	}
	for _, op := range Implemented {
		if !seen[op] {
			return nil, fmt.Errorf("%s is listed as implemented but no document specifies it", op)
		}
	}
	return c, nil
}

// isUnspecified reports whether one of Unspecified serves method and path.
func (c *Checker) isUnspecified(method, escapedPath string) bool {
	if c.unspecified[method+" "+escapedPath] {
		return true
	}
	got := strings.Split(escapedPath, "/")
	for op := range c.unspecified {
		m, pattern, _ := strings.Cut(op, " ")
		if m != method || !strings.Contains(pattern, "{") {
			continue
		}
		want := strings.Split(pattern, "/")
		if len(want) != len(got) {
			continue
		}
		match := true
		for i, seg := range want {
			wild := strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}")
			if wild && got[i] == "" || !wild && seg != got[i] {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	return false
}

func set(list []string) map[string]bool {
	m := make(map[string]bool, len(list))
	for _, s := range list {
		m[s] = true
	}
	return m
}

// unserved reports whether a response is the answer to a path or method
// no operation serves: 404 or 405 with SendGrid's error body. The body of
// a HEAD response never reaches the client, whatever the handler wrote.
func (c *Checker) unserved(method string, status int, body []byte) bool {
	if status != http.StatusNotFound && status != http.StatusMethodNotAllowed {
		return false
	}
	if method == http.MethodHead {
		return true
	}
	var v any
	if json.Unmarshal(body, &v) != nil {
		return false
	}
	return c.genericError.VisitJSON(v, openapi3.EnableJSONSchema2020()) == nil
}

// Check validates one response to r. It returns nil when the response
// matches its operation's schema, or is the unknown-route answer to a
// request no listed operation serves.
func (c *Checker) Check(ctx context.Context, r *http.Request, status int, header http.Header, body []byte) error {
	if c.isUnspecified(r.Method, r.URL.EscapedPath()) {
		return nil
	}
	route, params, found := c.find(r)
	if !found {
		if c.unserved(r.Method, status, body) {
			return nil
		}
		return fmt.Errorf("%s %s is in no SendGrid document and not listed in conformance.Unspecified, yet answered %d %s", r.Method, r.URL.Path, status, body)
	}
	op := route.Method + " " + route.Path
	if !c.implemented[op] {
		if c.unserved(r.Method, status, body) {
			return nil
		}
		return fmt.Errorf("SendGrid operation %s is not listed in conformance.Implemented, yet answered %d %s", op, status, body)
	}
	if status != http.StatusNoContent && len(body) == 0 && hasContent(route, status) {
		return fmt.Errorf("%s: %d with no body, the document specifies one", op, status)
	}
	if len(body) > 0 && !hasContent(route, status) {
		return fmt.Errorf("%s: %d with body %s, the document specifies none", op, status, body)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route},
		Status:                 status,
		Header:                 header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	if len(body) == 0 {
		// Nothing to decode; the status is still checked above.
		return nil
	}
	if err := openapi3filter.ValidateResponse(ctx, in); err != nil {
		return fmt.Errorf("%s: %d %s does not match the document: %w", op, status, body, err)
	}
	return nil
}

// find returns the documented operation r calls, if any.
func (c *Checker) find(r *http.Request) (*routers.Route, map[string]string, bool) {
	for _, rt := range c.routers {
		route, params, err := rt.FindRoute(r)
		if err == nil && !slices.Contains(slices.Collect(maps.Values(params)), "") {
			return route, params, true
		}
		// An empty parameter is the router matching /a/{id} to /a:
		// that is another path.
	}
	return nil, nil, false
}

// hasContent reports whether the response the operation documents for
// status has a body.
func hasContent(route *routers.Route, status int) bool {
	ref := route.Operation.Responses.Status(status)
	if ref == nil {
		ref = route.Operation.Responses.Default()
	}
	return ref != nil && ref.Value != nil && len(ref.Value.Content) > 0
}

// Middleware returns next wrapped so that every response it writes is
// checked; a mismatch fails t.
func Middleware(t testing.TB, next http.Handler) http.Handler {
	t.Helper()
	c, err := Load()
	if err != nil {
		t.Fatalf("loading SendGrid's OpenAPI documents: %v", err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		if err := c.Check(r.Context(), r, rec.status, w.Header(), rec.body.Bytes()); err != nil {
			t.Errorf("response conformance: %v", err)
		}
	})
}

// Transport returns base (nil: http.DefaultTransport) wrapped so that
// every response received through it is checked; a mismatch fails t. It
// is for tests that reach sealpost in another process.
func Transport(t testing.TB, base http.RoundTripper) http.RoundTripper {
	t.Helper()
	c, err := Load()
	if err != nil {
		t.Fatalf("loading SendGrid's OpenAPI documents: %v", err)
	}
	if base == nil {
		base = http.DefaultTransport
	}
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		resp, err := base.RoundTrip(r)
		if err != nil {
			return nil, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		// What was read so far is passed on, with the read error, so the
		// caller sees a cut-off answer as one.
		resp.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), errReader{err}))
		if err == nil {
			if err := c.Check(r.Context(), r, resp.StatusCode, resp.Header, body); err != nil {
				t.Errorf("response conformance: %v", err)
			}
		}
		return resp, nil
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// errReader fails every read with err, or reports the end when err is nil.
type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) {
	if r.err == nil {
		return 0, io.EOF
	}
	return 0, r.err
}

// recorder passes a response through and keeps a copy of it.
type recorder struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
	body        bytes.Buffer
}

func (w *recorder) WriteHeader(code int) {
	if !w.wroteHeader {
		w.status = code
		w.wroteHeader = true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(b []byte) (int, error) {
	w.wroteHeader = true
	w.body.Write(b)
	return w.ResponseWriter.Write(b)
}

func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }
