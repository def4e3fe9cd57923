package sealpost

import (
	"bufio"
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"net/textproto"
	"strings"
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

const (
	// MaxFilenameLen bounds an attachment's file name, which SendGrid does
	// not: it keeps the part's header lines under 998 octets.
	MaxFilenameLen = 255
	// base64LineLen is RFC 2045's limit for base64 lines.
	base64LineLen = 76
)

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
	if !plainHeaderText(name, MaxFilenameLen) {
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
