package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sendgrid/sendgrid-go"
	"github.com/sendgrid/sendgrid-go/helpers/mail"

	"github.com/sealpost/sealpost"
)

const (
	pathMailSend    = "/v3/mail/send"
	headerMessageID = "X-Message-Id"
	// mailTwoPersonalizations has four recipients in two messages.
	mailTwoPersonalizations = `{"personalizations":[` +
		`{"to":[{"email":"alice@example.com","name":"Alice"}],"cc":[{"email":"carol@example.org"}]},` +
		`{"to":[{"email":"bob@example.net"}],"bcc":[{"email":"dave@example.com"}],"custom_args":{"n":"2"}}],` +
		`"from":{"email":"sender@example.com","name":"Sender"},"subject":"Hello",` +
		`"content":[{"type":"text/plain","value":"Hi"},{"type":"text/html","value":"<p>Hi</p>"}],` +
		`"categories":["cat facts"],"custom_args":{"k":"v"}}`
)

var mailTwoPersonalizationsRcpts = []string{"alice@example.com", "bob@example.net", "carol@example.org", "dave@example.com"}

var xMessageIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{22}$`)

func simpleMail(to string) string {
	return `{"personalizations":[{"to":[{"email":"` + to + `"}]}],"from":{"email":"sender@example.com"},` +
		`"subject":"s","content":[{"type":"text/plain","value":"body"}]}`
}

// accepted checks a 202 as SendGrid sends it and returns its X-Message-Id.
func accepted(t *testing.T, what string, res response) string {
	t.Helper()
	if res.status != http.StatusAccepted || res.body != "" {
		t.Fatalf("%s: %d %q, want 202 and no body", what, res.status, res.body)
	}
	if ct := res.header.Get(headerContentType); ct != "" {
		t.Errorf("%s: Content-Type %q on an empty 202", what, ct)
	}
	id := exactHeader(res.header, headerMessageID)
	if !xMessageIDPattern.MatchString(id) {
		t.Fatalf("%s: X-Message-Id %q", what, id)
	}
	return id
}

// recipientsOf lists the stored recipients of a mail send, failing unless
// every one is queued under the mail send's id.
func (e *env) recipientsOf(t *testing.T, accountID int64, xMessageID string) []string {
	t.Helper()
	rs, err := e.store.RecipientStates(t.Context(), accountID, xMessageID)
	if err != nil {
		t.Fatalf("RecipientStates(%d, %s): %v", accountID, xMessageID, err)
	}
	var emails []string
	for _, r := range rs {
		if r.State != sealpost.StateQueued || !strings.HasPrefix(r.SGMessageID, xMessageID+".") {
			t.Errorf("recipient %+v of %s", r, xMessageID)
		}
		emails = append(emails, r.Email)
	}
	slices.Sort(emails)
	return emails
}

// nothingQueued fails when the store holds any delivery.
func (e *env) nothingQueued(t *testing.T) {
	t.Helper()
	ds, err := e.store.ClaimDeliveries(t.Context(), "test", time.Now().Add(time.Hour), time.Minute, 10)
	if err != nil {
		t.Fatalf("ClaimDeliveries: %v", err)
	}
	if len(ds) != 0 {
		t.Errorf("%d deliveries stored, want none", len(ds))
	}
}

func TestMailSend(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		e := newEnv(t, open)
		a := e.user("sender")
		token := e.key(a, sealpost.ScopeMailSend)

		res := e.do(request{method: http.MethodPost, path: pathMailSend, token: token, body: mailTwoPersonalizations})
		id := accepted(t, "two personalizations", res)
		for _, h := range []string{headerRateLimit, headerRateRemain, headerRateReset} {
			if v, ok := res.header[h]; ok {
				t.Errorf("mail send carries %s: %q", h, v)
			}
		}
		if got := e.recipientsOf(t, a.ID, id); !slices.Equal(got, mailTwoPersonalizationsRcpts) {
			t.Errorf("stored recipients %q, want %q", got, mailTwoPersonalizationsRcpts)
		}

		again := accepted(t, "same body again", e.do(request{method: http.MethodPost, path: pathMailSend, token: token, body: mailTwoPersonalizations}))
		if again == id {
			t.Errorf("two mail sends share X-Message-Id %s", id)
		}
		if got := e.recipientsOf(t, a.ID, again); len(got) != len(mailTwoPersonalizationsRcpts) {
			t.Errorf("second send stored %q", got)
		}
		if got := e.recipientsOf(t, e.user("stranger").ID, id); len(got) != 0 {
			t.Errorf("another account sees recipients %q", got)
		}
	})
}

func TestMailSendRefused(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		e := newEnv(t, open, func(c *Config) { c.MaxMailBytes = 2048 })
		a := e.user("sender")
		token := e.key(a)
		noMailScope := e.key(a, sealpost.ScopeEnforcedTLSRead, sealpost.ScopeEventWebhookRead)
		big := simpleMail("x@example.com")
		big = strings.Replace(big, `"value":"body"`, `"value":"`+strings.Repeat("a", 2048)+`"`, 1)
		atLimit := simpleMail("x@example.com") + strings.Repeat(" ", 2048-len(simpleMail("x@example.com")))

		for _, tc := range []struct {
			what   string
			token  string
			body   string
			status int
			want   string
		}{
			{"no key", "", simpleMail("x@example.com"), http.StatusUnauthorized, wantUnauthorized},
			{"bad key", "SG.nope.nope", simpleMail("x@example.com"), http.StatusUnauthorized, wantUnauthorized},
			{"key without mail.send", noMailScope, simpleMail("x@example.com"), http.StatusForbidden, wantForbidden},
			{"over MaxMailBytes", token, big, http.StatusRequestEntityTooLarge, wantTooLarge},
			{"not JSON", token, `{"personalizations":`, http.StatusBadRequest, wantMailNotJSON},
			{"empty body", token, ``, http.StatusBadRequest, wantMailNotJSON},
			{"not an object", token, `[]`, http.StatusBadRequest, `{"errors":[{"field":null,"message":"Invalid type. Expected: object, given: array."}]}`},
		} {
			res := e.do(request{method: http.MethodPost, path: pathMailSend, token: tc.token, body: tc.body})
			res.want(t, tc.what, tc.status, tc.want)
			if id, ok := res.header[headerMessageID]; ok {
				t.Errorf("%s: X-Message-Id %q on a refusal", tc.what, id)
			}
			if tc.status == http.StatusBadRequest && !strings.HasPrefix(res.body, `{"errors":[{`) {
				t.Errorf("%s: body %s", tc.what, res.body)
			}
		}
		e.nothingQueued(t)

		// The limit is the whole body, exactly: at the limit it is read.
		accepted(t, "body at MaxMailBytes", e.do(request{method: http.MethodPost, path: pathMailSend, token: token, body: atLimit}))

		// Without Content-Length the limit is found while reading.
		req := httptest.NewRequest(http.MethodPost, pathMailSend, io.MultiReader(strings.NewReader(big)))
		req.ContentLength = -1
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		e.serve(t, rec, req)
		if rec.Code != http.StatusRequestEntityTooLarge || rec.Body.String() != wantTooLarge || rec.Header().Get(headerMessageID) != "" {
			t.Errorf("chunked body over the limit: %d %s %v", rec.Code, rec.Body, rec.Header())
		}
	})
}

// TestMailSendLimitIsItsOwn: mail send takes bodies far over the 64 KiB the
// other routes allow, and they keep that limit.
func TestMailSendLimitIsItsOwn(t *testing.T) {
	t.Parallel()
	e := newEnv(t, openSQLite)
	a := e.user("sender")
	token := e.key(a)
	body := strings.Replace(simpleMail("x@example.com"), `"value":"body"`, `"value":"`+strings.Repeat("a", 200<<10)+`"`, 1)
	id := accepted(t, "200 KiB mail", e.do(request{method: http.MethodPost, path: pathMailSend, token: token, body: body}))
	if got := e.recipientsOf(t, a.ID, id); !slices.Equal(got, []string{"x@example.com"}) {
		t.Errorf("stored %q", got)
	}
	e.do(request{method: http.MethodPatch, path: pathTLS, token: token, body: `{"x":"` + strings.Repeat("a", 200<<10) + `"}`}).
		want(t, "200 KiB settings patch", http.StatusRequestEntityTooLarge, wantTooLarge)
}

// mailErrorFields returns the fields of a 400 body's entries, in order.
func mailErrorFields(t *testing.T, body string) []string {
	t.Helper()
	var out struct {
		Errors []struct {
			Field   *string `json:"field"`
			Message string  `json:"message"`
		} `json:"errors"`
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatalf("400 body %s: %v", body, err)
	}
	var fields []string
	for _, e := range out.Errors {
		if e.Message == "" {
			t.Errorf("entry without message in %s", body)
		}
		f := "<null>"
		if e.Field != nil {
			f = *e.Field
		}
		fields = append(fields, f)
	}
	return fields
}

func TestMailSendValidation(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		e := newEnv(t, open)
		token := e.key(e.user("sender"))
		send := func(body string) response {
			return e.do(request{method: http.MethodPost, path: pathMailSend, token: token, body: body})
		}

		send(`{}`).want(t, "{}", http.StatusBadRequest, wantMailEmpty)

		for _, tc := range []struct {
			what   string
			body   string
			fields []string
		}{
			{"{} lists from.email, personalizations, content", `{}`, []string{"from.email", "personalizations", "content"}},
			{"bad from and no content", `{"personalizations":[{"to":[{"email":"a@example.com"}]}],"from":{"email":"not an address"},"subject":"s"}`,
				[]string{"from.email", "content"}},
			{"empty to and no subject", `{"personalizations":[{"to":[]}],"from":{"email":"s@example.com"},"content":[{"type":"text/plain","value":"x"}]}`,
				[]string{"personalizations.0.to", "subject"}},
			{"every member of the wrong type", `{"personalizations":"x","from":"y","subject":1,"content":{}}`,
				[]string{"from", "personalizations", "subject", "content"}},
			{"html before plain and eleven categories", `{"personalizations":[{"to":[{"email":"a@example.com"}]}],"from":{"email":"s@example.com"},"subject":"s",` +
				`"content":[{"type":"text/html","value":"h"},{"type":"text/plain","value":"p"}],"categories":["1","2","3","4","5","6","7","8","9","10","11"]}`,
				[]string{"content.1.type", "categories"}},
			{"not an object", `[]`, []string{"<null>"}},
			{"not JSON", `{"personalizations":`, []string{"<null>"}},
		} {
			res := send(tc.body)
			if res.status != http.StatusBadRequest {
				t.Errorf("%s: %d %s", tc.what, res.status, res.body)
				continue
			}
			if got := mailErrorFields(t, res.body); !slices.Equal(got, tc.fields) {
				t.Errorf("%s: fields %q, want %q (%s)", tc.what, got, tc.fields, res.body)
			}
		}
		e.nothingQueued(t)
	})
}

// SendGrid ignores on-behalf-of on mail send: the mail is always the key's
// own account's, whatever the header says.
func TestMailSendIgnoresOnBehalfOf(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		e := newEnv(t, open)
		p := e.user("parent")
		child := e.subuser(p, "child")
		parentKey := e.key(p, sealpost.ScopeMailSend)
		childKey := e.key(child, sealpost.ScopeMailSend)

		for _, tc := range []struct {
			what    string
			token   string
			obo     string
			account int64
		}{
			{"parent key naming its subuser", parentKey, "child", p.ID},
			{"parent key naming nobody", parentKey, "nobody", p.ID},
			{"subuser key with the header", childKey, "child", child.ID},
			{"subuser key without the header", childKey, "", child.ID},
		} {
			id := accepted(t, tc.what, e.do(request{method: http.MethodPost, path: pathMailSend, token: tc.token, obo: tc.obo, body: simpleMail("r@example.com")}))
			if got := e.recipientsOf(t, tc.account, id); !slices.Equal(got, []string{"r@example.com"}) {
				t.Errorf("%s: the sending account's recipients %q", tc.what, got)
			}
			other := p.ID + child.ID - tc.account
			if got := e.recipientsOf(t, other, id); len(got) != 0 {
				t.Errorf("%s: the other account holds the mail: %q", tc.what, got)
			}
		}
	})
}

// A sandbox send is validated and answered 200 with no body, and nothing
// is stored or sent, as on SendGrid.
func TestMailSendSandbox(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		e := newEnv(t, open)
		token := e.key(e.user("u"), sealpost.ScopeMailSend)
		sandbox := strings.TrimSuffix(simpleMail("r@example.com"), "}") + `,"mail_settings":{"sandbox_mode":{"enable":true}}}`
		res := e.do(request{method: http.MethodPost, path: pathMailSend, token: token, body: sandbox})
		if res.status != http.StatusOK || res.body != "" {
			t.Fatalf("sandbox send: %d %q, want 200 and no body", res.status, res.body)
		}
		e.nothingQueued(t)
		bad := `{"from":{"email":"s@example.com"},"mail_settings":{"sandbox_mode":{"enable":true}}}`
		if res := e.do(request{method: http.MethodPost, path: pathMailSend, token: token, body: bad}); res.status != http.StatusBadRequest {
			t.Errorf("an invalid sandbox send: %d, want 400", res.status)
		}
	})
}

// enqueueFailing is a real store whose EnqueueMessages fails.
type enqueueFailing struct {
	sealpost.Store
	err error
}

func (s enqueueFailing) EnqueueMessages(context.Context, []*sealpost.Message, []sealpost.Event) error {
	return s.err
}

func TestMailSendStoreFailure(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		what   string
		err    error
		status int
		want   string
	}{
		{"internal", errors.New("disk on fire"), http.StatusInternalServerError, wantInternal},
		{"unavailable", sealpost.Errorf(sealpost.EUNAVAILABLE, "database down"), http.StatusServiceUnavailable, wantUnavailable},
	} {
		t.Run(tc.what, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, openSQLite)
			e.srv = New(Config{Store: enqueueFailing{Store: e.store, err: tc.err}})
			token := e.key(e.user("sender"))
			res := e.do(request{method: http.MethodPost, path: pathMailSend, token: token, body: simpleMail("r@example.com")})
			res.want(t, tc.what, tc.status, tc.want)
			if id, ok := res.header[headerMessageID]; ok {
				t.Errorf("X-Message-Id %q on a failed send", id)
			}
		})
	}
}

// TestMailSendOfficialClient sends with SendGrid's own Go client and mail
// helper, changing nothing but the URL.
func TestMailSendOfficialClient(t *testing.T) {
	t.Parallel()
	e := newEnv(t, openSQLite)
	a := e.user("sender")
	key := e.key(a, sealpost.ScopeMailSend)
	ts := httptest.NewServer(e.handler())
	defer ts.Close()

	client := sendgrid.NewSendClient(key)
	client.Request.BaseURL = ts.URL + pathMailSend
	msg := mail.NewSingleEmail(mail.NewEmail("Sender", "sender@example.com"), "Hello",
		mail.NewEmail("Recipient", "rcpt@example.com"), "plain body", "<p>html body</p>")
	res, err := client.SendWithContext(t.Context(), msg)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusAccepted || res.Body != "" {
		t.Fatalf("%d %q", res.StatusCode, res.Body)
	}
	id := http.Header(res.Headers).Get(headerMessageID)
	if !xMessageIDPattern.MatchString(id) {
		t.Fatalf("X-Message-Id %q", id)
	}
	if got := e.recipientsOf(t, a.ID, id); !slices.Equal(got, []string{"rcpt@example.com"}) {
		t.Errorf("stored %q", got)
	}
}

const wantMailNotJSON = `{"errors":[{"field":null,"message":"The request body is not valid JSON."}]}`

// wantMailEmpty is the 400 for {}: SendGrid's three problems, in its order.
const wantMailEmpty = `{"errors":[{"field":"from.email","message":"The from object must be provided for every email send. It is an object that requires the email parameter, but may also contain a name parameter.  e.g. {\"email\" : \"example@example.com\"}  or {\"email\" : \"example@example.com\", \"name\" : \"Example Recipient\"}."},{"field":"personalizations","message":"The personalizations field is required and must have at least one personalization."},{"field":"content","message":"Unless a valid template_id is provided, the content parameter is required. There must be at least one defined content block. We typically suggest both text/plain and text/html blocks are included, but only one block is required."}]}`

// BenchmarkMailSend measures acceptance in-process on SQLite: parse,
// render, build the processed event and store, one recipient per send.
func BenchmarkMailSend(b *testing.B) {
	e := newEnv(b, openSQLite)
	token := e.key(e.user("bench"), sealpost.ScopeMailSend)
	body := simpleMail("rcpt@example.test")
	b.ReportAllocs()
	// Many sends in flight, as from a pool of client connections.
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest(http.MethodPost, pathMailSend, strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+token)
			rec := httptest.NewRecorder()
			e.srv.ServeHTTP(rec, req)
			if rec.Code != http.StatusAccepted {
				b.Errorf("status %d: %s", rec.Code, rec.Body)
				return
			}
		}
	})
}

// TestMailSendConcurrent: sends that share transactions are each stored
// whole, under their own X-Message-Id.
func TestMailSendConcurrent(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		e := newEnv(t, open)
		a := e.user("sender")
		token := e.key(a, sealpost.ScopeMailSend)
		const n = 40
		ids := make([]string, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				res := e.do(request{method: http.MethodPost, path: pathMailSend, token: token, body: simpleMail(fmt.Sprintf("r%d@example.com", i))})
				if res.status != http.StatusAccepted {
					t.Errorf("send %d: %d %s", i, res.status, res.body)
					return
				}
				ids[i] = exactHeader(res.header, headerMessageID)
			})
		}
		wg.Wait()
		for i, id := range ids {
			if id == "" {
				continue
			}
			if got := e.recipientsOf(t, a.ID, id); !slices.Equal(got, []string{fmt.Sprintf("r%d@example.com", i)}) {
				t.Errorf("send %d (%s) stored %q", i, id, got)
			}
		}
	})
}

// batchQueue is a QueueService recording how many messages each
// EnqueueMessages call carried. Its first call waits for release, so the
// sends arriving meanwhile gather in one batch.
type batchQueue struct {
	sealpost.QueueService
	release chan struct{}
	fail    func(msgs []*sealpost.Message) error

	mu       sync.Mutex
	calls    []int
	canceled bool
}

func (q *batchQueue) EnqueueMessages(ctx context.Context, msgs []*sealpost.Message, _ []sealpost.Event) error {
	q.mu.Lock()
	first := len(q.calls) == 0
	q.calls = append(q.calls, len(msgs))
	q.canceled = q.canceled || ctx.Err() != nil
	q.mu.Unlock()
	if first {
		<-q.release
	}
	if q.fail != nil {
		return q.fail(msgs)
	}
	return nil
}

func TestGroupCommit(t *testing.T) {
	t.Parallel()
	poison := func(msgs []*sealpost.Message) error {
		for _, m := range msgs {
			if m.From == "poison" {
				return sealpost.Invalid(sealpost.FieldError{Field: "from", Message: "bad bytes"})
			}
		}
		return nil
	}
	down := func([]*sealpost.Message) error { return sealpost.Errorf(sealpost.EUNAVAILABLE, "down") }
	for _, tc := range []struct {
		what      string
		fail      func([]*sealpost.Message) error
		froms     []string // of the three sends gathered behind the first
		wantErrs  []string // their error codes
		wantCalls []int
		wantWakes int64 // one per batch with a stored send
	}{
		{"all stored in one batch", nil, []string{"a", "b", "c"}, []string{"", "", ""}, []int{1, 3}, 2},
		{"only the invalid send fails", poison, []string{"a", "poison", "c"}, []string{"", sealpost.EINVALID, ""}, []int{1, 3, 1, 1, 1}, 2},
		{"an outage fails all without retries", down, []string{"a", "b", "c"}, []string{sealpost.EUNAVAILABLE, sealpost.EUNAVAILABLE, sealpost.EUNAVAILABLE}, []int{1, 3}, 0},
	} {
		t.Run(tc.what, func(t *testing.T) {
			t.Parallel()
			q := &batchQueue{release: make(chan struct{}), fail: tc.fail}
			var wakes atomic.Int64
			g := &groupCommit{store: q, enqueued: func() { wakes.Add(1) }}
			send := func(ctx context.Context, from string) error {
				return g.enqueue(ctx, []*sealpost.Message{{From: from}}, nil)
			}
			firstDone := make(chan error, 1)
			go func() { firstDone <- send(t.Context(), "first") }()
			waitFor(t, func() bool { q.mu.Lock(); defer q.mu.Unlock(); return len(q.calls) == 1 })

			// The gathered batch's first send, which will commit it, has a
			// client that hangs up before the commit.
			gathered := func(n int) func() bool {
				return func() bool { g.mu.Lock(); defer g.mu.Unlock(); return g.open != nil && len(g.open.sends) == n }
			}
			ctx, cancel := context.WithCancel(t.Context())
			errs := make([]error, len(tc.froms))
			var wg sync.WaitGroup
			wg.Go(func() { errs[0] = send(ctx, tc.froms[0]) })
			waitFor(t, gathered(1))
			cancel()
			for i, from := range tc.froms[1:] {
				wg.Go(func() { errs[i+1] = send(t.Context(), from) })
			}
			waitFor(t, gathered(len(tc.froms)))
			close(q.release)
			wg.Wait()
			if err := <-firstDone; tc.fail == nil && err != nil {
				t.Errorf("first send: %v", err)
			}
			for i, err := range errs {
				if got := sealpost.ErrorCode(err); got != tc.wantErrs[i] {
					t.Errorf("send %s: %v, want code %q", tc.froms[i], err, tc.wantErrs[i])
				}
			}
			q.mu.Lock()
			defer q.mu.Unlock()
			if !slices.Equal(q.calls, tc.wantCalls) {
				t.Errorf("store calls carried %v messages, want %v", q.calls, tc.wantCalls)
			}
			if q.canceled {
				t.Error("the store saw a canceled context")
			}
			if got := wakes.Load(); got != tc.wantWakes {
				t.Errorf("delivery was woken %d times, want %d", got, tc.wantWakes)
			}
		})
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestMailSendAttachmentsWithinTheBodyLimit: attachments are part of the
// body SendGrid limits to 30 MB; one that fills it is sent, one more byte
// is a 413, and a bad one is a 400 in SendGrid's words.
func TestMailSendAttachmentsWithinTheBodyLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 30 MB through each store")
	}
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		e := newEnv(t, open)
		a := e.user("sender")
		token := e.key(a)
		withAttachment := func(content string) string {
			return strings.Replace(simpleMail("x@example.com"), `"value":"body"}]}`,
				`"value":"body"}],"attachments":[{"content":"`+content+`","filename":"big.bin"}]}`, 1)
		}
		overhead := len(withAttachment(""))
		fill := (defaultMaxMailBytes - overhead) / 4 * 4
		atLimit := withAttachment(strings.Repeat("QUFB", fill/4)) + strings.Repeat(" ", defaultMaxMailBytes-overhead-fill)
		if len(atLimit) != defaultMaxMailBytes {
			t.Fatalf("built %d bytes", len(atLimit))
		}
		id := accepted(t, "30 MB of attachment", e.do(request{method: http.MethodPost, path: pathMailSend, token: token, body: atLimit}))
		if got := e.recipientsOf(t, a.ID, id); !slices.Equal(got, []string{"x@example.com"}) {
			t.Errorf("stored %q", got)
		}
		e.do(request{method: http.MethodPost, path: pathMailSend, token: token, body: atLimit + " "}).
			want(t, "a byte over 30 MB", http.StatusRequestEntityTooLarge, wantTooLarge)
		e.do(request{method: http.MethodPost, path: pathMailSend, token: token, body: withAttachment("QUFB\\nQUFB")}).
			want(t, "line-wrapped base64", http.StatusBadRequest, `{"errors":[{"field":"attachments.0.content","message":"The attachment content must be base64 encoded."}]}`)
	})
}
