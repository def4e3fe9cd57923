package sealpost_test

import (
	"strings"
	"testing"

	"github.com/sealpost/sealpost"
)

func TestValidEmail(t *testing.T) {
	t.Parallel()
	local64 := strings.Repeat("a", 64)
	tests := []struct {
		addr string
		ok   bool
	}{
		{"a@example.com", true},
		{"first.last+tag@sub.example.co.uk", true},
		{"a@localhost", true},
		{"o'brien@example.com", true},
		{"a_b-c@ex-ample.com", true},
		{local64 + "@example.com", true},
		{local64 + "a@example.com", false},
		{"a@" + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 63) + "." + strings.Repeat("e", 57) + ".com", false}, // 255 octets
		{"", false},
		{"plain", false},
		{"@example.com", false},
		{"a@", false},
		{"a@@example.com", false},
		{"a@b@example.com", false},
		{"a b@example.com", false},
		{"a@exa mple.com", false},
		{" a@example.com", false},
		{"a@example.com ", false},
		{"a@example.com\r\nBcc: x@example.net", false},
		{"a\n@example.com", false},
		{"a@example.com\x00", false},
		{"A <a@example.com>", false},
		{"<a@example.com>", false},
		{"a@example.com, b@example.com", false},
		{`"a b"@example.com`, false},
		{`"a"@example.com`, false},
		{"a(comment)@example.com", false},
		{".a@example.com", false},
		{"a.@example.com", false},
		{"a..b@example.com", false},
		{"a@.example.com", false},
		{"a@example.com.", false},
		{"a@example..com", false},
		{"a@-example.com", false},
		{"a@example-.com", false},
		{"a@exa_mple.com", false},
		{"a@[127.0.0.1]", false},
		{"a@127.0.0.1", false},
		{"jö@example.com", false},
		{"a@exämple.com", false},
	}
	for _, tt := range tests {
		if got := sealpost.ValidEmail(tt.addr); got != tt.ok {
			t.Errorf("ValidEmail(%q) = %v, want %v", tt.addr, got, tt.ok)
		}
	}
}
