package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sealpost/sealpost"
	"github.com/sealpost/sealpost/postgres/pgtest"
)

// serveRaw sends one request built by the caller's header function, for
// fuzzers that need headers do() does not make.
func (e *env) serveRaw(t testing.TB, method, path, body string, header func(http.Header)) (int, string) {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, r)
	header(req.Header)
	rec := httptest.NewRecorder()
	e.serve(t, rec, req)
	return rec.Code, rec.Body.String()
}

// fuzzStore is PostgreSQL when the environment offers it, since it is the
// stricter of the two about the bytes it accepts, and SQLite otherwise.
func fuzzStore() func(testing.TB) sealpost.Store {
	if os.Getenv(pgtest.EnvVar) != "" {
		return openPostgres
	}
	return openSQLite
}

// noRateLimit keeps long fuzzing runs clear of the test limiter.
func noRateLimit(c *Config) { c.RateLimiter = nil }

// checkErrorBody fails unless body is a SendGrid error body: an object
// holding only a non-empty "errors" array of entries with a string
// "message" and a "field" that is a string or null (absent only in the
// fixed 500 body, which no fuzzer accepts).
func checkErrorBody(t *testing.T, status int, body string) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	var eb struct {
		Errors []struct {
			Field   *string `json:"field"`
			Message *string `json:"message"`
			// The Account Provisioning API's errors carry one.
			ErrorID *string `json:"error_id"`
		} `json:"errors"`
	}
	if err := dec.Decode(&eb); err != nil || dec.More() || len(eb.Errors) == 0 || !utf8.ValidString(body) {
		t.Fatalf("%d body is not a SendGrid error body (%v): %s", status, err, body)
	}
	for _, e := range eb.Errors {
		if e.Message == nil || *e.Message == "" || !strings.Contains(body, `"field":`) {
			t.Fatalf("%d error entry without field or message: %s", status, body)
		}
	}
}

func FuzzEnforcedTLSPatch(f *testing.F) {
	for _, seed := range []string{
		// Every example of api.md: the response object sent back as a
		// patch, pretty-printed as SendGrid's docs show it, {} as the
		// no-op, StrongGrid's two booleans, a Go client's omitempty.
		`{"require_tls":false,"require_valid_cert":false,"version":1.1}`,
		"{\n  \"require_tls\": true,\n  \"require_valid_cert\": false,\n  \"version\": 1.1\n}",
		`{"require_tls":true,"require_valid_cert":true}`,
		`{"require_tls":false,"require_valid_cert":false}`,
		`{"require_tls":true}`,
		`{"version":1.3}`,
		`{"require_valid_cert":false}`,
		`{"require_tls":true,"unknown":1}`,
		`{"version":1.1,"require_tls":true,"extra":{"a":[null,true,"x"]}}`,
		`{"require_tls":1}`, `{"require_valid_cert":"true"}`, `{"version":[1.2]}`, `{"version":{}}`,
		`{"version":1.2e0}`, `{"version":120e-2}`, `{"version":-1.2}`, `{"version":1.20000000000000000001}`,
		`{"version":1e400}`, `{"version":1.1,"version":1.2}`, `{"require_tls":true}{"require_tls":false}`,
		`{"require_tls":true} `, ` {"require_tls":true}`, "{\"require_tls\":true}\x00",
		"{\"x\u0000\":true,\"require_tls\":true}", `{"\u0072equire_tls":true}`, `{"REQUIRE_TLS":true}`,
		strings.Repeat("[", 100000) + strings.Repeat("]", 100000),
		`{"x":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `,"require_tls":true}`,
		`{"require_tls":true,"require_valid_cert":true,"version":1.3}`,
		`{"require_tls":true,"require_valid_cert":false}`,
		`{"require_valid_cert":true}`,
		`{"version":1.2}`,
		`{}`,
		`{"version":"1.2"}`,
		`{"require_tls":"yes"}`,
		`{"require_tls":null}`,
		`{"version":null}`,
		`{"version":1.0}`,
		`{"version":1.4}`,
		`{"version":2}`,
		`{"version":1.10}`,
		`{"version":11e-1}`,
		`[]`, `"x"`, `1`, `null`, ``, `not json`, `{"require_tls":true`,
		`{"require_tls":true,"require_tls":"no"}`,
		`{"unknown":{"deep":[1,2,{"x":null}]}}`,
		"{\"version\":1.2,\"x\":\"\xff\"}",
	} {
		f.Add(seed)
	}
	e := newEnv(f, fuzzStore(), noRateLimit)
	acct := e.user("fuzz")
	token := e.key(acct)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, body string) {
		before, err := e.store.EnforcedTLS(ctx, acct.ID)
		if err != nil {
			t.Fatal(err)
		}
		status, got := e.serveRaw(t, http.MethodPatch, pathTLS, body, func(h http.Header) {
			h.Set("Authorization", "Bearer "+token)
		})
		after, err := e.store.EnforcedTLS(ctx, acct.ID)
		if err != nil {
			t.Fatal(err)
		}
		switch status {
		case http.StatusOK:
			// The response is the stored setting, and it is what the
			// parser says the patch makes of the previous one.
			if got != settingJSON(after) {
				t.Fatalf("200 body %s, stored %+v", got, after)
			}
			patch, err := parseEnforcedTLSPatch([]byte(body))
			if err != nil {
				t.Fatalf("200 for a body the parser rejects (%v): %q", err, body)
			}
			if !utf8.ValidString(body) {
				t.Fatalf("200 for a body that is not UTF-8: %q", body)
			}
			if want := patch.Apply(before); after != want {
				t.Fatalf("stored %+v, want %+v for %q", after, want, body)
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			if after != before {
				t.Fatalf("%d changed the setting from %+v to %+v for %q", status, before, after, body)
			}
			checkErrorBody(t, status, got)
		default:
			t.Fatalf("status %d (%s) for %q", status, got, body)
		}
	})
}

func FuzzOnBehalfOf(f *testing.F) {
	e := newEnv(f, fuzzStore(), noRateLimit)
	p := e.user("parent")
	child := e.subuser(p, "child")
	cust := e.customer(p)
	other := e.user("other")
	e.subuser(other, "stranger")
	e.customer(other)
	parentKey := e.key(p)
	childKey := e.key(child)
	ctx := context.Background()
	if _, err := e.store.UpdateEnforcedTLS(ctx, child.ID, sealpost.EnforcedTLSPatch{RequireTLS: new(true)}); err != nil {
		f.Fatal(err)
	}
	if _, err := e.store.UpdateEnforcedTLS(ctx, cust.ID, sealpost.EnforcedTLSPatch{Version: new(sealpost.TLS13)}); err != nil {
		f.Fatal(err)
	}
	childBody := settingJSON(e.setting(child))
	custBody := settingJSON(e.setting(cust))
	for _, seed := range []string{
		"", "child", "stranger", "parent", "other", "account-id " + cust.PublicID, "ACCOUNT-ID\t" + cust.PublicID,
		"account-id", "account-id ", "account-idx", "account-id stranger", cust.PublicID, " child ", "child\x00",
		strings.Repeat("a", 300), "\xff\xfe", "account-id sg000000000000000000000000",
		// api.md's and SendGrid's page's placeholders, taken literally.
		"<subuser-username>", "account-id <account-id>", "account-id " + cust.PublicID + " ", "account-id  " + cust.PublicID,
		"child\r\nX-Injected: 1", "account-id " + cust.PublicID + "\x00", "Child", "CHILD", "child,child", "account-id child",
		"account-id " + strings.ToUpper(cust.PublicID), "%63hild", "\u0063hild", "child\t", "\tchild",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, value string) {
		status, body := e.serveRaw(t, http.MethodGet, pathTLS, "", func(h http.Header) {
			h.Set("Authorization", "Bearer "+parentKey)
			h["On-Behalf-Of"] = []string{value}
		})
		switch status {
		case http.StatusOK:
			// Only the parent's own children, or no header at all.
			if body != childBody && body != custBody && !(value == "" && body == wantDefaultTLS) {
				t.Fatalf("200 %s for on-behalf-of %q", body, value)
			}
		case http.StatusBadRequest:
			checkErrorBody(t, status, body)
			if !strings.Contains(body, `"field":"on-behalf-of"`) {
				t.Fatalf("400 %s for on-behalf-of %q", body, value)
			}
		case http.StatusNotFound:
			if body != wantOBONotFound {
				t.Fatalf("404 %s for on-behalf-of %q", body, value)
			}
		default:
			t.Fatalf("status %d (%s) for on-behalf-of %q", status, body, value)
		}

		status, body = e.serveRaw(t, http.MethodGet, pathTLS, "", func(h http.Header) {
			h.Set("Authorization", "Bearer "+childKey)
			h["On-Behalf-Of"] = []string{value}
		})
		wantStatus, wantBody := http.StatusForbidden, wantForbidden
		if value == "" {
			wantStatus, wantBody = http.StatusOK, childBody
		}
		if status != wantStatus || body != wantBody {
			t.Fatalf("subuser key, on-behalf-of %q: %d %s, want %d %s", value, status, body, wantStatus, wantBody)
		}
	})
}

func FuzzAuthorization(f *testing.F) {
	e := newEnv(f, fuzzStore(), noRateLimit)
	acct := e.user("owner")
	token := e.key(acct)
	id, secret, _ := sealpost.ParseToken(token)
	for _, seed := range []string{
		"", "Bearer " + token, "bearer " + token, "Bearer  " + token + " ", "Basic " + token, token,
		"Bearer SG." + id + "." + secret + "x", "Bearer SG." + id + ".", "Bearer SG.." + secret, "Bearer SG",
		"Bearer SG." + id + "." + secret + ".x", "Bearer " + strings.Repeat("SG.", 100), "Bearer\t" + token, "\x00",
		// api.md's form and SendGrid's page's default, taken literally.
		"Bearer <api key>", "Bearer <<YOUR_API_KEY_HERE>>", "Bearer SG.<id>.<secret>",
		"Bearer " + token + "\r\nX-Injected: 1", "Bearer " + token + "\x00", "Bearer " + strings.ToLower(token),
		"Bearer sg." + id + "." + secret, "Bearer SG." + id + "." + strings.ToUpper(secret), "Bearer SG." + strings.ToUpper(id) + "." + secret,
		"Bearer " + id + "." + secret, "Bearer SG." + secret + "." + id, "BEARER " + token, token + " Bearer",
		"Bearer " + token + "," + token, "Bearer " + strings.Repeat("x", 70000),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, auth string) {
		status, body := e.serveRaw(t, http.MethodGet, pathTLS, "", func(h http.Header) {
			h["Authorization"] = []string{auth}
		})
		switch {
		case status == http.StatusOK && body == wantDefaultTLS:
			// Only a header that carries the real secret may get in.
			if !strings.Contains(auth, secret) || !strings.Contains(auth, id) {
				t.Fatalf("200 for Authorization %q", auth)
			}
		case status == http.StatusUnauthorized && body == wantUnauthorized:
		default:
			t.Fatalf("Authorization %q: %d %s", auth, status, body)
		}
	})
}

func FuzzMailSend(f *testing.F) {
	for _, seed := range []string{
		// SendGrid's documented examples.
		`{"personalizations":[{"to":[{"email":"john.doe@example.com","name":"John Doe"}],"subject":"Hello, World!"}],"content":[{"type":"text/plain","value":"Heya!"}],"from":{"email":"sam.smith@example.com","name":"Sam Smith"},"reply_to":{"email":"sam.smith@example.com","name":"Sam Smith"}}`,
		`{"personalizations":[{"to":[{"email":"a@example.com"}],"cc":[{"email":"c@example.com"}],"bcc":[{"email":"b@example.com"}],"custom_args":{"k":"p"}}],"from":{"email":"s@example.com"},"subject":"s","content":[{"type":"text/plain","value":"x"},{"type":"text/html","value":"<p>x</p>"}],"categories":["one","two"],"custom_args":{"k":"v","n":"1"}}`,
		`{"personalizations":[{"to":[{"email":"a@example.com"}]},{"to":[{"email":"b@example.net"}],"subject":"own"}],"from":{"email":"s@example.com"},"subject":"top","content":[{"type":"text/plain","value":"x"}]}`,
		`{"personalizations":[{"to":[{"email":"a@example.com"}],"dynamic_template_data":{"x":1}}],"from":{"email":"s@example.com"},"template_id":"d-0123456789abcdef0123456789abcdef"}`,
		mailTwoPersonalizations,
		// SendGrid's kitchen-sink example, and the official Go client's shape.
		`{"personalizations":[{"to":[{"email":"john_doe@example.com","name":"John Doe"},{"email":"julia_doe@example.com","name":"Julia Doe"}],"cc":[{"email":"jane_doe@example.com","name":"Jane Doe"}],"bcc":[{"email":"james_doe@example.com","name":"Jim Doe"}]},{"from":{"email":"sales@example.com","name":"Example Sales Team"},"to":[{"email":"janice_doe@example.com","name":"Janice Doe"}],"bcc":[{"email":"jordan_doe@example.com","name":"Jordan Doe"}]}],"from":{"email":"orders@example.com","name":"Example Order Confirmation"},"reply_to":{"email":"customer_service@example.com","name":"Example Customer Service Team"},"subject":"Your Example Order Confirmation","content":[{"type":"text/plain","value":"Thank you for your order."},{"type":"text/html","value":"<p>Hello from Twilio SendGrid!</p><p>%open-track%</p>"}],"categories":["cake","pie","baking"],"send_at":1617260400,"batch_id":"AsdFgHjklQweRTYuIopzXcVBNm0aSDfGHjklmZcVbNMqWert1znmOP2asDFjkl","asm":{"group_id":12345,"groups_to_display":[12345]},"ip_pool_name":"transactional email","mail_settings":{"bypass_list_management":{"enable":false},"footer":{"enable":false},"sandbox_mode":{"enable":false}},"tracking_settings":{"click_tracking":{"enable":true,"enable_text":false},"open_tracking":{"enable":true,"substitution_tag":"%open-track%"},"subscription_tracking":{"enable":false}},"headers":{"X-Campaign":"spring"},"custom_args":{"order":"1"}}`,
		`{"from":{"name":"Example User","email":"test@example.com"},"subject":"Sending with Twilio SendGrid is Fun","personalizations":[{"to":[{"name":"Example User","email":"test@example.com"}]}],"content":[{"type":"text/plain","value":"and easy to do anywhere, even with Go"},{"type":"text/html","value":"<strong>and easy to do anywhere, even with Go</strong>"}]}`,
		`{"personalizations":[{"to":[{"email":"a@example.com"}]}],"from":{"email":"s@example.com"},"subject":"s","content":[{"type":"text/plain","value":"p"}],"mail_settings":{"sandbox_mode":{"enable":true}}}`,
		// Header injection in every place a header is made from.
		`{"personalizations":[{"to":[{"email":"a@example.com","name":"A\r\nBcc: x@example.net"}],"headers":{"X-A":"v\r\nX-Evil: 1"},"custom_args":{"k\r\n":"v\n"}}],"from":{"email":"s@example.com","name":"S\nX-Evil: 1"},"reply_to":{"email":"r@example.com\r\nX-Evil: 1"},"subject":"s","content":[{"type":"text/plain","value":"p"}],"categories":["c\r\nX-Evil: 1"],"headers":{"X-B\r\nX-Evil":"1"}}`,
		`{"personalizations":[{"to":[{"email":"a@example.com>\r\nRCPT TO:<evil@example.net"}]}],"from":{"email":"s@example.com>\r\nRCPT TO:<evil@example.net"},"subject":"s","content":[{"type":"text/plain","value":"p"}]}`,
		// What PostgreSQL cannot store: NUL in custom args and categories.
		`{"personalizations":[{"to":[{"email":"a@example.com"}],"custom_args":{"k":"v\u0000"}}],"from":{"email":"s@example.com"},"subject":"s","content":[{"type":"text/plain","value":"p\u0000"}],"categories":["c\u0000"],"custom_args":{"\u0000":"v"}}`,
		// Type, number and nesting oddities.
		`{"personalizations":[{"to":[{"email":"a@example.com"}]}],"from":{"email":"s@example.com"},"subject":"s","content":[{"type":"text/plain","value":"p"}],"send_at":1e400}`,
		`{"personalizations":[{"to":[{"email":"a@example.com"}]}],"from":{"email":"s@example.com"},"subject":"s","content":[{"type":"text/plain","value":"p"}],"send_at":-1}`,
		`{"personalizations":[{"to":[{"email":"a@example.com"}]}],"from":{"email":"s@example.com"},"subject":"s","subject":["dup"],"content":[{"type":"text/plain","value":"p"}]}`,
		`{"personalizations":[{"to":[{"email":"a@example.com"}]}],"from":{"email":"s@example.com"},"subject":"s","content":[{"type":"text/plain","value":"p"}],"custom_args":{"n":1}}`,
		`{"personalizations":[{"to":[{"email":"a@example.com"}]}],"from":{"email":"s@example.com"},"subject":"s","content":[{"type":"text/plain","value":"p"}],"x":` + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + `}`,
		strings.Repeat("[", 100000) + strings.Repeat("]", 100000),
		// Attachments: SendGrid's example, the official clients' shapes
		// (Go's NewAttachment, Node's contentId), an inline image, a
		// non-ASCII file name, and refusals of each field.
		`{"personalizations":[{"to":[{"email":"a@example.com"}]}],"from":{"email":"s@example.com"},"subject":"s","content":[{"type":"text/html","value":"<p>x</p>"}],"attachments":[{"content":"PCFET0NUWVBFIGh0bWw+Cg==","filename":"index.html","type":"text/html","disposition":"attachment"}]}`,
		`{"personalizations":[{"to":[{"email":"a@example.com"}]},{"to":[{"email":"b@example.com"}]}],"from":{"email":"s@example.com"},"subject":"s","content":[{"type":"text/plain","value":"p"},{"type":"text/html","value":"<img src=\"cid:logo\">"}],"attachments":[{"content":"AAEC/f7/","type":"application/octet-stream","filename":"Übersicht 報告.bin"},{"content":"iVBORw0KGgo=","type":"image/png","filename":"logo.png","disposition":"inline","content_id":"logo"}]}`,
		`{"personalizations":[{"to":[{"email":"a@example.com"}]}],"from":{"email":"s@example.com"},"subject":"s","content":[{"type":"text/plain","value":"p"}],"attachments":[{"content":"aGVs\nbG8=","filename":"a;b\r\nX: 1","type":"text/plain; x=1","disposition":"Inline","content_id":"<a b>"},{"disposition":"inline"},"x",{"content":5,"filename":[],"type":{},"content_id":null}]}`,
		`{"personalizations":[{"to":[{"email":"a@example.com"}]}],"from":{"email":"s@example.com"},"subject":"s","content":[{"type":"text/plain","value":"p"}],"attachments":{"content":"eA==","filename":"x"}}`,
		// Refusals.
		`{}`, `[]`, `null`, ``, `{"personalizations":`, `{"personalizations":[]}`, `{"personalizations":[{}]}`,
		`{"personalizations":[{"to":[]}],"from":{"email":"x"},"content":[]}`,
		`{"personalizations":[{"to":[{"email":"a@example.com"}]}],"from":{"email":"s@example.com"},"subject":"s","content":[{"type":"text/html","value":"h"},{"type":"text/plain","value":"p"}]}`,
		`{"personalizations":[{"to":[{"email":"a@example.com"}]}],"from":{"email":"s@example.com"},"subject":"s","content":[{"type":"text/plain","value":"p"}],"categories":["1","2","3","4","5","6","7","8","9","10","11"]}`,
		`{"personalizations":"x","from":"y","subject":1,"content":{}}`,
		`{"personalizations":[{"to":[{"email":"a@example.com\r\nBcc: evil@example.com"}]}],"from":{"email":"s@example.com"},"subject":"s\r\nX-Evil: 1","content":[{"type":"text/plain","value":"p"}]}`,
		"{\"personalizations\":[{\"to\":[{\"email\":\"a@example.com\"}]}],\"from\":{\"email\":\"s@example.com\"},\"subject\":\"\xff\",\"content\":[{\"type\":\"text/plain\",\"value\":\"\x00\"}]}",
	} {
		f.Add(seed)
	}
	const maxFuzzMail = 1 << 20
	e := newEnv(f, fuzzStore(), noRateLimit, func(c *Config) { c.MaxMailBytes = maxFuzzMail })
	acct := e.user("fuzz")
	token := e.key(acct, sealpost.ScopeMailSend)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest(http.MethodPost, "/v3/mail/send", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		e.serve(t, rec, req)
		// The domain decides what is acceptable: the parser, then the
		// rendering of each personalization.
		ms, rejected := ParseMailSend([]byte(body))
		if rejected == nil {
			rejected = ms.CheckSchedule(time.Now())
		}
		if rejected == nil && ms.BatchID != "" {
			// The fuzzing account never created a batch.
			rejected = errors.New("unknown batch id")
		}
		if rejected == nil {
			_, rejected = ms.Messages(acct.ID, "fuzzfuzzfuzzfuzzfuzzfu", time.Now(), "localhost")
		}
		id := rec.Header().Get("X-Message-Id")
		switch rec.Code {
		case http.StatusAccepted:
			if rejected != nil {
				t.Fatalf("202 for a body the domain rejects (%v): %q", rejected, body)
			}
			if rec.Body.Len() != 0 || len(id) != 22 {
				t.Fatalf("202 with body %q, X-Message-Id %q", rec.Body, id)
			}
			rs, err := e.store.RecipientStates(ctx, acct.ID, id)
			if err != nil || len(rs) == 0 {
				t.Fatalf("202 %s but stored %v, %v for %q", id, rs, err, body)
			}
		case http.StatusBadRequest:
			if rejected == nil {
				t.Fatalf("400 %s for a body the domain accepts: %q", rec.Body, body)
			}
			if id != "" {
				t.Fatalf("400 with X-Message-Id %q, body %s", id, rec.Body)
			}
			checkErrorBody(t, rec.Code, rec.Body.String())
		case http.StatusOK:
			// A sandbox send: validated, neither stored nor answered with an id.
			if rejected != nil || !ms.SandboxMode || rec.Body.Len() != 0 || id != "" {
				t.Fatalf("200 %q, X-Message-Id %q, for %q (domain: %v)", rec.Body, id, body, rejected)
			}
		case http.StatusRequestEntityTooLarge:
			if len(body) <= maxFuzzMail || rec.Body.String() != wantTooLarge {
				t.Fatalf("413 %s for %d bytes", rec.Body, len(body))
			}
		default:
			t.Fatalf("status %d (%s) for %q", rec.Code, rec.Body, body)
		}
	})
}
