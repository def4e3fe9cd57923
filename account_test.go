package sealpost

import "testing"

func TestAddressDomain(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"a@Example.COM":     "example.com",
		"\"a@b\"@Example.c": "example.c",
		"nodomain":          "nodomain",
		"trailing@":         "",
	} {
		if got := AddressDomain(in); got != want {
			t.Errorf("AddressDomain(%q) = %q, want %q", in, got, want)
		}
	}
}
