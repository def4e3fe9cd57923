package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sealpost/sealpost"
)

// publicOnly is the default rule: no range allowed beyond public addresses.
func publicOnly(c *Config) { c.Destinations = sealpost.Destinations{} }

const wantURLNotAllowed = `{"errors":[{"field":"url","message":"url points to an address this server does not connect to (only public addresses are allowed)"}]}`

// TestEventWebhookRefusesInternalURLs: a tenant cannot point the webhook,
// or a test post, at the operator's network by writing an address (or
// localhost) in the URL; nothing is posted and the stored URL is unchanged.
func TestEventWebhookRefusesInternalURLs(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		// The signer sends nothing: were a URL let through, no traffic may
		// leave loopback, whatever the code under test does.
		signer := &countingSigner{}
		e := newEnv(t, open, publicOnly, func(c *Config) { c.Webhooks = signer })
		p := e.user("parent")
		e.subuser(p, "child")
		token := e.key(p)
		const port = "8080"
		const stored = "https://hooks.example.com/sealpost"
		e.do(request{method: http.MethodPatch, path: pathWebhook, token: token, obo: "child",
			body: `{"enabled":true,"url":"` + stored + `"}`}).want(t, "public URL", http.StatusOK, "")
		for _, host := range []string{
			"169.254.169.254", "127.0.0.1", "localhost", "[::1]", "[::ffff:127.0.0.1]", "0.0.0.0", "10.0.0.1",
			"LOCALHOST.", "app.localhost", "[::ffff:a9fe:a9fe]", "[fe80::1%25eth0]", "2130706433", "127.1", "0x7f.1",
			"100.64.0.1", "[fd00::1]", "192.168.0.1", "172.16.0.1", "224.0.0.1", "255.255.255.255",
		} {
			u := "http://" + host + ":" + port + "/latest/meta-data/"
			e.do(request{method: http.MethodPatch, path: pathWebhook, token: token, obo: "child", body: `{"url":"` + u + `"}`}).
				want(t, "PATCH "+u, http.StatusBadRequest, wantURLNotAllowed)
			e.do(request{method: http.MethodPost, path: pathWebhookTest, token: token, obo: "child", body: `{"url":"` + u + `"}`}).
				want(t, "test "+u, http.StatusBadRequest, wantURLNotAllowed)
		}
		res := e.do(request{method: http.MethodGet, path: pathWebhook, token: token, obo: "child"})
		if !strings.Contains(res.body, `"url":"`+stored+`"`) {
			t.Errorf("refused patches changed the stored URL: %s", res.body)
		}
		if n := signer.calls.Load(); n != 0 {
			t.Errorf("%d test posts were attempted", n)
		}
	})
}

// countingSigner counts test posts and makes none.
type countingSigner struct {
	ecdsaSigner
	calls atomic.Int64
}

func (s *countingSigner) SendTest(context.Context, string, []byte) (int, error) {
	s.calls.Add(1)
	return 0, errors.New("countingSigner posts nothing")
}

// refusingSigner's test posts fail as webhook.SendTest's do when the URL's
// name resolves to a refused address.
type refusingSigner struct{ ecdsaSigner }

func (refusingSigner) SendTest(context.Context, string, []byte) (int, error) {
	return 0, fmt.Errorf("posting: dial tcp 10.1.2.3:443: %w", sealpost.ErrDestinationRefused)
}

// TestEventWebhookTestNamesRefusal: a host name that resolves to a refused
// address is told so, with no address in the answer; every other failure
// gets one answer, so that the test endpoint maps no network.
func TestEventWebhookTestNamesRefusal(t *testing.T) {
	t.Parallel()
	e := newEnv(t, openSQLite, publicOnly, func(c *Config) { c.Webhooks = refusingSigner{} })
	token := e.key(e.user("owner"))
	res := e.do(request{method: http.MethodPost, path: pathWebhookTest, token: token, body: `{"url":"https://internal.example.com/hook"}`})
	res.want(t, "name resolving to a refused address", http.StatusBadRequest, wantURLNotAllowed)
	if strings.Contains(res.body, "10.1.2.3") {
		t.Errorf("the answer names the address: %s", res.body)
	}
}
