package mtasts_test

import (
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sealpost/sealpost"
	"github.com/sealpost/sealpost/delivery"
	"github.com/sealpost/sealpost/delivery/mxtest"
	"github.com/sealpost/sealpost/mtasts"
	"github.com/sealpost/sealpost/postgres"
	"github.com/sealpost/sealpost/postgres/pgtest"
	"github.com/sealpost/sealpost/sqlite"
)

// policyHost serves a domain's policy over HTTPS as mta-sts.<domain>, on
// the harness's loopback network, and counts the fetches.
type policyHost struct {
	mu          sync.Mutex
	body        string
	contentType string
	status      int
	requests    int
}

func (p *policyHost) set(body string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.body = body
}

func (p *policyHost) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.requests
}

func (p *policyHost) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.requests++
	if r.URL.Path != "/.well-known/mta-sts.txt" {
		http.NotFound(w, r)
		return
	}
	if p.status == http.StatusFound {
		http.Redirect(w, r, "https://elsewhere.test/policy.txt", p.status)
		return
	}
	w.Header().Set("Content-Type", p.contentType)
	_, _ = w.Write([]byte(p.body))
}

// serve publishes domain's record with id and serves host with cert (the
// harness CA's for mta-sts.<domain> when nil).
func serve(t *testing.T, h *mxtest.Harness, domain, id string, host *policyHost, cert *tls.Certificate) {
	t.Helper()
	name := "mta-sts." + domain
	if cert == nil {
		c := h.CA().Issue(t, mxtest.Options{DNSNames: []string{name}})
		cert = &c
	}
	if host.contentType == "" {
		host.contentType = "text/plain; charset=utf-8"
	}
	ln := h.Listen()
	h.DNS().SetA(name, ln.Addr().(*net.TCPAddr).IP.String())
	h.DNS().SetTXT("_mta-sts."+domain, []string{"v=STSv1; id=" + id})
	// Refused handshakes are what some cases are about: not worth a line.
	srv := &http.Server{Handler: host, TLSConfig: &tls.Config{Certificates: []tls.Certificate{*cert}}, ErrorLog: log.New(io.Discard, "", 0)}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { srv.Close() })
}

func policyFile(mode string, maxAge string, mx ...string) string {
	var b strings.Builder
	b.WriteString("version: STSv1\r\nmode: " + mode + "\r\n")
	for _, m := range mx {
		b.WriteString("mx: " + m + "\r\n")
	}
	b.WriteString("max_age: " + maxAge + "\r\n")
	return b.String()
}

// TestSourceOverHTTPS runs Sources as nodes do: each with its own client
// (resolver and its DNS cache, trusted roots, destination rules) on one
// database, against policy hosts served over HTTPS with a test CA.
func TestSourceOverHTTPS(t *testing.T) {
	t.Parallel()
	// Each store opens connections to one database, one per node.
	stores := map[string]func(t *testing.T) func() mtasts.Cache{
		"sqlite": func(t *testing.T) func() mtasts.Cache {
			path := filepath.Join(t.TempDir(), "sealpost.db")
			return func() mtasts.Cache {
				db, err := sqlite.Open(t.Context(), path)
				if err != nil {
					t.Fatalf("sqlite.Open: %v", err)
				}
				t.Cleanup(func() { db.Close() })
				return db
			}
		},
		"postgres": func(t *testing.T) func() mtasts.Cache {
			url := pgtest.URL(t)
			return func() mtasts.Cache {
				db, err := postgres.Open(t.Context(), url)
				if err != nil {
					t.Fatalf("postgres.Open: %v", err)
				}
				t.Cleanup(func() { db.Close() })
				return db
			}
		},
	}
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testSourceOverHTTPS(t, open(t))
		})
	}
}

func testSourceOverHTTPS(t *testing.T, openStore func() mtasts.Cache) {
	h := mxtest.New(t)
	// A node: a client of its own, and its own connection to the database.
	node := func() *mtasts.Source {
		client := &delivery.Client{Resolver: delivery.NewResolver(h.DNSAddr()), RootCAs: h.CertPool(), MTASTSPort: h.Port(),
			Destinations: sealpost.AllowDestinations(netip.MustParsePrefix("127.0.0.0/8"))}
		return &mtasts.Source{Resolver: client, Fetcher: client, Cache: openStore(), Logger: testLogger(t)}
	}
	policy := func(s *mtasts.Source, domain string) *sealpost.MTASTSPolicy {
		t.Helper()
		p, err := s.Policy(t.Context(), domain)
		if err != nil {
			t.Fatalf("Policy(%s): %v", domain, err)
		}
		return p
	}

	good := &policyHost{body: policyFile("enforce", "604800", "mx1.good.test", "*.good.test")}
	serve(t, h, "good.test", "20261201", good, nil)
	first := node()
	want := &sealpost.MTASTSPolicy{Mode: "enforce", MX: []string{"mx1.good.test", "*.good.test"}, MaxAge: 604800}
	samePolicy(t, policy(first, "good.test"), want)
	second := node()
	samePolicy(t, policy(second, "good.test"), want)
	if n := good.count(); n != 1 {
		t.Errorf("two nodes fetched %d times, want once: the second uses the shared cache", n)
	}

	// A new id: a node that sees it fetches the new policy, for everyone.
	good.set(policyFile("enforce", "604800", "mx2.good.test"))
	h.DNS().SetTXT("_mta-sts.good.test", []string{"v=STSv1; id=20261202"})
	third := node()
	want = &sealpost.MTASTSPolicy{Mode: "enforce", MX: []string{"mx2.good.test"}, MaxAge: 604800}
	samePolicy(t, policy(third, "good.test"), want)
	if n := good.count(); n != 2 {
		t.Errorf("%d fetches after the id changed, want 2", n)
	}
	// Another id whose policy cannot be fetched: the cached policy holds.
	good.mu.Lock()
	good.status, good.contentType = http.StatusFound, ""
	good.mu.Unlock()
	h.DNS().SetTXT("_mta-sts.good.test", []string{"v=STSv1; id=20261203"})
	samePolicy(t, policy(node(), "good.test"), want)

	// Policies refused, with nothing cached: as though none was published.
	untrusted := mxtest.SelfSigned(t, "mta-sts.untrusted.test")
	wrongName := h.CA().Issue(t, mxtest.Options{DNSNames: []string{"mta-sts.good.test"}})
	refused := []struct {
		domain string
		host   *policyHost
		cert   *tls.Certificate
	}{
		{"untrusted.test", &policyHost{body: policyFile("enforce", "86400", "mx.untrusted.test")}, &untrusted},
		{"wrong-name.test", &policyHost{body: policyFile("enforce", "86400", "mx.wrong-name.test")}, &wrongName},
		{"redirect.test", &policyHost{status: http.StatusFound}, nil},
		{"html.test", &policyHost{body: policyFile("enforce", "86400", "mx.html.test"), contentType: "text/html"}, nil},
		{"max-age.test", &policyHost{body: policyFile("enforce", "31557601", "mx.max-age.test")}, nil},
	}
	for _, r := range refused {
		serve(t, h, r.domain, "1", r.host, r.cert)
	}
	s := node()
	for _, r := range refused {
		if p := policy(s, r.domain); p != nil {
			t.Errorf("%s: policy %+v, want none", r.domain, p)
		}
	}

	serve(t, h, "testing.test", "1", &policyHost{body: policyFile("testing", "31557600", "mx.testing.test")}, nil)
	samePolicy(t, policy(s, "testing.test"), &sealpost.MTASTSPolicy{Mode: "testing", MX: []string{"mx.testing.test"}, MaxAge: 31557600})
	serve(t, h, "none.test", "1", &policyHost{body: policyFile("none", "86400")}, nil)
	if p := policy(s, "none.test"); p != nil {
		t.Errorf("none.test: policy %+v, want none", p)
	}
}
