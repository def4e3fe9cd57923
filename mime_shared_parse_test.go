package sealpost_test

import (
	"strings"
	"testing"

	"github.com/sealpost/sealpost"
	"github.com/sealpost/sealpost/httpapi"
)

// sharedRenderCases are mail sends that exercise every field a
// personalization can share or override.
var sharedRenderCases = []string{
	`{"personalizations":[{"to":[{"email":"a@example.com"}]}],"from":{"email":"f@example.com"},"subject":"s","content":[{"type":"text/plain","value":"hello"}]}`,
	// Several personalizations, each overriding something else.
	`{"personalizations":[` +
		`{"to":[{"email":"a@example.com","name":"Ä B"}],"cc":[{"email":"c@example.com"}],"bcc":[{"email":"b@example.com"}]},` +
		`{"to":[{"email":"d@example.com"}],"subject":"own subject","from":{"email":"pf@example.com","name":"Own From"}},` +
		`{"to":[{"email":"e@example.com"}],"headers":{"x-campaign":"own, lower case","X-Aaa":"first","X-Zzz":"last","X-Mid":"middle"}},` +
		`{"to":[{"email":"g@example.com"}],"headers":{"X-Campaign":"same spelling"},"subject":"Grüße \t tab"}` +
		`],"from":{"email":"f@example.com","name":"Sender, Inc."},"reply_to":{"email":"r@example.com","name":"Reply"},"subject":"shared subject",` +
		`"headers":{"X-Campaign":"spring","X-Long":"` + "LONGWORD" + `","X-B":"b","List-Unsubscribe":"<https://example.com/u?id=1>"},` +
		`"content":[{"type":"text/plain","value":"plain ünïcode\r\n.\r\nline"},{"type":"text/html","value":"<p>html</p>"}],` +
		`"categories":["c1"],"custom_args":{"k":"v"}}`,
	// No top-level subject: every personalization has its own.
	`{"personalizations":[{"to":[{"email":"a@example.com"}],"subject":"one"},{"to":[{"email":"b@example.com"}],"subject":"two"}],` +
		`"from":{"email":"f@example.com"},"reply_to_list":[{"email":"r1@example.com"},{"email":"r2@example.com","name":"R Two"}],` +
		`"content":[{"type":"text/html","value":"<b>x</b>"}]}`,
	// Attachments, inline and not, shared by personalizations that
	// override the subject and a header.
	`{"personalizations":[{"to":[{"email":"a@example.com"}],"subject":"own","headers":{"X-A":"own"}},{"to":[{"email":"b@example.com"}]}],` +
		`"from":{"email":"f@example.com"},"subject":"s","headers":{"X-A":"a"},` +
		`"content":[{"type":"text/plain","value":"p"},{"type":"text/html","value":"<img src=\"cid:i\">"}],` +
		`"attachments":[{"content":"AAEC/f7/","filename":"Grüße.bin"},{"content":"aW1n","filename":"i.gif","type":"image/gif","disposition":"inline","content_id":"i"}]}`,
	// A header override that sorts before, between and after the shared ones.
	`{"personalizations":[{"to":[{"email":"a@example.com"}],"headers":{"A-First":"1","X-M":"2","Z-Last":"3"}},{"to":[{"email":"b@example.com"}]}],` +
		`"from":{"email":"f@example.com"},"subject":"` + "=?utf-8?q?x?=" + `","headers":{"X-A":"a","X-Z":"z"},` +
		`"content":[{"type":"text/calendar","value":"BEGIN:VCALENDAR"}]}`,
}

func TestSharedRenderMatchesUnshared(t *testing.T) {
	for i, body := range sharedRenderCases {
		body = strings.ReplaceAll(body, "LONGWORD", strings.Repeat("w", 1200))
		ms, err := httpapi.ParseMailSend([]byte(body))
		if err != nil {
			t.Fatalf("case %d: ParseMailSend: %v", i, err)
		}
		sealpost.CheckSharedRender(t, ms)
	}
}

// FuzzSharedRender checks every request the parser accepts against the
// unshared rendering.
func FuzzSharedRender(f *testing.F) {
	for _, body := range sharedRenderCases {
		f.Add([]byte(body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ms, err := httpapi.ParseMailSend(body)
		if err != nil {
			return
		}
		sealpost.CheckSharedRender(t, ms)
	})
}
