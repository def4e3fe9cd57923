package sealpost

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/mail"
	"strings"
	"unicode/utf8"
)

// MailSend is a parsed, validated POST /v3/mail/send request.
type MailSend struct {
	Personalizations []Personalization
	From             Address
	ReplyTo          *Address
	// ReplyToList is SendGrid's reply_to_list; it and ReplyTo are never
	// both set.
	ReplyToList []Address
	Subject     string
	Content     []Content
	Attachments []Attachment
	Categories  []string
	CustomArgs  map[string]string
	Headers     map[string]string
	// SandboxMode is mail_settings.sandbox_mode.enable: SendGrid validates
	// such a request and answers 200 without sending anything.
	SandboxMode bool
	// SendAt is send_at, Unix seconds, 0 when absent; BatchID is batch_id.
	// See schedule.go.
	SendAt  int64
	BatchID string
}

// Address is an email address with an optional display name.
type Address struct {
	Email string
	Name  string
}

// Personalization is one copy of the message: its recipients and what it
// overrides of the request's top level.
type Personalization struct {
	To, Cc, Bcc []Address
	// From, when set, replaces the request's from for this copy (header and
	// envelope sender).
	From       *Address
	Subject    string
	Headers    map[string]string
	CustomArgs map[string]string
	// SendAt is this copy's send_at, which wins over the request's.
	SendAt int64
}

// Content is one body alternative; Type is a lower-case media type.
type Content struct {
	Type  string
	Value string
}

// Limits of a mail send that are the domain's, not the wire's. SendGrid
// documents all but maxRenderedBytes.
const (
	maxCustomArgsBytes = 10000
	maxEmailLen        = 254
	maxLocalPartLen    = 64
	maxHeaderNameLen   = 100
	// maxRenderedBytes bounds the content size times the number of
	// personalizations: the content is stored once, but sent once per
	// personalization, and this bounds what one request makes sealpost
	// send.
	maxRenderedBytes = 100 << 20
)

// msgCustomArgsSize is SendGrid's wording.
const msgCustomArgsSize = "The combined size of both global and personalization custom arguments may not exceed 10,000 bytes per personalization."

// ReservedHeader reports whether a request may not set the header with
// this lower-case name: SendGrid's reserved keys, plus the ones sealpost
// writes itself (a second Date or Message-ID would make the message invalid,
// and MIME-Version belongs with the MIME structure sealpost builds).
func ReservedHeader(lower string) bool {
	switch lower {
	case "x-sg-id", "x-sg-eid", "received", "dkim-signature", "content-type",
		"content-transfer-encoding", "to", "from", "subject", "reply-to", "cc", "bcc",
		"date", "message-id", "mime-version":
		return true
	}
	return false
}

// HasControl reports whether s holds a character that must never reach a
// header: CR, LF, NUL and the other C0 controls except tab, and DEL.
func HasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if b := s[i]; (b < ' ' && b != '\t') || b == 0x7f {
			return true
		}
	}
	return false
}

// ValidEmail reports whether s is a bare address sealpost accepts: printable
// ASCII without spaces, one @, a dot-atom local part of at most 64 octets, a
// host name as domain, at most 254 octets in all.
func ValidEmail(s string) bool {
	if s == "" || len(s) > maxEmailLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	if strings.Count(s, "@") != 1 {
		return false
	}
	at := strings.IndexByte(s, '@')
	if at == 0 || at > maxLocalPartLen || !validHostname(s[at+1:]) {
		return false
	}
	// net/mail has the RFC 5322 grammar; requiring the address back
	// unchanged rejects comments, quoting and display names.
	a, err := mail.ParseAddress(s)
	return err == nil && a.Name == "" && a.Address == s
}

// validHostname reports whether h is a DNS host name: one or more labels of
// letters, digits and inner hyphens, not ending in an all-numeric label.
func validHostname(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	labels := strings.Split(h, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return strings.Trim(labels[len(labels)-1], "0123456789") != ""
}

// ValidHeaderName reports whether name is an RFC 5322 field name: printable
// ASCII except the colon.
func ValidHeaderName(name string) bool {
	if name == "" || len(name) > maxHeaderNameLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < '!' || c > '~' || c == ':' {
			return false
		}
	}
	return true
}

// CheckCustomArgsSize reports custom args over SendGrid's 10,000-byte
// limit: the request's own, or those a personalization ends up with.
func (ms *MailSend) CheckCustomArgsSize() []FieldError {
	if jsonSize(ms.CustomArgs) > maxCustomArgsBytes {
		return []FieldError{{Field: "custom_args", Message: msgCustomArgsSize}}
	}
	var problems []FieldError
	for i, pz := range ms.Personalizations {
		if len(pz.CustomArgs) > 0 && jsonSize(mergeStrings(ms.CustomArgs, pz.CustomArgs, false)) > maxCustomArgsBytes {
			problems = append(problems, FieldError{Field: fmt.Sprintf("personalizations.%d.custom_args", i), Message: msgCustomArgsSize})
		}
	}
	return problems
}

// jsonSize is the length of m as a JSON object, as events carry it.
func jsonSize(m map[string]string) int {
	if len(m) == 0 {
		return 0
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return 0
	}
	return buf.Len() - 1 // Encode appends a newline
}

// mergeStrings returns base overlaid with over. With foldCase, keys that
// differ only in case are the same key and over's spelling wins.
func mergeStrings(base, over map[string]string, foldCase bool) map[string]string {
	if len(base) == 0 && len(over) == 0 {
		return nil
	}
	out := make(map[string]string, len(base)+len(over))
	for k, v := range base {
		out[k] = v
	}
	if !foldCase {
		for k, v := range over {
			out[k] = v
		}
		return out
	}
	spelling := make(map[string]string, len(out)) // lower case -> key in out
	for k := range out {
		spelling[strings.ToLower(k)] = k
	}
	for k, v := range over {
		if old, ok := spelling[strings.ToLower(k)]; ok {
			delete(out, old)
		}
		out[k] = v
	}
	return out
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// CheckRenderedSize bounds the bytes sending ms produces: each
// personalization goes out with its own copy of the content and the
// attachments.
func (ms *MailSend) CheckRenderedSize() *FieldError {
	size := 0
	for _, c := range ms.Content {
		size += len(c.Value)
	}
	n := len(ms.Personalizations)
	if n > 0 && size > maxRenderedBytes/n {
		return &FieldError{Field: "content", Message: fmt.Sprintf("The content times the number of personalizations may not exceed %d bytes; send fewer personalizations per request.", maxRenderedBytes)}
	} else if n > 0 && size+attachmentsSize(ms.Attachments) > maxRenderedBytes/n {
		return &FieldError{Field: "attachments", Message: fmt.Sprintf("The content and attachments times the number of personalizations may not exceed %d bytes; send fewer personalizations per request.", maxRenderedBytes)}
	}
	return nil
}

// SenderDomains returns the domain of every From address a mail send uses:
// the request's and each personalization's override, lower-case.
func (m *MailSend) SenderDomains() []string {
	var out []string
	add := func(a Address) {
		if at := strings.LastIndexByte(a.Email, '@'); at >= 0 {
			out = append(out, strings.ToLower(a.Email[at+1:]))
		}
	}
	add(m.From)
	for _, p := range m.Personalizations {
		if p.From != nil {
			add(*p.From)
		}
	}
	return out
}

// CheckAuthenticatedSender refuses a mail send whose From domains are not
// all within the account's authenticated domains.
func (m *MailSend) CheckAuthenticatedSender(domains []AuthenticatedDomain) error {
	for _, d := range m.SenderDomains() {
		if !AuthenticatedFor(domains, d) {
			return &Error{Code: ESENDER, Message: "the from address does not match an authenticated domain",
				Fields: []FieldError{{Field: "from", Message: "domain " + d + " is not authenticated"}}}
		}
	}
	return nil
}
