package conformance

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

const (
	genericNotFound     = `{"errors":[{"field":null,"message":"resource not found"}]}`
	genericUnauthorized = `{"errors":[{"field":null,"message":"authorization required"}]}`
)

// TestCheck feeds the checker right and deliberately wrong responses: the
// suite's conformance checks are only worth something if they can fail.
func TestCheck(t *testing.T) {
	t.Parallel()
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name         string
		method, path string
		status       int
		body         string
		wantErr      string // "" expects no error
	}{
		{"settings", "GET", "/v3/user/settings/enforced_tls", 200, `{"require_tls":false,"require_valid_cert":false,"version":1.1}`, ""},
		{"settings with a string for a boolean", "GET", "/v3/user/settings/enforced_tls", 200, `{"require_tls":"yes","require_valid_cert":false,"version":1.1}`, "require_tls"},
		{"settings patch with the version as a string", "PATCH", "/v3/user/settings/enforced_tls", 200, `{"require_tls":false,"require_valid_cert":false,"version":"1.1"}`, "version"},
		{"generic 401", "GET", "/v3/scopes", 401, genericUnauthorized, ""},
		{"error without errors", "GET", "/v3/scopes", 401, `{"message":"authorization required"}`, "errors"},
		{"undocumented 429 with SendGrid's body", "GET", "/v3/user/settings/enforced_tls", 429, `{"errors":[{"field":null,"message":"too many requests"}]}`, ""},
		{"undocumented 429 with another body", "GET", "/v3/user/settings/enforced_tls", 429, `{"error":"slow down"}`, "errors"},
		{"undocumented success status", "GET", "/v3/user/settings/enforced_tls", 201, `{"require_tls":false,"require_valid_cert":false,"version":1.1}`, "errors"},
		{"key 404", "GET", "/v3/api_keys/abc", 404, genericNotFound, ""},
		{"key deleted", "DELETE", "/v3/api_keys/abc", 204, "", ""},
		{"mail accepted", "POST", "/v3/mail/send", 202, "", ""},
		{"mail accepted with a body", "POST", "/v3/mail/send", 202, `{"ok":true}`, "specifies none"},
		{"mail in sandbox mode", "POST", "/v3/mail/send", 200, "", ""},
		{"classic webhook settings", "GET", "/v3/user/webhooks/event/settings", 200, `{"enabled":false,"url":"","delivered":false}`, ""},
		{"signed webhook", "GET", "/v3/user/webhooks/event/settings/signed", 200, `{"id":"","public_key":"MFkw"}`, ""},
		{"signed webhook with a number for its key", "PATCH", "/v3/user/webhooks/event/settings/signed", 200, `{"id":"","public_key":5}`, "public_key"},
		{"classic webhook settings, enabled as a string", "GET", "/v3/user/webhooks/event/settings", 200, `{"enabled":"no","url":""}`, "enabled"},

		// The three deviations on customer accounts, and their fixes.
		{"customer accounts as sealpost listed them", "GET", "/v3/partners/accounts", 200, `{"accounts":[{"account_id":"sg0123","created_at":1796603417}]}`, "accounts"},
		{"customer accounts", "GET", "/v3/partners/accounts", 200, `{"accounts":[{"id":"sg0123","created_at":"2026-12-07T01:02:03Z"}]}`, ""},
		{"customer accounts with a time that is not RFC 3339", "GET", "/v3/partners/accounts", 200, `{"accounts":[{"id":"sg0123","created_at":"07/12/2026"}]}`, "created_at"},
		{"account provisioning 400 in the generic form", "POST", "/v3/partners/accounts", 400, `{"errors":[{"field":"profile","message":"profile must be an object"}]}`, "error_id"},
		{"account provisioning 400", "POST", "/v3/partners/accounts", 400, `{"errors":[{"message":"profile must be an object","field":"profile","error_id":"10-40000"}]}`, ""},
		{"account provisioning 403 with a null field", "GET", "/v3/partners/accounts", 403, `{"errors":[{"message":"access forbidden","field":null,"error_id":"10-40300"}]}`, "field"},
		{"account provisioning 401 as SendGrid answers it", "GET", "/v3/partners/accounts", 401, genericUnauthorized, ""},
		{"account created", "POST", "/v3/partners/accounts", 201, `{"account_id":"sg0123"}`, ""},
		{"account created without its id", "POST", "/v3/partners/accounts", 201, `{}`, "account_id"},

		// Email Activity.
		{"activity list", "GET", "/v3/messages", 200, `{"messages":[{"from_email":"f@example.com","msg_id":"x.0","subject":"s","to_email":"t@example.com","status":"not_delivered","opens_count":0,"clicks_count":0,"last_event_time":"2026-12-07T02:11:40Z"}]}`, ""},
		{"activity list with a status SendGrid lacks", "GET", "/v3/messages", 200, `{"messages":[{"from_email":"f@example.com","msg_id":"x.0","subject":"s","to_email":"t@example.com","status":"blocked","opens_count":0,"clicks_count":0,"last_event_time":"2026-12-07T02:11:40Z"}]}`, "status"},
		{"activity list entry without its counts", "GET", "/v3/messages", 200, `{"messages":[{"from_email":"f@example.com","msg_id":"x.0","subject":"s","to_email":"t@example.com","status":"delivered","last_event_time":"2026-12-07T02:11:40Z"}]}`, "opens_count"},
		{"activity detail as served", "GET", "/v3/messages/x.0", 200, `{"from_email":"f@example.com","msg_id":"x.0","subject":"s","to_email":"t@example.com","status":"delivered","categories":[],"unique_args":"{}","events":[{"event_name":"processed","processed":"2026-12-07T02:11:39Z"},{"event_name":"bounced","processed":"2026-12-07T02:11:40Z","reason":"r","bounce_type":"soft","mx_server":"mx.example","sealpost":{"tls":false}}]}`, ""},
		{"activity detail without events", "GET", "/v3/messages/x.0", 200, `{"from_email":"f@example.com","msg_id":"x.0","subject":"s","to_email":"t@example.com","status":"delivered","categories":[],"unique_args":"{}"}`, "events"},
		{"activity event named as the webhook names it", "GET", "/v3/messages/x.0", 200, `{"from_email":"f@example.com","msg_id":"x.0","subject":"s","to_email":"t@example.com","status":"delivered","categories":[],"unique_args":"{}","events":[{"event_name":"bounce","processed":"2026-12-07T02:11:40Z"}]}`, "event_name"},
		{"activity bounce of a type SendGrid lacks", "GET", "/v3/messages/x.0", 200, `{"from_email":"f@example.com","msg_id":"x.0","subject":"s","to_email":"t@example.com","status":"delivered","categories":[],"unique_args":"{}","events":[{"event_name":"bounced","processed":"2026-12-07T02:11:40Z","bounce_type":"blocked"}]}`, "bounce_type"},
		{"activity message not found", "GET", "/v3/messages/x.0", 404, `{"errors":[{"field":"message_id","message":"not found"}]}`, ""},

		// Routes outside the implemented operations.
		{"unknown path, 404", "GET", "/v3/nowhere", 404, genericNotFound, ""},
		{"unknown path served", "GET", "/v3/nowhere", 200, `{}`, "not listed in conformance.Unspecified"},
		{"unknown path, 404 in another form", "GET", "/v3/nowhere", 404, `not found`, "not listed in conformance.Unspecified"},
		{"unknown method, 405", "PUT", "/v3/user/settings/enforced_tls", 405, `{"errors":[{"field":null,"message":"method not allowed"}]}`, ""},
		{"SendGrid operation not implemented, 404", "POST", "/v3/messages/download", 404, genericNotFound, ""},
		{"SendGrid operation served but not listed", "POST", "/v3/messages/download", 202, `{"status":"pending"}`, "not listed in conformance.Implemented"},
		{"id-less path that a parameter would match", "DELETE", "/v3/partners/accounts", 200, `{}`, "not listed"},
		{"sealpost's own route", "GET", "/healthz", 200, `{"status":"ok"}`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest(tc.method, tc.path, nil)
			h := http.Header{}
			if tc.body != "" {
				h.Set("Content-Type", "application/json")
			}
			err := c.Check(t.Context(), r, tc.status, h, []byte(tc.body))
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("%d %s: %v", tc.status, tc.body, err)
			case tc.wantErr != "" && err == nil:
				t.Errorf("%d %s passed, want an error about %s", tc.status, tc.body, tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Errorf("%d %s: %v, want an error about %s", tc.status, tc.body, err, tc.wantErr)
			}
		})
	}
}

// failureRecorder is a testing.TB that keeps its failures instead of
// failing the test.
type failureRecorder struct {
	testing.TB
	failures []string
}

func (f *failureRecorder) Helper() {}

func (f *failureRecorder) Errorf(format string, args ...any) {
	f.failures = append(f.failures, fmt.Sprintf(format, args...))
}

// TestMiddlewareFailsTheTest: a handler answering off the document fails
// the test whose request it answered.
func TestMiddlewareFailsTheTest(t *testing.T) {
	t.Parallel()
	rec := &failureRecorder{TB: t}
	h := Middleware(rec, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(`{"accounts":[{"account_id":"sg0123","created_at":1796603417}]}`))
	}))
	res := httptest.NewRecorder()
	h.ServeHTTP(res, httptest.NewRequest(http.MethodGet, "/v3/partners/accounts", nil))
	if len(rec.failures) != 1 || !strings.Contains(rec.failures[0], "GET /v3/partners/accounts") {
		t.Errorf("failures %q, want one about GET /v3/partners/accounts", rec.failures)
	}
	if res.Code != http.StatusOK || !strings.Contains(res.Body.String(), "sg0123") {
		t.Errorf("the response was not passed through: %d %s", res.Code, res.Body)
	}
}
