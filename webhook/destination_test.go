package webhook

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
	"github.com/sealpost/sealpost/delivery/mxtest"
)

// testResolver looks names up in dns only, so that a test decides what a
// webhook host name resolves to.
func testResolver(dns *mxtest.DNS) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, dns.Addr())
	}}
}

// TestRefusedAddressesAreNeverDialled: with the default rule, a webhook
// whose URL is a loopback literal, or a name resolving to loopback, fails
// as a post, is retried later, and nothing reaches the listener.
func TestRefusedAddressesAreNeverDialled(t *testing.T) {
	t.Parallel()
	dns := mxtest.NewDNS(t)
	dns.SetA("hook.example.test", "127.0.0.1")
	rcv := newReceiver(t, nil)
	port := strconv.Itoa(rcv.Listener.Addr().(*net.TCPAddr).Port)
	for _, url := range []string{
		rcv.URL + "/hook",
		"http://hook.example.test:" + port + "/hook",
		"http://localhost:" + port + "/hook",
		"http://[::ffff:127.0.0.1]:" + port + "/hook",
	} {
		t.Run(url, func(t *testing.T) {
			c := newClock()
			store := newFakeStore(c)
			store.setWebhook(1, allKinds(url), nil)
			store.add(1, sealpost.EventDelivered, payloads(sealpost.EventDelivered, 0, 2)...)
			p := newPoster(t, store, c)
			p.Destinations = sealpost.Destinations{}
			p.Client = newClient(sealpost.Destinations{}, testResolver(dns))
			flush(t, p)
			if n, _, next := store.state(1); n != 1 || !next.Equal(c.Now().Add(10*time.Second)) {
				t.Errorf("after a refused post: attempts %d next %v, want 1 and now+10s", n, next)
			}
			if got := len(store.waiting(1)); got != 2 {
				t.Errorf("%d events waiting, want 2 kept for a retry", got)
			}
			if s := p.Stats(); s.FailedPosts != 1 || s.Posts != 0 {
				t.Errorf("stats %+v, want one failed post", s)
			}
			if n := len(rcv.received()); n != 0 {
				t.Errorf("the refused listener got %d posts", n)
			}
		})
	}
}

func TestSendTestRefusesNameResolvingToRefusedAddress(t *testing.T) {
	t.Parallel()
	dns := mxtest.NewDNS(t)
	dns.SetA("internal.example.test", "127.0.0.1")
	dns.SetA("metadata.example.test", "169.254.169.254")
	rcv := newReceiver(t, nil)
	port := strconv.Itoa(rcv.Listener.Addr().(*net.TCPAddr).Port)
	client := newClient(sealpost.Destinations{}, testResolver(dns))
	for _, host := range []string{"internal.example.test", "metadata.example.test"} {
		_, err := SendTest(t.Context(), client, "http://"+host+":"+port+"/", nil, time.Now())
		if !errors.Is(err, sealpost.ErrDestinationRefused) {
			t.Errorf("SendTest to %s: %v, want ErrDestinationRefused", host, err)
		}
	}
	if n := len(rcv.received()); n != 0 {
		t.Errorf("the refused listener got %d posts", n)
	}
	// The operator's allowance lets the same name through.
	allowed := newClient(sealpost.AllowDestinations(netip.MustParsePrefix("127.0.0.1/32")), testResolver(dns))
	if _, err := SendTest(t.Context(), allowed, "http://internal.example.test:"+port+"/", nil, time.Now()); err != nil {
		t.Errorf("SendTest with 127.0.0.1/32 allowed: %v", err)
	}
}

// TestRebindingCannotReachRefusedAddress: a name that first resolves to an
// allowed address and then to a refused one (DNS rebinding) is checked at
// every connection, so the second post never reaches the refused listener.
// 127.0.0.2 stands for a public address: tests touch loopback only.
func TestRebindingCannotReachRefusedAddress(t *testing.T) {
	t.Parallel()
	allowedRcv, refusedRcv := newReceiverPair(t, "127.0.0.2", "127.0.0.1")
	port := strconv.Itoa(allowedRcv.Listener.Addr().(*net.TCPAddr).Port)
	dns := mxtest.NewDNS(t)
	dns.SetA("rebind.example.test", "127.0.0.2")
	c := newClock()
	store := newFakeStore(c)
	store.setWebhook(1, allKinds("http://rebind.example.test:"+port+"/"), nil)
	store.add(1, sealpost.EventDelivered, payload(sealpost.EventDelivered, 0))
	p := newPoster(t, store, c)
	p.Client = newClient(sealpost.AllowDestinations(netip.MustParsePrefix("127.0.0.2/32")), testResolver(dns))
	// Each post resolves the name again, as it would once a kept-alive
	// connection is gone.
	p.Client.Transport.(*http.Transport).DisableKeepAlives = true
	flush(t, p)
	if n := len(allowedRcv.received()); n != 1 {
		t.Fatalf("the allowed listener got %d posts, want 1", n)
	}

	dns.SetA("rebind.example.test", "127.0.0.1")
	store.add(1, sealpost.EventDelivered, payload(sealpost.EventDelivered, 1))
	flush(t, p)
	if n := len(refusedRcv.received()); n != 0 {
		t.Errorf("the rebound name reached the refused listener (%d posts)", n)
	}
	if s := p.Stats(); s.FailedPosts != 1 {
		t.Errorf("stats %+v, want the post after rebinding failed", s)
	}
}

// newReceiverPair starts receivers on the same port of two loopback
// addresses, so that one URL can reach either, depending on what its name
// resolves to.
func newReceiverPair(t *testing.T, first, second string) (*receiver, *receiver) {
	t.Helper()
	var lastErr error
	for range 20 {
		ln1, err := net.Listen("tcp", first+":0")
		if err != nil {
			t.Skipf("cannot listen on %s: %v", first, err)
		}
		port := ln1.Addr().(*net.TCPAddr).Port
		ln2, err := net.Listen("tcp", net.JoinHostPort(second, strconv.Itoa(port)))
		if err != nil {
			ln1.Close()
			lastErr = err
			continue
		}
		return startReceiver(t, ln1), startReceiver(t, ln2)
	}
	t.Fatalf("no port free on both %s and %s: %v", first, second, lastErr)
	return nil, nil
}

func startReceiver(t *testing.T, ln net.Listener) *receiver {
	r := &receiver{}
	r.Server = &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(r.serve)}}
	r.Start()
	t.Cleanup(r.Close)
	return r
}

func TestNewClientIgnoresProxyEnvironment(t *testing.T) {
	t.Parallel()
	// An environment proxy would connect on sealpost's behalf, wherever
	// the URL points: the rule would never see the real destination.
	// (Setting HTTP_PROXY here would not do: net/http reads it once per
	// process.)
	tr, ok := NewClient(sealpost.Destinations{}).Transport.(*http.Transport)
	if !ok || tr.Proxy != nil {
		t.Errorf("NewClient's transport %T uses a proxy", NewClient(sealpost.Destinations{}).Transport)
	}
}
