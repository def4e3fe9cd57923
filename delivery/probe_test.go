package delivery_test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
	"github.com/sealpost/sealpost/delivery"
	"github.com/sealpost/sealpost/delivery/mxtest"
)

// probeDomain's servers are what each row of probeTable builds.
const probeDomain = "probe.test"

// expect is one policy's outcome, as a probe verdict and as a delivery.
type expect struct {
	outcome    string
	resultType string
}

var (
	delivers  = expect{outcome: sealpost.ProbeDelivered}
	defers    = expect{outcome: sealpost.ProbeDeferred}
	blockedBy = func(rt string) expect { return expect{outcome: sealpost.ProbeBlocked, resultType: rt} }
)

func tls10Only() mxtest.Behavior {
	b := mxtest.TLS11Only()
	b.MaxVersion = tls.VersionTLS10
	return b
}

// deadMX publishes host's address, where connections are accepted and
// never answered: a hung server, the worst a dead host can do to a client
// waiting for its greeting.
func deadMX(t *testing.T, h *mxtest.Harness, host string) {
	ln := h.Listen()
	h.DNS().SetA(host, ln.Addr().(*net.TCPAddr).IP.String())
	var mu sync.Mutex
	var held []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	})
}

// probeTable drives both halves of TestProbeAgreesWithDelivery: each row's
// servers are probed, and mail is delivered to them under each policy; the
// probe's verdicts and the deliveries must both come out as the row says.
// Cells follow sealpost.ProbePolicies: default; require_tls at 1.1, 1.2,
// 1.3; require_valid_cert at 1.1, 1.2, 1.3.
var probeTable = []struct {
	name  string
	hosts []mxtest.Behavior // mx1, mx2... in preference order; nil: a dead host
	dead  []bool
	// What the probe must find at mx1.
	starttls   bool
	versions   []string
	certValid  bool
	certResult string
	cells      [7]expect
}{
	{
		name: "TLS 1.3", hosts: []mxtest.Behavior{{}},
		starttls: true, versions: []string{"1.2", "1.3"}, certValid: true,
		cells: [7]expect{delivers, delivers, delivers, delivers, delivers, delivers, delivers},
	},
	{
		name: "TLS 1.2 only", hosts: []mxtest.Behavior{mxtest.TLS12Only()},
		starttls: true, versions: []string{"1.2"}, certValid: true,
		cells: [7]expect{delivers, delivers, delivers, blockedBy(failure), delivers, delivers, blockedBy(failure)},
	},
	{
		name: "TLS 1.1 only", hosts: []mxtest.Behavior{mxtest.TLS11Only()},
		starttls: true, versions: []string{"1.0", "1.1"}, certValid: true,
		cells: [7]expect{delivers, delivers, blockedBy(failure), blockedBy(failure), delivers, blockedBy(failure), blockedBy(failure)},
	},
	{
		name: "TLS 1.0 only", hosts: []mxtest.Behavior{tls10Only()},
		starttls: true, versions: []string{"1.0"}, certValid: true,
		cells: [7]expect{delivers, blockedBy(failure), blockedBy(failure), blockedBy(failure), blockedBy(failure), blockedBy(failure), blockedBy(failure)},
	},
	{
		// Opportunistic sessions offer this suite, mandatory ones do not: a
		// version counts only if a mandatory session could use it.
		name: "TLS 1.2 with only a suite Go deems insecure", hosts: []mxtest.Behavior{{MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256}}},
		starttls: true, versions: []string{},
		cells: [7]expect{delivers, blockedBy(failure), blockedBy(failure), blockedBy(failure), blockedBy(failure), blockedBy(failure), blockedBy(failure)},
	},
	{
		name: "no STARTTLS", hosts: []mxtest.Behavior{{STARTTLS: mxtest.NoSTARTTLS}},
		versions: []string{},
		cells:    [7]expect{delivers, blockedBy(noSTARTTLS), blockedBy(noSTARTTLS), blockedBy(noSTARTTLS), blockedBy(noSTARTTLS), blockedBy(noSTARTTLS), blockedBy(noSTARTTLS)},
	},
	{
		name: "STARTTLS answered 454", hosts: []mxtest.Behavior{{STARTTLS: mxtest.RejectSTARTTLS}},
		starttls: true, versions: []string{},
		cells: [7]expect{delivers, blockedBy(failure), blockedBy(failure), blockedBy(failure), blockedBy(failure), blockedBy(failure), blockedBy(failure)},
	},
	{
		name: "wrong host name", hosts: []mxtest.Behavior{{Cert: mxtest.CertWrongName}},
		starttls: true, versions: []string{"1.2", "1.3"}, certResult: mismatch,
		cells: [7]expect{delivers, delivers, delivers, delivers, blockedBy(mismatch), blockedBy(mismatch), blockedBy(mismatch)},
	},
	{
		name: "expired certificate", hosts: []mxtest.Behavior{{Cert: mxtest.CertExpired}},
		starttls: true, versions: []string{"1.2", "1.3"}, certResult: expired,
		cells: [7]expect{delivers, delivers, delivers, delivers, blockedBy(expired), blockedBy(expired), blockedBy(expired)},
	},
	{
		name: "self-signed", hosts: []mxtest.Behavior{{Cert: mxtest.CertSelfSigned}},
		starttls: true, versions: []string{"1.2", "1.3"}, certResult: notTrusted,
		cells: [7]expect{delivers, delivers, delivers, delivers, blockedBy(notTrusted), blockedBy(notTrusted), blockedBy(notTrusted)},
	},
	{
		name: "two MX hosts, the first without STARTTLS, the second good", hosts: []mxtest.Behavior{{STARTTLS: mxtest.NoSTARTTLS}, {}},
		versions: []string{},
		cells:    [7]expect{delivers, delivers, delivers, delivers, delivers, delivers, delivers},
	},
	{
		name: "two MX hosts, the first 1.2 only, the second with an expired certificate", hosts: []mxtest.Behavior{mxtest.TLS12Only(), {Cert: mxtest.CertExpired}},
		starttls: true, versions: []string{"1.2"}, certValid: true,
		cells: [7]expect{delivers, delivers, delivers, delivers, delivers, delivers, blockedBy(expired)},
	},
	{
		name: "a dead host and a host without STARTTLS", hosts: []mxtest.Behavior{{}, {STARTTLS: mxtest.NoSTARTTLS}}, dead: []bool{true, false},
		versions: []string{},
		cells:    [7]expect{delivers, defers, defers, defers, defers, defers, defers},
	},
}

func TestProbeAgreesWithDelivery(t *testing.T) {
	t.Parallel()
	policies := sealpost.ProbePolicies()
	for _, row := range probeTable {
		t.Run(row.name, func(t *testing.T) {
			t.Parallel()
			h := mxtest.New(t)
			var records []mxtest.MX
			for i, b := range row.hosts {
				host := fmt.Sprintf("mx%d.%s", i+1, probeDomain)
				if i < len(row.dead) && row.dead[i] {
					deadMX(t, h, host)
				} else {
					h.AddServer(host, b)
				}
				records = append(records, mxtest.MX{Pref: uint16(10 * (i + 1)), Host: host})
			}
			h.DNS().SetMX(probeDomain, records...)
			client := &delivery.Client{Resolver: delivery.NewResolver(h.DNSAddr()), Port: h.Port(), RootCAs: h.CertPool(), Timeout: 3 * time.Second, Destinations: loopbackOnly()}

			prober := &delivery.Prober{Client: client, DNSServer: h.DNSAddr()}
			rep, err := prober.Probe(t.Context(), probeDomain)
			if err != nil || rep.Error != "" {
				t.Fatalf("probe: %v %q", err, rep.Error)
			}
			mx1 := rep.MXHosts[0]
			if len(row.dead) == 0 || !row.dead[0] {
				if mx1.STARTTLS != row.starttls || !slices.Equal(mx1.TLSVersions, row.versions) {
					t.Errorf("mx1: starttls %v versions %v, want %v %v (errors %+v)", mx1.STARTTLS, mx1.TLSVersions, row.starttls, row.versions, mx1.Errors)
				}
				if len(row.versions) > 0 {
					c := mx1.Certificate
					if c == nil || c.Valid != row.certValid || c.ResultType != row.certResult {
						t.Errorf("mx1 certificate %+v, want valid %v result type %q", c, row.certValid, row.certResult)
					}
				}
			}
			for i, want := range row.cells {
				v := rep.Verdicts[i]
				if v.Policy != policies[i] || v.Outcome != want.outcome || v.ResultType != want.resultType || v.Delivered != (want.outcome == sealpost.ProbeDelivered) {
					t.Errorf("probe verdict under %+v: %+v, want %+v", policies[i], v, want)
				}
			}

			// The same servers, real deliveries, at once so that a dead
			// host costs one timeout.
			got := make([]expect, len(policies))
			var wg sync.WaitGroup
			for i, policy := range policies {
				wg.Go(func() {
					res := client.Deliver(t.Context(), policy, delivery.Envelope{
						From: "sender@example.com", Domain: probeDomain, Recipients: []string{"someone@" + probeDomain},
						Data: []byte("Subject: probe\r\n\r\nhello\r\n"),
					})
					got[i] = expect{outcome: res.Recipients[0].Status.String()}
					if res.Recipients[0].Status == delivery.Blocked {
						got[i].resultType = res.TLS.ResultType
					}
				})
			}
			wg.Wait()
			for i, want := range row.cells {
				if got[i] != want {
					t.Errorf("delivery under %+v: %+v, want %+v", policies[i], got[i], want)
				}
			}
		})
	}
}

// TestProbeDeadHostsAreBounded: three MX hosts, two of them hung, under
// delivery's own long timeout: the probe still ends within its deadline,
// with the live host fully probed.
func TestProbeDeadHostsAreBounded(t *testing.T) {
	t.Parallel()
	h := mxtest.New(t)
	deadMX(t, h, "mx1."+probeDomain)
	deadMX(t, h, "mx2."+probeDomain)
	h.AddServer("mx3."+probeDomain, mxtest.Behavior{})
	h.DNS().SetMX(probeDomain,
		mxtest.MX{Pref: 10, Host: "mx1." + probeDomain},
		mxtest.MX{Pref: 20, Host: "mx2." + probeDomain},
		mxtest.MX{Pref: 30, Host: "mx3." + probeDomain})
	// Delivery would wait a minute for each greeting.
	client := &delivery.Client{Resolver: delivery.NewResolver(h.DNSAddr()), Port: h.Port(), RootCAs: h.CertPool(), Timeout: time.Minute, Destinations: loopbackOnly()}
	prober := &delivery.Prober{Client: client, DNSServer: h.DNSAddr()}
	start := time.Now()
	rep, err := prober.Probe(t.Context(), probeDomain)
	elapsed := time.Since(start)
	if err != nil || rep.Error != "" {
		t.Fatalf("probe: %v %q", err, rep.Error)
	}
	if elapsed >= 10*time.Second {
		t.Errorf("probe took %v, want under 10s", elapsed)
	}
	for i, host := range rep.MXHosts[:2] {
		if len(host.Errors) == 0 || host.Errors[0].Step != "greeting" {
			t.Errorf("dead host %d: errors %+v, want a greeting timeout", i+1, host.Errors)
		}
	}
	if live := rep.MXHosts[2]; !slices.Equal(live.TLSVersions, []string{"1.2", "1.3"}) || live.Certificate == nil || !live.Certificate.Valid {
		t.Errorf("live host: %+v", live)
	}
	for _, v := range rep.Verdicts {
		if !v.Delivered {
			t.Errorf("verdict %+v: the live host meets every policy", v)
		}
	}
}

// TestProbeNonexistentDomain: the probe runs and says plainly that the
// domain does not exist.
func TestProbeNonexistentDomain(t *testing.T) {
	t.Parallel()
	h := mxtest.New(t)
	client := &delivery.Client{Resolver: delivery.NewResolver(h.DNSAddr()), Port: h.Port(), RootCAs: h.CertPool(), Destinations: loopbackOnly()}
	rep, err := (&delivery.Prober{Client: client, DNSServer: h.DNSAddr()}).Probe(t.Context(), "nowhere.test")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rep.Error, "does not exist") || len(rep.MXHosts) != 0 || len(rep.Verdicts) != 0 {
		t.Errorf("report %+v, want the domain said not to exist", rep)
	}
}

// TestProbeObeysDestinationRules: with loopback not allowed, the probe
// connects to nothing (neither the MX host nor the MTA-STS policy host),
// lists no refused address, and says mail would bounce, as delivery does.
func TestProbeObeysDestinationRules(t *testing.T) {
	t.Parallel()
	h := mxtest.New(t)
	mx := h.AddMX(probeDomain, 10, mxtest.Behavior{})
	h.DNS().SetTXT("_mta-sts."+probeDomain, []string{"v=STSv1; id=1"})
	var policyFetches int
	var mu sync.Mutex
	servePolicy(t, h, probeDomain, nil, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		policyFetches++
		mu.Unlock()
		textPolicy(strings.ReplaceAll(stsPolicy, "%s", probeDomain))(w, r)
	})
	client := &delivery.Client{Resolver: delivery.NewResolver(h.DNSAddr()), Port: h.Port(), RootCAs: h.CertPool()}
	rep, err := (&delivery.Prober{Client: client, DNSServer: h.DNSAddr(), MTASTSPort: h.Port()}).Probe(t.Context(), probeDomain)
	if err != nil || rep.Error != "" {
		t.Fatalf("probe: %v %q", err, rep.Error)
	}
	if mx.Connections() != 0 || policyFetches != 0 {
		t.Errorf("%d SMTP connections, %d policy fetches to loopback, want none", mx.Connections(), policyFetches)
	}
	host := rep.MXHosts[0]
	if len(host.Addresses) != 0 || host.Address != "" || len(host.Errors) == 0 || strings.Contains(fmt.Sprint(host.Errors), "127.") {
		t.Errorf("host %+v: want no address and an error naming none", host)
	}
	if sts := rep.Policies.MTASTS; sts.Policy != nil || !strings.Contains(sts.Error, "not allowed") || strings.Contains(sts.Error, "127.") {
		t.Errorf("MTA-STS finding %+v, want the fetch refused without naming the address", sts)
	}
	res := client.Deliver(t.Context(), sealpost.DefaultEnforcedTLS(), delivery.Envelope{From: "s@example.com", Domain: probeDomain, Recipients: []string{"r@" + probeDomain}, Data: []byte("\r\n")})
	for _, v := range rep.Verdicts {
		if v.Outcome != sealpost.ProbeBounced || res.Recipients[0].Status != delivery.Bounced {
			t.Errorf("verdict %+v, delivery %v: want both bounced", v, res.Recipients[0].Status)
		}
	}
}

// stallingMX publishes host's address, where a server offers STARTTLS,
// answers it 220 and then says nothing more; in plaintext it takes any
// mail. Delivery takes the stalled handshake as transient, so must the
// probe.
func stallingMX(t *testing.T, h *mxtest.Harness, host string) {
	ln := h.Listen()
	h.DNS().SetA(host, ln.Addr().(*net.TCPAddr).IP.String())
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				say := func(s string) { _, _ = c.Write([]byte(s + "\r\n")) }
				say("220 " + host)
				inData := false
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					verb := strings.ToUpper(strings.TrimSpace(line))
					switch {
					case inData:
						if verb == "." {
							inData = false
							say("250 2.0.0 queued")
						}
					case strings.HasPrefix(verb, "EHLO"):
						say("250-" + host + "\r\n250 STARTTLS")
					case verb == "STARTTLS":
						say("220 go ahead")
						_, _ = io.Copy(io.Discard, r) // and never answer the handshake
						return
					case verb == "DATA":
						inData = true
						say("354 go on")
					case verb == "QUIT":
						say("221 bye")
						return
					default:
						say("250 ok")
					}
				}
			}()
		}
	}()
}

func TestProbeStalledHandshakeIsTransient(t *testing.T) {
	t.Parallel()
	h := mxtest.New(t)
	stallingMX(t, h, "mx1."+probeDomain)
	h.DNS().SetMX(probeDomain, mxtest.MX{Pref: 10, Host: "mx1." + probeDomain})
	client := &delivery.Client{Resolver: delivery.NewResolver(h.DNSAddr()), Port: h.Port(), RootCAs: h.CertPool(), Timeout: time.Second, Destinations: loopbackOnly()}
	rep, err := (&delivery.Prober{Client: client, DNSServer: h.DNSAddr()}).Probe(t.Context(), probeDomain)
	if err != nil || rep.Error != "" {
		t.Fatalf("probe: %v %q", err, rep.Error)
	}
	for i, policy := range sealpost.ProbePolicies() {
		res := client.Deliver(t.Context(), policy, delivery.Envelope{From: "s@example.com", Domain: probeDomain, Recipients: []string{"r@" + probeDomain}, Data: []byte("Subject: x\r\n\r\nx\r\n")})
		want := sealpost.ProbeDeferred
		if !policy.Mandatory() {
			want = sealpost.ProbeDelivered // in plaintext, on a second connection
		}
		if got := res.Recipients[0].Status.String(); got != want || rep.Verdicts[i].Outcome != want {
			t.Errorf("%+v: delivery %s, probe %+v, want both %s", policy, got, rep.Verdicts[i], want)
		}
	}
}
