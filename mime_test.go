package sealpost_test

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
	"github.com/sealpost/sealpost/httpapi"
	"github.com/sealpost/sealpost/internal/sendtest"
)

var renderNow = time.Date(2024, 3, 5, 14, 7, 9, 0, time.FixedZone("", 3600))

const renderHost = "mta.sealpost.test"

func parseAndRender(t *testing.T, body []byte) []*sealpost.Message {
	t.Helper()
	ms, err := httpapi.ParseMailSend(body)
	if err != nil {
		t.Fatalf("ParseMailSend: %v (%q)", err, sealpost.ErrorFields(err))
	}
	msgs, err := ms.Messages(7, "xMsgID_-1", renderNow, renderHost)
	if err != nil {
		t.Fatalf("Messages: %v", err)
	}
	return msgs
}

func decodeHeader(t *testing.T, h mail.Header, name string) string {
	t.Helper()
	var dec mime.WordDecoder
	s, err := dec.DecodeHeader(h.Get(name))
	if err != nil {
		t.Fatalf("decoding %s %q: %v", name, h.Get(name), err)
	}
	return s
}

// parts returns the decoded parts of msg: one for a single-part message,
// each alternative of a multipart/alternative one.
func parts(t *testing.T, msg *mail.Message) []sealpost.Content {
	t.Helper()
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatalf("Content-Type %q: %v", msg.Header.Get("Content-Type"), err)
	}
	if !strings.HasPrefix(mt, "multipart/") {
		if cte := msg.Header.Get("Content-Transfer-Encoding"); cte != "quoted-printable" {
			t.Fatalf("Content-Transfer-Encoding %q", cte)
		}
		b, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
		if err != nil {
			t.Fatal(err)
		}
		return []sealpost.Content{{Type: msg.Header.Get("Content-Type"), Value: string(b)}}
	}
	if mt != "multipart/alternative" {
		t.Fatalf("media type %q", mt)
	}
	var out []sealpost.Content
	r := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := r.NextPart()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		// multipart.Reader decodes quoted-printable itself and drops the
		// Content-Transfer-Encoding header when it does.
		if p.Header.Get("Content-Transfer-Encoding") != "" {
			t.Fatalf("part not quoted-printable: %q", p.Header.Get("Content-Transfer-Encoding"))
		}
		b, err := io.ReadAll(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, sealpost.Content{Type: p.Header.Get("Content-Type"), Value: string(b)})
	}
}

func TestMessagesRenderTextAndHTML(t *testing.T) {
	t.Parallel()
	msgs := parseAndRender(t, []byte(`{
		"personalizations": [{
			"to": [{"email": "jo@example.com", "name": "Jöhn Dœ"}, {"email": "jane@Example.ORG", "name": "Doe, Jane \"JJ\""}],
			"cc": [{"email": "cc@example.net"}],
			"bcc": [{"email": "secret@example.com", "name": "Secret"}]
		}],
		"from": {"email": "sender@example.com", "name": "Sendér"},
		"reply_to": {"email": "reply@example.com", "name": "Replies"},
		"subject": "Grüße aus Köln — a subject long enough that it has to be folded over more than one line",
		"content": [
			{"type": "text/plain", "value": "Hallo Welt\nzweite Zeile mit Ümlauten\n"},
			{"type": "text/html", "value": "<p>Hallo <b>Welt</b></p>"}
		],
		"headers": {"List-Unsubscribe": "<mailto:unsub@example.com>"}
	}`))
	if len(msgs) != 1 {
		t.Fatalf("%d messages, want 1", len(msgs))
	}
	m := msgs[0]
	msg := sendtest.CheckWire(t, sendtest.Rendered(t, m))
	h := msg.Header

	from, err := h.AddressList("From")
	if err != nil || len(from) != 1 || from[0].Name != "Sendér" || from[0].Address != "sender@example.com" {
		t.Errorf("From %q parses to %v, %v", h.Get("From"), from, err)
	}
	tos, err := h.AddressList("To")
	wantTo := []*mail.Address{{Name: "Jöhn Dœ", Address: "jo@example.com"}, {Name: `Doe, Jane "JJ"`, Address: "jane@Example.ORG"}}
	if err != nil || !reflect.DeepEqual(tos, wantTo) {
		t.Errorf("To %q parses to %v, %v; want %v", h.Get("To"), tos, err, wantTo)
	}
	if ccs, err := h.AddressList("Cc"); err != nil || len(ccs) != 1 || ccs[0].Address != "cc@example.net" {
		t.Errorf("Cc %q parses to %v, %v", h.Get("Cc"), ccs, err)
	}
	if rt, err := h.AddressList("Reply-To"); err != nil || len(rt) != 1 || rt[0].Address != "reply@example.com" || rt[0].Name != "Replies" {
		t.Errorf("Reply-To %q parses to %v, %v", h.Get("Reply-To"), rt, err)
	}
	if h.Get("Bcc") != "" || bytes.Contains(sendtest.Rendered(t, m), []byte("secret@example.com")) || bytes.Contains(sendtest.Rendered(t, m), []byte("Secret")) {
		t.Errorf("bcc recipient visible in the message:\n%s", sendtest.Rendered(t, m))
	}
	if got := decodeHeader(t, h, "Subject"); got != "Grüße aus Köln — a subject long enough that it has to be folded over more than one line" {
		t.Errorf("Subject decodes to %q", got)
	}
	if d, err := h.Date(); err != nil || !d.Equal(renderNow) {
		t.Errorf("Date %q parses to %v, %v", h.Get("Date"), d, err)
	}
	if h.Get("Message-ID") != m.SMTPID || !strings.HasPrefix(m.SMTPID, "<") || !strings.HasSuffix(m.SMTPID, "@"+renderHost+">") {
		t.Errorf("Message-ID %q, SMTPID %q", h.Get("Message-ID"), m.SMTPID)
	}
	if h.Get("MIME-Version") != "1.0" {
		t.Errorf("MIME-Version %q", h.Get("MIME-Version"))
	}
	if h.Get("List-Unsubscribe") != "<mailto:unsub@example.com>" {
		t.Errorf("List-Unsubscribe %q", h.Get("List-Unsubscribe"))
	}
	if h.Get("X-Message-Id") != "" {
		t.Errorf("unexpected X-Message-Id header")
	}
	want := []sealpost.Content{
		{Type: "text/plain; charset=utf-8", Value: "Hallo Welt\r\nzweite Zeile mit Ümlauten\r\n"},
		{Type: "text/html; charset=utf-8", Value: "<p>Hallo <b>Welt</b></p>"},
	}
	if got := parts(t, msg); !reflect.DeepEqual(got, want) {
		t.Errorf("parts\n got %q\nwant %q", got, want)
	}
	for _, line := range strings.Split(string(sendtest.Rendered(t, m)), "\r\n") {
		if len(line) > 78 {
			t.Errorf("line longer than 78 octets: %q", line)
		}
	}

	if m.AccountID != 7 || m.XMessageID != "xMsgID_-1" || m.From != "sender@example.com" || !m.CreatedAt.Equal(renderNow) {
		t.Errorf("message fields %+v", m)
	}
	wantRcpts := []sealpost.Recipient{
		{Email: "jo@example.com", Domain: "example.com", SGMessageID: "xMsgID_-1.0", State: sealpost.StateQueued},
		{Email: "jane@Example.ORG", Domain: "example.org", SGMessageID: "xMsgID_-1.1", State: sealpost.StateQueued},
		{Email: "cc@example.net", Domain: "example.net", SGMessageID: "xMsgID_-1.2", State: sealpost.StateQueued},
		{Email: "secret@example.com", Domain: "example.com", SGMessageID: "xMsgID_-1.3", State: sealpost.StateQueued},
	}
	if !reflect.DeepEqual(m.Recipients, wantRcpts) {
		t.Errorf("recipients\n got %+v\nwant %+v", m.Recipients, wantRcpts)
	}
}

func TestMessagesPerPersonalization(t *testing.T) {
	t.Parallel()
	msgs := parseAndRender(t, []byte(`{
		"personalizations": [
			{"to": [{"email": "a@example.com"}, {"email": "b@example.com"}], "subject": "For A and B",
			 "headers": {"x-campaign": "p"}, "custom_args": {"shared": "p", "own": "1"}},
			{"to": [{"email": "c@example.com"}], "bcc": [{"email": "d@example.com"}],
			 "from": {"email": "other@example.org", "name": "Other"}}
		],
		"from": {"email": "f@example.com"},
		"subject": "Top subject",
		"content": [{"type": "text/plain", "value": "x"}],
		"categories": ["c1"],
		"custom_args": {"shared": "top", "top": "t"},
		"headers": {"X-Campaign": "top", "X-Top": "t"}
	}`))
	if len(msgs) != 2 {
		t.Fatalf("%d messages, want 2", len(msgs))
	}
	m0, m1 := sendtest.CheckWire(t, sendtest.Rendered(t, msgs[0])), sendtest.CheckWire(t, sendtest.Rendered(t, msgs[1]))

	if msgs[0].SMTPID == msgs[1].SMTPID {
		t.Errorf("both messages have Message-ID %s", msgs[0].SMTPID)
	}
	if s := decodeHeader(t, m0.Header, "Subject"); s != "For A and B" {
		t.Errorf("first subject %q", s)
	}
	if s := decodeHeader(t, m1.Header, "Subject"); s != "Top subject" {
		t.Errorf("second subject %q", s)
	}
	// The personalization's header replaces the top-level one whatever
	// its case; there is exactly one.
	if got := m0.Header["X-Campaign"]; !reflect.DeepEqual(got, []string{"p"}) {
		t.Errorf("X-Campaign in first message: %q", got)
	}
	if got := m1.Header["X-Campaign"]; !reflect.DeepEqual(got, []string{"top"}) {
		t.Errorf("X-Campaign in second message: %q", got)
	}
	if m0.Header.Get("X-Top") != "t" || m1.Header.Get("X-Top") != "t" {
		t.Errorf("top-level header missing")
	}
	if want := map[string]string{"shared": "p", "own": "1", "top": "t"}; !reflect.DeepEqual(msgs[0].EventCustomArgs(), want) {
		t.Errorf("first custom args %v, want %v", msgs[0].EventCustomArgs(), want)
	}
	if want := map[string]string{"shared": "top", "top": "t"}; !reflect.DeepEqual(msgs[1].EventCustomArgs(), want) {
		t.Errorf("second custom args %v, want %v", msgs[1].EventCustomArgs(), want)
	}
	if msgs[0].From != "f@example.com" || msgs[1].From != "other@example.org" {
		t.Errorf("envelope senders %q, %q", msgs[0].From, msgs[1].From)
	}
	if f, err := m1.Header.AddressList("From"); err != nil || f[0].Address != "other@example.org" || f[0].Name != "Other" {
		t.Errorf("second From %v, %v", f, err)
	}
	var ids []string
	for _, m := range msgs {
		for _, r := range m.Recipients {
			ids = append(ids, r.SGMessageID)
		}
	}
	if want := []string{"xMsgID_-1.0", "xMsgID_-1.1", "xMsgID_-1.2", "xMsgID_-1.3"}; !reflect.DeepEqual(ids, want) {
		t.Errorf("sg_message_ids %q, want %q", ids, want)
	}
	if m1.Header.Get("To") != "<c@example.com>" || m1.Header.Get("Cc") != "" || bytes.Contains(sendtest.Rendered(t, msgs[1]), []byte("d@example.com")) {
		t.Errorf("second message header:\n%s", sendtest.Rendered(t, msgs[1]))
	}
	// The request's categories and custom args are kept once, with the
	// body every message shares; a message has only its personalization's.
	for i, m := range msgs {
		if m.Body != msgs[0].Body || len(m.Categories) != 0 || len(m.EventCategories()) == 0 || m.EventCategories()[0] != "c1" {
			t.Errorf("message %d: body %p (first's %p), own categories %q, event categories %q", i, m.Body, msgs[0].Body, m.Categories, m.EventCategories())
		}
	}
	if want := map[string]string{"shared": "p", "own": "1"}; !reflect.DeepEqual(msgs[0].CustomArgs, want) {
		t.Errorf("first message's own custom args %v, want %v", msgs[0].CustomArgs, want)
	}
}

func TestMessagesSinglePart(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		ctype, wantType string
	}{
		{"text/plain", "text/plain; charset=utf-8"},
		{"text/html", "text/html; charset=utf-8"},
	} {
		msgs := parseAndRender(t, sendtest.Body(t, map[string]any{"content": []any{map[string]any{"type": tt.ctype, "value": "é\n.\nFrom x"}}}))
		msg := sendtest.CheckWire(t, sendtest.Rendered(t, msgs[0]))
		got := parts(t, msg)
		if len(got) != 1 || got[0].Type != tt.wantType || strings.TrimSuffix(got[0].Value, "\r\n") != "é\r\n.\r\nFrom x" {
			t.Errorf("%s: parts %q", tt.ctype, got)
		}
	}
}

func TestMessagesFurtherAlternativesInOrder(t *testing.T) {
	t.Parallel()
	msgs := parseAndRender(t, sendtest.Body(t, map[string]any{"content": []any{
		map[string]any{"type": "text/plain", "value": "p"},
		map[string]any{"type": "text/html", "value": "h"},
		map[string]any{"type": "text/x-amp-html", "value": "a"},
		map[string]any{"type": "text/calendar", "value": "BEGIN:VCALENDAR"},
	}}))
	got := parts(t, sendtest.CheckWire(t, sendtest.Rendered(t, msgs[0])))
	want := []sealpost.Content{
		{Type: "text/plain; charset=utf-8", Value: "p"},
		{Type: "text/html; charset=utf-8", Value: "h"},
		{Type: "text/x-amp-html; charset=utf-8", Value: "a"},
		{Type: "text/calendar; charset=utf-8", Value: "BEGIN:VCALENDAR"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parts\n got %q\nwant %q", got, want)
	}
}

func TestMessagesLongLinesAndHeaders(t *testing.T) {
	t.Parallel()
	longWord := strings.Repeat("w", 3000)
	longText := strings.Repeat("lorem ipsum ", 500)
	var manyTo []any
	for i := range 300 {
		manyTo = append(manyTo, map[string]any{"email": "r" + strings.Repeat("x", 40) + string(rune('a'+i%26)) + "@example.com", "name": "Recipient Number " + strings.Repeat("n", i%50)})
	}
	// Addresses must be unique: vary on the index too.
	for i := range manyTo {
		manyTo[i].(map[string]any)["email"] = strings.Replace(manyTo[i].(map[string]any)["email"].(string), "@", "."+strings.Repeat("i", i%7)+string(rune('a'+i/26))+"@", 1)
	}
	for _, tt := range []struct {
		name    string
		subject string
		header  string
		toName  string
	}{
		{"long word", longWord, longWord, longWord},
		{"long text", longText, longText, longText},
		{"long non-ASCII", strings.Repeat("ü", 2000), strings.Repeat("€", 1000), strings.Repeat("名", 700)},
		{"looks encoded", "=?utf-8?q?not_encoded?=", "=?x?", "=?utf-8?b?eA==?="},
		{"tabs and spaces", "a\tb  c   ", "\tlead", " spaced  name "},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			body := sendtest.Body(t, map[string]any{
				"subject": tt.subject,
				"headers": map[string]any{"X-Long": tt.header},
				"from":    map[string]any{"email": "f@example.com", "name": tt.toName},
				"personalizations": sendtest.Personalizations(map[string]any{"to": append([]any{
					map[string]any{"email": "t@example.com", "name": tt.toName},
				}, manyTo...)}),
				"content": []any{
					map[string]any{"type": "text/plain", "value": longWord + "\n" + longText},
					map[string]any{"type": "text/html", "value": "<p>" + longWord + "</p>"},
				},
			})
			msgs := parseAndRender(t, body)
			msg := sendtest.CheckWire(t, sendtest.Rendered(t, msgs[0]))
			collapse := func(s string) string { return strings.Join(strings.Fields(s), " ") }
			if got := decodeHeader(t, msg.Header, "Subject"); collapse(got) != collapse(tt.subject) {
				t.Errorf("Subject decodes to %q", got)
			}
			if got := decodeHeader(t, msg.Header, "X-Long"); collapse(got) != collapse(tt.header) {
				t.Errorf("X-Long decodes to %q", got)
			}
			tos, err := msg.Header.AddressList("To")
			if err != nil || len(tos) != 301 || collapse(tos[0].Name) != collapse(tt.toName) || tos[0].Address != "t@example.com" {
				t.Fatalf("To parses to %d addresses, first %v, err %v", len(tos), tos[:min(1, len(tos))], err)
			}
			from, err := msg.Header.AddressList("From")
			if err != nil || collapse(from[0].Name) != collapse(tt.toName) {
				t.Errorf("From parses to %v, %v", from, err)
			}
			got := parts(t, msg)
			if len(got) != 2 || got[0].Value != longWord+"\r\n"+longText || got[1].Value != "<p>"+longWord+"</p>" {
				t.Errorf("bodies do not survive the round trip")
			}
		})
	}
}

func TestMessagesNoHeaderInjection(t *testing.T) {
	t.Parallel()
	const inject = "x\r\nBcc: evil@example.net\r\nX-Injected: yes"
	// The parser refuses line breaks wherever they could reach a header.
	for _, body := range [][]byte{
		sendtest.Body(t, map[string]any{"subject": inject}),
		sendtest.Body(t, map[string]any{"from": map[string]any{"email": "f@example.com", "name": inject}}),
		sendtest.Body(t, map[string]any{"personalizations": sendtest.Personalizations(map[string]any{"to": []any{map[string]any{"email": "t@example.com", "name": inject}}})}),
		sendtest.Body(t, map[string]any{"reply_to": map[string]any{"email": "r@example.com", "name": inject}}),
		sendtest.Body(t, map[string]any{"headers": map[string]any{"X-A": inject}}),
		sendtest.Body(t, map[string]any{"headers": map[string]any{"X-A\r\nX-Injected": "yes"}}),
		sendtest.Body(t, map[string]any{"personalizations": sendtest.Personalizations(map[string]any{"to": []any{map[string]any{"email": "t@example.com"}}, "subject": inject, "headers": map[string]any{"X-B": inject}})}),
		sendtest.Body(t, map[string]any{"from": map[string]any{"email": "f@example.com\r\nX-Injected: yes"}}),
		sendtest.Body(t, map[string]any{"content": []any{map[string]any{"type": "text/plain\r\nX-Injected: yes", "value": "x"}}}),
	} {
		if _, err := httpapi.ParseMailSend(body); sealpost.ErrorCode(err) != sealpost.EINVALID {
			t.Errorf("accepted %s", body)
		}
	}
	// A MailSend built by hand cannot inject either: line breaks end up
	// encoded, or rendering fails.
	hand := &sealpost.MailSend{
		Personalizations: []sealpost.Personalization{{
			To:      []sealpost.Address{{Email: "t@example.com", Name: inject}},
			Subject: inject,
			Headers: map[string]string{"X-B": inject},
		}},
		From:    sealpost.Address{Email: "f@example.com", Name: inject},
		ReplyTo: &sealpost.Address{Email: "r@example.com", Name: inject},
		Content: []sealpost.Content{{Type: "text/plain", Value: "body\r\nX-Injected: no, this is the body"}},
		Headers: map[string]string{"X-A": inject},
	}
	msgs, err := hand.Messages(1, "id", renderNow, renderHost)
	if err != nil {
		t.Fatalf("Messages: %v", err)
	}
	msg := sendtest.CheckWire(t, sendtest.Rendered(t, msgs[0]))
	if msg.Header.Get("Bcc") != "" || msg.Header.Get("X-Injected") != "" {
		t.Fatalf("header injected:\n%s", sendtest.Rendered(t, msgs[0]))
	}
	if got := decodeHeader(t, msg.Header, "Subject"); got != inject {
		t.Errorf("Subject decodes to %q", got)
	}
	for _, name := range []string{"X-A\r\nX-Injected", "Subject", "Bcc", ""} {
		bad := *hand
		bad.Headers = map[string]string{name: "yes"}
		if _, err := bad.Messages(1, "id", renderNow, renderHost); err == nil {
			t.Errorf("rendered a message with header name %q", name)
		}
	}
}

func TestMessagesRejectsUnusableIDs(t *testing.T) {
	t.Parallel()
	ms, err := httpapi.ParseMailSend(sendtest.Body(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ id, host string }{
		{"", renderHost},
		{"a b", renderHost},
		{"a>\r\nX: y", renderHost},
		{"id", ""},
		{"id", "host name"},
		{"id", "host>\r\nX: y"},
		{"id", "-bad.example"},
	} {
		if _, err := ms.Messages(1, tt.id, renderNow, tt.host); err == nil {
			t.Errorf("Messages(%q, %q) succeeded", tt.id, tt.host)
		}
	}
}

func TestMessagesBoundaryAvoidsContent(t *testing.T) {
	t.Parallel()
	// Content full of boundary-like lines must still split into exactly its
	// parts.
	tricky := "--sealpost-\r\n--sealpost-00000000000000000000000000000000--\r\n--"
	msgs := parseAndRender(t, sendtest.Body(t, map[string]any{"content": []any{
		map[string]any{"type": "text/plain", "value": tricky},
		map[string]any{"type": "text/html", "value": tricky},
	}}))
	got := parts(t, sendtest.CheckWire(t, sendtest.Rendered(t, msgs[0])))
	if len(got) != 2 || got[0].Value != tricky || got[1].Value != tricky {
		t.Fatalf("parts %q", got)
	}
}

func BenchmarkParseAndRender(b *testing.B) {
	body := []byte(`{
		"personalizations": [{"to": [{"email": "recipient@example.com", "name": "Recipient Name"}]}],
		"from": {"email": "sender@example.com", "name": "Example Sender"},
		"reply_to": {"email": "support@example.com"},
		"subject": "Your order #12345 has shipped",
		"content": [
			{"type": "text/plain", "value": "` + strings.Repeat("Hello, your order has shipped and is on its way.\\n", 40) + `"},
			{"type": "text/html", "value": "` + strings.Repeat("<p>Hello, your order has <b>shipped</b> and is on its way.</p>\\n", 40) + `"}
		],
		"categories": ["transactional", "shipping"],
		"custom_args": {"order_id": "12345"}
	}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		ms, err := httpapi.ParseMailSend(body)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ms.Messages(1, "bench", renderNow, renderHost); err != nil {
			b.Fatal(err)
		}
	}
}
