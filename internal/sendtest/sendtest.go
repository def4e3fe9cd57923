// Package sendtest builds mail send bodies for tests and checks the
// messages they render to, for the tests of the parser (httpapi) and of
// the rendering (the root package) alike.
package sendtest

import (
	"bytes"
	"encoding/json"
	"net/mail"
	"testing"

	"github.com/sealpost/sealpost"
)

// Body returns a valid mail send body with the top-level fields in set
// replaced (a nil value deletes the field).
func Body(t testing.TB, set map[string]any) []byte {
	t.Helper()
	b := map[string]any{
		"personalizations": []any{map[string]any{"to": []any{map[string]any{"email": "to@example.com", "name": "To"}}}},
		"from":             map[string]any{"email": "from@example.com", "name": "From"},
		"subject":          "Hello",
		"content":          []any{map[string]any{"type": "text/plain", "value": "Hi there"}},
	}
	for k, v := range set {
		if v == nil {
			delete(b, k)
			continue
		}
		b[k] = v
	}
	out, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// To builds a personalization with the given to addresses.
func To(emails ...string) map[string]any {
	var list []any
	for _, e := range emails {
		list = append(list, map[string]any{"email": e})
	}
	return map[string]any{"to": list}
}

// Personalizations is the personalizations array of ps.
func Personalizations(ps ...map[string]any) []any {
	out := make([]any, len(ps))
	for i, p := range ps {
		out[i] = p
	}
	return out
}

// CheckWire fails unless data uses CRLF line ends only, no line exceeds
// 998 octets, and net/mail can read it; it returns the parsed message.
func CheckWire(t testing.TB, data []byte) *mail.Message {
	t.Helper()
	if !bytes.HasSuffix(data, []byte("\r\n")) {
		t.Fatalf("message does not end in CRLF")
	}
	for i, line := range bytes.Split(data, []byte("\r\n")) {
		if j := bytes.IndexAny(line, "\r\n"); j >= 0 {
			t.Fatalf("line %d holds a bare CR or LF at %d: %q", i+1, j, line)
		}
		if len(line) > 998 {
			t.Fatalf("line %d is %d octets long", i+1, len(line))
		}
	}
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("net/mail cannot read the message: %v\n%s", err, data)
	}
	return msg
}

// Rendered is m's complete message.
func Rendered(t testing.TB, m *sealpost.Message) []byte {
	t.Helper()
	data, err := m.Render()
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	return data
}
