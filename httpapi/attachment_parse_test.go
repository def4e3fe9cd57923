package httpapi_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/sealpost/sealpost"
	"github.com/sealpost/sealpost/httpapi"
	"github.com/sealpost/sealpost/internal/sendtest"
)

func TestParseMailSendAttachments(t *testing.T) {
	t.Parallel()
	att := func(kv ...any) map[string]any {
		m := map[string]any{"content": "aGVsbG8=", "filename": "hello.txt"}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(m, kv[i].(string))
			} else {
				m[kv[i].(string)] = kv[i+1]
			}
		}
		return m
	}
	type problem struct{ field, message string }
	const (
		contentMsg = "The attachment content must be a string at least one character in length."
		base64Msg  = "The attachment content must be base64 encoded."
	)
	tests := []struct {
		name string
		atts any
		want []problem
	}{
		{"minimal", []any{att()}, nil},
		{"every field", []any{att("type", "image/png", "disposition", "inline", "content_id", "logo@sealpost")}, nil},
		{"type upper case", []any{att("type", "Application/PDF")}, nil},
		{"content_id without inline", []any{att("content_id", "x")}, nil},
		{"null fields are absent", []any{att("type", nil, "disposition", nil, "content_id", nil)}, nil},
		{"non-ASCII file name", []any{att("filename", "Übersicht, 2024 – 報告.pdf")}, nil},

		{"content missing", []any{att("content", nil)}, []problem{{"attachments.0.content", contentMsg}}},
		{"content empty", []any{att("content", "")}, []problem{{"attachments.0.content", contentMsg}}},
		{"content number", []any{att("content", 5)}, []problem{{"attachments.0.content", contentMsg}}},
		{"content not base64", []any{att("content", "hello!")}, []problem{{"attachments.0.content", base64Msg}}},
		{"content unpadded", []any{att("content", "aGVsbG8")}, []problem{{"attachments.0.content", base64Msg}}},
		{"content URL alphabet", []any{att("content", "-_-_")}, []problem{{"attachments.0.content", base64Msg}}},
		{"content line-wrapped", []any{att("content", "aGVs\nbG8=")}, []problem{{"attachments.0.content", base64Msg}}},
		{"content CRLF-wrapped", []any{att("content", "aGVs\r\nbG8=")}, []problem{{"attachments.0.content", base64Msg}}},
		{"content with space", []any{att("content", "aGVs bG8=")}, []problem{{"attachments.0.content", base64Msg}}},
		{"content non-canonical padding bits", []any{att("content", "aGVsbG9=")}, []problem{{"attachments.0.content", base64Msg}}},

		{"filename missing", []any{att("filename", nil)}, []problem{{"attachments.0.filename", "filename is required."}}},
		{"filename empty", []any{att("filename", "")}, []problem{{"attachments.0.filename", "filename is required."}}},
		{"filename number", []any{att("filename", 1)}, []problem{{"attachments.0.filename", "The filename of your attachment must be a string."}}},
		{"filename CRLF", []any{att("filename", "a\r\nContent-Type: text/html")}, []problem{{"attachments.0.filename", "The filename of your attachment can't contain CRLF characters."}}},
		{"filename semicolon", []any{att("filename", "a;b")}, []problem{{"attachments.0.filename", "The filename of your attachment can't contain CRLF characters."}}},
		{"filename NUL", []any{att("filename", "a\x00")}, []problem{{"attachments.0.filename", "The filename of your attachment can't contain CRLF characters."}}},
		{"filename 256 bytes", []any{att("filename", strings.Repeat("n", 256))}, []problem{{"attachments.0.filename", "The filename of your attachment may be at most 255 bytes long."}}},

		{"type empty", []any{att("type", "")}, []problem{{"attachments.0.type", "The attachment type must be a string and at least one character in length."}}},
		{"type bool", []any{att("type", true)}, []problem{{"attachments.0.type", "The attachment type must be a string and at least one character in length."}}},
		{"type with parameter", []any{att("type", "text/plain; charset=utf-8")}, []problem{{"attachments.0.type", "The type can't contain ';', or CRLF characters."}}},
		{"type CRLF", []any{att("type", "text/plain\r\nX: 1")}, []problem{{"attachments.0.type", "The type can't contain ';', or CRLF characters."}}},
		{"type without subtype", []any{att("type", "pdf")}, []problem{{"attachments.0.type", "The attachment type must be a single MIME type of at most 255 characters, such as application/pdf or image/png; multipart and message types cannot be attached."}}},
		{"type multipart", []any{att("type", "multipart/mixed")}, []problem{{"attachments.0.type", "The attachment type must be a single MIME type of at most 255 characters, such as application/pdf or image/png; multipart and message types cannot be attached."}}},
		{"type message", []any{att("type", "message/rfc822")}, []problem{{"attachments.0.type", "The attachment type must be a single MIME type of at most 255 characters, such as application/pdf or image/png; multipart and message types cannot be attached."}}},

		{"disposition other", []any{att("disposition", "Inline")}, []problem{{"attachments.0.disposition", `The disposition of your attachment can be either "inline" or "attachment". You provided "Inline".`}}},
		{"disposition number", []any{att("disposition", 1)}, []problem{{"attachments.0.disposition", `The disposition of your attachment can be either "inline" or "attachment". You provided 1.`}}},
		{"disposition long", []any{att("disposition", strings.Repeat("x", 100))}, []problem{{"attachments.0.disposition", `The disposition of your attachment can be either "inline" or "attachment". You provided "` + strings.Repeat("x", 64) + `...".`}}},

		{"inline without content_id", []any{att("disposition", "inline")}, []problem{{"attachments.0.content_id", "The content_id is required when the disposition is inline."}}},
		{"inline with empty content_id", []any{att("disposition", "inline", "content_id", "")}, []problem{{"attachments.0.content_id", "The content_id is required when the disposition is inline."}}},
		{"content_id number", []any{att("content_id", 12)}, []problem{{"attachments.0.content_id", "The content ID of your attachment must be a string. You provided 12."}}},
		{"content_id object", []any{att("content_id", map[string]any{"a": strings.Repeat("b", 80)})}, []problem{{"attachments.0.content_id", "The content ID of your attachment must be a string. You provided an object."}}},
		{"content_id CRLF", []any{att("content_id", "a\r\nb")}, []problem{{"attachments.0.content_id", "The content ID of your attachment can't contain CRLF characters."}}},
		{"content_id semicolon", []any{att("content_id", "a;b")}, []problem{{"attachments.0.content_id", "The content ID of your attachment can't contain CRLF characters."}}},
		{"content_id angle bracket", []any{att("content_id", "a>b")}, []problem{{"attachments.0.content_id", "The content ID of your attachment must be at most 255 printable ASCII characters without spaces, quotes, parentheses, backslashes or angle brackets."}}},
		{"content_id space", []any{att("content_id", "a b")}, []problem{{"attachments.0.content_id", "The content ID of your attachment must be at most 255 printable ASCII characters without spaces, quotes, parentheses, backslashes or angle brackets."}}},
		{"content_id non-ASCII", []any{att("content_id", "bild-ä")}, []problem{{"attachments.0.content_id", "The content ID of your attachment must be at most 255 printable ASCII characters without spaces, quotes, parentheses, backslashes or angle brackets."}}},

		{"attachment not an object", []any{att(), "x"}, []problem{{"attachments.1", "Invalid type. Expected: object, given: string."}}},
		{"every problem of several attachments", []any{att("content", "!"), att("filename", nil, "disposition", "inline")}, []problem{
			{"attachments.0.content", base64Msg},
			{"attachments.1.filename", "filename is required."},
			{"attachments.1.content_id", "The content_id is required when the disposition is inline."},
		}},
		{"content_id refused, not also missing", []any{att("disposition", "inline", "content_id", "a b")}, []problem{{"attachments.0.content_id", "The content ID of your attachment must be at most 255 printable ASCII characters without spaces, quotes, parentheses, backslashes or angle brackets."}}},
		{"long number", []any{att("content_id", json.Number(strings.Repeat("1", 70)))}, []problem{{"attachments.0.content_id", "The content ID of your attachment must be a string. You provided a number."}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ms, err := httpapi.ParseMailSend(sendtest.Body(t, map[string]any{"attachments": tt.atts}))
			var got []problem
			for _, f := range sealpost.ErrorFields(err) {
				got = append(got, problem{f.Field, f.Message})
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("problems %q, want %q", got, tt.want)
			}
			if err == nil && len(ms.Attachments) != len(tt.atts.([]any)) {
				t.Fatalf("%d attachments parsed", len(ms.Attachments))
			}
		})
	}
}

func TestParseMailSendAttachmentDefaults(t *testing.T) {
	t.Parallel()
	ms, err := httpapi.ParseMailSend(sendtest.Body(t, map[string]any{"attachments": []any{
		map[string]any{"content": "aGVsbG8=", "filename": "a.bin"},
		map[string]any{"content": "aGVsbG8=", "filename": "b.pdf", "type": "Application/PDF", "disposition": "inline", "content_id": "b"},
	}}))
	if err != nil {
		t.Fatal(err)
	}
	want := []sealpost.Attachment{
		{Content: "aGVsbG8=", Filename: "a.bin", Type: "application/octet-stream", Disposition: "attachment"},
		{Content: "aGVsbG8=", Filename: "b.pdf", Type: "application/pdf", Disposition: "inline", ContentID: "b"},
	}
	if !reflect.DeepEqual(ms.Attachments, want) {
		t.Fatalf("attachments %+v, want %+v", ms.Attachments, want)
	}
}

// TestParseMailSendAttachmentsCountTowardsTheRenderedSize: each
// personalization is sent with its own copy of the attachments.
func TestParseMailSendAttachmentsCountTowardsTheRenderedSize(t *testing.T) {
	t.Parallel()
	var many []any
	for i := range 1000 {
		many = append(many, sendtest.To(fmt.Sprintf("r%d@example.com", i)))
	}
	big := base64.StdEncoding.EncodeToString(make([]byte, 120<<10)) // 160 KB encoded
	_, err := httpapi.ParseMailSend(sendtest.Body(t, map[string]any{
		"personalizations": many,
		"attachments":      []any{map[string]any{"content": big, "filename": "big.bin"}},
	}))
	if got := problemFields(err); !reflect.DeepEqual(got, []string{"attachments"}) {
		t.Fatalf("problem fields %q, want [attachments]", got)
	}
	if _, err := httpapi.ParseMailSend(sendtest.Body(t, map[string]any{
		"personalizations": many[:100],
		"attachments":      []any{map[string]any{"content": big, "filename": "big.bin"}},
	})); err != nil {
		t.Fatalf("100 copies of 160 KB refused: %v", err)
	}
}
