package sealpost_test

import (
	"encoding/json"
	"testing"

	"github.com/sealpost/sealpost"
)

func ptr[T any](v T) *T { return &v }

func TestEnforcedTLSJSON(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal(sealpost.DefaultEnforcedTLS())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"require_tls":false,"require_valid_cert":false,"version":1.1}`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	for _, v := range []sealpost.TLSVersion{sealpost.TLS11, sealpost.TLS12, sealpost.TLS13} {
		s := sealpost.EnforcedTLS{RequireTLS: true, Version: v}
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		var back sealpost.EnforcedTLS
		if err := json.Unmarshal(b, &back); err != nil || back != s {
			t.Fatalf("round trip of %s: %+v, %v", b, back, err)
		}
	}
	if _, err := json.Marshal(sealpost.EnforcedTLS{}); err == nil {
		t.Fatal("marshalling version 0 must fail rather than write a wrong number")
	}
}

func TestPatchApply(t *testing.T) {
	t.Parallel()
	base := sealpost.EnforcedTLS{RequireTLS: true, RequireValidCert: false, Version: sealpost.TLS12}
	if got := (sealpost.EnforcedTLSPatch{}).Apply(base); got != base {
		t.Fatalf("empty patch changed %+v to %+v", base, got)
	}
	got := sealpost.EnforcedTLSPatch{RequireValidCert: ptr(true), Version: ptr(sealpost.TLS13)}.Apply(base)
	want := sealpost.EnforcedTLS{RequireTLS: true, RequireValidCert: true, Version: sealpost.TLS13}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}
