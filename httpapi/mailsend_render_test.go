package httpapi_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
	"github.com/sealpost/sealpost/httpapi"
)

// renderOne parses body and renders its first message.
func renderOne(t *testing.T, body string) []byte {
	t.Helper()
	ms, err := httpapi.ParseMailSend([]byte(body))
	if err != nil {
		t.Fatalf("ParseMailSend: %v", err)
	}
	msgs, err := ms.Messages(1, "abcdefghijklmnopqrstuv", time.Unix(0, 0).UTC(), "mx.example.com")
	if err != nil {
		t.Fatalf("Messages: %v", err)
	}
	data, err := msgs[0].Render()
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	return data
}

func reviewMail(name, subject, headers string) string {
	return `{"personalizations":[{"to":[{"email":"a@example.com","name":"` + name + `"}]}],` +
		`"from":{"email":"s@example.com"},"subject":"` + subject + `",` +
		`"content":[{"type":"text/plain","value":"b"}],"headers":{` + headers + `}}`
}

// Runs of spaces count towards RFC 5322's 998-octet line limit just as
// words do: a long run in any header text must not make a line too long.
func TestRenderedLinesWithinLimitWithLongSpaceRuns(t *testing.T) {
	spaces := strings.Repeat(" ", 1200)
	quotes := strings.Repeat(`\"`, 700)
	tests := []struct{ name, body string }{
		{"subject leading spaces", reviewMail("", spaces+"x", "")},
		{"subject trailing spaces", reviewMail("", "x"+spaces, "")},
		{"subject inner spaces", reviewMail("", "x"+spaces+"y", "")},
		{"header value trailing spaces", reviewMail("", "s", `"X-Pad":"a`+spaces+`"`)},
		{"header value inner spaces", reviewMail("", "s", `"X-Pad":"a`+spaces+`b"`)},
		{"display name spaces", reviewMail(spaces+"x", "s", "")},
		{"display name quotes", reviewMail(quotes, "s", "")},
		{"long name long word", reviewMail("", "s", `"`+strings.Repeat("X", 100)+`":"`+strings.Repeat("w", 700)+spaces[:78]+strings.Repeat("v", 700)+spaces[:78]+`"`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i, l := range bytes.Split(renderOne(t, tt.body), []byte("\r\n")) {
				if len(l) > 998 {
					t.Errorf("line %d has %d octets: %.40q...", i, len(l), l)
				}
			}
		})
	}
}

// A structured header such as List-Unsubscribe is unusable once RFC 2047
// encoded; a printable ASCII value that fits in a line goes out as given.
func TestLongASCIIHeaderValueNotEncoded(t *testing.T) {
	url := "<https://example.com/unsubscribe/" + strings.Repeat("a1B2", 100) + ">"
	data := renderOne(t, reviewMail("", "s", `"List-Unsubscribe":"`+url+`"`))
	if !bytes.Contains(data, []byte("\r\nList-Unsubscribe: "+url+"\r\n")) {
		t.Errorf("List-Unsubscribe not rendered as given:\n%s", data)
	}
}

// Content goes out quoted-printable, which RFC 2046 section 5.2 forbids for
// message/* media types: such a content type must be refused, not sent.
func TestContentTypeMessageRefused(t *testing.T) {
	for _, ct := range []string{"message/rfc822", "message/partial", "Message/External-Body"} {
		body := `{"personalizations":[{"to":[{"email":"a@example.com"}]}],"from":{"email":"s@example.com"},` +
			`"subject":"s","content":[{"type":"` + ct + `","value":"b"}]}`
		_, err := httpapi.ParseMailSend([]byte(body))
		if sealpost.ErrorCode(err) != sealpost.EINVALID {
			t.Errorf("content type %s: err %v, want sealpost.EINVALID", ct, err)
			continue
		}
		if f := sealpost.ErrorFields(err); len(f) != 1 || f[0].Field != "content.0.type" {
			t.Errorf("content type %s: fields %+v, want one on content.0.type", ct, f)
		}
	}
}
