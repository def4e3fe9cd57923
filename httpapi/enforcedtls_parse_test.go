package httpapi

import (
	"reflect"
	"testing"

	"github.com/sealpost/sealpost"
)

func ptr[T any](v T) *T { return &v }

func TestParseEnforcedTLSPatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		body   string
		want   sealpost.EnforcedTLSPatch
		fields []string // problem fields, in order; "" = no field
	}{
		{body: `{}`, want: sealpost.EnforcedTLSPatch{}},
		{body: ` {"require_tls":true} `, want: sealpost.EnforcedTLSPatch{RequireTLS: ptr(true)}},
		{body: `{"require_tls":false,"require_valid_cert":true}`, want: sealpost.EnforcedTLSPatch{RequireTLS: ptr(false), RequireValidCert: ptr(true)}},
		{body: `{"version":1.1}`, want: sealpost.EnforcedTLSPatch{Version: ptr(sealpost.TLS11)}},
		{body: `{"version":1.2}`, want: sealpost.EnforcedTLSPatch{Version: ptr(sealpost.TLS12)}},
		{body: `{"version":1.3,"unknown":[1,2]}`, want: sealpost.EnforcedTLSPatch{Version: ptr(sealpost.TLS13)}},
		{body: `{"version":1.10}`, want: sealpost.EnforcedTLSPatch{Version: ptr(sealpost.TLS11)}},
		{body: ``, fields: []string{""}},
		{body: `not json`, fields: []string{""}},
		{body: `{"require_tls":true`, fields: []string{""}},
		{body: `[]`, fields: []string{""}},
		{body: `"x"`, fields: []string{""}},
		{body: `1`, fields: []string{""}},
		{body: `null`, fields: []string{""}},
		{body: `{"version":"1.2"}`, fields: []string{"version"}},
		{body: `{"version":null}`, fields: []string{"version"}},
		{body: `{"version":1.0}`, fields: []string{"version"}},
		{body: `{"version":1.4}`, fields: []string{"version"}},
		{body: `{"version":2}`, fields: []string{"version"}},
		{body: `{"version":-1.1}`, fields: []string{"version"}},
		{body: `{"require_tls":"yes"}`, fields: []string{"require_tls"}},
		{body: `{"require_tls":null}`, fields: []string{"require_tls"}},
		{body: `{"require_valid_cert":1}`, fields: []string{"require_valid_cert"}},
		{body: `{"require_tls":"yes","require_valid_cert":0,"version":"1.3"}`, fields: []string{"require_tls", "require_valid_cert", "version"}},
		{body: `{"require_tls":true,"version":9}`, fields: []string{"version"}},
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			t.Parallel()
			got, err := parseEnforcedTLSPatch([]byte(tt.body))
			if tt.fields == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Fatalf("got %+v, want %+v", got, tt.want)
				}
				return
			}
			if code := sealpost.ErrorCode(err); code != sealpost.EINVALID {
				t.Fatalf("code %q, want %q (err %v)", code, sealpost.EINVALID, err)
			}
			var fields []string
			for _, f := range sealpost.ErrorFields(err) {
				fields = append(fields, f.Field)
				if f.Message == "" {
					t.Errorf("problem with field %q has no message", f.Field)
				}
			}
			if !reflect.DeepEqual(fields, tt.fields) {
				t.Fatalf("fields %q, want %q", fields, tt.fields)
			}
			if !reflect.DeepEqual(got, sealpost.EnforcedTLSPatch{}) {
				t.Fatalf("a rejected patch must be empty, got %+v", got)
			}
		})
	}
}

func FuzzParseEnforcedTLSPatch(f *testing.F) {
	for _, seed := range []string{
		`{}`, `{"require_tls":true}`, `{"require_valid_cert":true,"version":1.3}`,
		`{"require_tls":false,"require_valid_cert":false,"version":1.1}`,
		`{"version":"1.2"}`, `{"require_tls":"yes"}`, `{"require_tls":null}`, `{"version":1.0}`,
		`{"version":1.4}`, `{"version":2}`, `[]`, `not json`, `{"a":{"b":{"c":[[[[]]]]}}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := parseEnforcedTLSPatch(body)
		if err != nil {
			if sealpost.ErrorCode(err) != sealpost.EINVALID || len(sealpost.ErrorFields(err)) == 0 {
				t.Fatalf("error %v is not a listed validation error", err)
			}
			return
		}
		if p.Version != nil && !p.Version.Valid() {
			t.Fatalf("accepted invalid version %v", *p.Version)
		}
	})
}
