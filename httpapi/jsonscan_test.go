package httpapi

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

var jsonSplitSeeds = []string{
	`{}`, `[]`, ` { } `, `[ ]`,
	`{"a":1,"b":"x","c":[1,2,{"d":"]"}],"e":{"f":null},"g":true,"h":-1.5e3}`,
	`{"a\"b":1, "a\\u00e9" : "v\"}", "k" :[ "x" , 2 ] }`,
	`{"dup":1,"dup":2}`,
	"{\"bad\xffkey\":1,\"ok\":\"\xff\"}",
	`["a",{"b":["c",{}]},[],"]","\\",""]`,
	`{"from":{"email":"a@b.test"},"content":[{"type":"text/plain","value":"hi\nthere"}]}`,
	"{\"s\":\"tab\\there\",\"u\":\"\\ud83d\\ude00\"}",
	`[1, 2 ,3]`, `{"a":[{"b":[[]]}]}  `,
}

// The fast decoders agree with encoding/json on every valid document:
// the same members or elements, byte for byte, and the same count of keys
// with invalid UTF-8.
func FuzzJSONSplitMatchesStd(f *testing.F) {
	for _, s := range jsonSplitSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkJSONSplit(t, b)
	})
}

func TestJSONSplitMatchesStd(t *testing.T) {
	t.Parallel()
	for _, s := range jsonSplitSeeds {
		checkJSONSplit(t, []byte(s))
	}
}

func checkJSONSplit(t *testing.T, b []byte) {
	t.Helper()
	if !json.Valid(b) {
		return
	}
	switch jsonKind(b) {
	case "object":
		got, gotBad := decodeMembers(b)
		want, wantBad := decodeMembersStd(b)
		if gotBad != wantBad {
			t.Fatalf("%q: %d bad keys, encoding/json %d", b, gotBad, wantBad)
		}
		checkSameParts(t, b, got, want)
	case "array":
		got, gotOK := decodeArray(b)
		want, wantOK := decodeArrayStd(b)
		if gotOK != wantOK {
			t.Fatalf("%q: ok %v, encoding/json %v", b, gotOK, wantOK)
		}
		checkSameParts(t, b, asMembers(got), asMembers(want))
	case "string":
		s, res := decodeString(b)
		var want string
		wantRes := stringOK
		if err := json.Unmarshal(bytes.TrimSpace(b), &want); err != nil {
			wantRes = notString
		}
		if res == badUTF8 {
			return // encoding/json would have replaced it; refusing is the point
		}
		if res != wantRes || !reflect.DeepEqual(s, want) {
			t.Fatalf("%q: decodeString = %q (%v), encoding/json %q (%v)", b, s, res, want, wantRes)
		}
	}
}

// checkSameParts compares the members (or elements, with empty keys) two
// decoders found in b, and checks each value in turn.
func checkSameParts(t *testing.T, b []byte, got, want members) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%q: %d parts, encoding/json %d", b, len(got), len(want))
	}
	for i := range got {
		if got[i].key != want[i].key || !bytes.Equal(got[i].raw, want[i].raw) {
			t.Fatalf("%q: part %d is %q=%q, encoding/json %q=%q", b, i, got[i].key, got[i].raw, want[i].key, want[i].raw)
		}
		checkJSONSplit(t, got[i].raw)
	}
}

func asMembers(elems []json.RawMessage) members {
	out := make(members, len(elems))
	for i, e := range elems {
		out[i].raw = e
	}
	return out
}

// The fast paths are taken for ordinary input, not only the fallback.
func TestJSONSplitFastPathTaken(t *testing.T) {
	t.Parallel()
	if _, _, ok := splitObject([]byte(`{"a":[1,"x"],"b":{"c":"d"}}`)); !ok {
		t.Error("splitObject fell back on an ordinary object")
	}
	if _, ok := splitArray([]byte(`[{"a":1}, "b", 3]`)); !ok {
		t.Error("splitArray fell back on an ordinary array")
	}
	if s, ok := plainString([]byte(`"plain text"`)); !ok || s != "plain text" {
		t.Errorf("plainString = %q, %v", s, ok)
	}
	for _, s := range []string{`"esc\"aped"`, "\"ctl\x01\"", "\"bad\xff\""} {
		if _, ok := plainString([]byte(s)); ok {
			t.Errorf("plainString took %q", s)
		}
	}
}

// BenchmarkParseMailSend parses a typical transactional body of about 3 KB.
func BenchmarkParseMailSend(b *testing.B) {
	text := bytes.Repeat([]byte("The quick brown fox jumps over the lazy dog. 0123456789\n"), 27)
	body, err := json.Marshal(map[string]any{
		"personalizations": []any{map[string]any{"to": []any{map[string]string{"email": "rcpt@example.test"}}}},
		"from":             map[string]string{"email": "sender@example.test", "name": "Sender"},
		"subject":          "Your receipt",
		"content":          []any{map[string]string{"type": "text/plain", "value": string(text)}, map[string]string{"type": "text/html", "value": "<p>" + string(text) + "</p>"}},
		"categories":       []string{"receipts"},
		"custom_args":      map[string]string{"order": "1234"},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := ParseMailSend(body); err != nil {
			b.Fatal(err)
		}
	}
}
