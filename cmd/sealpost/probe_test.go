package main

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/sealpost/sealpost"
	"github.com/sealpost/sealpost/delivery/mxtest"
)

func TestTLSProbeCommand(t *testing.T) {
	t.Parallel()
	h := mxtest.New(t)
	h.AddMX("probe.test", 10, mxtest.Behavior{})
	h.AddMX("probe.test", 20, mxtest.Behavior{STARTTLS: mxtest.NoSTARTTLS})
	h.AddMX("expired.test", 10, mxtest.Behavior{Cert: mxtest.CertExpired})
	noEnv := func(string) string { return "" }
	flags := []string{"--dns-server", h.DNSAddr(), "--smtp-port", strconv.Itoa(h.Port()), "--tls-ca-file", h.CAFile(), "--allow-destinations", "127.0.0.0/8"}
	probe := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := run(t.Context(), append([]string{"tls", "probe"}, args...), noEnv, &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}

	code, out, errOut := probe(append([]string{"probe.test", "expired.test"}, flags...)...)
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q, stdout:\n%s", code, errOut, out)
	}
	for _, line := range []string{
		`(?m)^  10 +mx1\.probe\.test +127\.[0-9.]+ +yes +1\.2 1\.3 +TLS_\w+ +valid until \d{4}-\d\d-\d\d +no +-$`,
		`(?m)^  20 +mx2\.probe\.test +127\.[0-9.]+ +no +- +- +- +no +-$`,
		`(?m)^  MTA-STS: none published$`,
		`(?m)^  default \(opportunistic\) +delivered$`,
		`(?m)^  require_valid_cert 1\.3 +delivered$`,
		`(?m)^  10 +mx1\.expired\.test .* invalid: certificate-expired +no +-$`,
		`(?m)^  require_tls 1\.3 +delivered\n  require_valid_cert 1\.1 +blocked \(certificate-expired\)$`,
	} {
		if !regexp.MustCompile(line).MatchString(out) {
			t.Errorf("table lacks a line matching %s:\n%s", line, out)
		}
	}

	code, out, errOut = probe(append(flags, "--json", "probe.test")...)
	var rep sealpost.TLSProbe
	if code != 0 || errOut != "" || json.Unmarshal([]byte(out), &rep) != nil || rep.Domain != "probe.test" || len(rep.MXHosts) != 2 || len(rep.Verdicts) != 7 || rep.MXHosts[0].Certificate == nil {
		t.Errorf("--json: exit %d, stderr %q, stdout %s", code, errOut, out)
	}

	// A domain that does not exist: said plainly, exit 1.
	code, out, errOut = probe(append(flags, "nowhere.test")...)
	if code != 1 || !strings.Contains(errOut, "nowhere.test") || !strings.Contains(errOut, "does not exist") || !strings.Contains(out, "could not probe") {
		t.Errorf("nonexistent domain: exit %d, stderr %q, stdout %q", code, errOut, out)
	}

	// Without --allow-destinations, loopback MX hosts are not contacted.
	code, out, _ = probe("probe.test", "--dns-server", h.DNSAddr(), "--smtp-port", strconv.Itoa(h.Port()))
	if code != 0 || !strings.Contains(out, "bounced") || strings.Contains(out, "yes") {
		t.Errorf("loopback refused: exit %d, stdout:\n%s", code, out)
	}

	for _, args := range [][]string{
		{},
		{"--json"},
		{"probe.test", "--smtp-port", "0"},
		{"probe.test", "--smtp-port", "x"},
		{"probe.test", "--smtp-timeout", "-1s"},
		{"probe.test", "--allow-destinations", "127.0.0.1/8"},
		{"probe.test", "--dns-server", "127.0.0.1"},
		{"probe.test", "--tls-ca-file", "/nonexistent/ca.pem"},
		{"probe.test", "--helo-hostname", "a b"},
		{"not a domain"},
		{"127.0.0.1"},
	} {
		code, out, errOut := probe(args...)
		if code != 2 || out != "" || strings.Count(strings.TrimSpace(errOut), "\n") > 0 && !strings.Contains(errOut, "Usage") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 2 and one line", args, code, out, errOut)
		}
	}
}

// TestTLSProbeEndpointEndToEnd: serve's probe endpoint, wired as in
// production, against mxtest servers, on both stores: the probe's answer,
// and the per-account limit of --tls-probe-rate-limit.
func TestTLSProbeEndpointEndToEnd(t *testing.T) {
	t.Parallel()
	for _, sc := range storeCases() {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			h := mxtest.New(t)
			h.AddMX("probe.test", 10, mxtest.TLS12Only())
			cfg := DefaultConfig()
			cfg.RateLimit = 1000
			cfg.TLSProbeRateLimit = 2
			cfg.DeliveryWorkers = 0
			cfg.DNSServer, cfg.SMTPPort, cfg.TLSCAFile, cfg.AllowDestinations = h.DNSAddr(), h.Port(), h.CAFile(), "127.0.0.0/8"
			m, key, _ := startMainWith(t, sc.database(t), cfg)

			// Mail to the domain, never attempted (no delivery workers):
			// the preview knows nothing of it until the probe tells it.
			const preview = "/v3/user/settings/enforced_tls/preview?require_tls=true&version=1.3"
			send := `{"personalizations":[{"to":[{"email":"r@probe.test"}]}],"from":{"email":"s@example.com"},"subject":"s","content":[{"type":"text/plain","value":"x"}]}`
			if resp := call(t, m, key, "POST", "/v3/mail/send", "", send); resp.StatusCode != 202 {
				t.Fatalf("mail send: %d %s", resp.StatusCode, resp.Body)
			}
			if resp := call(t, m, key, "GET", preview, "", ""); !strings.Contains(resp.Body, `"would_block":{"domains":0,"recipients":0},"unknown":{"domains":1,"recipients":1}`) {
				t.Errorf("preview before the probe: %d %s, want probe.test unknown", resp.StatusCode, resp.Body)
			}

			resp := call(t, m, key, "POST", "/v3/tls/probe", "", `{"domain":"probe.test"}`)
			var rep sealpost.TLSProbe
			if resp.StatusCode != 200 || json.Unmarshal([]byte(resp.Body), &rep) != nil || len(rep.MXHosts) != 1 || len(rep.Verdicts) != 7 {
				t.Fatalf("probe: %d %s", resp.StatusCode, resp.Body)
			}
			if v := rep.Verdicts[3]; v.Policy.Version != sealpost.TLS13 || v.Outcome != sealpost.ProbeBlocked || v.ResultType != sealpost.ResultValidationFailure {
				t.Errorf("require_tls 1.3 against a TLS 1.2 host: %+v", v)
			}
			// The probe's facts are in the registry: the preview now judges
			// the domain by them.
			if resp := call(t, m, key, "GET", preview, "", ""); !strings.Contains(resp.Body, `"would_block":{"domains":1,"recipients":1},"unknown":{"domains":0,"recipients":0}`) ||
				!strings.Contains(resp.Body, `"domain":"probe.test"`) || !strings.Contains(resp.Body, `"result_type":"validation-failure"`) {
				t.Errorf("preview after the probe: %d %s, want probe.test blocked by validation-failure", resp.StatusCode, resp.Body)
			}
			call(t, m, key, "POST", "/v3/tls/probe", "", `{"domain":"probe.test"}`)
			expect(t, call(t, m, key, "POST", "/v3/tls/probe", "", `{"domain":"probe.test"}`), 429, `{"errors":[{"field":null,"message":"too many requests"}]}`)
		})
	}
}
