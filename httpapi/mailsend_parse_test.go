package httpapi_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/sealpost/sealpost"
	"github.com/sealpost/sealpost/httpapi"
	"github.com/sealpost/sealpost/internal/sendtest"
)

func with(m map[string]any, k string, v any) map[string]any {
	out := make(map[string]any, len(m)+1)
	for kk, vv := range m {
		out[kk] = vv
	}
	out[k] = v
	return out
}

func problemFields(err error) []string {
	var out []string
	for _, f := range sealpost.ErrorFields(err) {
		out = append(out, f.Field)
	}
	return out
}

func TestParseMailSendEmptyObjectMatchesSendGrid(t *testing.T) {
	t.Parallel()
	_, err := httpapi.ParseMailSend([]byte(`{}`))
	if sealpost.ErrorCode(err) != sealpost.EINVALID {
		t.Fatalf("code %q, want %q (err %v)", sealpost.ErrorCode(err), sealpost.EINVALID, err)
	}
	want := []sealpost.FieldError{
		{Field: "from.email", Message: `The from object must be provided for every email send. It is an object that requires the email parameter, but may also contain a name parameter.  e.g. {"email" : "example@example.com"}  or {"email" : "example@example.com", "name" : "Example Recipient"}.`},
		{Field: "personalizations", Message: "The personalizations field is required and must have at least one personalization."},
		{Field: "content", Message: "Unless a valid template_id is provided, the content parameter is required. There must be at least one defined content block. We typically suggest both text/plain and text/html blocks are included, but only one block is required."},
	}
	if got := sealpost.ErrorFields(err); !reflect.DeepEqual(got, want) {
		t.Fatalf("problems\n got %q\nwant %q", got, want)
	}
}

func TestParseMailSendValidation(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 256)
	manyPzs := make([]any, 1001)
	for i := range manyPzs {
		manyPzs[i] = sendtest.To(fmt.Sprintf("r%d@example.com", i))
	}
	var manyTo []string
	for i := range 1001 {
		manyTo = append(manyTo, fmt.Sprintf("r%d@example.com", i))
	}
	var exactly1000 []string
	for i := range 1000 {
		exactly1000 = append(exactly1000, fmt.Sprintf("r%d@example.com", i))
	}
	bigArgs := map[string]any{"k": strings.Repeat("v", 10000)}
	halfArgs := map[string]any{"a": strings.Repeat("v", 6000)}
	otherHalf := map[string]any{"b": strings.Repeat("v", 6000)}

	tests := []struct {
		name string
		body []byte
		want []string // problem fields in order; nil means valid
	}{
		{"valid minimal", sendtest.Body(t, nil), nil},
		{"unknown top-level fields ignored", sendtest.Body(t, map[string]any{"tracking_settings": map[string]any{"x": 1}, "send_at": 1, "asm": "x"}), nil},
		{"null optional fields", sendtest.Body(t, map[string]any{"reply_to": json.RawMessage("null"), "headers": json.RawMessage("null"), "categories": json.RawMessage("null"), "custom_args": json.RawMessage("null"), "template_id": json.RawMessage("null")}), nil},
		{"not JSON", []byte(`{"from":`), []string{""}},
		{"top level array", []byte(`[]`), []string{""}},
		{"top level string", []byte(`"x"`), []string{""}},

		{"from missing", sendtest.Body(t, map[string]any{"from": nil}), []string{"from.email"}},
		{"from null", sendtest.Body(t, map[string]any{"from": json.RawMessage("null")}), []string{"from.email"}},
		{"from string", sendtest.Body(t, map[string]any{"from": "from@example.com"}), []string{"from"}},
		{"from without email", sendtest.Body(t, map[string]any{"from": map[string]any{"name": "x"}}), []string{"from.email"}},
		{"from empty email", sendtest.Body(t, map[string]any{"from": map[string]any{"email": ""}}), []string{"from.email"}},
		{"from invalid email", sendtest.Body(t, map[string]any{"from": map[string]any{"email": "not-an-address"}}), []string{"from.email"}},
		{"from email number", sendtest.Body(t, map[string]any{"from": map[string]any{"email": 5}}), []string{"from.email"}},
		{"from name number", sendtest.Body(t, map[string]any{"from": map[string]any{"email": "a@example.com", "name": 5}}), []string{"from.name"}},

		{"personalizations missing", sendtest.Body(t, map[string]any{"personalizations": nil}), []string{"personalizations"}},
		{"personalizations empty", sendtest.Body(t, map[string]any{"personalizations": []any{}}), []string{"personalizations"}},
		{"personalizations object", sendtest.Body(t, map[string]any{"personalizations": map[string]any{}}), []string{"personalizations"}},
		{"personalization null", sendtest.Body(t, map[string]any{"personalizations": []any{nil}}), []string{"personalizations.0"}},
		{"to missing", sendtest.Body(t, map[string]any{"personalizations": sendtest.Personalizations(map[string]any{"cc": []any{map[string]any{"email": "c@example.com"}}})}), []string{"personalizations.0.to"}},
		{"to empty", sendtest.Body(t, map[string]any{"personalizations": sendtest.Personalizations(map[string]any{"to": []any{}})}), []string{"personalizations.0.to"}},
		{"to missing in second", sendtest.Body(t, map[string]any{"personalizations": sendtest.Personalizations(sendtest.To("a@example.com"), map[string]any{})}), []string{"personalizations.1.to"}},
		{"to element string", sendtest.Body(t, map[string]any{"personalizations": sendtest.Personalizations(map[string]any{"to": []any{"a@example.com"}})}), []string{"personalizations.0.to.0"}},
		{"to email missing", sendtest.Body(t, map[string]any{"personalizations": sendtest.Personalizations(map[string]any{"to": []any{map[string]any{"name": "x"}}})}), []string{"personalizations.0.to.0.email"}},
		{"to email array", sendtest.Body(t, map[string]any{"personalizations": sendtest.Personalizations(map[string]any{"to": []any{map[string]any{"email": []any{"a@example.com"}}}})}), []string{"personalizations.0.to.0.email"}},
		{"to email invalid in second", sendtest.Body(t, map[string]any{"personalizations": sendtest.Personalizations(sendtest.To("a@example.com"), sendtest.To("b@example.com", "bad address@example.com"))}), []string{"personalizations.1.to.1.email"}},
		{"cc email invalid", sendtest.Body(t, map[string]any{"personalizations": sendtest.Personalizations(with(sendtest.To("a@example.com"), "cc", []any{map[string]any{"email": "c@"}}))}), []string{"personalizations.0.cc.0.email"}},
		{"bcc email invalid", sendtest.Body(t, map[string]any{"personalizations": sendtest.Personalizations(with(sendtest.To("a@example.com"), "bcc", []any{map[string]any{"email": "@x.com"}}))}), []string{"personalizations.0.bcc.0.email"}},
		{"name with CRLF", sendtest.Body(t, map[string]any{"personalizations": sendtest.Personalizations(map[string]any{"to": []any{map[string]any{"email": "a@example.com", "name": "A\r\nBcc: evil@example.net"}}})}), []string{"personalizations.0.to.0.name"}},
		{"from name with LF", sendtest.Body(t, map[string]any{"from": map[string]any{"email": "a@example.com", "name": "A\nX: y"}}), []string{"from.name"}},
		{"1001 personalizations", sendtest.Body(t, map[string]any{"personalizations": manyPzs}), []string{"personalizations", "personalizations"}},
		{"1001 recipients", sendtest.Body(t, map[string]any{"personalizations": sendtest.Personalizations(sendtest.To(manyTo...))}), []string{"personalizations"}},
		{"1000 recipients", sendtest.Body(t, map[string]any{"personalizations": sendtest.Personalizations(sendtest.To(exactly1000...))}), nil},
		{"1001 recipients across to cc bcc", sendtest.Body(t, map[string]any{"personalizations": sendtest.Personalizations(with(with(sendtest.To(manyTo[:500]...), "cc", sendtest.To(manyTo[500:1000]...)["to"]), "bcc", sendtest.To(manyTo[1000])["to"]))}), []string{"personalizations"}},
		{"duplicate to and cc", sendtest.Body(t, map[string]any{"personalizations": sendtest.Personalizations(with(sendtest.To("a@example.com"), "cc", []any{map[string]any{"email": "A@Example.com"}}))}), []string{"personalizations.0"}},
		{"duplicate within to", sendtest.Body(t, map[string]any{"personalizations": sendtest.Personalizations(sendtest.To("a@example.com", "a@example.com"))}), []string{"personalizations.0"}},
		{"duplicate to and bcc", sendtest.Body(t, map[string]any{"personalizations": sendtest.Personalizations(with(sendtest.To("a@example.com"), "bcc", []any{map[string]any{"email": "a@example.com"}}))}), []string{"personalizations.0"}},
		{"same address in two personalizations", sendtest.Body(t, map[string]any{"personalizations": sendtest.Personalizations(sendtest.To("a@example.com"), sendtest.To("a@example.com"))}), nil},
		{"personalization from invalid", sendtest.Body(t, map[string]any{"personalizations": sendtest.Personalizations(with(sendtest.To("a@example.com"), "from", map[string]any{"email": "x"}))}), []string{"personalizations.0.from.email"}},

		{"subject missing everywhere", sendtest.Body(t, map[string]any{"subject": nil}), []string{"subject"}},
		{"subject empty", sendtest.Body(t, map[string]any{"subject": ""}), []string{"subject"}},
		{"subject only in every personalization", sendtest.Body(t, map[string]any{"subject": nil, "personalizations": sendtest.Personalizations(with(sendtest.To("a@example.com"), "subject", "s1"), with(sendtest.To("b@example.com"), "subject", "s2"))}), nil},
		{"subject in one of two personalizations", sendtest.Body(t, map[string]any{"subject": nil, "personalizations": sendtest.Personalizations(with(sendtest.To("a@example.com"), "subject", "s1"), sendtest.To("b@example.com"))}), []string{"subject"}},
		{"subject number", sendtest.Body(t, map[string]any{"subject": 5}), []string{"subject"}},
		{"subject with CRLF", sendtest.Body(t, map[string]any{"subject": "Hi\r\nBcc: evil@example.net"}), []string{"subject"}},
		{"personalization subject with LF", sendtest.Body(t, map[string]any{"personalizations": sendtest.Personalizations(with(sendtest.To("a@example.com"), "subject", "a\nb"))}), []string{"personalizations.0.subject"}},
		{"personalization subject number", sendtest.Body(t, map[string]any{"personalizations": sendtest.Personalizations(with(sendtest.To("a@example.com"), "subject", true))}), []string{"personalizations.0.subject"}},

		{"content missing", sendtest.Body(t, map[string]any{"content": nil}), []string{"content"}},
		{"content empty", sendtest.Body(t, map[string]any{"content": []any{}}), []string{"content"}},
		{"content object", sendtest.Body(t, map[string]any{"content": map[string]any{"type": "text/plain", "value": "x"}}), []string{"content"}},
		{"content element string", sendtest.Body(t, map[string]any{"content": []any{"x"}}), []string{"content.0"}},
		{"content value empty", sendtest.Body(t, map[string]any{"content": []any{map[string]any{"type": "text/plain", "value": ""}}}), []string{"content.0.value"}},
		{"content value missing", sendtest.Body(t, map[string]any{"content": []any{map[string]any{"type": "text/plain"}}}), []string{"content.0.value"}},
		{"content type empty", sendtest.Body(t, map[string]any{"content": []any{map[string]any{"type": "", "value": "x"}}}), []string{"content.0.type"}},
		{"content type with parameter", sendtest.Body(t, map[string]any{"content": []any{map[string]any{"type": "text/plain; charset=latin1", "value": "x"}}}), []string{"content.0.type"}},
		{"content type with CRLF", sendtest.Body(t, map[string]any{"content": []any{map[string]any{"type": "text/plain\r\nX: y", "value": "x"}}}), []string{"content.0.type"}},
		{"content type not a media type", sendtest.Body(t, map[string]any{"content": []any{map[string]any{"type": "plain", "value": "x"}}}), []string{"content.0.type"}},
		{"content multipart type", sendtest.Body(t, map[string]any{"content": []any{map[string]any{"type": "multipart/mixed", "value": "x"}}}), []string{"content.0.type"}},
		{"html before plain", sendtest.Body(t, map[string]any{"content": []any{map[string]any{"type": "text/html", "value": "<p>x</p>"}, map[string]any{"type": "text/plain", "value": "x"}}}), []string{"content.1.type"}},
		{"other type before html", sendtest.Body(t, map[string]any{"content": []any{map[string]any{"type": "text/calendar", "value": "x"}, map[string]any{"type": "text/html", "value": "x"}}}), []string{"content.1.type"}},
		{"duplicate type", sendtest.Body(t, map[string]any{"content": []any{map[string]any{"type": "text/plain", "value": "x"}, map[string]any{"type": "Text/Plain", "value": "y"}}}), []string{"content.1.type"}},
		{"plain html and more", sendtest.Body(t, map[string]any{"content": []any{map[string]any{"type": "text/plain", "value": "x"}, map[string]any{"type": "text/html", "value": "y"}, map[string]any{"type": "text/calendar", "value": "z"}}}), nil},

		{"reply_to invalid", sendtest.Body(t, map[string]any{"reply_to": map[string]any{"email": "nope"}}), []string{"reply_to.email"}},
		{"reply_to without email", sendtest.Body(t, map[string]any{"reply_to": map[string]any{"name": "x"}}), []string{"reply_to.email"}},
		{"reply_to and reply_to_list", sendtest.Body(t, map[string]any{"reply_to": map[string]any{"email": "r@example.com"}, "reply_to_list": []any{map[string]any{"email": "s@example.com"}}}), []string{"reply_to_list"}},
		{"reply_to_list invalid", sendtest.Body(t, map[string]any{"reply_to_list": []any{map[string]any{"email": "s@example.com"}, map[string]any{"email": "s"}}}), []string{"reply_to_list.1.email"}},

		{"categories 11", sendtest.Body(t, map[string]any{"categories": []any{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"}}), []string{"categories"}},
		{"categories 10", sendtest.Body(t, map[string]any{"categories": []any{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}}), nil},
		{"categories string", sendtest.Body(t, map[string]any{"categories": "a"}), []string{"categories"}},
		{"category number", sendtest.Body(t, map[string]any{"categories": []any{"a", 1}}), []string{"categories.1"}},
		{"category empty", sendtest.Body(t, map[string]any{"categories": []any{""}}), []string{"categories.0"}},
		{"category 256 chars", sendtest.Body(t, map[string]any{"categories": []any{long}}), []string{"categories.0"}},
		{"category 255 chars", sendtest.Body(t, map[string]any{"categories": []any{long[:255]}}), nil},
		{"category non-ASCII", sendtest.Body(t, map[string]any{"categories": []any{"café"}}), []string{"categories.0"}},
		{"category duplicate", sendtest.Body(t, map[string]any{"categories": []any{"a", "a"}}), []string{"categories"}},

		{"custom_args string", sendtest.Body(t, map[string]any{"custom_args": "x"}), []string{"custom_args"}},
		{"custom_args number value", sendtest.Body(t, map[string]any{"custom_args": map[string]any{"user_id": 1234}}), []string{"custom_args"}},
		{"custom_args too large", sendtest.Body(t, map[string]any{"custom_args": bigArgs}), []string{"custom_args"}},
		{"custom_args merged too large", sendtest.Body(t, map[string]any{"custom_args": halfArgs, "personalizations": sendtest.Personalizations(with(sendtest.To("a@example.com"), "custom_args", otherHalf))}), []string{"personalizations.0.custom_args"}},
		{"custom_args merged override fits", sendtest.Body(t, map[string]any{"custom_args": halfArgs, "personalizations": sendtest.Personalizations(with(sendtest.To("a@example.com"), "custom_args", map[string]any{"a": "short"}))}), nil},
		{"personalization custom_args value bool", sendtest.Body(t, map[string]any{"personalizations": sendtest.Personalizations(with(sendtest.To("a@example.com"), "custom_args", map[string]any{"a": true}))}), []string{"personalizations.0.custom_args"}},

		{"headers array", sendtest.Body(t, map[string]any{"headers": []any{"X-A: b"}}), []string{"headers"}},
		{"header value number", sendtest.Body(t, map[string]any{"headers": map[string]any{"X-A": 1}}), []string{"headers"}},
		{"header value CRLF", sendtest.Body(t, map[string]any{"headers": map[string]any{"X-A": "b\r\nBcc: evil@example.net"}}), []string{"headers"}},
		{"header value NUL", sendtest.Body(t, map[string]any{"headers": map[string]any{"X-A": "b\x00"}}), []string{"headers"}},
		{"header name with space", sendtest.Body(t, map[string]any{"headers": map[string]any{"X A": "b"}}), []string{"headers"}},
		{"header name with colon", sendtest.Body(t, map[string]any{"headers": map[string]any{"X-A:": "b"}}), []string{"headers"}},
		{"header name non-ASCII", sendtest.Body(t, map[string]any{"headers": map[string]any{"X-Ä": "b"}}), []string{"headers"}},
		{"header name empty", sendtest.Body(t, map[string]any{"headers": map[string]any{"": "b"}}), []string{"headers"}},
		{"header names differing in case", []byte(`{"personalizations":[{"to":[{"email":"a@example.com"}]}],"from":{"email":"f@example.com"},"subject":"s","content":[{"type":"text/plain","value":"x"}],"headers":{"X-A":"1","x-a":"2"}}`), []string{"headers"}},
		{"personalization header reserved", sendtest.Body(t, map[string]any{"personalizations": sendtest.Personalizations(with(sendtest.To("a@example.com"), "headers", map[string]any{"Subject": "x"}))}), []string{"personalizations.0.headers"}},
		{"header non-ASCII value", sendtest.Body(t, map[string]any{"headers": map[string]any{"X-A": "ümlaut"}}), nil},

		{"template_id", sendtest.Body(t, map[string]any{"template_id": "d-123"}), []string{"template_id"}},
		{"template_id number", sendtest.Body(t, map[string]any{"template_id": 5}), []string{"template_id"}},
		{"template_id without content and subject", sendtest.Body(t, map[string]any{"template_id": "d-123", "content": nil, "subject": nil}), []string{"subject", "content", "template_id"}},
		{"attachments", sendtest.Body(t, map[string]any{"attachments": []any{map[string]any{"content": "eA==", "filename": "x"}}}), nil},
		{"attachments object", sendtest.Body(t, map[string]any{"attachments": map[string]any{"content": "eA==", "filename": "x"}}), []string{"attachments"}},
		{"attachments empty", sendtest.Body(t, map[string]any{"attachments": []any{}}), nil},
		{"sandbox mode not bool", sendtest.Body(t, map[string]any{"mail_settings": map[string]any{"sandbox_mode": map[string]any{"enable": "yes"}}}), []string{"mail_settings.sandbox_mode.enable"}},

		{"invalid UTF-8 in subject", []byte("{\"personalizations\":[{\"to\":[{\"email\":\"a@example.com\"}]}],\"from\":{\"email\":\"f@example.com\"},\"subject\":\"\xff\",\"content\":[{\"type\":\"text/plain\",\"value\":\"x\"}]}"), []string{"subject"}},
		{"invalid UTF-8 in name", []byte("{\"personalizations\":[{\"to\":[{\"email\":\"a@example.com\",\"name\":\"\xc3\"}]}],\"from\":{\"email\":\"f@example.com\"},\"subject\":\"s\",\"content\":[{\"type\":\"text/plain\",\"value\":\"x\"}]}"), []string{"personalizations.0.to.0.name"}},
		{"invalid UTF-8 in content", []byte("{\"personalizations\":[{\"to\":[{\"email\":\"a@example.com\"}]}],\"from\":{\"email\":\"f@example.com\"},\"subject\":\"s\",\"content\":[{\"type\":\"text/plain\",\"value\":\"\xed\xa0\x80\"}]}"), []string{"content.0.value"}},
		{"invalid UTF-8 in header key", []byte("{\"personalizations\":[{\"to\":[{\"email\":\"a@example.com\"}]}],\"from\":{\"email\":\"f@example.com\"},\"subject\":\"s\",\"content\":[{\"type\":\"text/plain\",\"value\":\"x\"}],\"headers\":{\"X-\xff\":\"v\"}}"), []string{"headers", "headers"}},
		{"invalid UTF-8 in custom arg", []byte("{\"personalizations\":[{\"to\":[{\"email\":\"a@example.com\"}]}],\"from\":{\"email\":\"f@example.com\"},\"subject\":\"s\",\"content\":[{\"type\":\"text/plain\",\"value\":\"x\"}],\"custom_args\":{\"k\":\"\xff\"}}"), []string{"custom_args"}},
		{"invalid UTF-8 in ignored field", []byte("{\"personalizations\":[{\"to\":[{\"email\":\"a@example.com\"}]}],\"from\":{\"email\":\"f@example.com\"},\"subject\":\"s\",\"content\":[{\"type\":\"text/plain\",\"value\":\"x\"}],\"ip_pool_name\":\"\xff\"}"), []string{""}},

		{"several problems at once", sendtest.Body(t, map[string]any{
			"from":             map[string]any{"email": "bad"},
			"personalizations": sendtest.Personalizations(sendtest.To("ok@example.com"), sendtest.To("bad")),
			"subject":          nil,
			"content":          []any{map[string]any{"type": "text/html", "value": ""}},
			"categories":       []any{"a", "a"},
			"custom_args":      map[string]any{"n": 1},
			"headers":          map[string]any{"To": "x"},
		}), []string{"from.email", "personalizations.1.to.0.email", "subject", "content.0.value", "headers", "categories", "custom_args"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ms, err := httpapi.ParseMailSend(tt.body)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v (problems %q)", err, sealpost.ErrorFields(err))
				}
				if ms == nil {
					t.Fatal("nil MailSend without error")
				}
				return
			}
			if sealpost.ErrorCode(err) != sealpost.EINVALID {
				t.Fatalf("code %q, want %q (err %v)", sealpost.ErrorCode(err), sealpost.EINVALID, err)
			}
			if got := problemFields(err); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("problem fields %q, want %q\n%q", got, tt.want, sealpost.ErrorFields(err))
			}
			for _, f := range sealpost.ErrorFields(err) {
				if f.Message == "" {
					t.Errorf("problem with field %q has no message", f.Field)
				}
			}
		})
	}
}

func TestParseMailSendReservedHeaders(t *testing.T) {
	t.Parallel()
	// SendGrid's reserved keys, spelled as its documentation spells them,
	// plus the ones sealpost writes itself.
	for _, name := range []string{"x-sg-id", "x-sg-eid", "received", "dkim-signature", "Content-Type", "Content-Transfer-Encoding", "To", "From", "Subject", "Reply-To", "CC", "BCC", "Date", "Message-ID", "MIME-Version", "SUBJECT", "bcc"} {
		_, err := httpapi.ParseMailSend(sendtest.Body(t, map[string]any{"headers": map[string]any{name: "x"}}))
		if got := problemFields(err); !reflect.DeepEqual(got, []string{"headers"}) {
			t.Errorf("header %q: problem fields %q, want [headers]", name, got)
		}
	}
	for _, name := range []string{"X-Custom", "List-Unsubscribe", "X-Entity-Ref-ID", "In-Reply-To", "References"} {
		if _, err := httpapi.ParseMailSend(sendtest.Body(t, map[string]any{"headers": map[string]any{name: "x"}})); err != nil {
			t.Errorf("header %q rejected: %v", name, err)
		}
	}
}

func TestParseMailSendLimitsTheProblemList(t *testing.T) {
	t.Parallel()
	var bad []string
	for i := range 900 {
		bad = append(bad, fmt.Sprintf("bad%d", i))
	}
	_, err := httpapi.ParseMailSend(sendtest.Body(t, map[string]any{"personalizations": sendtest.Personalizations(sendtest.To(bad...))}))
	fields := sealpost.ErrorFields(err)
	if len(fields) != 101 {
		t.Fatalf("%d problems, want the first 100 and a note", len(fields))
	}
	if last := fields[100]; last.Field != "" || !strings.Contains(last.Message, "100") {
		t.Fatalf("last problem %+v, want a note that the list was cut", last)
	}
}

func TestParseMailSendResult(t *testing.T) {
	t.Parallel()
	body := []byte(`{
		"personalizations": [
			{"to": [{"email": "a@example.com", "name": "A"}], "cc": [{"email": "c@example.com"}], "bcc": [{"email": "b@example.com"}],
			 "subject": "Per", "headers": {"X-P": "1"}, "custom_args": {"k": "p"}, "substitutions": {"-x-": "y"}},
			{"to": [{"email": "d@example.com"}], "from": {"email": "other@example.com", "name": "Other"}}
		],
		"from": {"email": "f@example.com", "name": "F"},
		"reply_to": {"email": "r@example.com"},
		"subject": "Top",
		"content": [{"type": "text/plain", "value": "p"}, {"type": "TEXT/HTML", "value": "h"}],
		"categories": ["c1", "c2"],
		"custom_args": {"k": "t", "j": "t"},
		"headers": {"X-T": "2"},
		"mail_settings": {"sandbox_mode": {"enable": true}}
	}`)
	got, err := httpapi.ParseMailSend(body)
	if err != nil {
		t.Fatalf("ParseMailSend: %v (%q)", err, sealpost.ErrorFields(err))
	}
	want := &sealpost.MailSend{
		Personalizations: []sealpost.Personalization{
			{
				To: []sealpost.Address{{Email: "a@example.com", Name: "A"}}, Cc: []sealpost.Address{{Email: "c@example.com"}}, Bcc: []sealpost.Address{{Email: "b@example.com"}},
				Subject: "Per", Headers: map[string]string{"X-P": "1"}, CustomArgs: map[string]string{"k": "p"},
			},
			{To: []sealpost.Address{{Email: "d@example.com"}}, Cc: []sealpost.Address{}, Bcc: []sealpost.Address{}, From: &sealpost.Address{Email: "other@example.com", Name: "Other"}},
		},
		From:        sealpost.Address{Email: "f@example.com", Name: "F"},
		ReplyTo:     &sealpost.Address{Email: "r@example.com"},
		Subject:     "Top",
		Content:     []sealpost.Content{{Type: "text/plain", Value: "p"}, {Type: "text/html", Value: "h"}},
		Categories:  []string{"c1", "c2"},
		CustomArgs:  map[string]string{"k": "t", "j": "t"},
		Headers:     map[string]string{"X-T": "2"},
		SandboxMode: true,
	}
	// Absent cc and bcc may decode to nil or empty; compare by length.
	for i := range got.Personalizations {
		for _, l := range []*[]sealpost.Address{&got.Personalizations[i].Cc, &got.Personalizations[i].Bcc, &want.Personalizations[i].Cc, &want.Personalizations[i].Bcc} {
			if len(*l) == 0 {
				*l = nil
			}
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
}
