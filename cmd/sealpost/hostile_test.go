package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sealpost/sealpost/delivery/mxtest"
)

// hostileMain starts an in-process server whose read timeouts are short
// enough for a test to wait them out, with no delivery or webhook work.
func hostileMain(t *testing.T, readHeader, read time.Duration) (*Main, string, *syncBuffer) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.RateLimit = 100000
	cfg.DeliveryWorkers = 0
	cfg.WebhookWorkers = 0
	cfg.HTTPReadHeaderTimeout = readHeader
	cfg.HTTPReadTimeout = read
	return startMainWith(t, "sqlite:"+filepath.Join(t.TempDir(), "sealpost.db"), cfg)
}

// hostileDribble writes head, then one byte of drip every interval, until
// the server closes the connection or giveUp passes. It returns what the
// server sent and how long the connection lasted.
func hostileDribble(t *testing.T, addr, head string, drip byte, interval, giveUp time.Duration) (reply string, lasted time.Duration, cutOff bool) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	read := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(conn)
		read <- b
	}()
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	deadline := time.After(giveUp)
	for {
		select {
		case b := <-read:
			return string(b), time.Since(start), true
		case <-deadline:
			conn.Close()
			return string(<-read), time.Since(start), false
		case <-tick.C:
			// A write error means the server has gone; the reader
			// reports what it sent first.
			_, _ = conn.Write([]byte{drip})
		}
	}
}

// hostileRequestLogged reports whether the server logged the end of a
// request to route with method and status: the handler has returned.
func hostileRequestLogged(logs *syncBuffer, route, method string, status int) bool {
	for line := range strings.SplitSeq(logs.String(), "\n") {
		var rec struct {
			Msg    string `json:"msg"`
			Route  string `json:"route"`
			Method string `json:"method"`
			Status int    `json:"status"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "request" &&
			rec.Route == route && rec.Method == method && rec.Status == status {
			return true
		}
	}
	return false
}

// TestHostileSlowClients: a client that dribbles its headers, or its body,
// is cut off by the server's own timeouts, and the handler reading the
// body returns instead of waiting on it forever.
func TestHostileSlowClients(t *testing.T) {
	t.Parallel()
	const readHeader, read = time.Second, 2 * time.Second
	m, key, logs := hostileMain(t, readHeader, read)
	settingPath := "/v3/user/settings/enforced_tls"
	tests := []struct {
		name  string
		head  string
		drip  byte
		limit time.Duration // the timeout that must cut the client off
		// route and method of the handler that must have returned; ""
		// when the request never reaches one.
		route, method string
	}{
		{
			name:  "headers dribbled",
			head:  "GET " + settingPath + " HTTP/1.1\r\nHost: sealpost\r\nAuthorization: Bearer " + key + "\r\nX-Pad: ",
			drip:  'a',
			limit: readHeader,
		},
		{
			name: "settings PATCH body dribbled",
			head: "PATCH " + settingPath + " HTTP/1.1\r\nHost: sealpost\r\nAuthorization: Bearer " + key +
				"\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n{\"require_tls\":true,\"pad\":\"",
			drip:  'a',
			limit: read,
			route: settingPath, method: http.MethodPatch,
		},
		{
			name: "mail send body dribbled, chunked",
			head: "POST /v3/mail/send HTTP/1.1\r\nHost: sealpost\r\nAuthorization: Bearer " + key +
				"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n100000\r\n{\"x\":\"",
			drip:  'a',
			limit: read,
			route: "/v3/mail/send", method: http.MethodPost,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// Dripping every 100ms would keep any per-read idle timeout
			// happy forever; only a whole-phase deadline ends it. Giving
			// up 6s after the configured timeout, still short of the
			// defaults (10s, 60s), shows the configured one is in force.
			reply, lasted, cutOff := hostileDribble(t, m.Addr(), tc.head, tc.drip, 100*time.Millisecond, tc.limit+6*time.Second)
			if !cutOff {
				t.Fatalf("still connected after %v of dribbling; the server never cut the client off", lasted)
			}
			if lasted < tc.limit-100*time.Millisecond {
				t.Errorf("cut off after %v, before the %v timeout", lasted, tc.limit)
			}
			t.Logf("cut off after %v (timeout %v), reply %q", lasted, tc.limit, reply)
			if tc.route == "" {
				return
			}
			// The body could not be read in time: a 400 in SendGrid's
			// form if the reply got out, and either way a handler that
			// has returned.
			if reply != "" && (!strings.HasPrefix(reply, "HTTP/1.1 400 ") || !strings.Contains(reply, `{"errors":[{"field":null,"message":"request body could not be read"}]}`)) {
				t.Errorf("reply to a body that never arrived: %q", reply)
			}
			waitFor(t, "the handler to return", 10*time.Second, func() bool {
				return hostileRequestLogged(logs, tc.route, tc.method, http.StatusBadRequest)
			})
		})
	}
	t.Cleanup(func() {
		// Nothing the dribbling clients sent may have been acted on.
		if got := call(t, m, key, "GET", settingPath, "", ""); got.StatusCode != 200 || got.Body != `{"require_tls":false,"require_valid_cert":false,"version":1.1}` {
			t.Errorf("setting after the dribbled PATCH: %d %s", got.StatusCode, got.Body)
		}
	})
}

// TestHostileIdleConnectionsDoNotStarveClients: hundreds of connections
// holding half-sent requests do not stop a normal client from being
// served promptly.
func TestHostileIdleConnectionsDoNotStarveClients(t *testing.T) {
	t.Parallel()
	// Long timeouts: the slow connections must still be open while the
	// normal client is served.
	m, key, _ := hostileMain(t, time.Minute, time.Minute)
	const slow = 300
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range slow {
		c, err := net.Dial("tcp", m.Addr())
		if err != nil {
			t.Fatalf("slow connection %d: %v", i, err)
		}
		conns = append(conns, c)
		head := "GET /v3/user/settings/enforced_tls HTTP/1.1\r\nHost: sealpost\r\nX-Pad: "
		if i%2 == 1 {
			head = "PATCH /v3/user/settings/enforced_tls HTTP/1.1\r\nHost: sealpost\r\nAuthorization: Bearer " + key +
				"\r\nContent-Length: 1000\r\n\r\n{"
		}
		if _, err := io.WriteString(c, head); err != nil {
			t.Fatal(err)
		}
	}
	client := &http.Client{Timeout: 10 * time.Second}
	for i := range 5 {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, m.URL()+"/v3/user/settings/enforced_tls", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+key)
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("request %d with %d slow connections open: %v", i, slow, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: %d %s", i, resp.StatusCode, b)
		}
		t.Logf("request %d served in %v with %d slow connections open", i, time.Since(start), slow)
	}
	// The slow connections were still open, not already dropped.
	for i, c := range conns[:10] {
		c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); err == nil || !hostileIsTimeout(err) {
			t.Fatalf("slow connection %d was closed early: %v", i, err)
		}
	}
}

func hostileIsTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// hostileSMTPCommand is every command line a delivery may send in the
// clear: nothing else, and no text after an address.
var hostileSMTPCommand = regexp.MustCompile(`^(EHLO [A-Za-z0-9.-]+|HELO [A-Za-z0-9.-]+|MAIL FROM:<[^<>\s]*>( [A-Z0-9-]+(=[!-~]+)?)*|RCPT TO:<[^<>\s]*>( [A-Z0-9-]+(=[!-~]+)?)*|DATA|RSET|NOOP|QUIT|STARTTLS)$`)

// hostileSMTPDialog splits the cleartext a fake MX received into command
// lines and the messages sent after DATA, refusing any command line that
// is not a well-formed command.
func hostileSMTPDialog(t *testing.T, clear []byte) (commands []string, messages [][]byte) {
	t.Helper()
	lines := strings.Split(string(clear), "\r\n")
	var msg []string
	inData := false
	for _, line := range lines[:len(lines)-1] {
		switch {
		case inData && line == ".":
			messages = append(messages, []byte(strings.Join(msg, "\r\n")+"\r\n"))
			msg, inData = nil, false
		case inData:
			msg = append(msg, line)
		default:
			if !hostileSMTPCommand.MatchString(line) {
				t.Errorf("SMTP command line %q is not a well-formed command", line)
			}
			commands = append(commands, line)
			inData = line == "DATA"
		}
	}
	if inData || lines[len(lines)-1] != "" {
		t.Errorf("the SMTP dialog ends mid-message or mid-line")
	}
	return commands, messages
}

// hostileHeaderNames returns the name of every field of a message's
// header, checking that each line is a field or a folded continuation.
func hostileHeaderNames(t *testing.T, data []byte) []string {
	t.Helper()
	header, _, ok := bytes.Cut(data, []byte("\r\n\r\n"))
	if !ok {
		t.Fatalf("message without a header/body separator: %q", data)
	}
	var names []string
	for line := range strings.SplitSeq(string(header), "\r\n") {
		if strings.ContainsAny(line, "\r\n\x00") {
			t.Errorf("bare CR, LF or NUL in header line %q", line)
		}
		if line != "" && (line[0] == ' ' || line[0] == '\t') {
			continue
		}
		name, _, ok := strings.Cut(line, ":")
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			t.Errorf("header line %q is neither a field nor a continuation", line)
			continue
		}
		names = append(names, strings.ToLower(name))
	}
	return names
}

// TestHostileHeaderInjectionEndToEnd sends mail whose every header-bound
// field tries to smuggle CR/LF into the message or the SMTP dialog, to the
// real binary delivering to a fake MX without TLS (so the whole dialog is
// seen). Each is refused with a 400 naming the field, or accepted and
// delivered with no injected header line and no injected SMTP command.
func TestHostileHeaderInjectionEndToEnd(t *testing.T) {
	t.Parallel()
	h := mxtest.New(t)
	mx := h.AddMX("plain.test", 10, mxtest.Behavior{STARTTLS: mxtest.NoSTARTTLS})
	p := startServe(t, buildBinary(t),
		"SEALPOST_DATABASE=sqlite:"+filepath.Join(t.TempDir(), "sealpost.db"),
		"SEALPOST_DNS_SERVER="+h.DNSAddr(),
		allowLoopback,
		fmt.Sprintf("SEALPOST_SMTP_PORT=%d", h.Port()),
		"SEALPOST_HELO_HOSTNAME=sealpost.test",
		// One delivery at a time keeps the recorded dialog in order.
		"SEALPOST_DELIVERY_WORKERS=1",
		"SEALPOST_WEBHOOK_WORKERS=0",
	)

	const evil = "X-Evil: injected"
	const smuggle = "\r\n.\r\nMAIL FROM:<evil@evil.test>\r\nRCPT TO:<victim@plain.test>\r\nDATA\r\nX-Evil: smuggled\r\n\r\nhi\r\n.\r\n"
	mail := func(subject string, edit map[string]any) string {
		m := map[string]any{
			"personalizations": []any{map[string]any{"to": []any{map[string]any{"email": "ann@plain.test", "name": "Ann"}}}},
			"from":             map[string]any{"email": "sender@sealpost.test", "name": "Sender"},
			"subject":          subject,
			"content":          []any{map[string]any{"type": "text/plain", "value": "body of " + subject}},
		}
		for k, v := range edit {
			m[k] = v
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	to := func(fields map[string]any) []any {
		pz := map[string]any{"to": []any{map[string]any{"email": "ann@plain.test", "name": "Ann"}}}
		for k, v := range fields {
			pz[k] = v
		}
		return []any{pz}
	}
	addr := func(email, name string) map[string]any { return map[string]any{"email": email, "name": name} }
	tests := []struct {
		name string
		body string
		// field is the field a 400 must name; "" means the mail is
		// accepted, and marker is in its subject.
		field  string
		marker string
	}{
		{"subject CRLF", mail("s\r\n"+evil, nil), "subject", ""},
		{"subject bare LF", mail("s\n"+evil, nil), "subject", ""},
		{"subject bare CR", mail("s\r"+evil, nil), "subject", ""},
		{"subject NUL", mail("s\x00"+evil, nil), "subject", ""},
		{"personalization subject", mail("s", map[string]any{"personalizations": to(map[string]any{"subject": "p\r\n" + evil})}), "personalizations.0.subject", ""},
		{"to name", mail("s", map[string]any{"personalizations": []any{map[string]any{"to": []any{addr("ann@plain.test", "Ann\r\n"+evil)}}}}), "personalizations.0.to.0.name", ""},
		{"to email, header", mail("s", map[string]any{"personalizations": []any{map[string]any{"to": []any{addr("ann@plain.test\r\n"+evil, "")}}}}), "personalizations.0.to.0.email", ""},
		{"to email, RCPT", mail("s", map[string]any{"personalizations": []any{map[string]any{"to": []any{addr("ann@plain.test>\r\nRCPT TO:<victim@plain.test", "")}}}}), "personalizations.0.to.0.email", ""},
		{"to email, RCPT parameter", mail("s", map[string]any{"personalizations": []any{map[string]any{"to": []any{addr("ann@plain.test> NOTIFY=SUCCESS", "")}}}}), "personalizations.0.to.0.email", ""},
		{"cc email", mail("s", map[string]any{"personalizations": to(map[string]any{"cc": []any{addr("cc@plain.test\nBcc: victim@plain.test", "")}})}), "personalizations.0.cc.0.email", ""},
		{"bcc name", mail("s", map[string]any{"personalizations": to(map[string]any{"bcc": []any{addr("bcc@plain.test", "B\r\n"+evil)}})}), "personalizations.0.bcc.0.name", ""},
		{"from email, MAIL", mail("s", map[string]any{"from": addr("sender@sealpost.test>\r\nRCPT TO:<victim@plain.test", "")}), "from.email", ""},
		{"from email, MAIL parameter", mail("s", map[string]any{"from": addr("sender@sealpost.test> SIZE=1", "")}), "from.email", ""},
		{"from name", mail("s", map[string]any{"from": addr("sender@sealpost.test", "S\r\n"+evil)}), "from.name", ""},
		{"personalization from", mail("s", map[string]any{"personalizations": to(map[string]any{"from": addr("other@sealpost.test\r\n"+evil, "")})}), "personalizations.0.from.email", ""},
		{"reply_to email", mail("s", map[string]any{"reply_to": addr("r@sealpost.test\r\n"+evil, "")}), "reply_to.email", ""},
		{"reply_to name", mail("s", map[string]any{"reply_to": addr("r@sealpost.test", "R\n"+evil)}), "reply_to.name", ""},
		{"reply_to_list name", mail("s", map[string]any{"reply_to_list": []any{addr("r@sealpost.test", "R\r\n"+evil)}}), "reply_to_list.0.name", ""},
		{"custom header value", mail("s", map[string]any{"headers": map[string]any{"X-Campaign": "spring\r\n" + evil}}), "headers", ""},
		{"custom header name", mail("s", map[string]any{"headers": map[string]any{"X-Campaign\r\n" + evil: "1"}}), "headers", ""},
		{"custom header name with colon", mail("s", map[string]any{"headers": map[string]any{"X-Evil: injected\r\nX-Campaign": "1"}}), "headers", ""},
		{"personalization header value", mail("s", map[string]any{"personalizations": to(map[string]any{"headers": map[string]any{"X-Campaign": "a\n" + evil}})}), "personalizations.0.headers", ""},
		{"categories", mail("s", map[string]any{"categories": []any{"ok", "c\r\n" + evil}}), "categories.1", ""},
		{"content type", mail("s", map[string]any{"content": []any{map[string]any{"type": "text/plain\r\n" + evil, "value": "x"}}}), "content.0.type", ""},

		// Accepted: these never become header text or SMTP commands
		// as given.

		{"custom_args NUL", mail("s", map[string]any{"custom_args": map[string]any{"k": "v\x00"}}), "custom_args", ""},
		{"custom_args", mail("hostile-custom-args", map[string]any{"custom_args": map[string]any{"k\r\n" + evil: "v\r\n" + evil}}), "", "hostile-custom-args"},
		{"personalization custom_args", mail("hostile-pz-custom-args", map[string]any{"personalizations": to(map[string]any{"custom_args": map[string]any{"k": "v\r\n" + evil}})}), "", "hostile-pz-custom-args"},
		{"unicode line breaks in subject and name", mail("hostile-unicode \u2028X-Evil: injected\u0085X-Evil: injected\u2029", map[string]any{"from": addr("sender@sealpost.test", "S\u2028X-Evil: injected")}), "", "hostile-unicode"},
		{"unicode line break in header value", mail("hostile-header-unicode", map[string]any{"headers": map[string]any{"X-Campaign": "a\u2028X-Evil: injected"}}), "", "hostile-header-unicode"},
		{"encoded-word lookalike subject", mail("hostile-encoded =?utf-8?q?a=0D=0AX-Evil:_injected?=", nil), "", "hostile-encoded"},
		{"SMTP smuggling in the body, CRLF", mail("hostile-smuggle-crlf", map[string]any{"content": []any{map[string]any{"type": "text/plain", "value": "a" + smuggle}}}), "", "hostile-smuggle-crlf"},
		{"SMTP smuggling in the body, bare LF", mail("hostile-smuggle-lf", map[string]any{"content": []any{map[string]any{"type": "text/plain", "value": "a\n.\nMAIL FROM:<evil@evil.test>\n" + evil + "\n.\r\n"}}}), "", "hostile-smuggle-lf"},
		{"SMTP smuggling in the body, bare CR", mail("hostile-smuggle-bare-cr", map[string]any{"content": []any{map[string]any{"type": "text/html", "value": "a\r.\rMAIL FROM:<evil@evil.test>\r.\r\n.\n"}}}), "", "hostile-smuggle-bare-cr"},
	}
	var accepted []string
	for _, tc := range tests {
		status, body, _ := p.do(t, "POST", "/v3/mail/send", p.key, tc.body)
		if tc.field == "" {
			if status != http.StatusAccepted {
				t.Errorf("%s: %d %s, want 202", tc.name, status, body)
				continue
			}
			accepted = append(accepted, tc.marker)
			continue
		}
		if status != http.StatusBadRequest || !strings.Contains(body, `"field":"`+tc.field+`"`) {
			t.Errorf("%s: %d %s, want 400 naming %s", tc.name, status, body, tc.field)
		}
		var eb struct {
			Errors []struct {
				Field   *string `json:"field"`
				Message string  `json:"message"`
			} `json:"errors"`
		}
		if err := json.Unmarshal([]byte(body), &eb); err != nil || len(eb.Errors) == 0 {
			t.Errorf("%s: 400 body is not SendGrid's form: %s", tc.name, body)
		}
	}
	// A control message, sent last: once it is in, every accepted one
	// before it has been delivered by the single worker or is on its way.
	accepted = append(accepted, "hostile-control")
	if status, body, _ := p.do(t, "POST", "/v3/mail/send", p.key, mail("hostile-control", nil)); status != http.StatusAccepted {
		t.Fatalf("control message: %d %s", status, body)
	}
	waitFor(t, "every accepted message at the MX", 60*time.Second, func() bool { return mx.AcceptedCount() >= len(accepted) })
	time.Sleep(200 * time.Millisecond) // let a stray extra transaction show

	got := mx.Received()
	if len(got) != len(accepted) {
		t.Errorf("the MX saw %d transactions, want %d", len(got), len(accepted))
	}
	standard := map[string]bool{
		"from": true, "to": true, "cc": true, "reply-to": true, "subject": true, "date": true, "message-id": true,
		"mime-version": true, "content-type": true, "content-transfer-encoding": true, "x-campaign": true,
	}
	for _, marker := range accepted {
		var found []mxtest.Delivery
		for _, d := range got {
			if bytes.Contains(d.Data, []byte(marker)) {
				found = append(found, d)
			}
		}
		if len(found) != 1 {
			t.Errorf("%s: %d deliveries, want 1", marker, len(found))
			continue
		}
		d := found[0]
		if d.From != "sender@sealpost.test" || fmt.Sprint(d.To) != "[ann@plain.test]" {
			t.Errorf("%s: MAIL FROM %q RCPT TO %q", marker, d.From, d.To)
		}
		for _, name := range hostileHeaderNames(t, d.Data) {
			if !standard[name] {
				t.Errorf("%s: unexpected header field %q in\n%s", marker, name, d.Data)
			}
		}
	}

	commands, messages := hostileSMTPDialog(t, mx.CleartextBytes())
	var mailFrom, rcptTo []string
	for _, c := range commands {
		switch {
		case strings.HasPrefix(c, "MAIL FROM:"):
			mailFrom = append(mailFrom, c)
		case strings.HasPrefix(c, "RCPT TO:"):
			rcptTo = append(rcptTo, c)
		}
	}
	if len(mailFrom) != len(accepted) || len(rcptTo) != len(accepted) || len(messages) != len(accepted) {
		t.Errorf("%d MAIL, %d RCPT, %d DATA for %d messages:\n%s", len(mailFrom), len(rcptTo), len(messages), len(accepted), strings.Join(commands, "\n"))
	}
	for _, c := range mailFrom {
		if !strings.HasPrefix(c, "MAIL FROM:<sender@sealpost.test>") {
			t.Errorf("injected MAIL command %q", c)
		}
	}
	for _, c := range rcptTo {
		if !strings.HasPrefix(c, "RCPT TO:<ann@plain.test>") {
			t.Errorf("injected RCPT command %q", c)
		}
	}
	for _, m := range messages {
		if bytes.Contains(m, []byte("\r\nX-Evil")) && !bytes.Contains(m, []byte("hostile-smuggle")) {
			t.Errorf("an injected line reached a message:\n%s", m)
		}
	}
}

// TestHostileTimeoutFlags: the HTTP timeouts are read from flags and the
// environment, and zero, which net/http would take as no limit at all,
// is refused.
func TestHostileTimeoutFlags(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	fs := newFlagSet("sealpost serve", func(k string) string {
		return map[string]string{"SEALPOST_HTTP_READ_HEADER_TIMEOUT": "3s"}[k]
	}, io.Discard)
	cfg.register(fs)
	if err := fs.parse([]string{"--http-read-timeout", "7s", "--http-write-timeout=8s", "--http-idle-timeout", "9s"}); err != nil {
		t.Fatal(err)
	}
	got := [4]time.Duration{cfg.HTTPReadHeaderTimeout, cfg.HTTPReadTimeout, cfg.HTTPWriteTimeout, cfg.HTTPIdleTimeout}
	if got != [4]time.Duration{3 * time.Second, 7 * time.Second, 8 * time.Second, 9 * time.Second} {
		t.Errorf("timeouts %v", got)
	}
	for _, flagName := range []string{"--http-read-header-timeout", "--http-read-timeout", "--http-write-timeout", "--http-idle-timeout"} {
		var stderr strings.Builder
		code := run(t.Context(), []string{"serve", flagName, "0s"}, func(string) string { return "" }, io.Discard, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), "must be positive") {
			t.Errorf("serve %s 0s: exit %d, %q", flagName, code, stderr.String())
		}
	}
}
