package httpapi

import (
	"encoding/json"
	"unicode/utf8"
)

// The decoders below take apart JSON that encoding/json has already
// validated, which is every body a handler decodes: a mail send body of a
// few KB would otherwise be rescanned by encoding/json once per level of
// nesting. They cut the input at its top-level commas and colons and leave
// the values as they are; anything they do not expect (which valid JSON
// never shows them) hands the input to encoding/json instead, so the
// outcome is encoding/json's in every case. FuzzJSONSplitMatchesStd holds
// them to that.

// skipSpace returns the index of the first non-whitespace byte of b at or
// after i.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// valueEnd returns the index just past the JSON value starting at b[i], or
// -1 when there is none.
func valueEnd(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				if j = stringEnd(b, j); j < 0 {
					return -1
				}
				j--
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	}
	j := i
	for j < len(b) {
		switch b[j] {
		case ',', '}', ']', ' ', '\t', '\r', '\n':
			return j
		}
		j++
	}
	return j
}

// stringEnd returns the index just past the JSON string starting at b[i].
func stringEnd(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

// splitObject cuts an object into its members; ok false when raw is not
// the object it expected.
func splitObject(raw []byte) (out members, badKeys int, ok bool) {
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return nil, 0, false
	}
	i = skipSpace(raw, i+1)
	if i < len(raw) && raw[i] == '}' {
		return out, 0, skipSpace(raw, i+1) == len(raw)
	}
	for {
		if i >= len(raw) || raw[i] != '"' {
			return nil, 0, false
		}
		end := stringEnd(raw, i)
		if end < 0 {
			return nil, 0, false
		}
		keyRaw := raw[i:end]
		if !utf8.Valid(keyRaw) {
			badKeys++
		}
		key, ok := plainString(keyRaw)
		if !ok && json.Unmarshal(keyRaw, &key) != nil {
			return nil, 0, false
		}
		i = skipSpace(raw, end)
		if i >= len(raw) || raw[i] != ':' {
			return nil, 0, false
		}
		i = skipSpace(raw, i+1)
		vend := valueEnd(raw, i)
		if vend < 0 {
			return nil, 0, false
		}
		out = append(out, member{key: key, raw: raw[i:vend:vend]})
		i = skipSpace(raw, vend)
		if i >= len(raw) {
			return nil, 0, false
		}
		switch raw[i] {
		case ',':
			i = skipSpace(raw, i+1)
		case '}':
			return out, badKeys, skipSpace(raw, i+1) == len(raw)
		default:
			return nil, 0, false
		}
	}
}

// splitArray cuts an array into its elements; ok false when raw is not
// the array it expected.
func splitArray(raw []byte) (out []json.RawMessage, ok bool) {
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '[' {
		return nil, false
	}
	i = skipSpace(raw, i+1)
	if i < len(raw) && raw[i] == ']' {
		return []json.RawMessage{}, skipSpace(raw, i+1) == len(raw)
	}
	for {
		end := valueEnd(raw, i)
		if end < 0 {
			return nil, false
		}
		out = append(out, json.RawMessage(raw[i:end:end]))
		i = skipSpace(raw, end)
		if i >= len(raw) {
			return nil, false
		}
		switch raw[i] {
		case ',':
			i = skipSpace(raw, i+1)
		case ']':
			return out, skipSpace(raw, i+1) == len(raw)
		default:
			return nil, false
		}
	}
}

// plainString returns the text of a JSON string without escapes, control
// characters or invalid UTF-8, which is its bytes between the quotes; ok
// false for any other string, which encoding/json must decode.
func plainString(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	inner := raw[1 : len(raw)-1]
	for _, c := range inner {
		if c < 0x20 || c == '\\' || c == '"' {
			return "", false
		}
	}
	if !utf8.Valid(inner) {
		return "", false
	}
	return string(inner), true
}
