package dnssectest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// RequireEnv, when set to anything, makes a missing unbound fail the test
// instead of skipping it, so that CI never passes by skipping DANE.
const RequireEnv = "SEALPOST_REQUIRE_UNBOUND"

// Unbound is a running unbound validating resolver whose only upstream is
// a Server: every zone, the root included, is a stub zone on loopback, and
// it sends queries only from 127.0.0.1, so it never reaches the internet.
type Unbound struct {
	addr    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
}

// unboundPath finds the unbound binary; Debian puts it in /usr/sbin, which
// is not always on PATH.
func unboundPath() (string, error) {
	if p, err := exec.LookPath("unbound"); err == nil {
		return p, nil
	}
	const debian = "/usr/sbin/unbound"
	if _, err := os.Stat(debian); err != nil {
		return "", fmt.Errorf("unbound is not installed (apt-get install unbound): %w", err)
	}
	return debian, nil
}

// StartUnbound starts unbound in front of auth, trusting the key of each of
// its signed zones; it stops when the test ends. Without unbound the test
// is skipped, unless SEALPOST_REQUIRE_UNBOUND is set.
func StartUnbound(t testing.TB, auth *Server) *Unbound {
	t.Helper()
	path, err := unboundPath()
	if err != nil {
		if os.Getenv(RequireEnv) != "" {
			t.Fatalf("dnssectest: %v (%s is set)", err, RequireEnv)
		}
		t.Skipf("dnssectest: %v; set %s to make this a failure", err, RequireEnv)
	}
	dir := t.TempDir()
	var lastErr error
	// The port is found free and then handed to unbound, so another
	// process may take it in between: try a few.
	for range 5 {
		u, err := startUnbound(t, path, dir, auth)
		if err == nil {
			return u
		}
		lastErr = err
	}
	t.Fatalf("dnssectest: starting unbound: %v", lastErr)
	return nil
}

func startUnbound(t testing.TB, path, dir string, auth *Server) (*Unbound, error) {
	port := freePort(t)
	if err := os.WriteFile(filepath.Join(dir, "root.hints"), []byte("; none: every zone is a stub on loopback\n"), 0o600); err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "unbound.conf")
	if err := os.WriteFile(conf, []byte(unboundConfig(dir, port, auth)), 0o600); err != nil {
		return nil, err
	}
	u := &Unbound{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), logPath: filepath.Join(dir, "unbound.log"),
		done: make(chan struct{})}
	logFile, err := os.Create(u.logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the process has its own copy
	// -d: stay in the foreground, logging to stderr.
	u.cmd = exec.Command(path, "-d", "-c", conf)
	u.cmd.Stdout, u.cmd.Stderr = logFile, logFile
	if err := u.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		_ = u.cmd.Wait()
		close(u.done)
	}()
	if err := u.waitReady(auth); err != nil {
		u.stop()
		return nil, fmt.Errorf("%w; unbound's log:\n%s", err, u.Log())
	}
	t.Cleanup(func() {
		u.stop()
		if t.Failed() {
			t.Logf("unbound's log:\n%s", u.Log())
		}
	})
	return u, nil
}

// waitReady waits until unbound answers a query, generously: a loaded
// machine may take seconds to start it.
func (u *Unbound) waitReady(auth *Server) error {
	probe := "."
	if zones := auth.zoneList(); len(zones) > 0 {
		probe = zones[0].origin
	}
	client := &dns.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-u.done:
			return fmt.Errorf("unbound exited at start")
		default:
		}
		m := new(dns.Msg)
		m.SetQuestion(probe, dns.TypeSOA)
		if _, _, err := client.Exchange(m, u.addr); err == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("unbound did not answer on %s within 30s", u.addr)
}

func (u *Unbound) stop() {
	_ = u.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-u.done:
	case <-time.After(10 * time.Second):
		_ = u.cmd.Process.Kill()
		<-u.done
	}
}

// Addr is unbound's "127.0.0.1:port", UDP and TCP.
func (u *Unbound) Addr() string { return u.addr }

// Log is what unbound has logged so far.
func (u *Unbound) Log() string {
	b, err := os.ReadFile(u.logPath)
	if err != nil {
		return fmt.Sprintf("(reading unbound's log: %v)", err)
	}
	return string(b)
}

// unboundConfig is a configuration that validates with the zones' keys as
// its only trust anchors and asks nothing but auth.
func unboundConfig(dir string, port int, auth *Server) string {
	host, authPort, _ := net.SplitHostPort(auth.Addr())
	upstream := host + "@" + authPort
	var b strings.Builder
	fmt.Fprintf(&b, `server:
	interface: 127.0.0.1
	port: %d
	access-control: 127.0.0.0/8 allow
	do-ip4: yes
	do-ip6: no
	do-udp: yes
	do-tcp: yes
	# Queries leave from loopback only: no other address can be reached.
	outgoing-interface: 127.0.0.1
	do-not-query-localhost: no
	username: ""
	chroot: ""
	directory: %q
	pidfile: ""
	use-syslog: no
	logfile: ""
	verbosity: 1
	val-log-level: 2
	log-servfail: yes
	ede: yes
	num-threads: 1
	so-reuseport: no
	module-config: "validator iterator"
	# No root trust anchor, and root hints naming nothing: the root is a
	# stub zone below.
	root-hints: %q
	harden-dnssec-stripped: yes
	harden-glue: yes
	harden-referral-path: no
	qname-minimisation: no
	aggressive-nsec: no
	prefetch: no
	minimal-responses: yes
	serve-expired: no
	cache-min-ttl: 0
`, port, dir, filepath.Join(dir, "root.hints"))
	for _, z := range auth.zoneList() {
		// Names under "test." and the like are answered by unbound itself
		// by default (RFC 6761); the zone's own names are to be resolved.
		fmt.Fprintf(&b, "\tlocal-zone: %q transparent\n", z.origin)
		if anchor := z.TrustAnchor(); anchor != "" {
			fmt.Fprintf(&b, "\ttrust-anchor: %q\n", anchor)
		}
	}
	// Every name, the root included, is looked up at auth alone.
	names := []string{"."}
	for _, z := range auth.zoneList() {
		names = append(names, z.origin)
	}
	for _, name := range names {
		fmt.Fprintf(&b, "stub-zone:\n\tname: %q\n\tstub-addr: %s\n\tstub-prime: no\n", name, upstream)
	}
	return b.String()
}

// freePort finds a port free for UDP and TCP on 127.0.0.1 and releases it.
func freePort(t testing.TB) int {
	pc, ln := listenUDPAndTCP(t)
	port := ln.Addr().(*net.TCPAddr).Port
	pc.Close()
	ln.Close()
	return port
}

// Exchange sends m to addr over UDP, then TCP when the answer was
// truncated: a helper for tests that look at raw answers.
func Exchange(ctx context.Context, addr string, m *dns.Msg) (*dns.Msg, error) {
	client := &dns.Client{Timeout: 5 * time.Second}
	resp, _, err := client.ExchangeContext(ctx, m, addr)
	if err == nil && resp.Truncated {
		client.Net = "tcp"
		resp, _, err = client.ExchangeContext(ctx, m, addr)
	}
	return resp, err
}
