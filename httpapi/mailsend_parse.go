package httpapi

import (
	"encoding/json"
	"fmt"
	"mime"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/sealpost/sealpost"
)

// Limits of a mail send body that the parser checks. SendGrid documents
// all but maxProblems; the domain's own limits are checked by MailSend's
// methods.
const (
	maxPersonalizations = 1000
	maxRecipients       = 1000
	maxCategories       = 10
	maxCategoryLen      = 255
	// maxProblems bounds the error list so that a large, thoroughly wrong
	// body cannot produce an even larger response.
	maxProblems = 100
)

// SendGrid's own wording, from its mail send error reference and real
// responses.
const (
	msgFromRequired             = `The from object must be provided for every email send. It is an object that requires the email parameter, but may also contain a name parameter.  e.g. {"email" : "example@example.com"}  or {"email" : "example@example.com", "name" : "Example Recipient"}.`
	msgPersonalizationsRequired = "The personalizations field is required and must have at least one personalization."
	msgContentRequired          = "Unless a valid template_id is provided, the content parameter is required. There must be at least one defined content block. We typically suggest both text/plain and text/html blocks are included, but only one block is required."
	msgToRequired               = "The to array is required for all personalization objects, and must have at least one email object with a valid email address."
	msgSubjectRequired          = "The subject is required. You can get around this requirement if you use a template with a subject defined or if every personalization has a subject defined."
	msgInvalidAddress           = "Does not contain a valid address."
	msgTooManyRecipients        = "There is a limit of 1000 total recipients (to + cc + bcc) per request."
	msgContentOrder             = "Following RFC 1341, section 7.2, if either text/html or text/plain are to be sent in your email: text/plain needs to be first, followed by text/html, followed by any other content."
	msgContentValue             = "The content value must be a string at least one character in length."
	msgContentType              = "Your content type must be a string with length of at least one character."
	msgReservedHeader           = "Header can not be one of the reserved keys."
	msgInvalidUTF8              = "Invalid UTF8 in request"
	msgControlChars             = "cannot contain CR, LF or other control characters."
)

// ParseMailSend parses and validates a mail send body. On failure it returns
// an EINVALID *Error whose Fields list every problem found (at most 100,
// then a note), each naming its JSON field the way SendGrid does
// (from.email, personalizations.0.to, ...) with SendGrid's message where it
// publishes one.
//
// Where sealpost is stricter than SendGrid, it is because it would
// otherwise send something other than what was asked: template_id is
// refused, not ignored; CR, LF and other control characters are refused in
// subjects, names and header values; addresses must be ASCII; Date,
// Message-ID and MIME-Version are reserved headers too; attachments are
// checked as attachment_parse.go says; and the content and attachments
// times the number of personalizations are bounded, because each
// personalization is sent as its own copy. Unknown fields, and known ones
// without an effect on the message (asm, tracking_settings, substitutions,
// ...), are ignored.
//
// It is exported for the tests of the rendering and of delivery, which
// want their mail sends as this endpoint makes them.
func ParseMailSend(body []byte) (*sealpost.MailSend, error) {
	if !json.Valid(body) {
		return nil, sealpost.Invalid(sealpost.FieldError{Message: "The request body is not valid JSON."})
	}
	if k := jsonKind(body); k != "object" {
		return nil, sealpost.Invalid(sealpost.FieldError{Message: typeMessage("object", k)})
	}
	p := &mailSendParser{}
	top := p.members("", body)
	ms := &sealpost.MailSend{}

	ms.From = p.requiredFrom(top.get("from"))
	ms.Personalizations = p.personalizations(top.get("personalizations"))
	ms.Subject = p.subject(top.get("subject"), ms.Personalizations)
	ms.Content = p.contents(top.get("content"))
	ms.Attachments = p.attachments(top.get("attachments"))
	ms.ReplyTo, ms.ReplyToList = p.replyTo(top.get("reply_to"), top.get("reply_to_list"))
	ms.Headers = p.headers("headers", top.get("headers"))
	ms.Categories = p.categories(top.get("categories"))
	ms.CustomArgs = p.customArgs("custom_args", top.get("custom_args"))
	p.addAll(ms.CheckCustomArgsSize())
	ms.SandboxMode = p.sandboxMode(top.get("mail_settings"))
	ms.SendAt = p.sendAt("send_at", top.get("send_at"))
	ms.BatchID = p.batchID(top.get("batch_id"))
	p.unsupported(top)
	if fe := ms.CheckRenderedSize(); fe != nil {
		p.addAll([]sealpost.FieldError{*fe})
	}

	if !p.sawBadUTF8 && !utf8.Valid(body) {
		p.add("", msgInvalidUTF8)
	}
	if len(p.problems) > 0 {
		return nil, sealpost.Invalid(p.problems...)
	}
	return ms, nil
}

type mailSendParser struct {
	problems   []sealpost.FieldError
	truncated  bool
	sawBadUTF8 bool
}

func (p *mailSendParser) addf(field, format string, args ...any) {
	p.add(field, fmt.Sprintf(format, args...))
}

func (p *mailSendParser) add(field, msg string) {
	if len(p.problems) >= maxProblems {
		if !p.truncated {
			p.truncated = true
			p.problems = append(p.problems, sealpost.FieldError{Message: fmt.Sprintf("Too many problems; only the first %d are listed.", maxProblems)})
		}
		return
	}
	p.problems = append(p.problems, sealpost.FieldError{Field: field, Message: msg})
}

// addAll records problems found by the domain's checks.
func (p *mailSendParser) addAll(problems []sealpost.FieldError) {
	for _, fe := range problems {
		p.add(fe.Field, fe.Message)
	}
}

func (p *mailSendParser) badUTF8(field string) {
	p.sawBadUTF8 = true
	p.add(field, msgInvalidUTF8)
}

func typeMessage(want, got string) string {
	return fmt.Sprintf("Invalid type. Expected: %s, given: %s.", want, got)
}

// absent reports whether an optional field is missing or null.
func absent(raw json.RawMessage) bool { return raw == nil || jsonKind(raw) == "null" }

// members splits a JSON object that json.Valid accepted into its members,
// reporting keys that are not valid UTF-8 under field.
func (p *mailSendParser) members(field string, raw json.RawMessage) members {
	ms, badKeys := decodeMembers(raw)
	for range badKeys {
		p.badUTF8(field)
	}
	return ms
}

// str decodes a JSON string, reporting a wrong type or invalid UTF-8.
func (p *mailSendParser) str(field string, raw json.RawMessage) (string, bool) {
	if k := jsonKind(raw); k != "string" {
		p.add(field, typeMessage("string", k))
		return "", false
	}
	s, res := decodeString(raw)
	switch res {
	case badUTF8:
		p.badUTF8(field)
		return "", false
	case notString:
		p.add(field, typeMessage("string", "invalid string"))
		return "", false
	}
	return s, true
}

// object decodes a JSON object, reporting a wrong type.
func (p *mailSendParser) object(field string, raw json.RawMessage) (members, bool) {
	if k := jsonKind(raw); k != "object" {
		p.add(field, typeMessage("object", k))
		return nil, false
	}
	return p.members(field, raw), true
}

// optionalObject decodes an object that may be absent or null (false,
// and nothing to report), reporting any other type.
func (p *mailSendParser) optionalObject(field string, raw json.RawMessage) (members, bool) {
	if absent(raw) {
		return nil, false
	}
	return p.object(field, raw)
}

// optionalArray is optionalObject for an array.
func (p *mailSendParser) optionalArray(field string, raw json.RawMessage) ([]json.RawMessage, bool) {
	if absent(raw) {
		return nil, false
	}
	return p.array(field, raw)
}

// array decodes a JSON array, reporting a wrong type.
func (p *mailSendParser) array(field string, raw json.RawMessage) ([]json.RawMessage, bool) {
	if k := jsonKind(raw); k != "array" {
		p.add(field, typeMessage("array", k))
		return nil, false
	}
	out, ok := decodeArray(raw)
	if !ok {
		p.add(field, typeMessage("array", "invalid array"))
	}
	return out, ok
}

// address decodes an {email, name} object. missing is the message for an
// absent or empty email, invalid the one for a malformed address.
func (p *mailSendParser) address(field string, raw json.RawMessage, missing, invalid string) (sealpost.Address, bool) {
	obj, ok := p.object(field, raw)
	if !ok {
		return sealpost.Address{}, false
	}
	var a sealpost.Address
	ok = true
	if e := obj.get("email"); absent(e) {
		p.add(field+".email", missing)
		ok = false
	} else if s, sok := p.str(field+".email", e); !sok {
		ok = false
	} else if s == "" {
		p.add(field+".email", missing)
		ok = false
	} else if !sealpost.ValidEmail(s) {
		p.add(field+".email", invalid)
		ok = false
	} else {
		a.Email = s
	}
	if n := obj.get("name"); !absent(n) {
		s, sok := p.str(field+".name", n)
		switch {
		case !sok:
			ok = false
		case sealpost.HasControl(s):
			p.add(field+".name", "The name "+msgControlChars)
			ok = false
		default:
			a.Name = s
		}
	}
	return a, ok
}

// requiredArray decodes an array that must hold something; missing is
// the message for one that is absent, null or empty.
func (p *mailSendParser) requiredArray(field string, raw json.RawMessage, missing string) []json.RawMessage {
	if absent(raw) {
		p.add(field, missing)
		return nil
	}
	items, ok := p.array(field, raw)
	if ok && len(items) == 0 {
		p.add(field, missing)
	}
	return items
}

func (p *mailSendParser) requiredFrom(raw json.RawMessage) sealpost.Address {
	if absent(raw) {
		p.add("from.email", msgFromRequired)
		return sealpost.Address{}
	}
	a, _ := p.address("from", raw, msgFromRequired, "The from email does not contain a valid address.")
	return a
}

func (p *mailSendParser) personalizations(raw json.RawMessage) []sealpost.Personalization {
	items := p.requiredArray("personalizations", raw, msgPersonalizationsRequired)
	if len(items) == 0 {
		return nil
	}
	if len(items) > maxPersonalizations {
		p.addf("personalizations", "The personalization block is limited to 1000 personalizations per API request. You have provided %d personalizations. Please consider splitting this into multiple requests and resending your request.", len(items))
	}
	out := make([]sealpost.Personalization, 0, len(items))
	recipients := 0
	for i, item := range items {
		pz, n := p.personalization(fmt.Sprintf("personalizations.%d", i), item)
		out = append(out, pz)
		recipients += n
	}
	if recipients > maxRecipients {
		p.add("personalizations", msgTooManyRecipients)
	}
	return out
}

// personalization decodes one personalization and returns it with the
// number of recipients it names.
func (p *mailSendParser) personalization(field string, raw json.RawMessage) (sealpost.Personalization, int) {
	var pz sealpost.Personalization
	obj, ok := p.object(field, raw)
	if !ok {
		return pz, 0
	}
	n := 0
	list := func(name string, required bool) []sealpost.Address {
		lf := field + "." + name
		r := obj.get(name)
		if absent(r) {
			if required {
				p.add(lf, msgToRequired)
			}
			return nil
		}
		items, ok := p.array(lf, r)
		if !ok {
			return nil
		}
		if len(items) == 0 && required {
			p.add(lf, msgToRequired)
		}
		n += len(items)
		out := make([]sealpost.Address, 0, len(items))
		for j, item := range items {
			a, ok := p.address(fmt.Sprintf("%s.%d", lf, j), item, "The "+name+" email parameter is required.", msgInvalidAddress)
			if ok {
				out = append(out, a)
			}
		}
		return out
	}
	pz.To = list("to", true)
	pz.Cc = list("cc", false)
	pz.Bcc = list("bcc", false)
	p.uniqueRecipients(field, pz)

	if r := obj.get("from"); !absent(r) {
		if a, ok := p.address(field+".from", r, msgFromRequired, "The from email does not contain a valid address."); ok {
			pz.From = &a
		}
	}
	if r := obj.get("subject"); !absent(r) {
		pz.Subject = p.subjectText(field+".subject", r)
	}
	pz.Headers = p.headers(field+".headers", obj.get("headers"))
	pz.CustomArgs = p.customArgs(field+".custom_args", obj.get("custom_args"))
	pz.SendAt = p.sendAt(field+".send_at", obj.get("send_at"))
	return pz, n
}

// uniqueRecipients reports an address that appears twice among one
// personalization's to, cc and bcc; mailbox names compare case-insensitively.
func (p *mailSendParser) uniqueRecipients(field string, pz sealpost.Personalization) {
	seen := make(map[string]bool)
	for _, l := range []struct {
		name  string
		addrs []sealpost.Address
	}{{"to", pz.To}, {"cc", pz.Cc}, {"bcc", pz.Bcc}} {
		for _, a := range l.addrs {
			k := strings.ToLower(a.Email)
			if seen[k] {
				p.addf(field, "Each email address in the personalization block should be unique between to, cc, and bcc. We found the first duplicate instance of [%s] in the %s.%s field.", a.Email, field, l.name)
				return
			}
			seen[k] = true
		}
	}
}

// subjectText decodes a subject, which may not smuggle line breaks into the
// header.
func (p *mailSendParser) subjectText(field string, raw json.RawMessage) string {
	s, ok := p.str(field, raw)
	if !ok {
		return ""
	}
	if sealpost.HasControl(s) {
		p.add(field, "The subject "+msgControlChars)
		return ""
	}
	return s
}

// subject decodes the top-level subject and checks that every
// personalization ends up with one. An empty subject counts as none.
func (p *mailSendParser) subject(raw json.RawMessage, pzs []sealpost.Personalization) string {
	var s string
	if !absent(raw) {
		before := len(p.problems)
		s = p.subjectText("subject", raw)
		if len(p.problems) > before {
			return "" // one problem with the subject is enough
		}
	}
	if s == "" && len(pzs) > 0 {
		for _, pz := range pzs {
			if pz.Subject == "" {
				p.add("subject", msgSubjectRequired)
				break
			}
		}
	}
	return s
}

func (p *mailSendParser) contents(raw json.RawMessage) []sealpost.Content {
	items := p.requiredArray("content", raw, msgContentRequired)
	if len(items) == 0 {
		return nil
	}
	out := make([]sealpost.Content, 0, len(items))
	index := make(map[string]int) // media type -> position
	for i, item := range items {
		field := fmt.Sprintf("content.%d", i)
		obj, ok := p.object(field, item)
		if !ok {
			continue
		}
		var c sealpost.Content
		valid := true
		if r := obj.get("type"); absent(r) {
			p.add(field+".type", msgContentType)
			valid = false
		} else if t, ok := p.str(field+".type", r); !ok {
			valid = false
		} else if t == "" {
			p.add(field+".type", msgContentType)
			valid = false
		} else if strings.ContainsAny(t, ";\r\n") {
			p.add(field+".type", "Cannot contain ';', or CRLF characters.")
			valid = false
		} else if mt, params, err := mime.ParseMediaType(t); err != nil || len(params) > 0 || !strings.Contains(mt, "/") || strings.HasPrefix(mt, "multipart/") || strings.HasPrefix(mt, "message/") {
			// Content is sent quoted-printable, which RFC 2046 forbids for
			// message/* parts; multipart/* needs a structure sealpost builds.
			p.add(field+".type", "The content type must be a single MIME type such as text/plain or text/html.")
			valid = false
		} else if j, dup := index[mt]; dup {
			p.addf(field+".type", "Each content type may be given only once; %s is also content.%d.", mt, j)
			valid = false
		} else {
			c.Type = mt
			index[mt] = i
		}
		if r := obj.get("value"); absent(r) {
			p.add(field+".value", msgContentValue)
			valid = false
		} else if v, ok := p.str(field+".value", r); !ok {
			valid = false
		} else if v == "" {
			p.add(field+".value", msgContentValue)
			valid = false
		} else {
			c.Value = v
		}
		if valid {
			out = append(out, c)
		}
	}
	plain, hasPlain := index["text/plain"]
	html, hasHTML := index["text/html"]
	switch {
	case hasPlain && plain != 0:
		p.add(fmt.Sprintf("content.%d.type", plain), msgContentOrder)
	case hasHTML && !hasPlain && html != 0:
		p.add(fmt.Sprintf("content.%d.type", html), msgContentOrder)
	case hasHTML && hasPlain && html != 1:
		p.add(fmt.Sprintf("content.%d.type", html), msgContentOrder)
	}
	return out
}

func (p *mailSendParser) replyTo(one, list json.RawMessage) (*sealpost.Address, []sealpost.Address) {
	const invalid = "The reply_to email does not contain a valid address."
	const missing = `The reply_to object, when used, must at least have an email parameter with a valid email address and it may also contain a name parameter. e.g. {"email" : "example@example.com"} or {"email" : "example@example.com", "name" : "Example Recipient"}`
	var rt *sealpost.Address
	if !absent(one) {
		if a, ok := p.address("reply_to", one, missing, invalid); ok {
			rt = &a
		}
	}
	items, ok := p.optionalArray("reply_to_list", list)
	if !ok {
		return rt, nil
	}
	if !absent(one) && len(items) > 0 {
		p.add("reply_to_list", "The reply_to and reply_to_list cannot be used together.")
	}
	if len(items) > maxRecipients {
		p.add("reply_to_list", "The reply_to_list may hold at most 1000 addresses.")
		return rt, nil
	}
	var out []sealpost.Address
	for i, item := range items {
		if a, ok := p.address(fmt.Sprintf("reply_to_list.%d", i), item, missing, invalid); ok {
			out = append(out, a)
		}
	}
	return rt, out
}

func (p *mailSendParser) headers(field string, raw json.RawMessage) map[string]string {
	obj, ok := p.optionalObject(field, raw)
	if !ok {
		return nil
	}
	out := make(map[string]string, len(obj))
	seen := make(map[string]bool, len(obj))
	for _, m := range obj {
		lower := strings.ToLower(m.key)
		switch {
		case !sealpost.ValidHeaderName(m.key):
			p.addf(field, "Header keys cannot contain non-ASCII characters or empty spaces; %q is not a valid header name.", m.key)
			continue
		case sealpost.ReservedHeader(lower):
			p.addf(field, msgReservedHeader+" %q is reserved.", m.key)
			continue
		case seen[lower]:
			p.addf(field, "The headers cannot contain duplicate keys; %q is given more than once.", m.key)
			continue
		}
		seen[lower] = true
		if k := jsonKind(m.raw); k != "string" {
			p.addf(field, "The header values must be strings; %q is a %s.", m.key, k)
			continue
		}
		v, ok := p.str(field, m.raw)
		if !ok {
			continue
		}
		if sealpost.HasControl(v) {
			p.addf(field, "The value of header %q "+msgControlChars, m.key)
			continue
		}
		out[m.key] = v
	}
	return out
}

func (p *mailSendParser) customArgs(field string, raw json.RawMessage) map[string]string {
	obj, ok := p.optionalObject(field, raw)
	if !ok {
		return nil
	}
	out := make(map[string]string, len(obj))
	for _, m := range obj {
		if k := jsonKind(m.raw); k != "string" {
			p.addf(field, "All values of custom arguments object must be strings; %q is a %s.", m.key, k)
			continue
		}
		v, ok := p.str(field, m.raw)
		if !ok {
			continue
		}
		if strings.ContainsRune(m.key, 0) || strings.ContainsRune(v, 0) {
			// Stored as JSON, which PostgreSQL cannot hold NUL in:
			// refused here, both stores answer the same.
			p.addf(field, "Custom arguments cannot contain NUL characters; %q does.", m.key)
			continue
		}
		out[m.key] = v
	}
	return out
}

func (p *mailSendParser) categories(raw json.RawMessage) []string {
	items, ok := p.optionalArray("categories", raw)
	if !ok {
		return nil
	}
	if len(items) > maxCategories {
		p.addf("categories", "There is a limit of 10 categories for each email that is sent. You provided %d categories.", len(items))
	}
	out := make([]string, 0, len(items))
	seen := make(map[string]bool, len(items))
	for i, item := range items {
		field := fmt.Sprintf("categories.%d", i)
		if k := jsonKind(item); k != "string" {
			p.add(field, "Categories must be an array of strings.")
			continue
		}
		c, ok := p.str(field, item)
		switch {
		case !ok:
		case c == "":
			p.add(field, "Each category must be a string at least one character in length.")
		case len(c) > maxCategoryLen:
			p.add(field, "Each category must not be longer than 255 characters.")
		case strings.ContainsFunc(c, func(r rune) bool { return r >= utf8.RuneSelf }):
			p.add(field, "Categories can not contain non-ASCII characters.")
		case sealpost.HasControl(c):
			// Never rendered into the message, but stored as text
			// (PostgreSQL's cannot hold NUL) and posted in events, where
			// a line break is no more welcome than in a header.
			p.add(field, "A category "+msgControlChars)
		case seen[c]:
			p.addf("categories", "The categories must be a unique list, and you have included %q more than once.", c)
		default:
			seen[c] = true
			out = append(out, c)
		}
	}
	return out
}

// sendAt decodes a send_at: a Unix time in seconds, an integer.
func (p *mailSendParser) sendAt(field string, raw json.RawMessage) int64 {
	if absent(raw) {
		return 0
	}
	if k := jsonKind(raw); k != "number" {
		p.add(field, typeMessage("integer", k))
		return 0
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil || n < 0 {
		p.add(field, typeMessage("integer", "number"))
		return 0
	}
	return n
}

// batchID decodes a batch_id; whether the account created it is checked
// against the store.
func (p *mailSendParser) batchID(raw json.RawMessage) string {
	if absent(raw) {
		return ""
	}
	s, ok := p.str("batch_id", raw)
	if !ok {
		return ""
	}
	if !sealpost.ValidBatchID(s) {
		p.add("batch_id", sealpost.MsgInvalidBatchID)
		return ""
	}
	return s
}

func (p *mailSendParser) sandboxMode(raw json.RawMessage) bool {
	settings, ok := p.optionalObject("mail_settings", raw)
	if !ok {
		return false
	}
	sm := settings.get("sandbox_mode")
	obj, ok := p.optionalObject("mail_settings.sandbox_mode", sm)
	if !ok {
		return false
	}
	en := obj.get("enable")
	if absent(en) {
		return false
	}
	b, ok := decodeBool(en)
	if !ok {
		p.add("mail_settings.sandbox_mode.enable", "The sandbox mode enable param should be a boolean value.")
		return false
	}
	return b
}

// unsupported reports fields sealpost cannot honour and must not silently
// drop: a template would send an empty message.
func (p *mailSendParser) unsupported(top members) {
	if r := top.get("template_id"); !absent(r) {
		if s, ok := p.str("template_id", r); ok && s != "" {
			p.add("template_id", "Templates are not supported; send subject and content instead.")
		}
	}
}
