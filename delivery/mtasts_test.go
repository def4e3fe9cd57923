package delivery_test

import (
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/sealpost/sealpost"
	"github.com/sealpost/sealpost/delivery"
	"github.com/sealpost/sealpost/delivery/mxtest"
)

// TestFetchMTASTSPolicy: the fetch delivery and the probe share, through
// the client's resolver, roots and destination rules; each way a policy
// must be refused.
func TestFetchMTASTSPolicy(t *testing.T) {
	t.Parallel()
	h := mxtest.New(t)
	good := func(d string) http.HandlerFunc { return textPolicy(strings.ReplaceAll(stsPolicy, "%s", d)) }
	tests := []struct {
		domain    string
		serve     func(domain string)
		wantError string // "" for a policy
	}{
		{domain: "good.test", serve: func(d string) { servePolicy(t, h, d, nil, good(d)) }},
		{domain: "redirect.test", serve: func(d string) {
			servePolicy(t, h, d, nil, func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "https://mta-sts.good.test/.well-known/mta-sts.txt", http.StatusMovedPermanently)
			})
		}, wantError: "redirects are not followed"},
		{domain: "html.test", serve: func(d string) {
			servePolicy(t, h, d, nil, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html")
				_, _ = w.Write([]byte(strings.ReplaceAll(stsPolicy, "%s", d)))
			})
		}, wantError: "not text/plain"},
		{domain: "untrusted.test", serve: func(d string) {
			c := mxtest.SelfSigned(t, "mta-sts."+d)
			servePolicy(t, h, d, &c, good(d))
		}, wantError: "certificate"},
		{domain: "wrong-name.test", serve: func(d string) {
			c := h.CA().Issue(t, mxtest.Options{DNSNames: []string{"mta-sts.elsewhere.test"}})
			servePolicy(t, h, d, &c, good(d))
		}, wantError: "certificate"},
		{domain: "invalid.test", serve: func(d string) {
			servePolicy(t, h, d, nil, textPolicy("version: STSv1\nmode: enforce\nmax_age: 99999999999\n"))
		},
			wantError: "max_age"},
		{domain: "missing.test", wantError: "no such host"},
	}
	for _, tt := range tests {
		if tt.serve != nil {
			tt.serve(tt.domain)
		}
	}
	client := &delivery.Client{Resolver: delivery.NewResolver(h.DNSAddr()), RootCAs: h.CertPool(), Destinations: loopbackOnly(), MTASTSPort: h.Port()}
	for _, tt := range tests {
		t.Run(tt.domain, func(t *testing.T) {
			t.Parallel()
			p, err := client.FetchMTASTSPolicy(t.Context(), tt.domain)
			if tt.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantError) {
					t.Fatalf("FetchMTASTSPolicy = %+v, %v; want an error containing %q", p, err, tt.wantError)
				}
				return
			}
			want := sealpost.MTASTSPolicy{Mode: "enforce", MX: []string{"mx1." + tt.domain, "*.backup.example"}, MaxAge: 86400}
			if err != nil || p.Mode != want.Mode || !slices.Equal(p.MX, want.MX) || p.MaxAge != want.MaxAge {
				t.Fatalf("FetchMTASTSPolicy = %+v, %v; want %+v", p, err, want)
			}
		})
	}

	t.Run("destination refused", func(t *testing.T) {
		t.Parallel()
		// The policy host is on loopback, which this client may not reach.
		refusing := &delivery.Client{Resolver: delivery.NewResolver(h.DNSAddr()), RootCAs: h.CertPool(), MTASTSPort: h.Port(),
			Destinations: sealpost.AllowDestinations(netip.MustParsePrefix("192.0.2.0/24"))}
		if _, err := refusing.FetchMTASTSPolicy(t.Context(), "good.test"); err == nil || !strings.Contains(err.Error(), sealpost.ErrDestinationRefused.Error()) {
			t.Fatalf("FetchMTASTSPolicy = %v, want the destination refused", err)
		}
	})
}

// TestLookupTXT: records joined per record, no record as none, failures as
// errors.
func TestLookupTXT(t *testing.T) {
	t.Parallel()
	d := mxtest.NewDNS(t)
	d.SetTXT("_mta-sts.split.test", []string{"v=STSv1; ", "id=1"}, []string{"other"})
	d.SetA("nodata.test", "127.0.0.1")
	d.SetServFail("_mta-sts.broken.test")
	client := &delivery.Client{Resolver: delivery.NewResolver(d.Addr())}
	tests := []struct {
		name    string
		want    []string
		wantErr bool
	}{
		{name: "_mta-sts.split.test", want: []string{"v=STSv1; id=1", "other"}},
		{name: "nodata.test"},
		{name: "_mta-sts.nxdomain.test"},
		{name: "_mta-sts.broken.test", wantErr: true},
	}
	for _, tt := range tests {
		got, err := client.LookupTXT(t.Context(), tt.name)
		if (err != nil) != tt.wantErr || !slices.Equal(got, tt.want) {
			t.Errorf("LookupTXT(%s) = %q, %v; want %q, error %v", tt.name, got, err, tt.want, tt.wantErr)
		}
	}
}
