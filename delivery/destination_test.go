package delivery_test

import (
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
	"github.com/sealpost/sealpost/delivery"
	"github.com/sealpost/sealpost/delivery/mxtest"
)

// TestMXOnRefusedAddressBounces: with the default rule, mail to a domain
// whose MX points at loopback (as 127.0.0.1, 10.x or 169.254.169.254 would
// be) bounces for good with 5.4.4; the server there never sees a
// connection, and the events name no address and carry no reply of it.
func TestMXOnRefusedAddressBounces(t *testing.T) {
	t.Parallel()
	w := newRunnerWorld(t)
	w.runner.Deliverer.(*delivery.Client).Destinations = sealpost.Destinations{}
	internal := w.h.AddMX("internal.test", 10, mxtest.Behavior{})
	implicit := w.h.AddServer("implicit.test", mxtest.Behavior{})
	xid := w.send(mailTo("root@internal.test", "root@implicit.test"))
	w.drain()

	if n := internal.Connections() + implicit.Connections(); n != 0 {
		t.Errorf("the refused servers got %d connections", n)
	}
	st := w.states(xid)
	for _, rcpt := range []string{"root@internal.test", "root@implicit.test"} {
		if st[rcpt] != sealpost.StateBounced {
			t.Errorf("%s is %v, want bounced for good", rcpt, st[rcpt])
		}
	}
	bounces := 0
	for _, e := range w.events() {
		raw, _ := json.Marshal(e)
		for _, ip := range []string{internal.IP(), implicit.IP(), "127."} {
			if strings.Contains(string(raw), ip) {
				t.Errorf("event names the refused address %s: %s", ip, raw)
			}
		}
		if e["event"] != "bounce" {
			continue
		}
		bounces++
		if e["type"] != "bounce" || e["status"] != "5.4.4" || e["reason"] == "" {
			t.Errorf("bounce event %s: want type bounce, status 5.4.4 and a reason", raw)
		}
	}
	if bounces != 2 {
		t.Errorf("%d bounce events, want 2", bounces)
	}
}

func TestAllowedDestinationsAreDelivered(t *testing.T) {
	t.Parallel()
	h := mxtest.New(t)
	srv := h.AddMX("internal.test", 10, mxtest.Behavior{})
	c := &delivery.Client{
		Resolver: delivery.NewResolver(h.DNSAddr()), Port: h.Port(), RootCAs: h.CertPool(), Timeout: 10 * time.Second,
		Destinations: sealpost.AllowDestinations(netip.MustParsePrefix(srv.IP() + "/32")),
	}
	res := deliverOne(t, c, "internal.test")
	if rr := res.Recipients[0]; rr.Status != delivery.Delivered {
		t.Fatalf("with the MX's address allowed: %+v", rr)
	}
	if res.TLS.MXIP != srv.IP() {
		t.Errorf("mx_ip %q, want %s", res.TLS.MXIP, srv.IP())
	}
}

// TestRefusedHostsAreSkipped: an MX host whose addresses are all refused
// is passed over for the next; a refused address of a host with others is
// never dialled. Tests stay on loopback: 127.0.0.0/8 minus the harness's
// /24 stands for the refused ranges.
func TestRefusedHostsAreSkipped(t *testing.T) {
	t.Parallel()
	h := mxtest.New(t)
	refusedFirst := h.AddMX("mixed.test", 10, mxtest.Behavior{})
	allowed := h.AddMX("mixed.test", 20, mxtest.Behavior{})
	harness := netip.MustParsePrefix(allowed.IP() + "/24").Masked()
	refusedIP, dialled := countConnections(t, harness, h.Port())
	h.DNS().SetA(refusedFirst.Host(), refusedIP)
	// The allowed host also has a refused address, listed first.
	h.DNS().SetA(allowed.Host(), refusedIP, allowed.IP())
	c := &delivery.Client{
		Resolver: delivery.NewResolver(h.DNSAddr()), Port: h.Port(), RootCAs: h.CertPool(), Timeout: 10 * time.Second,
		Destinations: sealpost.AllowDestinations(harness),
	}
	res := deliverOne(t, c, "mixed.test")
	if rr := res.Recipients[0]; rr.Status != delivery.Delivered {
		t.Fatalf("got %+v, want delivered by the allowed host", rr)
	}
	if res.TLS.MXHost != allowed.Host() || res.TLS.MXIP != allowed.IP() {
		t.Errorf("delivered by %s [%s], want %s [%s]", res.TLS.MXHost, res.TLS.MXIP, allowed.Host(), allowed.IP())
	}
	if refusedFirst.Connections() != 0 || dialled.Load() != 0 {
		t.Errorf("the refused address got %d connections", refusedFirst.Connections()+int(dialled.Load()))
	}

	// With the allowed host gone, nothing is left: a permanent bounce.
	h.DNS().SetA(allowed.Host(), refusedIP)
	c.Resolver = delivery.NewResolver(h.DNSAddr()) // the old one caches answers
	res = deliverOne(t, c, "mixed.test")
	rr := res.Recipients[0]
	if rr.Status != delivery.Bounced || rr.EnhancedStatus != "5.4.4" || strings.Contains(rr.Response, "127.") {
		t.Errorf("got %+v, want a 5.4.4 bounce naming no address", rr)
	}
	if res.TLS.MXIP != "" {
		t.Errorf("result names mx_ip %q", res.TLS.MXIP)
	}
	if n := dialled.Load(); n != 0 {
		t.Errorf("the refused address got %d connections", n)
	}
}

// countConnections listens on port of a loopback address outside
// harness and counts the connections it gets.
func countConnections(t *testing.T, harness netip.Prefix, port int) (string, *atomic.Int64) {
	t.Helper()
	for _, ip := range []string{"127.0.0.1", "127.255.255.254", "127.254.0.1", "127.253.0.1"} {
		if harness.Contains(netip.MustParseAddr(ip)) {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
		if err != nil {
			continue
		}
		t.Cleanup(func() { ln.Close() })
		var n atomic.Int64
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				n.Add(1)
				c.Close()
			}
		}()
		return ip, &n
	}
	t.Fatalf("no loopback address outside %s free on port %d", harness, port)
	return "", nil
}

// TestLocalhostDomainBounces: mail to root@localhost is not delivered to
// the server's own port 25.
func TestLocalhostDomainBounces(t *testing.T) {
	t.Parallel()
	h := mxtest.New(t)
	srv := h.AddServer("localhost", mxtest.Behavior{})
	c := &delivery.Client{Resolver: delivery.NewResolver(h.DNSAddr()), Port: h.Port(), RootCAs: h.CertPool(), Timeout: 10 * time.Second}
	res := deliverOne(t, c, "localhost")
	if rr := res.Recipients[0]; rr.Status != delivery.Bounced || rr.EnhancedStatus != "5.4.4" {
		t.Errorf("got %+v, want a 5.4.4 bounce", rr)
	}
	if srv.Connections() != 0 {
		t.Errorf("the server got %d connections", srv.Connections())
	}
}

func deliverOne(t *testing.T, c *delivery.Client, domain string) delivery.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	return c.Deliver(ctx, sealpost.DefaultEnforcedTLS(), delivery.Envelope{
		From: "sender@sealpost.test", Domain: domain, Recipients: []string{"root@" + domain},
		Data: []byte("From: sender@sealpost.test\r\nSubject: hi\r\n\r\nhi\r\n"),
	})
}
