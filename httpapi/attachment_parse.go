package httpapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"strings"
	"unicode/utf8"

	"github.com/sealpost/sealpost"
)

// Limits of an attachment's header fields that SendGrid does not publish:
// they keep every header line of the part under 998 octets.
const (
	maxAttTypeLen   = 255
	maxContentIDLen = 255
)

// SendGrid's wording from its mail send error reference; the ones it does
// not publish are sealpost's.
const (
	msgAttContent         = "The attachment content must be a string at least one character in length."
	msgAttBase64          = "The attachment content must be base64 encoded."
	msgAttFilenameMissing = "filename is required."
	msgAttFilenameString  = "The filename of your attachment must be a string."
	msgAttFilenameCRLF    = "The filename of your attachment can't contain CRLF characters."
	msgAttFilenameLong    = "The filename of your attachment may be at most 255 bytes long."
	msgAttType            = "The attachment type must be a string and at least one character in length."
	msgAttTypeCRLF        = "The type can't contain ';', or CRLF characters."
	msgAttTypeSingle      = "The attachment type must be a single MIME type of at most 255 characters, such as application/pdf or image/png; multipart and message types cannot be attached."
	msgAttContentIDCRLF   = "The content ID of your attachment can't contain CRLF characters."
	msgAttContentIDChars  = "The content ID of your attachment must be at most 255 printable ASCII characters without spaces, quotes, parentheses, backslashes or angle brackets."
	msgAttContentIDInline = "The content_id is required when the disposition is inline."
)

func (p *mailSendParser) attachments(raw json.RawMessage) []sealpost.Attachment {
	items, ok := p.optionalArray("attachments", raw)
	if !ok {
		return nil
	}
	out := make([]sealpost.Attachment, 0, len(items))
	for i, item := range items {
		field := fmt.Sprintf("attachments.%d", i)
		obj, ok := p.object(field, item)
		if !ok {
			continue
		}
		if a, ok := p.attachment(field, obj); ok {
			out = append(out, a)
		}
	}
	return out
}

func (p *mailSendParser) attachment(field string, obj members) (sealpost.Attachment, bool) {
	a := sealpost.Attachment{Type: "application/octet-stream", Disposition: sealpost.DispositionAttachment}
	valid := true
	fail := func(name, msg string) {
		p.add(field+"."+name, msg)
		valid = false
	}

	if r := obj.get("content"); jsonKind(r) != "string" {
		fail("content", msgAttContent)
	} else if s, ok := p.str(field+".content", r); !ok {
		valid = false
	} else if s == "" {
		fail("content", msgAttContent)
	} else if !strictBase64(s) {
		fail("content", msgAttBase64)
	} else {
		a.Content = s
	}

	if r := obj.get("filename"); absent(r) {
		fail("filename", msgAttFilenameMissing)
	} else if jsonKind(r) != "string" {
		fail("filename", msgAttFilenameString)
	} else if s, ok := p.str(field+".filename", r); !ok {
		valid = false
	} else if s == "" {
		fail("filename", msgAttFilenameMissing)
	} else if strings.Contains(s, ";") || sealpost.HasControl(s) {
		fail("filename", msgAttFilenameCRLF)
	} else if len(s) > sealpost.MaxFilenameLen {
		fail("filename", msgAttFilenameLong)
	} else {
		a.Filename = s
	}

	if r := obj.get("type"); !absent(r) {
		if jsonKind(r) != "string" {
			fail("type", msgAttType)
		} else if s, ok := p.str(field+".type", r); !ok {
			valid = false
		} else if s == "" {
			fail("type", msgAttType)
		} else if strings.Contains(s, ";") || sealpost.HasControl(s) {
			fail("type", msgAttTypeCRLF)
		} else if mt, params, err := mime.ParseMediaType(s); err != nil || len(params) > 0 || len(s) > maxAttTypeLen ||
			!strings.Contains(mt, "/") || strings.HasPrefix(mt, "multipart/") || strings.HasPrefix(mt, "message/") {
			// A part of these types must not be base64 (RFC 2046), and a
			// multipart needs a structure sealpost would have to build.
			fail("type", msgAttTypeSingle)
		} else {
			a.Type = mt
		}
	}

	if r := obj.get("disposition"); !absent(r) {
		if jsonKind(r) != "string" {
			fail("disposition", msgAttDisposition(provided(r, "")))
		} else if s, ok := p.str(field+".disposition", r); !ok {
			valid = false
		} else if s == sealpost.DispositionAttachment || s == sealpost.DispositionInline {
			a.Disposition = s
		} else {
			fail("disposition", msgAttDisposition(provided(r, s)))
		}
	}

	problems := len(p.problems)
	if r := obj.get("content_id"); !absent(r) {
		if jsonKind(r) != "string" {
			fail("content_id", "The content ID of your attachment must be a string. You provided "+provided(r, "")+".")
		} else if s, ok := p.str(field+".content_id", r); !ok {
			valid = false
		} else if strings.Contains(s, ";") || sealpost.HasControl(s) {
			fail("content_id", msgAttContentIDCRLF)
		} else if len(s) > maxContentIDLen || strings.ContainsFunc(s, func(r rune) bool {
			return r <= ' ' || r >= 0x7f || strings.ContainsRune(`<>()"\`, r)
		}) {
			// It goes between the angle brackets of a Content-ID field.
			fail("content_id", msgAttContentIDChars)
		} else {
			a.ContentID = s
		}
	}
	if a.Disposition == sealpost.DispositionInline && a.ContentID == "" && len(p.problems) == problems {
		fail("content_id", msgAttContentIDInline)
	}
	return a, valid
}

func msgAttDisposition(given string) string {
	return `The disposition of your attachment can be either "inline" or "attachment". You provided ` + given + "."
}

// provided shows a refused value in a message: the string s, or a short
// non-string raw value as JSON, or its kind.
func provided(raw json.RawMessage, s string) string {
	if jsonKind(raw) == "string" {
		if len(s) > 64 {
			n := 64
			for n > 0 && !utf8.RuneStart(s[n]) {
				n--
			}
			s = s[:n] + "..."
		}
		return fmt.Sprintf("%q", s)
	}
	if len(raw) <= 64 && utf8.Valid(raw) && !bytes.ContainsAny(raw, "\r\n") {
		return string(raw)
	}
	k := jsonKind(raw)
	if strings.ContainsRune("aeiou", rune(k[0])) {
		return "an " + k
	}
	return "a " + k
}

// strictBase64 reports whether s is standard, padded base64 without line
// breaks or other whitespace, which is how SendGrid wants attachments
// (Ruby's line-wrapped encode64 is refused there too). It decodes as a
// stream so that a large attachment is not held twice.
func strictBase64(s string) bool {
	if strings.ContainsAny(s, "\r\n") { // the decoder would skip them
		return false
	}
	_, err := io.Copy(io.Discard, base64.NewDecoder(base64.StdEncoding.Strict(), strings.NewReader(s)))
	return err == nil
}
