package httpapi

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sendgrid/sendgrid-go/helpers/eventwebhook"

	"github.com/sealpost/sealpost"
)

const (
	pathWebhook       = "/v3/user/webhooks/event/settings"
	pathWebhookSigned = "/v3/user/webhooks/event/settings/signed"
	pathWebhookTest   = "/v3/user/webhooks/event/test"
	wantWebhookOff    = `{"enabled":false,"url":"","group_resubscribe":false,"delivered":false,"group_unsubscribe":false,"spam_report":false,"bounce":false,"deferred":false,"unsubscribe":false,"processed":false,"open":false,"click":false,"dropped":false}`
	wantUnsigned      = `{"public_key":""}`
)

// ecdsaSigner is a WebhookSigner with the wire format SendGrid documents:
// ECDSA P-256 over SHA-256 of the timestamp followed by the body.
type ecdsaSigner struct {
	client *http.Client
}

func (ecdsaSigner) GenerateKey() ([]byte, string, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, "", err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, "", err
	}
	pub, err := publicKeyBase64(&k.PublicKey)
	return der, pub, err
}

func (ecdsaSigner) PublicKey(privatePKCS8 []byte) (string, error) {
	k, err := parseECDSA(privatePKCS8)
	if err != nil {
		return "", err
	}
	return publicKeyBase64(&k.PublicKey)
}

func (s ecdsaSigner) SendTest(ctx context.Context, url string, key []byte) (int, error) {
	body := []byte(`[{"email":"example@test.com","timestamp":1513299569,"event":"processed","sg_event_id":"test","sg_message_id":"test.0"}]`)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if key != nil {
		k, err := parseECDSA(key)
		if err != nil {
			return 0, err
		}
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		sum := sha256.Sum256(append([]byte(ts), body...))
		sig, err := ecdsa.SignASN1(rand.Reader, k, sum[:])
		if err != nil {
			return 0, err
		}
		req.Header.Set(eventwebhook.VerificationHTTPHeader, base64.StdEncoding.EncodeToString(sig))
		req.Header.Set(eventwebhook.TimestampHTTPHeader, ts)
	}
	res, err := s.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, res.Body)
	if res.StatusCode/100 != 2 {
		return res.StatusCode, fmt.Errorf("receiver answered %d", res.StatusCode)
	}
	return res.StatusCode, nil
}

func parseECDSA(der []byte) (*ecdsa.PrivateKey, error) {
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, err
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, errors.New("not an ECDSA key")
	}
	return ek, nil
}

func publicKeyBase64(pub *ecdsa.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(der), nil
}

func withSigner(c *Config) { c.Webhooks = ecdsaSigner{client: &http.Client{Timeout: 5 * time.Second}} }

// receiver is a webhook endpoint recording what it is sent.
type receiver struct {
	*httptest.Server
	status int

	mu    sync.Mutex
	posts []receivedPost
}

type receivedPost struct {
	header http.Header
	body   []byte
}

func newReceiver(t *testing.T, status int) *receiver {
	rc := &receiver{status: status}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.posts = append(rc.posts, receivedPost{header: r.Header.Clone(), body: b})
		rc.mu.Unlock()
		w.WriteHeader(rc.status)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) received() []receivedPost {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]receivedPost(nil), rc.posts...)
}

// webhookBody is the settings object with every boolean false but the named
// ones, as the API encodes it.
func webhookBody(enabled bool, url string, on ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `{"enabled":%t,"url":%q`, enabled, url)
	for _, k := range []string{"group_resubscribe", "delivered", "group_unsubscribe", "spam_report",
		"bounce", "deferred", "unsubscribe", "processed", "open", "click", "dropped"} {
		v := false
		for _, o := range on {
			if o == k {
				v = true
			}
		}
		fmt.Fprintf(&b, `,%q:%t`, k, v)
	}
	b.WriteString("}")
	return b.String()
}

func TestWebhookBodyHelper(t *testing.T) {
	t.Parallel()
	if got := webhookBody(false, ""); got != wantWebhookOff {
		t.Fatalf("webhookBody() = %s", got)
	}
}

func TestEventWebhookSettings(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		e := newEnv(t, open)
		a := e.user("owner")
		token := e.key(a)
		const hook = "https://hooks.example.com/sendgrid"

		steps := []struct {
			what   string
			method string
			body   string
			status int
			want   string
		}{
			{"defaults", http.MethodGet, "", http.StatusOK, wantWebhookOff},
			{"empty patch", http.MethodPatch, `{}`, http.StatusOK, wantWebhookOff},
			{"enable with url and kinds", http.MethodPatch, `{"enabled":true,"url":"` + hook + `","delivered":true,"bounce":true}`,
				http.StatusOK, webhookBody(true, hook, "delivered", "bounce")},
			{"merge keeps the rest", http.MethodPatch, `{"processed":true,"bounce":false,"unknown":[1]}`,
				http.StatusOK, webhookBody(true, hook, "delivered", "processed")},
			{"read back", http.MethodGet, "", http.StatusOK, webhookBody(true, hook, "delivered", "processed")},
			{"not JSON", http.MethodPatch, `{"enabled":`, http.StatusBadRequest,
				`{"errors":[{"field":null,"message":"request body is not valid JSON"}]}`},
			{"not an object", http.MethodPatch, `[true]`, http.StatusBadRequest,
				`{"errors":[{"field":null,"message":"request body must be a JSON object"}]}`},
			{"every wrong type", http.MethodPatch, `{"enabled":"yes","url":5,"delivered":null,"dropped":1}`, http.StatusBadRequest,
				`{"errors":[{"field":"enabled","message":"enabled must be a boolean"},{"field":"delivered","message":"delivered must be a boolean"},{"field":"dropped","message":"dropped must be a boolean"},{"field":"url","message":"url must be a string"}]}`},
			{"bad url", http.MethodPatch, `{"url":"ftp://example.com/x","open":true}`, http.StatusBadRequest,
				`{"errors":[{"field":"url","message":"url must be an absolute http or https URL"}]}`},
			{"relative url", http.MethodPatch, `{"url":"/hook"}`, http.StatusBadRequest,
				`{"errors":[{"field":"url","message":"url must be an absolute http or https URL"}]}`},
			{"enabled without url", http.MethodPatch, `{"url":""}`, http.StatusBadRequest,
				`{"errors":[{"field":"url","message":"url is required when the webhook is enabled"}]}`},
			{"nothing changed by the failures", http.MethodGet, "", http.StatusOK, webhookBody(true, hook, "delivered", "processed")},
			{"disable and clear the url", http.MethodPatch, `{"enabled":false,"url":""}`, http.StatusOK, webhookBody(false, "", "delivered", "processed")},
			{"enable with no url stored", http.MethodPatch, `{"enabled":true}`, http.StatusBadRequest,
				`{"errors":[{"field":"url","message":"url is required when the webhook is enabled"}]}`},
		}
		for _, st := range steps {
			e.do(request{method: st.method, path: pathWebhook, token: token, body: st.body}).want(t, st.what, st.status, st.want)
		}
		got, err := e.store.EventWebhookSettings(t.Context(), a.ID)
		if err != nil {
			t.Fatal(err)
		}
		if want := (sealpost.EventWebhookSettings{Delivered: true, Processed: true}); got != want {
			t.Errorf("stored %+v, want %+v", got, want)
		}
	})
}

func TestEventWebhookScopes(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		e := newEnv(t, open, withSigner)
		a := e.user("owner")
		readOnly := e.key(a, sealpost.ScopeEventWebhookRead)
		updateOnly := e.key(a, sealpost.ScopeEventWebhookUpdate)
		mailOnly := e.key(a, sealpost.ScopeMailSend)
		for _, tc := range []struct {
			what   string
			method string
			path   string
			token  string
			body   string
			status int
		}{
			{"GET settings with read", http.MethodGet, pathWebhook, readOnly, "", http.StatusOK},
			{"PATCH settings with read", http.MethodPatch, pathWebhook, readOnly, `{}`, http.StatusForbidden},
			{"GET settings with update", http.MethodGet, pathWebhook, updateOnly, "", http.StatusForbidden},
			{"PATCH settings with update", http.MethodPatch, pathWebhook, updateOnly, `{}`, http.StatusOK},
			{"GET signed with read", http.MethodGet, pathWebhookSigned, readOnly, "", http.StatusOK},
			{"PATCH signed with read", http.MethodPatch, pathWebhookSigned, readOnly, `{"enabled":false}`, http.StatusForbidden},
			{"GET signed with update", http.MethodGet, pathWebhookSigned, updateOnly, "", http.StatusForbidden},
			{"PATCH signed with update", http.MethodPatch, pathWebhookSigned, updateOnly, `{"enabled":false}`, http.StatusOK},
			{"test with update", http.MethodPost, pathWebhookTest, updateOnly, `{"url":"http://127.0.0.1:1/"}`, http.StatusForbidden},
			{"settings with mail.send", http.MethodGet, pathWebhook, mailOnly, "", http.StatusForbidden},
			{"no key", http.MethodGet, pathWebhook, "", "", http.StatusUnauthorized},
			{"bad key", http.MethodGet, pathWebhookSigned, "SG.nope.nope", "", http.StatusUnauthorized},
		} {
			want := ""
			switch tc.status {
			case http.StatusForbidden:
				want = wantForbidden
			case http.StatusUnauthorized:
				want = wantUnauthorized
			}
			e.do(request{method: tc.method, path: tc.path, token: tc.token, body: tc.body}).want(t, tc.what, tc.status, want)
		}
	})
}

func TestEventWebhookPerAccount(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		e := newEnv(t, open, withSigner)
		p := e.user("parent")
		child := e.subuser(p, "child")
		cust := e.customer(p)
		other := e.user("other")
		parentKey := e.key(p)
		childKey := e.key(child)
		otherKey := e.key(other)
		const hook = "https://example.com/child"

		e.do(request{method: http.MethodPatch, path: pathWebhook, token: parentKey, obo: "child", body: `{"enabled":true,"url":"` + hook + `","dropped":true}`}).
			want(t, "PATCH on behalf of the subuser", http.StatusOK, webhookBody(true, hook, "dropped"))
		e.do(request{method: http.MethodGet, path: pathWebhook, token: childKey}).
			want(t, "subuser's own view", http.StatusOK, webhookBody(true, hook, "dropped"))
		e.do(request{method: http.MethodGet, path: pathWebhook, token: parentKey}).want(t, "parent untouched", http.StatusOK, wantWebhookOff)
		e.do(request{method: http.MethodGet, path: pathWebhook, token: otherKey}).want(t, "other user untouched", http.StatusOK, wantWebhookOff)
		e.do(request{method: http.MethodGet, path: pathWebhook, token: parentKey, obo: "account-id " + cust.PublicID}).
			want(t, "customer untouched", http.StatusOK, wantWebhookOff)
		e.do(request{method: http.MethodGet, path: pathWebhook, token: otherKey, obo: "child"}).
			want(t, "another parent's on-behalf-of", http.StatusNotFound, wantOBONotFound)
		e.do(request{method: http.MethodPatch, path: pathWebhook, token: childKey, obo: "child", body: `{}`}).
			want(t, "subuser key with on-behalf-of", http.StatusForbidden, wantForbidden)

		res := e.do(request{method: http.MethodPatch, path: pathWebhookSigned, token: parentKey, obo: "account-id " + cust.PublicID, body: `{"enabled":true}`})
		if res.status != http.StatusOK || res.body == wantUnsigned {
			t.Fatalf("signing on for the customer: %d %s", res.status, res.body)
		}
		e.do(request{method: http.MethodGet, path: pathWebhookSigned, token: parentKey}).want(t, "parent unsigned", http.StatusOK, wantUnsigned)
		e.do(request{method: http.MethodGet, path: pathWebhookSigned, token: childKey}).want(t, "subuser unsigned", http.StatusOK, wantUnsigned)
		e.do(request{method: http.MethodGet, path: pathWebhookSigned, token: parentKey, obo: "account-id " + cust.PublicID}).
			want(t, "customer signed", http.StatusOK, res.body)
	})
}

func TestSignedEventWebhook(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		e := newEnv(t, open, withSigner)
		a := e.user("owner")
		token := e.key(a)
		patch := func(body string) response {
			return e.do(request{method: http.MethodPatch, path: pathWebhookSigned, token: token, body: body})
		}
		get := func() response { return e.do(request{method: http.MethodGet, path: pathWebhookSigned, token: token}) }
		publicKey := func(what string, res response) string {
			t.Helper()
			var out struct {
				PublicKey *string `json:"public_key"`
			}
			if res.status != http.StatusOK || json.Unmarshal([]byte(res.body), &out) != nil || out.PublicKey == nil {
				t.Fatalf("%s: %d %s", what, res.status, res.body)
			}
			if *out.PublicKey != "" {
				if _, err := eventwebhook.ConvertPublicKeyBase64ToECDSA(*out.PublicKey); err != nil {
					t.Fatalf("%s: public key %q: %v", what, *out.PublicKey, err)
				}
			}
			return *out.PublicKey
		}

		get().want(t, "default", http.StatusOK, wantUnsigned)
		for _, tc := range []struct{ body, want string }{
			{`{}`, `{"errors":[{"field":"enabled","message":"enabled is required"}]}`},
			{`{"enabled":"true"}`, `{"errors":[{"field":"enabled","message":"enabled must be a boolean"}]}`},
			{`{"enabled":null}`, `{"errors":[{"field":"enabled","message":"enabled must be a boolean"}]}`},
			{`[]`, `{"errors":[{"field":null,"message":"request body must be a JSON object"}]}`},
			{`{`, `{"errors":[{"field":null,"message":"request body is not valid JSON"}]}`},
		} {
			patch(tc.body).want(t, "PATCH "+tc.body, http.StatusBadRequest, tc.want)
		}
		get().want(t, "still unsigned after bad patches", http.StatusOK, wantUnsigned)

		first := publicKey("enable", patch(`{"enabled":true}`))
		if first == "" {
			t.Fatal("enabling returned no public key")
		}
		stored, err := e.store.EventWebhookSigningKey(t.Context(), a.ID)
		if err != nil || stored == nil {
			t.Fatalf("stored key %x, %v", stored, err)
		}
		if again := publicKey("enable twice", patch(`{"enabled":true}`)); again != first {
			t.Errorf("enabling twice changed the key: %s, then %s", first, again)
		}
		if got := publicKey("GET enabled", get()); got != first {
			t.Errorf("GET %s, want %s", got, first)
		}
		if off := publicKey("disable", patch(`{"enabled":false}`)); off != "" {
			t.Errorf("disabling answered %q", off)
		}
		if stored, err := e.store.EventWebhookSigningKey(t.Context(), a.ID); err != nil || stored != nil {
			t.Errorf("stored key after disabling: %x, %v", stored, err)
		}
		get().want(t, "GET disabled", http.StatusOK, wantUnsigned)
		if fresh := publicKey("re-enable", patch(`{"enabled":true}`)); fresh == "" || fresh == first {
			t.Errorf("re-enabling after disabling answered %q (first key %q)", fresh, first)
		}
	})
}

func TestEventWebhookTest(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		e := newEnv(t, open, withSigner)
		p := e.user("parent")
		e.subuser(p, "child")
		token := e.key(p)
		ok := newReceiver(t, http.StatusOK)
		failing := newReceiver(t, http.StatusInternalServerError)
		testHook := func(obo, body string) response {
			return e.do(request{method: http.MethodPost, path: pathWebhookTest, token: token, obo: obo, body: body})
		}
		urlBody := func(u string) string { return `{"url":"` + u + `"}` }
		const failed = `{"errors":[{"field":"url","message":"the test post to url failed"}]}`

		testHook("", urlBody(ok.URL+"/hook")).want(t, "unsigned test", http.StatusNoContent, "")
		posts := ok.received()
		if len(posts) != 1 || !json.Valid(posts[0].body) || posts[0].header.Get(eventwebhook.VerificationHTTPHeader) != "" {
			t.Fatalf("receiver got %d posts: %+v", len(posts), posts)
		}

		res := e.do(request{method: http.MethodPatch, path: pathWebhookSigned, token: token, obo: "child", body: `{"enabled":true}`})
		var signed struct {
			PublicKey string `json:"public_key"`
		}
		if err := json.Unmarshal([]byte(res.body), &signed); err != nil || signed.PublicKey == "" {
			t.Fatalf("enabling signing: %d %s", res.status, res.body)
		}
		testHook("child", urlBody(ok.URL+"/hook")).want(t, "signed test on behalf of the subuser", http.StatusNoContent, "")
		posts = ok.received()
		if len(posts) != 2 {
			t.Fatalf("receiver got %d posts", len(posts))
		}
		pub, err := eventwebhook.ConvertPublicKeyBase64ToECDSA(signed.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		h := posts[1].header
		if ok, err := eventwebhook.VerifySignature(pub, posts[1].body, h.Get(eventwebhook.VerificationHTTPHeader), h.Get(eventwebhook.TimestampHTTPHeader)); !ok || err != nil {
			t.Errorf("signature of the subuser's test post does not verify with its public key: %v", err)
		}
		testHook("", urlBody(ok.URL)).want(t, "parent's test stays unsigned", http.StatusNoContent, "")
		if posts = ok.received(); len(posts) != 3 || posts[2].header.Get(eventwebhook.VerificationHTTPHeader) != "" {
			t.Errorf("parent's test post: %+v", posts)
		}

		testHook("", urlBody(failing.URL)).want(t, "receiver fails", http.StatusBadRequest, failed)
		if n := len(failing.received()); n != 1 {
			t.Errorf("failing receiver got %d posts", n)
		}
		closed := httptest.NewServer(http.NotFoundHandler())
		closed.Close()
		testHook("", urlBody(closed.URL)).want(t, "nobody listening", http.StatusBadRequest, failed)

		for _, tc := range []struct{ body, want string }{
			{`{}`, `{"errors":[{"field":"url","message":"url is required"}]}`},
			{`{"url":""}`, `{"errors":[{"field":"url","message":"url is required"}]}`},
			{`{"url":7}`, `{"errors":[{"field":"url","message":"url must be a string"}]}`},
			{`{"url":"mailto:x@example.com"}`, `{"errors":[{"field":"url","message":"url must be an absolute http or https URL"}]}`},
			{`"x"`, `{"errors":[{"field":null,"message":"request body must be a JSON object"}]}`},
		} {
			testHook("", tc.body).want(t, "test "+tc.body, http.StatusBadRequest, tc.want)
		}
		if n := len(ok.received()); n != 3 {
			t.Errorf("invalid requests reached the receiver: %d posts", n)
		}
	})
}

// TestEventWebhookWithoutSigner: a server built without a WebhookSigner
// still serves the settings and refuses only what needs signing or posting.
func TestEventWebhookWithoutSigner(t *testing.T) {
	t.Parallel()
	e := newEnv(t, openSQLite)
	token := e.key(e.user("owner"))
	e.do(request{method: http.MethodGet, path: pathWebhookSigned, token: token}).want(t, "GET signed", http.StatusOK, wantUnsigned)
	e.do(request{method: http.MethodPatch, path: pathWebhookSigned, token: token, body: `{"enabled":false}`}).
		want(t, "disable", http.StatusOK, wantUnsigned)
	e.do(request{method: http.MethodPatch, path: pathWebhookSigned, token: token, body: `{"enabled":true}`}).
		want(t, "enable", http.StatusInternalServerError, wantInternal)
	e.do(request{method: http.MethodPost, path: pathWebhookTest, token: token, body: `{"url":"http://127.0.0.1:1/"}`}).
		want(t, "test", http.StatusInternalServerError, wantInternal)
}

func TestNewRoutesMethods(t *testing.T) {
	t.Parallel()
	e := newEnv(t, openSQLite)
	for _, tc := range []struct{ method, path, allow string }{
		{http.MethodGet, pathMailSend, "POST"},
		{http.MethodPut, pathMailSend, "POST"},
		{http.MethodPost, pathWebhook, "GET, PATCH"},
		{http.MethodDelete, pathWebhookSigned, "GET, PATCH"},
		{http.MethodGet, pathWebhookTest, "POST"},
	} {
		res := e.do(request{method: tc.method, path: tc.path})
		res.want(t, tc.method+" "+tc.path, http.StatusMethodNotAllowed, wantMethod)
		if got := res.header.Get("Allow"); got != tc.allow {
			t.Errorf("%s %s: Allow %q, want %q", tc.method, tc.path, got, tc.allow)
		}
	}
	e.do(request{method: http.MethodPost, path: pathMailSend + "/"}).want(t, "trailing slash", http.StatusNotFound, wantNotFound)
}
