package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"unicode/utf8"

	"github.com/sealpost/sealpost"
)

func readAll(r io.Reader, contentLength int64) ([]byte, error) {
	if contentLength <= 0 {
		return io.ReadAll(r)
	}
	// Sized from Content-Length (already checked against the limit) so a
	// normal body is read without regrowing; +1 lets ReadAll see EOF.
	buf := bytes.NewBuffer(make([]byte, 0, contentLength+1))
	_, err := buf.ReadFrom(r)
	return buf.Bytes(), err
}

func isMaxBytes(err error) bool {
	var mb *http.MaxBytesError
	return errors.As(err, &mb)
}

// The JSON bodies of SendGrid's API are decoded here, on one set of
// helpers: jsonKind, decodeString, decodeBool, decodeArray and
// decodeMembers take single values apart, refusing what encoding/json
// would quietly accept or change (a wrong type, invalid UTF-8); object
// checks the members of a settings-style body against them, with
// problems worded "<field> must be ...". The mail send parser
// (mailsend_parse.go) uses the same decoders with SendGrid's mail send
// wording.

// object is a JSON object body being type-checked field by field. Every
// problem is collected so the client hears about all of them at once.
type object struct {
	prefix   string // "profile." for a nested object
	fields   map[string]json.RawMessage
	problems *[]sealpost.FieldError
	// badUTF8 is set on a body holding invalid UTF-8 anywhere, even in a
	// member no one reads: encoding/json would quietly turn it into
	// U+FFFD, so what is stored would not be what was sent.
	badUTF8 bool
}

// checkUTF8 refuses a body that is not valid UTF-8. Handlers whose parser
// reports bad UTF-8 field by field call it once that parser is content,
// to catch it in keys and in members the parser ignores.
func checkUTF8(body []byte) error {
	if utf8.Valid(body) {
		return nil
	}
	return sealpost.Invalid(sealpost.FieldError{Message: msgBodyNotUTF8})
}

const msgBodyNotUTF8 = "request body must be valid UTF-8"

// parseObject decodes body, which must be a single JSON object.
func parseObject(body []byte) (*object, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		if len(trimmed) > 0 && json.Valid(trimmed) {
			return nil, sealpost.Invalid(sealpost.FieldError{Message: "request body must be a JSON object"})
		}
		return nil, sealpost.Invalid(sealpost.FieldError{Message: "request body is not valid JSON"})
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &fields); err != nil {
		return nil, sealpost.Invalid(sealpost.FieldError{Message: "request body is not valid JSON"})
	}
	return &object{fields: fields, problems: new([]sealpost.FieldError), badUTF8: !utf8.Valid(trimmed)}, nil
}

func (o *object) problem(name, msg string) {
	field := o.prefix + name
	*o.problems = append(*o.problems, sealpost.FieldError{Field: field, Message: field + " " + msg})
}

// add records a problem found by a validator outside this file.
func (o *object) add(fe *sealpost.FieldError) {
	if fe != nil {
		*o.problems = append(*o.problems, *fe)
	}
}

// err returns every problem found so far, or nil. Invalid UTF-8 no field
// check noticed (in a key, or in a member nothing reads) is one more.
func (o *object) err() error {
	if o.badUTF8 && len(*o.problems) == 0 {
		o.add(&sealpost.FieldError{Message: msgBodyNotUTF8})
	}
	if len(*o.problems) == 0 {
		return nil
	}
	return sealpost.Invalid(*o.problems...)
}

// field names a member for validators: "profile.email" in a nested object.
func (o *object) field(name string) string { return o.prefix + name }

// str returns a string member. A member that is present but not a string
// (null included) or not valid UTF-8 is recorded as a problem.
func (o *object) str(name string) (v string, present bool) {
	raw, ok := o.fields[name]
	if !ok {
		return "", false
	}
	v, res := decodeString(raw)
	switch res {
	case notString:
		o.problem(name, "must be a string")
	case badUTF8:
		o.problem(name, "must be valid UTF-8")
	}
	return v, true
}

type stringResult int

const (
	stringOK stringResult = iota
	notString
	badUTF8
)

// decodeString decodes a JSON string, refusing the invalid UTF-8 that
// encoding/json would otherwise silently replace with U+FFFD.
func decodeString(raw json.RawMessage) (string, stringResult) {
	raw = bytes.TrimSpace(raw)
	if s, ok := plainString(raw); ok {
		return s, stringOK
	}
	if len(raw) == 0 || raw[0] != '"' {
		return "", notString
	}
	if !utf8.Valid(raw) {
		return "", badUTF8
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", notString
	}
	return s, stringOK
}

// checkedStr reads a string member and runs validate on it (with an empty
// value when required and absent). A member of the wrong type is reported
// once, not also by validate.
func (o *object) checkedStr(name string, required bool, validate func(field, v string) *sealpost.FieldError) (v string, present bool) {
	before := len(*o.problems)
	v, present = o.str(name)
	if len(*o.problems) > before || (!present && !required) {
		return v, present
	}
	o.add(validate(o.field(name), v))
	return v, present
}

// boolean returns a boolean member, nil when absent or not a boolean.
func (o *object) boolean(name string) (v *bool, present bool) {
	raw, ok := o.fields[name]
	if !ok {
		return nil, false
	}
	b, ok := decodeBool(raw)
	if !ok {
		o.problem(name, "must be a boolean")
		return nil, true
	}
	return &b, true
}

// decodeBool decodes a JSON boolean.
func decodeBool(raw json.RawMessage) (v, ok bool) {
	switch string(bytes.TrimSpace(raw)) {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	return false, false
}

// strs returns an array-of-strings member; nil and a recorded problem when
// it is anything else. A present empty array is non-nil.
func (o *object) strs(name string) (v []string, present bool) {
	raw, ok := o.fields[name]
	if !ok {
		return nil, false
	}
	elems, ok := decodeArray(raw)
	if !ok {
		o.problem(name, "must be an array of strings")
		return nil, true
	}
	out := make([]string, 0, len(elems))
	for _, e := range elems {
		s, res := decodeString(e)
		switch res {
		case notString:
			o.problem(name, "must be an array of strings")
			return nil, true
		case badUTF8:
			o.problem(name, "must contain only valid UTF-8")
			return nil, true
		}
		out = append(out, s)
	}
	return out, true
}

// obj returns a nested object member whose problems are reported with
// dotted field names and collected with this object's.
func (o *object) obj(name string) (v *object, present bool) {
	raw, ok := o.fields[name]
	if !ok {
		return nil, false
	}
	return o.nested(name, raw), true
}

// nested parses raw, the value of the member called name, as an object; nil
// and a recorded problem when it is anything else.
func (o *object) nested(name string, raw json.RawMessage) *object {
	var fields map[string]json.RawMessage
	if jsonKind(raw) != "object" || json.Unmarshal(raw, &fields) != nil {
		o.problem(name, "must be an object")
		return nil
	}
	return &object{prefix: o.prefix + name + ".", fields: fields, problems: o.problems}
}

// array returns the raw elements of an array member.
func (o *object) array(name string) (v []json.RawMessage, present bool) {
	raw, ok := o.fields[name]
	if !ok {
		return nil, false
	}
	elems, ok := decodeArray(raw)
	if !ok {
		o.problem(name, "must be an array")
		return nil, true
	}
	return elems, true
}

// decodeArray decodes a JSON array into its raw elements.
func decodeArray(raw json.RawMessage) ([]json.RawMessage, bool) {
	if jsonKind(raw) != "array" {
		return nil, false
	}
	if elems, ok := splitArray(raw); ok {
		return elems, true
	}
	return decodeArrayStd(raw)
}

// decodeArrayStd is decodeArray by encoding/json alone, for raw that
// jsonKind calls an array.
func decodeArrayStd(raw json.RawMessage) ([]json.RawMessage, bool) {
	var elems []json.RawMessage
	if json.Unmarshal(raw, &elems) != nil {
		return nil, false
	}
	return elems, true
}

// jsonKind names the JSON type of raw the way SendGrid's type errors do.
func jsonKind(raw json.RawMessage) string {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return "number"
}

// member is one key of a JSON object, in document order.
type member struct {
	key string
	raw json.RawMessage
}

type members []member

// get returns the value of key (the last one when repeated, as
// encoding/json does), or nil.
func (ms members) get(key string) json.RawMessage {
	for i := len(ms) - 1; i >= 0; i-- {
		if ms[i].key == key {
			return ms[i].raw
		}
	}
	return nil
}

// decodeMembers splits a JSON object that json.Valid accepted into its
// members, in document order, and counts the keys that are not valid
// UTF-8 (which encoding/json would quietly change).
func decodeMembers(raw json.RawMessage) (out members, badKeys int) {
	if out, badKeys, ok := splitObject(raw); ok {
		return out, badKeys
	}
	return decodeMembersStd(raw)
}

// decodeMembersStd is decodeMembers by encoding/json alone.
func decodeMembersStd(raw json.RawMessage) (out members, badKeys int) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil {
		return nil, 0
	}
	for dec.More() {
		start := dec.InputOffset()
		tok, err := dec.Token()
		if err != nil {
			return out, badKeys
		}
		key, _ := tok.(string)
		if !utf8.Valid(raw[start:dec.InputOffset()]) {
			badKeys++
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return out, badKeys
		}
		out = append(out, member{key: key, raw: v})
	}
	return out, badKeys
}
