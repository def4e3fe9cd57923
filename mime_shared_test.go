package sealpost

import (
	"bytes"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

var boundaryPattern = regexp.MustCompile(`sealpost-[0-9a-f]{32}`)

// checkSharedRender renders ms both ways and fails unless every message is
// the same bytes, the random multipart boundary aside.
func checkSharedRender(t *testing.T, ms *MailSend) {
	t.Helper()
	now := time.Date(2024, 3, 5, 14, 7, 9, 0, time.FixedZone("", 3600))
	want, wantErr := unsharedRender(ms, "xmsgid", now, "mx.example.com")
	msgs, err := ms.Messages(1, "xmsgid", now, "mx.example.com")
	if (err == nil) != (wantErr == nil) || err != nil && err.Error() != wantErr.Error() {
		t.Fatalf("Messages error = %v, unshared rendering's = %v", err, wantErr)
	}
	if err != nil {
		return
	}
	if len(msgs) != len(want) {
		t.Fatalf("%d messages, want %d", len(msgs), len(want))
	}
	for i, m := range msgs {
		if m.Body != msgs[0].Body {
			t.Errorf("message %d has a body of its own", i)
		}
		got, err := m.Render()
		if err != nil {
			t.Fatalf("message %d: Render: %v", i, err)
		}
		got = boundaryPattern.ReplaceAll(got, []byte("BOUNDARY"))
		w := boundaryPattern.ReplaceAll(want[i], []byte("BOUNDARY"))
		if !bytes.Equal(got, w) {
			t.Errorf("message %d renders\n%q\nwant\n%q", i, got, w)
		}
	}
}

// TestSharedRenderErrors holds that a request the parser would refuse but
// a caller built by hand fails the same way as before.
func TestSharedRenderErrors(t *testing.T) {
	base := func() *MailSend {
		return &MailSend{
			Personalizations: []Personalization{{To: []Address{{Email: "a@example.com"}}}, {To: []Address{{Email: "b@example.com"}}, Subject: "own"}},
			From:             Address{Email: "f@example.com"},
			Subject:          "s",
			Content:          []Content{{Type: "text/plain", Value: "x"}},
		}
	}
	for name, mutate := range map[string]func(*MailSend){
		"reserved top-level header":          func(m *MailSend) { m.Headers = map[string]string{"To": "x", "A": "y"} },
		"reserved personalization header":    func(m *MailSend) { m.Personalizations[1].Headers = map[string]string{"Date": "x"} },
		"line break in a top-level header":   func(m *MailSend) { m.Headers = map[string]string{"X-A": "a\r\nX-Evil: 1", "X-B": "b"} },
		"line break in a shared from name":   func(m *MailSend) { m.From.Name = "F\r\nX-Evil: 1" },
		"line break after a bad name":        func(m *MailSend) { m.Headers = map[string]string{"X-A": "a\nb", "Bad Name": "c"} },
		"line break in an unused subject":    func(m *MailSend) { m.Subject = "s\r\n"; m.Personalizations[0].Subject = "own" },
		"line break in a personal subject":   func(m *MailSend) { m.Personalizations[1].Subject = "s\r\nX: 1" },
		"line break in a personal from name": func(m *MailSend) { m.Personalizations[1].From = &Address{Email: "p@example.com", Name: "P\nX: 1"} },
	} {
		t.Run(name, func(t *testing.T) {
			ms := base()
			mutate(ms)
			checkSharedRender(t, ms)
		})
	}
}

// TestSharedRenderSize holds that a send's messages together take about
// its content once, not once per personalization.
func TestSharedRenderSize(t *testing.T) {
	ms := &MailSend{From: Address{Email: "f@example.com"}, Subject: "s", Headers: map[string]string{"X-Big": strings.Repeat("h ", 10000)},
		Content: []Content{{Type: "text/plain", Value: strings.Repeat("content line\r\n", 8000)}}}
	for i := range 1000 {
		ms.Personalizations = append(ms.Personalizations, Personalization{To: []Address{{Email: "r" + strconv.Itoa(i) + "@example.com"}}})
	}
	msgs, err := ms.Messages(1, "xmsgid", time.Now(), "mx.example.com")
	if err != nil {
		t.Fatal(err)
	}
	layouts := 0
	for _, m := range msgs {
		layouts += len(m.Layout)
	}
	rendered, err := msgs[0].Render()
	if err != nil {
		t.Fatal(err)
	}
	if body := len(msgs[0].Body.Data); body > len(rendered) || layouts > 200*len(msgs) {
		t.Errorf("one message renders to %d bytes; the shared body is %d and the 1000 layouts %d together, want about one message and 200 bytes each",
			len(rendered), body, layouts)
	}
}

// unsharedRender is how Messages rendered each personalization before
// messages shared a stored body: every one a complete copy. It stays as
// the reference that the shared rendering must match byte for byte.
func unsharedRender(m *MailSend, xMessageID string, now time.Time, hostname string) ([][]byte, error) {
	if !validMessageIDPart(xMessageID) {
		return nil, Errorf(EINTERNAL, "rendering mail: unusable X-Message-Id %q", xMessageID)
	}
	if !validHostname(hostname) {
		return nil, Errorf(EINTERNAL, "rendering mail: unusable host name %q", hostname)
	}
	contentHeader, body, err := renderMIME(m.Content, m.Attachments)
	if err != nil {
		return nil, err
	}
	msgs := make([][]byte, 0, len(m.Personalizations))
	for i, pz := range m.Personalizations {
		from := m.From
		if pz.From != nil {
			from = *pz.From
		}
		subject := pz.Subject
		if subject == "" {
			subject = m.Subject
		}
		smtpID := "<" + xMessageID + "." + strconv.Itoa(i) + "@" + hostname + ">"

		var h headerBuilder
		h.field("Date", now.Format(time.RFC1123Z))
		h.field("From", formatAddress(from))
		if len(pz.To) > 0 {
			h.field("To", formatAddressList(pz.To))
		}
		if len(pz.Cc) > 0 {
			h.field("Cc", formatAddressList(pz.Cc))
		}
		switch {
		case m.ReplyTo != nil:
			h.field("Reply-To", formatAddress(*m.ReplyTo))
		case len(m.ReplyToList) > 0:
			h.field("Reply-To", formatAddressList(m.ReplyToList))
		}
		h.field("Subject", unstructured(subject))
		h.field("Message-ID", smtpID)
		h.field("MIME-Version", "1.0")
		custom := mergeStrings(m.Headers, pz.Headers, true)
		names := make([]string, 0, len(custom))
		for name := range custom {
			names = append(names, name)
		}
		slices.SortFunc(names, func(a, b string) int { return strings.Compare(strings.ToLower(a), strings.ToLower(b)) })
		for _, name := range names {
			if !ValidHeaderName(name) || ReservedHeader(strings.ToLower(name)) {
				h.err = Errorf(EINVALID, "header %q may not be set", name)
				break
			}
			h.field(name, unstructured(custom[name]))
		}
		if h.err != nil {
			return nil, h.err
		}
		data := make([]byte, 0, h.buf.Len()+len(contentHeader)+2+len(body))
		data = append(data, h.buf.Bytes()...)
		data = append(data, contentHeader...)
		data = append(data, "\r\n"...)
		data = append(data, body...)

		msgs = append(msgs, data)
	}
	return msgs, nil
}
