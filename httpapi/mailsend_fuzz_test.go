package httpapi_test

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
	"github.com/sealpost/sealpost/httpapi"
	"github.com/sealpost/sealpost/internal/mimetest"
	"github.com/sealpost/sealpost/internal/sendtest"
)

// FuzzParseMailSend checks that no body makes ParseMailSend panic or fail
// other than with EINVALID, and that every body it accepts renders to
// messages with CRLF line ends, lines of at most 998 octets, a header
// net/mail can read and no Bcc header.
func FuzzParseMailSend(f *testing.F) {
	for _, seed := range []string{
		`{}`,
		`[]`,
		`null`,
		// SendGrid's own minimal example.
		`{"personalizations":[{"to":[{"email":"john.doe@example.com","name":"John Doe"}],"subject":"Hello, World!"}],"content":[{"type":"text/plain","value":"Heya!"}],"from":{"email":"sam.smith@example.com","name":"Sam Smith"},"reply_to":{"email":"sam.smith@example.com","name":"Sam Smith"}}`,
		// Its kitchen-sink example, trimmed of what sealpost refuses.
		`{"personalizations":[{"to":[{"email":"john_doe@example.com","name":"John Doe"},{"email":"julia_doe@example.com","name":"Julia Doe"}],"cc":[{"email":"jane_doe@example.com","name":"Jane Doe"}],"bcc":[{"email":"james_doe@example.com","name":"Jim Doe"}]},{"from":{"email":"sales@example.com","name":"Example Sales Team"},"to":[{"email":"janice_doe@example.com","name":"Janice Doe"}],"bcc":[{"email":"jordan_doe@example.com","name":"Jordan Doe"}]}],"from":{"email":"orders@example.com","name":"Example Order Confirmation"},"reply_to":{"email":"customer_service@example.com","name":"Example Customer Service Team"},"subject":"Your Example Order Confirmation","content":[{"type":"text/plain","value":"Thank you for your order."},{"type":"text/html","value":"<p>Hello from Twilio SendGrid!</p><p>Sending with the email service trusted by developers and marketers for <strong>time-savings</strong>, <strong>scalability</strong>, and <strong>delivery expertise</strong>.</p><p>%open-track%</p>"}],"categories":["cake","pie","baking"],"send_at":1617260400,"batch_id":"AsdFgHjklQweRTYuIopzXcVBNm0aSDfGHjklmZcVbNMqWert1znmOP2asDFjkl","asm":{"group_id":12345,"groups_to_display":[12345]},"ip_pool_name":"transactional email","mail_settings":{"bypass_list_management":{"enable":false},"footer":{"enable":false},"sandbox_mode":{"enable":false}},"tracking_settings":{"click_tracking":{"enable":true,"enable_text":false},"open_tracking":{"enable":true,"substitution_tag":"%open-track%"},"subscription_tracking":{"enable":false}},"headers":{"X-Campaign":"spring"},"custom_args":{"order":"1"}}`,
		// The shape the official Go client sends.
		`{"from":{"name":"Example User","email":"test@example.com"},"subject":"Sending with Twilio SendGrid is Fun","personalizations":[{"to":[{"name":"Example User","email":"test@example.com"}]}],"content":[{"type":"text/plain","value":"and easy to do anywhere, even with Go"},{"type":"text/html","value":"<strong>and easy to do anywhere, even with Go</strong>"}]}`,
		`{"personalizations":[{"to":[{"email":"a@example.com","name":"Jöhn \"Q\" Dœ, Jr."}],"subject":"=?utf-8?q?x?= Grüße\ttab"}],"from":{"email":"f@example.com","name":"=?x?"},"content":[{"type":"text/plain","value":"line\rbare cr\nbare lf\r\n.\r\n"}],"headers":{"X-Long":"` + strings.Repeat("w", 1200) + `"}}`,
		`{"personalizations":[{"to":[{"email":"a@example.com"}],"subject":"x\r\nBcc: evil@example.net"}],"from":{"email":"f@example.com"},"content":[{"type":"text/plain","value":"x"}]}`,
		"{\"personalizations\":[{\"to\":[{\"email\":\"a@example.com\",\"name\":\"\xff\"}]}],\"from\":{\"email\":\"f@example.com\"},\"subject\":\"s\",\"content\":[{\"type\":\"text/plain\",\"value\":\"x\"}]}",
		// Header injection through every field a header or an SMTP
		// command is made from, and what PostgreSQL cannot store.
		`{"personalizations":[{"to":[{"email":"a@example.com","name":"A\r\nBcc: x@example.net"}],"headers":{"X-A":"v\r\nX-Evil: 1"},"custom_args":{"k\r\n":"v\n"}}],"from":{"email":"s@example.com","name":"S\nX-Evil: 1"},"reply_to":{"email":"r@example.com\r\nX-Evil: 1"},"subject":"s","content":[{"type":"text/plain","value":"p"}],"categories":["c\r\nX-Evil: 1"],"headers":{"X-B\r\nX-Evil":"1"}}`,
		`{"personalizations":[{"to":[{"email":"a@example.com>\r\nRCPT TO:<evil@example.net"}]}],"from":{"email":"s@example.com> SIZE=1"},"subject":"s","content":[{"type":"text/plain","value":"p"}]}`,
		`{"personalizations":[{"to":[{"email":"a@example.com"}],"custom_args":{"k":"v\u0000"}}],"from":{"email":"s@example.com"},"subject":"s\u2028X: 1","content":[{"type":"text/plain","value":"p\u0000\r\n.\r\nMAIL FROM:<e@example.net>"}],"categories":["c\u0000"],"custom_args":{"\u0000":"v"}}`,
		// Attachments: the official clients' shapes, an inline image, file
		// names that need encoding or try to break out of their header,
		// and content that is not quite base64.
		`{"personalizations":[{"to":[{"email":"a@example.com"}]},{"to":[{"email":"b@example.com"}]}],"from":{"email":"s@example.com"},"subject":"s","content":[{"type":"text/plain","value":"p"},{"type":"text/html","value":"<img src=\"cid:logo\">"}],"attachments":[{"content":"AAEC/f7/","type":"application/octet-stream","filename":"Übersicht „2024“ 報告.bin"},{"content":"iVBORw0KGgo=","type":"image/png","filename":"logo.png","disposition":"inline","content_id":"logo@x"}]}`,
		`{"personalizations":[{"to":[{"email":"a@example.com"}]}],"from":{"email":"s@example.com"},"subject":"s","content":[{"type":"text/plain","value":"p"}],"attachments":[{"content":"eA==","filename":"q\"uote =?utf-8?b?eA==?= \\ ` + strings.Repeat("ü", 100) + `"}]}`,
		`{"personalizations":[{"to":[{"email":"a@example.com"}]}],"from":{"email":"s@example.com"},"subject":"s","content":[{"type":"text/plain","value":"--sealpost-"}],"attachments":[{"content":"aGVs\r\nbG8=","filename":"a\r\nContent-Type: text/html","type":"text/plain\r\nX: 1","disposition":"inline\r\n","content_id":"a>\r\nX: 1"},{"content":"aGVsbG9=","filename":"x"},{"content":"aGVsbG8","filename":"x","disposition":"inline","content_id":""}]}`,
		strings.Repeat("[", 100000) + strings.Repeat("]", 100000),
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ms, err := httpapi.ParseMailSend(body)
		if err != nil {
			if code := sealpost.ErrorCode(err); code != sealpost.EINVALID {
				t.Fatalf("error code %q: %v", code, err)
			}
			if len(sealpost.ErrorFields(err)) == 0 {
				t.Fatalf("EINVALID without problems: %v", err)
			}
			return
		}
		// Categories and custom args are stored as text and JSON, which
		// PostgreSQL refuses NUL in: accepting one would fail after the
		// parse, on one store only.
		for _, c := range ms.Categories {
			if strings.ContainsFunc(c, func(r rune) bool { return r < ' ' || r == 0x7f }) {
				t.Fatalf("category %q with a control character accepted", c)
			}
		}
		args := []map[string]string{ms.CustomArgs}
		for _, pz := range ms.Personalizations {
			args = append(args, pz.CustomArgs)
		}
		for _, m := range args {
			for k, v := range m {
				if strings.ContainsRune(k+v, 0) {
					t.Fatalf("custom arg %q: %q with NUL accepted", k, v)
				}
			}
		}
		msgs, err := ms.Messages(1, "fuzzID", time.Date(2024, 3, 5, 14, 7, 9, 0, time.FixedZone("", 3600)), "mta.sealpost.test")
		if err != nil {
			t.Fatalf("accepted body does not render: %v", err)
		}
		if len(msgs) != len(ms.Personalizations) {
			t.Fatalf("%d messages for %d personalizations", len(msgs), len(ms.Personalizations))
		}
		for _, m := range msgs {
			msg := sendtest.CheckWire(t, sendtest.Rendered(t, m))
			if msg.Header.Get("Bcc") != "" {
				t.Fatalf("Bcc header rendered")
			}
			if _, err := msg.Header.AddressList("From"); err != nil {
				t.Fatalf("From %q does not parse: %v", msg.Header.Get("From"), err)
			}
			if _, err := msg.Header.AddressList("To"); err != nil {
				t.Fatalf("To %q does not parse: %v", msg.Header.Get("To"), err)
			}
			// Every attachment arrives as the file it was: the same
			// bytes, name, type and Content-ID.
			leaves, err := mimetest.Leaves(sendtest.Rendered(t, m))
			if err != nil {
				t.Fatalf("rendered message does not parse: %v", err)
			}
			if want := len(ms.Attachments) + len(ms.Content); len(leaves) != want {
				t.Fatalf("%d parts, want %d", len(leaves), want)
			}
			files := leaves[len(ms.Content):]
			for i, a := range attachmentsInOrder(ms.Attachments) {
				data, err := base64.StdEncoding.DecodeString(a.Content)
				l := files[i]
				if err != nil || !bytes.Equal(l.Data, data) || l.FileName != a.Filename || l.MediaType != a.Type ||
					l.Disposition != a.Disposition || (a.ContentID != "") != (l.Header.Get("Content-ID") == "<"+a.ContentID+">") {
					t.Fatalf("attachment %+v arrives as %+v (%v)", a, l, err)
				}
			}
			header, _, _ := bytes.Cut(sendtest.Rendered(t, m), []byte("\r\n\r\n"))
			if bytes.Contains(header, []byte("\r\n\r\n")) || len(m.Recipients) == 0 {
				t.Fatalf("malformed message")
			}
		}
	})
}

// attachmentsInOrder is the order attachments appear in a rendered message:
// the inline ones with the content, then the others.
func attachmentsInOrder(atts []sealpost.Attachment) []sealpost.Attachment {
	var inline, other []sealpost.Attachment
	for _, a := range atts {
		if a.Disposition == sealpost.DispositionInline {
			inline = append(inline, a)
		} else {
			other = append(other, a)
		}
	}
	return append(inline, other...)
}
