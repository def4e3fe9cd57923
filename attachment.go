package sealpost

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/textproto"
	"strings"
	"unicode/utf8"
)

// Attachment is one of a mail send's attachments.
type Attachment struct {
	// Content is the file in standard, padded base64 as the request gave
	// it, without line breaks; it is sent as given, only cut into lines.
	Content  string
	Filename string
	// Type is a lower-case media type, application/octet-stream when the
	// request names none.
	Type string
	// Disposition is "attachment" or "inline"; inline parts go into a
	// multipart/related with the content.
	Disposition string
	// ContentID, without angle brackets, is what an HTML part refers to as
	// cid:<ContentID>; required for inline parts.
	ContentID string
}

// The dispositions SendGrid allows; an attachment without one is an
// attachment.
const (
	DispositionAttachment = "attachment"
	DispositionInline     = "inline"
)

// Limits of an attachment's header fields that SendGrid does not publish:
// they keep every header line of the part under 998 octets.
const (
	maxFilenameLen  = 255
	maxAttTypeLen   = 255
	maxContentIDLen = 255
	// base64LineLen is RFC 2045's limit for base64 lines.
	base64LineLen = 76
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

func (p *mailSendParser) attachments(raw json.RawMessage) []Attachment {
	if absent(raw) {
		return nil
	}
	items, ok := p.array("attachments", raw)
	if !ok {
		return nil
	}
	out := make([]Attachment, 0, len(items))
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

func (p *mailSendParser) attachment(field string, obj members) (Attachment, bool) {
	a := Attachment{Type: "application/octet-stream", Disposition: DispositionAttachment}
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
	} else if strings.Contains(s, ";") || hasControl(s) {
		fail("filename", msgAttFilenameCRLF)
	} else if len(s) > maxFilenameLen {
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
		} else if strings.Contains(s, ";") || hasControl(s) {
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
		} else if s == DispositionAttachment || s == DispositionInline {
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
		} else if strings.Contains(s, ";") || hasControl(s) {
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
	if a.Disposition == DispositionInline && a.ContentID == "" && len(p.problems) == problems {
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

// attachmentsSize is what the attachments add to every copy of the message,
// counted as the content is: by what the request holds, not by the line
// breaks the encoding adds.
func attachmentsSize(atts []Attachment) int {
	n := 0
	for _, a := range atts {
		n += len(a.Content)
	}
	return n
}

// renderMIME is the message body every personalization shares: the
// content (renderBody), inside a multipart/related with the inline
// attachments when there are some, inside a multipart/mixed with the other
// attachments when there are some.
func renderMIME(contents []Content, atts []Attachment) (header, body []byte, err error) {
	header, body, err = renderBody(contents)
	if err != nil || len(atts) == 0 {
		return header, body, err
	}
	var inline, attached []Attachment
	for _, a := range atts {
		if a.Disposition == DispositionInline {
			inline = append(inline, a)
		} else {
			attached = append(attached, a)
		}
	}
	if len(inline) > 0 {
		if header, body, err = wrapMultipart("multipart/related", header, body, inline); err != nil {
			return nil, nil, err
		}
	}
	if len(attached) > 0 {
		if header, body, err = wrapMultipart("multipart/mixed", header, body, attached); err != nil {
			return nil, nil, err
		}
	}
	return header, body, nil
}

// wrapMultipart returns a multipart of mediaType whose first part is the
// entity given by header and body, followed by the attachments.
func wrapMultipart(mediaType string, header, body []byte, atts []Attachment) ([]byte, []byte, error) {
	first, err := textproto.NewReader(bufio.NewReader(io.MultiReader(bytes.NewReader(header), strings.NewReader("\r\n")))).ReadMIMEHeader()
	if err != nil {
		return nil, nil, Errorf(EINTERNAL, "rendering mail: reading the content's header: %v", err)
	}
	// Base64 lines and part headers never start with "--": only the
	// entity inside can hold a line that clashes with the boundary.
	boundary, err := newBoundary([][]byte{body})
	if err != nil {
		return nil, nil, err
	}
	params := map[string]string{"boundary": boundary}
	if mediaType == "multipart/related" {
		// RFC 2387: the type of the root part, which is the first.
		root, _, err := mime.ParseMediaType(first.Get("Content-Type"))
		if err != nil {
			return nil, nil, Errorf(EINTERNAL, "rendering mail: content type %q: %v", first.Get("Content-Type"), err)
		}
		params["type"] = root
	}
	size := len(body) + 512
	for _, a := range atts {
		size += len(a.Content) + len(a.Content)/base64LineLen*2 + 1024
	}
	var buf bytes.Buffer
	buf.Grow(size)
	w := multipart.NewWriter(&buf)
	if err := w.SetBoundary(boundary); err != nil {
		return nil, nil, Errorf(EINTERNAL, "rendering mail: %v", err)
	}
	pw, err := w.CreatePart(first)
	if err != nil {
		return nil, nil, Errorf(EINTERNAL, "rendering mail: %v", err)
	}
	// The line break before the next boundary belongs to the boundary.
	pw.Write(bytes.TrimSuffix(body, []byte("\r\n")))
	for _, a := range atts {
		h, err := attachmentHeader(a)
		if err != nil {
			return nil, nil, err
		}
		pw, err := w.CreatePart(h)
		if err != nil {
			return nil, nil, Errorf(EINTERNAL, "rendering mail: %v", err)
		}
		for s := a.Content; s != ""; {
			n := min(len(s), base64LineLen)
			pw.Write([]byte(s[:n]))
			if s = s[n:]; s != "" {
				pw.Write([]byte("\r\n"))
			}
		}
	}
	if err := w.Close(); err != nil {
		return nil, nil, Errorf(EINTERNAL, "rendering mail: %v", err)
	}
	var h headerBuilder
	h.field("Content-Type", mime.FormatMediaType(mediaType, params))
	if h.err != nil {
		return nil, nil, h.err
	}
	return h.buf.Bytes(), buf.Bytes(), nil
}

// attachmentHeader is the MIME header of an attachment's part. The file
// name goes into Content-Disposition as RFC 2231 demands (mime encodes
// non-ASCII names as filename*=utf-8”...), and into Content-Type's name
// parameter as RFC 2047 encoded words when it is not plain ASCII, for
// readers that know only that.
func attachmentHeader(a Attachment) (textproto.MIMEHeader, error) {
	name := a.Filename
	if !plainHeaderText(name, maxFilenameLen) {
		name = mime.BEncoding.Encode("utf-8", name)
	}
	contentType := mime.FormatMediaType(a.Type, map[string]string{"name": name})
	disposition := mime.FormatMediaType(a.Disposition, map[string]string{"filename": a.Filename})
	if contentType == "" || disposition == "" {
		return nil, Errorf(EINTERNAL, "rendering mail: attachment %q of type %q", a.Filename, a.Type)
	}
	// Keys set directly keep their spelling (Content-ID, not Content-Id).
	h := textproto.MIMEHeader{
		"Content-Type":              {contentType},
		"Content-Disposition":       {disposition},
		"Content-Transfer-Encoding": {"base64"},
	}
	if a.ContentID != "" {
		h["Content-ID"] = []string{"<" + a.ContentID + ">"}
	}
	return h, nil
}
