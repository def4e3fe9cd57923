package delivery_test

import (
	"crypto/tls"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/sealpost/sealpost"
	"github.com/sealpost/sealpost/delivery"
	"github.com/sealpost/sealpost/delivery/mxtest"
)

const stsPolicy = "version: STSv1\r\nmode: enforce\r\nmx: mx1.%s\r\nmx: *.backup.example\r\nmax_age: 86400\r\n"

// servePolicy serves handler over HTTPS as mta-sts.<domain>, with cert
// (the harness CA's for that name when nil), on the harness port.
func servePolicy(t *testing.T, h *mxtest.Harness, domain string, cert *tls.Certificate, handler http.HandlerFunc) {
	t.Helper()
	name := "mta-sts." + domain
	if cert == nil {
		c := h.CA().Issue(t, mxtest.Options{DNSNames: []string{name}})
		cert = &c
	}
	ln := h.Listen()
	h.DNS().SetA(name, ln.Addr().(*net.TCPAddr).IP.String())
	srv := &http.Server{Handler: handler, TLSConfig: &tls.Config{Certificates: []tls.Certificate{*cert}}}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { srv.Close() })
}

func textPolicy(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/mta-sts.txt" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte(body))
	}
}

// TestProbePublishedPolicies: MTA-STS, TLS-RPT and TLSA records from the
// harness DNS and an HTTPS policy server trusted through the same roots as
// MX certificates; and each way a policy fetch must fail.
func TestProbePublishedPolicies(t *testing.T) {
	t.Parallel()
	h := mxtest.New(t)
	tests := []struct {
		domain     string
		txt        []string // _mta-sts TXT
		serve      func(domain string)
		wantPolicy bool
		wantError  string // in the MTA-STS finding
	}{
		{domain: "good.test", txt: []string{"v=STSv1; id=20260101T000000"},
			serve: func(d string) { servePolicy(t, h, d, nil, textPolicy(strings.ReplaceAll(stsPolicy, "%s", d))) }, wantPolicy: true},
		{domain: "none.test"},
		{domain: "redirect.test", txt: []string{"v=STSv1; id=1"},
			serve: func(d string) {
				servePolicy(t, h, d, nil, func(w http.ResponseWriter, r *http.Request) {
					http.Redirect(w, r, "https://elsewhere.test/.well-known/mta-sts.txt", http.StatusFound)
				})
			}, wantError: "redirects are not followed"},
		{domain: "html.test", txt: []string{"v=STSv1; id=1"},
			serve: func(d string) {
				servePolicy(t, h, d, nil, func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", "text/html")
					_, _ = w.Write([]byte(strings.ReplaceAll(stsPolicy, "%s", d)))
				})
			}, wantError: "not text/plain"},
		{domain: "untrusted.test", txt: []string{"v=STSv1; id=1"},
			serve: func(d string) {
				c := mxtest.SelfSigned(t, "mta-sts."+d)
				servePolicy(t, h, d, &c, textPolicy(strings.ReplaceAll(stsPolicy, "%s", d)))
			}, wantError: "certificate"},
		{domain: "huge.test", txt: []string{"v=STSv1; id=1"},
			serve: func(d string) {
				servePolicy(t, h, d, nil, textPolicy(strings.ReplaceAll(stsPolicy, "%s", d)+strings.Repeat("x: y\n", 20000)))
			}, wantError: "larger than"},
		{domain: "two-records.test", txt: []string{"v=STSv1; id=1", "v=STSv1; id=2"}, wantError: "more than one"},
		{domain: "bad-record.test", txt: []string{"v=STSv1; id=not valid!"}, wantError: "id"},
	}
	for _, tt := range tests {
		h.AddMX(tt.domain, 10, mxtest.Behavior{})
		var recs [][]string
		for _, r := range tt.txt {
			recs = append(recs, []string{r})
		}
		if len(recs) > 0 {
			h.DNS().SetTXT("_mta-sts."+tt.domain, recs...)
		}
		if tt.serve != nil {
			tt.serve(tt.domain)
		}
	}
	// good.test also publishes TLS-RPT (split over two strings) and DANE.
	h.DNS().SetTXT("_smtp._tls.good.test", []string{"v=TLSRPTv1; rua=mailto:tls@good.test,", "https://reports.good.test/tlsrpt"}, []string{"unrelated"})
	h.DNS().SetTLSA("_25._tcp.mx1.good.test", dns.TLSA{Usage: 3, Selector: 1, MatchingType: 1, Certificate: strings.Repeat("ab", 32)})

	client := &delivery.Client{Resolver: delivery.NewResolver(h.DNSAddr()), Port: h.Port(), RootCAs: h.CertPool(), Destinations: loopbackOnly()}
	prober := &delivery.Prober{Client: client, DNSServer: h.DNSAddr(), MTASTSPort: h.Port()}
	for _, tt := range tests {
		t.Run(tt.domain, func(t *testing.T) {
			t.Parallel()
			rep, err := prober.Probe(t.Context(), tt.domain)
			if err != nil || rep.Error != "" {
				t.Fatalf("probe: %v %q", err, rep.Error)
			}
			sts := rep.Policies.MTASTS
			if sts.Published != (len(tt.txt) > 0) || (sts.Policy != nil) != tt.wantPolicy || !strings.Contains(sts.Error, tt.wantError) || (tt.wantError == "" && sts.Error != "") {
				t.Fatalf("MTA-STS finding %+v (policy %+v), want policy %v, error containing %q", sts, sts.Policy, tt.wantPolicy, tt.wantError)
			}
			if tt.domain != "good.test" {
				if rep.Policies.TLSRPT.Published || rep.MXHosts[0].TLSA {
					t.Errorf("TLS-RPT %+v, TLSA %v: nothing is published", rep.Policies.TLSRPT, rep.MXHosts[0].TLSA)
				}
				return
			}
			want := sealpost.MTASTSPolicy{Mode: "enforce", MX: []string{"mx1.good.test", "*.backup.example"}, MaxAge: 86400}
			if sts.ID != "20260101T000000" || sts.Policy.Mode != want.Mode || !slices.Equal(sts.Policy.MX, want.MX) || sts.Policy.MaxAge != want.MaxAge {
				t.Errorf("MTA-STS %+v %+v, want id 20260101T000000 and %+v", sts, sts.Policy, want)
			}
			rpt := rep.Policies.TLSRPT
			if !rpt.Published || !slices.Equal(rpt.RUA, []string{"mailto:tls@good.test", "https://reports.good.test/tlsrpt"}) || rpt.Error != "" {
				t.Errorf("TLS-RPT %+v", rpt)
			}
			if !rep.MXHosts[0].TLSA {
				t.Errorf("mx1.good.test: TLSA not found")
			}
		})
	}
}
