package sealpost

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"mime/quotedprintable"
	"net/mail"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Header lines are folded to foldWidth where whitespace allows; no line of
// a rendered message ever exceeds RFC 5322's hard limit of 998 octets.
const (
	foldWidth = 78
	// maxPlainWord is the longest run of non-space characters written into
	// a header as is, and maxPlainSpace the longest run of spaces and tabs;
	// text with longer runs is RFC 2047 encoded, whose words are short. A
	// line holds at most a 100-octet name, one run of each kind and a
	// trailing run of spaces, so no header line can reach 998 octets.
	// Words are kept as long as that allows because encoding a structured
	// value, such as a long List-Unsubscribe URL, would ruin it.
	maxPlainWord  = 700
	maxPlainSpace = foldWidth
	// maxPlainNameWord bounds the words of display names written as is:
	// quoting can double their length.
	maxPlainNameWord = 200
	// encodedChunk is the number of UTF-8 octets per "B" encoded word:
	// 42 octets make 56 base64 characters, 68 with the delimiters, so that
	// "Subject: " and one word fit in foldWidth (RFC 2047 allows 75).
	encodedChunk = 42
)

// Messages renders one Message per personalization, ready to enqueue.
// What the personalizations share (the header fields none of them
// overrides, and the MIME body) is rendered once into one MessageBody that
// every Message refers to; each Message's Layout holds its own header
// fields and says where the shared ones go, so that Render gives the
// complete RFC 5322 message with CRLF line ends. Recipients are to, cc and
// bcc (bcc only in the envelope), and recipient n of the whole request
// (from 0) gets SGMessageID xMessageID.n.
func (m *MailSend) Messages(accountID int64, xMessageID string, now time.Time, hostname string) ([]*Message, error) {
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

	// The shared fields go into the body in the order a personalization
	// that overrides nothing uses them, so that its layout needs only a
	// few slices.
	var b sharedBuilder
	date := b.field("Date", now.Format(time.RFC1123Z))
	from := b.field("From", formatAddress(m.From))
	var replyTo sharedField
	switch {
	case m.ReplyTo != nil:
		replyTo = b.field("Reply-To", formatAddress(*m.ReplyTo))
	case len(m.ReplyToList) > 0:
		replyTo = b.field("Reply-To", formatAddressList(m.ReplyToList))
	}
	subject := b.field("Subject", unstructured(m.Subject))
	mimeVersion := b.field("MIME-Version", "1.0")
	headers := make(map[string]sharedField, len(m.Headers))
	for _, name := range sortedHeaderNames(m.Headers) {
		// Names no personalization could use are refused below.
		if ValidHeaderName(name) && !ReservedHeader(strings.ToLower(name)) {
			headers[name] = b.field(name, unstructured(m.Headers[name]))
		}
	}
	content := sharedField{off: len(b.data), n: len(contentHeader) + 2 + len(body)}
	b.data = append(b.data, contentHeader...)
	b.data = append(b.data, "\r\n"...)
	b.data = append(b.data, body...)
	shared := &MessageBody{Data: b.data, Categories: slices.Clone(m.Categories), CustomArgs: mergeStrings(m.CustomArgs, nil, false)}

	msgs := make([]*Message, 0, len(m.Personalizations))
	ordinal := 0
	for i, pz := range m.Personalizations {
		envelopeFrom := m.From
		smtpID := "<" + xMessageID + "." + strconv.Itoa(i) + "@" + hostname + ">"

		var h messageHeader
		h.shared(date)
		if pz.From != nil {
			envelopeFrom = *pz.From
			h.own("From", formatAddress(*pz.From))
		} else {
			h.shared(from)
		}
		if len(pz.To) > 0 {
			h.own("To", formatAddressList(pz.To))
		}
		if len(pz.Cc) > 0 {
			h.own("Cc", formatAddressList(pz.Cc))
		}
		h.shared(replyTo)
		if pz.Subject != "" {
			h.own("Subject", unstructured(pz.Subject))
		} else {
			h.shared(subject)
		}
		h.own("Message-ID", smtpID)
		h.shared(mimeVersion)
		custom := mergeStrings(m.Headers, pz.Headers, true)
		for _, name := range sortedHeaderNames(custom) {
			if !ValidHeaderName(name) || ReservedHeader(strings.ToLower(name)) {
				h.err = Errorf(EINVALID, "header %q may not be set", name)
				break
			}
			if _, own := pz.Headers[name]; own {
				h.own(name, unstructured(custom[name]))
			} else {
				h.shared(headers[name])
			}
		}
		if h.err != nil {
			return nil, h.err
		}
		h.shared(content)

		subjectText := m.Subject
		if pz.Subject != "" {
			subjectText = pz.Subject
		}
		msg := &Message{
			AccountID:  accountID,
			XMessageID: xMessageID,
			SMTPID:     smtpID,
			From:       envelopeFrom.Email,
			Subject:    subjectText,
			Body:       shared,
			Layout:     h.w.layout(),
			CustomArgs: mergeStrings(nil, pz.CustomArgs, false),
			CreatedAt:  now,
			SendAt:     m.sendAtOf(pz),
			BatchID:    m.BatchID,
		}
		for _, list := range [][]Address{pz.To, pz.Cc, pz.Bcc} {
			for _, a := range list {
				msg.Recipients = append(msg.Recipients, Recipient{
					Email:       a.Email,
					Domain:      AddressDomain(a.Email),
					SGMessageID: xMessageID + "." + strconv.Itoa(ordinal),
					State:       StateQueued,
				})
				ordinal++
			}
		}
		msgs = append(msgs, msg)
	}
	return msgs, nil
}

// sortedHeaderNames returns the names of custom header fields in the order
// they are written: by name, ignoring case.
func sortedHeaderNames(headers map[string]string) []string {
	names := make([]string, 0, len(headers))
	for name := range headers {
		names = append(names, name)
	}
	slices.SortFunc(names, func(a, b string) int { return strings.Compare(strings.ToLower(a), strings.ToLower(b)) })
	return names
}

// sharedField is a header field rendered into the shared body: its place
// there, or the error rendering it failed with, which only a message that
// uses the field reports.
type sharedField struct {
	off, n int
	err    error
}

// sharedBuilder renders the shared body.
type sharedBuilder struct {
	data []byte
}

func (b *sharedBuilder) field(name, value string) sharedField {
	var h headerBuilder
	h.field(name, value)
	if h.err != nil {
		return sharedField{err: h.err}
	}
	off := len(b.data)
	b.data = append(b.data, h.buf.Bytes()...)
	return sharedField{off: off, n: h.buf.Len()}
}

// messageHeader writes one message's header into its layout: its own
// fields as bytes, the shared ones as slices of the body. As with
// headerBuilder, the first error sticks and later fields are not written.
type messageHeader struct {
	w   layoutWriter
	h   headerBuilder // renders the own fields, one at a time
	err error
}

func (m *messageHeader) own(name, value string) {
	if m.err != nil {
		return
	}
	m.h.buf.Reset()
	m.h.field(name, value)
	if m.err = m.h.err; m.err == nil {
		m.w.writeOwn(m.h.buf.Bytes())
	}
}

func (m *messageHeader) shared(f sharedField) {
	if m.err != nil {
		return
	}
	if m.err = f.err; m.err == nil {
		m.w.writeBody(f.off, f.n)
	}
}

// validMessageIDPart reports whether id can go into a Message-ID and an
// sg_message_id as is: URL-safe base64 characters only.
func validMessageIDPart(id string) bool {
	if id == "" || len(id) > 100 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// headerBuilder writes folded header fields and refuses any value that
// would break out of its field.
type headerBuilder struct {
	buf bytes.Buffer
	err error
}

// field writes "name: value" folded at whitespace. value must already be
// 7-bit (encoded where needed); a CR or LF in it is an error, never output.
func (h *headerBuilder) field(name, value string) {
	if h.err != nil {
		return
	}
	if strings.ContainsAny(name, "\r\n:") || strings.ContainsAny(value, "\r\n") {
		h.err = Errorf(EINTERNAL, "rendering mail: line break in header %q", name)
		return
	}
	line := len(name) + 1
	h.buf.WriteString(name)
	h.buf.WriteByte(':')
	// Each segment is a whitespace run and the word after it; a fold goes
	// before a segment, so every continuation line starts with whitespace
	// and none holds whitespace only.
	rest := " " + value
	for rest != "" {
		i := 0
		for i < len(rest) && (rest[i] == ' ' || rest[i] == '\t') {
			i++
		}
		for i < len(rest) && rest[i] != ' ' && rest[i] != '\t' {
			i++
		}
		seg := rest[:i]
		rest = rest[i:]
		wordless := strings.Trim(seg, " \t") == ""
		if line+len(seg) > foldWidth && line > len(name)+1 && !wordless {
			h.buf.WriteString("\r\n")
			line = 0
		}
		h.buf.WriteString(seg)
		line += len(seg)
	}
	h.buf.WriteString("\r\n")
}

// unstructured returns s as the body of an unstructured header field
// (Subject, custom headers): as is when it is short-worded printable ASCII,
// otherwise as RFC 2047 encoded words. Text that merely looks like an
// encoded word is encoded too, so that readers show it as it was given.
func unstructured(s string) string {
	if plainHeaderText(s, maxPlainWord) {
		return s
	}
	return encodeWords(s)
}

func plainHeaderText(s string, maxWord int) bool {
	if strings.Contains(s, "=?") {
		return false
	}
	word, space := 0, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			word = 0
			space++
			if space > maxPlainSpace {
				return false
			}
		case c < ' ' || c > '~':
			return false
		default:
			space = 0
			word++
			if word > maxWord {
				return false
			}
		}
	}
	return true
}

// encodeWords encodes s as space-separated RFC 2047 "B" encoded words in
// UTF-8, each cut on a character boundary so that each decodes on its own.
func encodeWords(s string) string {
	var b strings.Builder
	for len(s) > 0 {
		n := min(len(s), encodedChunk)
		for n < len(s) && n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		if n == 0 { // not valid UTF-8; cannot happen for parsed input
			n = min(len(s), encodedChunk)
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString("=?utf-8?b?")
		b.WriteString(base64.StdEncoding.EncodeToString([]byte(s[:n])))
		b.WriteString("?=")
		s = s[n:]
	}
	return b.String()
}

// formatAddress renders a mailbox. net/mail quotes or Q-encodes the display
// name; names it would leave as one long quoted word, or that hold text
// looking like an encoded word, are B-encoded instead.
func formatAddress(a Address) string {
	if a.Name == "" {
		return "<" + a.Email + ">"
	}
	if strings.Contains(a.Name, "=?") || isASCII(a.Name) && !plainHeaderText(a.Name, maxPlainNameWord) {
		return encodeWords(a.Name) + " <" + a.Email + ">"
	}
	return (&mail.Address{Name: a.Name, Address: a.Email}).String()
}

func formatAddressList(as []Address) string {
	parts := make([]string, len(as))
	for i, a := range as {
		parts[i] = formatAddress(a)
	}
	return strings.Join(parts, ", ")
}

// renderBody encodes the content once for all personalizations: the
// Content-Type and Content-Transfer-Encoding header lines, and the body.
// One content block is a single part; several are a multipart/alternative
// in the order given.
func renderBody(contents []Content) (header, body []byte, err error) {
	if len(contents) == 0 {
		return nil, nil, Errorf(EINVALID, "a message needs content")
	}
	parts := make([][]byte, len(contents))
	for i, c := range contents {
		var buf bytes.Buffer
		w := quotedprintable.NewWriter(&buf)
		if _, err := w.Write([]byte(c.Value)); err != nil {
			return nil, nil, Errorf(EINTERNAL, "encoding content: %v", err)
		}
		if err := w.Close(); err != nil {
			return nil, nil, Errorf(EINTERNAL, "encoding content: %v", err)
		}
		parts[i] = buf.Bytes()
	}
	if len(contents) == 1 {
		header = []byte(partHeader(contents[0].Type))
		body = parts[0]
		if !bytes.HasSuffix(body, []byte("\r\n")) {
			body = append(body, "\r\n"...)
		}
		return header, body, nil
	}
	boundary, err := newBoundary(parts)
	if err != nil {
		return nil, nil, err
	}
	header = []byte("Content-Type: multipart/alternative;\r\n boundary=\"" + boundary + "\"\r\n")
	var b bytes.Buffer
	for i, c := range contents {
		b.WriteString("--" + boundary + "\r\n")
		b.WriteString(partHeader(c.Type))
		b.WriteString("\r\n")
		b.Write(parts[i])
		b.WriteString("\r\n")
	}
	b.WriteString("--" + boundary + "--\r\n")
	return header, b.Bytes(), nil
}

func partHeader(mediaType string) string {
	ct := mediaType
	if strings.HasPrefix(mediaType, "text/") {
		ct += "; charset=utf-8"
	}
	return "Content-Type: " + ct + "\r\nContent-Transfer-Encoding: quoted-printable\r\n"
}

// newBoundary returns a random multipart boundary that occurs in none of
// the encoded parts.
func newBoundary(parts [][]byte) (string, error) {
	for range 8 {
		var r [16]byte
		if _, err := rand.Read(r[:]); err != nil {
			return "", Errorf(EINTERNAL, "generating boundary: %v", err)
		}
		boundary := "sealpost-" + hex.EncodeToString(r[:])
		clash := false
		for _, p := range parts {
			if bytes.Contains(p, []byte(boundary)) {
				clash = true
				break
			}
		}
		if !clash {
			return boundary, nil
		}
	}
	return "", Errorf(EINTERNAL, "no multipart boundary avoids the content")
}
