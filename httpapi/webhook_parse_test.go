package httpapi

import (
	"testing"

	"github.com/sealpost/sealpost"
)

func TestParseEventWebhookPatch(t *testing.T) {
	tests := []struct {
		name    string
		current sealpost.EventWebhookSettings
		body    string
		want    sealpost.EventWebhookSettings
		fields  []string // problems expected, by field
	}{
		{"merge", sealpost.EventWebhookSettings{URL: "https://a.test/x"}, `{"enabled":true,"delivered":true}`,
			sealpost.EventWebhookSettings{Enabled: true, URL: "https://a.test/x", Delivered: true}, nil},
		{"every problem", sealpost.EventWebhookSettings{}, `{"enabled":"yes","bounce":1,"url":"ftp://x"}`, sealpost.EventWebhookSettings{}, []string{"enabled", "bounce", "url"}},
		{"enabled without url", sealpost.EventWebhookSettings{}, `{"enabled":true}`, sealpost.EventWebhookSettings{}, []string{"url"}},
		{"url not a string", sealpost.EventWebhookSettings{}, `{"url":5}`, sealpost.EventWebhookSettings{}, []string{"url"}},
		{"not an object", sealpost.EventWebhookSettings{}, `[]`, sealpost.EventWebhookSettings{}, []string{""}},
		{"disable clears nothing", sealpost.EventWebhookSettings{Enabled: true, URL: "http://h/", Bounce: true}, `{"enabled":false}`,
			sealpost.EventWebhookSettings{URL: "http://h/", Bounce: true}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := parseEventWebhookPatch([]byte(tc.body), tc.current)
			var got []string
			for _, f := range sealpost.ErrorFields(err) {
				got = append(got, f.Field)
			}
			if len(tc.fields) > 0 || err != nil {
				if sealpost.ErrorCode(err) != sealpost.EINVALID || len(got) != len(tc.fields) {
					t.Fatalf("err = %v (fields %q), want fields %q", err, got, tc.fields)
				}
				for i := range got {
					if got[i] != tc.fields[i] {
						t.Errorf("fields = %q, want %q", got, tc.fields)
					}
				}
				return
			}
			if next := p.Apply(tc.current); next != tc.want {
				t.Errorf("Apply = %+v, want %+v", next, tc.want)
			}
		})
	}
}
