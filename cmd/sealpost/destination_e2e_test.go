package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sealpost/sealpost/delivery/mxtest"
)

// destinationMain starts sealpost in process with delivery pointed at h
// and --allow-destinations set to allow.
func destinationMain(t *testing.T, h *mxtest.Harness, allow string) (*Main, string) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.RateLimit = 100000
	cfg.DNSServer = h.DNSAddr()
	cfg.SMTPPort = h.Port()
	cfg.TLSCAFile = h.CAFile()
	cfg.HeloHostname = "sealpost.test"
	cfg.WebhookInterval = 50 * time.Millisecond
	cfg.AllowDestinations = allow
	m, key, _ := startMainWith(t, "sqlite:"+filepath.Join(t.TempDir(), "sealpost.db"), cfg)
	return m, key
}

func apiDo(t *testing.T, m *Main, method, path, key, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, m.URL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestDestinationsEndToEnd: with --allow-destinations 127.0.0.1/32 the
// webhook receiver on 127.0.0.1 is reached, while mail to a domain whose
// MX is on another loopback address (standing for the operator's network)
// bounces with 5.4.4, the MX never sees a connection and the event names
// no address. Without the flag, the receiver is refused too.
func TestDestinationsEndToEnd(t *testing.T) {
	t.Parallel()
	h := mxtest.New(t) // on 127.x.y.z with x >= 1: never inside 127.0.0.1/32
	mx := h.AddMX("internal.test", 10, mxtest.Behavior{})
	hook := newWebhookReceiver(t)
	m, key := destinationMain(t, h, "127.0.0.1/32")

	body := fmt.Sprintf(`{"enabled":true,"url":%q,"processed":true,"delivered":true,"deferred":true,"bounce":true,"dropped":true}`, hook.srv.URL)
	if status, resp := apiDo(t, m, "PATCH", "/v3/user/webhooks/event/settings", key, body); status != 200 {
		t.Fatalf("PATCH webhook settings to the allowed receiver: %d %s", status, resp)
	}
	if status, resp := apiDo(t, m, "POST", "/v3/user/webhooks/event/test", key, fmt.Sprintf(`{"url":%q}`, hook.srv.URL)); status != 204 {
		t.Fatalf("test post to the allowed receiver: %d %s", status, resp)
	}
	// A refused address answers the same, port open (the MX) or closed,
	// and before any connection is tried.
	openURL := "http://" + net.JoinHostPort(mx.IP(), strconv.Itoa(h.Port())) + "/"
	closedURL := "http://" + net.JoinHostPort(mx.IP(), "1") + "/"
	var answers []string
	var slowest time.Duration
	for _, u := range []string{openURL, closedURL} {
		for _, path := range []string{"/v3/user/webhooks/event/settings", "/v3/user/webhooks/event/test"} {
			method := map[bool]string{true: "PATCH", false: "POST"}[strings.HasSuffix(path, "settings")]
			for range 10 {
				start := time.Now()
				status, resp := apiDo(t, m, method, path, key, fmt.Sprintf(`{"url":%q}`, u))
				slowest = max(slowest, time.Since(start))
				if status != 400 || !strings.Contains(resp, `"field":"url"`) {
					t.Errorf("%s %s with a refused address: %d %s, want 400 on url", method, path, status, resp)
				}
				answers = append(answers, resp)
			}
		}
	}
	for _, a := range answers {
		if a != answers[0] {
			t.Errorf("answers differ: %s and %s", answers[0], a)
		}
	}
	t.Logf("%d requests naming a refused address (port open or closed): one answer, slowest %v", len(answers), slowest)
	if mx.Connections() != 0 {
		t.Errorf("the MX got %d connections from webhook URLs", mx.Connections())
	}

	xid := sendWithOfficialClient(t, m.URL(), key, "ssrf", "root@internal.test")
	var bounce map[string]any
	waitFor(t, "the bounce event", 30*time.Second, func() bool {
		for _, e := range hook.eventsFor(xid) {
			if e["event"] == "bounce" {
				bounce = e
				return true
			}
		}
		return false
	})
	raw, _ := json.Marshal(bounce)
	if bounce["type"] != "bounce" || bounce["status"] != "5.4.4" {
		t.Errorf("bounce event %s: want type bounce, status 5.4.4", raw)
	}
	if strings.Contains(string(raw), mx.IP()) || strings.Contains(string(raw), "127.") {
		t.Errorf("bounce event names an address: %s", raw)
	}
	if n := mx.Connections(); n != 0 {
		t.Errorf("the refused MX got %d connections", n)
	}

	// The default: nothing beyond public addresses, the receiver included.
	def, defKey := destinationMain(t, h, "")
	status, resp := apiDo(t, def, "POST", "/v3/user/webhooks/event/test", defKey, fmt.Sprintf(`{"url":%q}`, hook.srv.URL))
	if status != 400 || !strings.Contains(resp, `"field":"url"`) {
		t.Errorf("test post to loopback by default: %d %s, want 400 on url", status, resp)
	}
}
