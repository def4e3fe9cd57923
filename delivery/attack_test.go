package delivery_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
	"github.com/sealpost/sealpost/delivery"
	"github.com/sealpost/sealpost/delivery/mxtest"
)

// Enforced TLS against an active attacker on the path between sealpost and
// the MX. Each row is one attack, each column one policy, and each cell the
// outcome the delivery spec's decision table gives, checked against the
// events the runner records and against what the attacker captured: the
// bytes sealpost put on the wire, what the attacker decrypted when it
// terminated TLS itself, and what it forwarded to the real MX.
//
// The terminating attackers relay to the MX in plaintext, on the connection
// they opened before sealpost's STARTTLS (mxtest.ProxyMode.Terminating): so
// whatever they read, the MX also receives, and the MX's own cleartext
// recording is a second witness of what leaked.
//
// The spec's promise under a mandatory policy is that nothing is sent in
// plaintext or below the policy's version. require_tls alone does not check
// the certificate, so an attacker with any certificate (here a real one for
// another name) is accepted and reads the message, while the wire still
// carries only ciphertext; require_valid_cert is what stops that attacker,
// and the table asserts both.

const attackDomain = "attacked.test"

var attackPolicies = []struct {
	name   string
	policy sealpost.EnforcedTLS
}{
	{"opportunistic", sealpost.EnforcedTLS{Version: sealpost.TLS11}},
	{"require_tls_1.1", sealpost.EnforcedTLS{RequireTLS: true, Version: sealpost.TLS11}},
	{"require_tls_1.2", sealpost.EnforcedTLS{RequireTLS: true, Version: sealpost.TLS12}},
	{"require_tls_1.3", sealpost.EnforcedTLS{RequireTLS: true, Version: sealpost.TLS13}},
	{"require_valid_cert_1.1", sealpost.EnforcedTLS{RequireValidCert: true, Version: sealpost.TLS11}},
	{"require_valid_cert_1.2", sealpost.EnforcedTLS{RequireValidCert: true, Version: sealpost.TLS12}},
	{"require_valid_cert_1.3", sealpost.EnforcedTLS{RequireValidCert: true, Version: sealpost.TLS13}},
	{"both_1.2", sealpost.EnforcedTLS{RequireTLS: true, RequireValidCert: true, Version: sealpost.TLS12}},
}

// attackCell is the expected outcome of one attack under one policy.
type attackCell struct {
	event      string // "delivered" or "blocked"
	tls        bool   // the event's tls field
	version    string // the event's tls_version when tls
	verified   bool   // the event's cert_verified when tls
	resultType string // the RFC 8460 type of a blocked event
	// Where the message (the marker in its subject and body, or any MAIL,
	// RCPT or DATA command) shows up: in clear on the wire from sealpost,
	// in what the attacker decrypted, at the MX.
	onWire, decrypted, atMX bool
}

func (c attackCell) String() string {
	out := c.event
	switch {
	case c.event == "blocked":
		out += " (" + c.resultType + ")"
	case c.tls:
		out += fmt.Sprintf(" tls:1 TLS %s verified=%v", c.version, c.verified)
	default:
		out += " tls:0"
	}
	return out
}

// attackPlain: delivered in plaintext, readable by anyone on the path.
func attackPlain() attackCell {
	return attackCell{event: "delivered", onWire: true, atMX: true}
}

// attackReadByTerminator: delivered over the attacker's TLS; only
// ciphertext on the wire, but the attacker reads and relays the message.
func attackReadByTerminator(version string, verified bool) attackCell {
	return attackCell{event: "delivered", tls: true, version: version, verified: verified, decrypted: true, atMX: true}
}

// attackBlocked: nothing of the message anywhere.
func attackBlocked(resultType string) attackCell {
	return attackCell{event: "blocked", resultType: resultType}
}

var attackRows = []struct {
	name  string
	mode  mxtest.ProxyMode
	cells [8]attackCell // in the order of attackPolicies
}{
	{
		name: "strip STARTTLS",
		mode: mxtest.StripSTARTTLS,
		cells: [8]attackCell{attackPlain(),
			attackBlocked(sealpost.ResultSTARTTLSNotSupported), attackBlocked(sealpost.ResultSTARTTLSNotSupported), attackBlocked(sealpost.ResultSTARTTLSNotSupported),
			attackBlocked(sealpost.ResultSTARTTLSNotSupported), attackBlocked(sealpost.ResultSTARTTLSNotSupported), attackBlocked(sealpost.ResultSTARTTLSNotSupported),
			attackBlocked(sealpost.ResultSTARTTLSNotSupported)},
	},
	{
		// The spec's "offers STARTTLS, handshake fails": RFC 3207 lets an
		// opportunistic client go on in plaintext on the same connection.
		name: "answer STARTTLS 454",
		mode: mxtest.RefuseSTARTTLS,
		cells: [8]attackCell{attackPlain(),
			attackBlocked(sealpost.ResultValidationFailure), attackBlocked(sealpost.ResultValidationFailure), attackBlocked(sealpost.ResultValidationFailure),
			attackBlocked(sealpost.ResultValidationFailure), attackBlocked(sealpost.ResultValidationFailure), attackBlocked(sealpost.ResultValidationFailure),
			attackBlocked(sealpost.ResultValidationFailure)},
	},
	{
		// Opportunistic TLS takes any version Go speaks; every mandatory
		// policy's minimum is at least 1.1, so the handshake fails.
		name: "TLS 1.0 only, valid certificate",
		mode: mxtest.DowngradeTLS10,
		cells: [8]attackCell{attackReadByTerminator("1.0", true),
			attackBlocked(sealpost.ResultValidationFailure), attackBlocked(sealpost.ResultValidationFailure), attackBlocked(sealpost.ResultValidationFailure),
			attackBlocked(sealpost.ResultValidationFailure), attackBlocked(sealpost.ResultValidationFailure), attackBlocked(sealpost.ResultValidationFailure),
			attackBlocked(sealpost.ResultValidationFailure)},
	},
	{
		// require_tls accepts any certificate by design: the wire carries
		// only ciphertext, but the attacker holds the session key.
		name: "certificate for another name",
		mode: mxtest.ImpersonateWrongName,
		cells: [8]attackCell{attackReadByTerminator("1.3", false),
			attackReadByTerminator("1.3", false), attackReadByTerminator("1.3", false), attackReadByTerminator("1.3", false),
			attackBlocked(sealpost.ResultCertificateHostMismatch), attackBlocked(sealpost.ResultCertificateHostMismatch), attackBlocked(sealpost.ResultCertificateHostMismatch),
			attackBlocked(sealpost.ResultCertificateHostMismatch)},
	},
}

// attackSeen is what one cell's attacker and MX captured, for the table
// the test logs.
type attackSeen struct {
	row, col                                   int
	wire, clear, decrypted, forwarded, mxBytes int // byte counts
	markerWire, markerDecrypted, markerAtMX    int // marker occurrences
	outcome                                    string
}

func TestEnforcedTLSUnderAttack(t *testing.T) {
	t.Parallel()
	var (
		mu   sync.Mutex
		seen []attackSeen
	)
	t.Cleanup(func() {
		// Runs after every parallel cell: the table for the record.
		sort.Slice(seen, func(i, j int) bool {
			if seen[i].row != seen[j].row {
				return seen[i].row < seen[j].row
			}
			return seen[i].col < seen[j].col
		})
		var b strings.Builder
		fmt.Fprintf(&b, "%-34s %-24s %-48s %s\n", "attack", "policy", "outcome", "marker in wire/decrypted/MX; bytes wire, clear, decrypted, forwarded, MX read")
		for _, s := range seen {
			fmt.Fprintf(&b, "%-34s %-24s %-48s %d/%d/%d; %d, %d, %d, %d, %d\n", attackRows[s.row].name, attackPolicies[s.col].name, s.outcome,
				s.markerWire, s.markerDecrypted, s.markerAtMX, s.wire, s.clear, s.decrypted, s.forwarded, s.mxBytes)
		}
		t.Logf("attack table:\n%s", b.String())
	})
	for ri, row := range attackRows {
		for ci, pol := range attackPolicies {
			want := row.cells[ci]
			t.Run(row.name+"/"+pol.name, func(t *testing.T) {
				t.Parallel()
				w := newRunnerWorld(t)
				w.setPolicy(sealpost.EnforcedTLSPatch{RequireTLS: &pol.policy.RequireTLS, RequireValidCert: &pol.policy.RequireValidCert, Version: &pol.policy.Version})
				proxy, mx := w.h.AddProxiedMX(attackDomain, 10, mxtest.Behavior{}, row.mode)
				marker := fmt.Sprintf("attack-marker-%d-%d-%d", time.Now().UnixNano(), ri, ci)
				rcptAddr := "victim@" + attackDomain
				xid := w.send(attackMail(marker, rcptAddr))
				w.drain()

				checkAttackEvent(t, want, w.events(), rcptAddr, mx.Host())
				if st := w.states(xid)[rcptAddr]; (want.event == "blocked") != (st == sealpost.StateBlocked) || (want.event == "delivered") != (st == sealpost.StateDelivered) {
					t.Errorf("recipient state %s, want %s", st, want.event)
				}

				wire, clear, dec, fwd := proxy.ClientToServer(), proxy.ClientCleartext(), proxy.Decrypted(), proxy.Forwarded()
				mxClear := mx.CleartextBytes()
				for _, c := range []struct {
					what string
					b    []byte
					want bool
				}{
					{"the wire from sealpost", wire, want.onWire},
					{"the cleartext sealpost sent before any TLS", clear, want.onWire},
					{"what the attacker decrypted", dec, want.decrypted},
					{"what the attacker forwarded to the MX", fwd, want.atMX},
					{"what the MX read", mxClear, want.atMX},
				} {
					if got := attackLeaks(c.b, marker); (got != "") != c.want {
						t.Errorf("%s: message content or transaction command seen = %q, want seen %v", c.what, got, c.want)
					}
				}
				accepted := mx.Accepted()
				if want.atMX {
					if len(accepted) != 1 || !bytes.Contains(accepted[0].Data, []byte(marker)) {
						t.Errorf("the MX accepted %d messages, want this one", len(accepted))
					}
				} else if n := len(mx.Received()); n != 0 {
					t.Errorf("the MX saw %d MAIL transactions, want none", n)
				}

				if pol.policy.Mandatory() {
					// Before TLS meets the policy, sealpost may only greet,
					// ask for TLS and leave.
					for _, line := range strings.SplitAfter(string(clear), "\n") {
						verb, _, _ := strings.Cut(strings.TrimSpace(line), " ")
						switch strings.ToUpper(verb) {
						case "", "EHLO", "HELO", "STARTTLS", "QUIT":
						default:
							t.Errorf("sent in clear under %s: %q", pol.name, line)
						}
					}
				}
				if want.event == "blocked" {
					for _, hs := range proxy.Handshakes() {
						if hs.Err == nil {
							t.Errorf("a TLS session with the attacker completed (TLS %s) under a policy that blocked it", attackVersion(hs.Version))
						}
					}
				}
				if want.tls && row.mode.Terminating() {
					hs := proxy.Handshakes()
					if len(hs) != 1 || hs[0].Err != nil || attackVersion(hs[0].Version) != want.version {
						t.Errorf("handshakes with the attacker %+v, want one at TLS %s", hs, want.version)
					}
				}

				mu.Lock()
				seen = append(seen, attackSeen{row: ri, col: ci, outcome: want.String(),
					wire: len(wire), clear: len(clear), decrypted: len(dec), forwarded: len(fwd), mxBytes: len(mxClear),
					markerWire: bytes.Count(wire, []byte(marker)), markerDecrypted: bytes.Count(dec, []byte(marker)), markerAtMX: bytes.Count(mxClear, []byte(marker))})
				mu.Unlock()
			})
		}
	}
}

// attackMail is a mail send body with marker in the subject and the body.
func attackMail(marker, to string) string {
	b, _ := json.Marshal(map[string]any{
		"personalizations": []any{map[string]any{"to": []any{map[string]string{"email": to}}}},
		"from":             map[string]string{"email": "sender@sealpost.test"},
		"subject":          "subject " + marker,
		"content":          []any{map[string]string{"type": "text/plain", "value": "body " + marker}},
	})
	return string(b)
}

// attackLeaks names the first sign of the message in b: the marker, or a
// MAIL, RCPT or DATA command; "" if there is none.
func attackLeaks(b []byte, marker string) string {
	if bytes.Contains(b, []byte(marker)) {
		return "the marker"
	}
	upper := bytes.ToUpper(b)
	for _, cmd := range []string{"MAIL FROM:", "RCPT TO:"} {
		if bytes.Contains(upper, []byte(cmd)) {
			return cmd
		}
	}
	if bytes.HasPrefix(upper, []byte("DATA\r\n")) || bytes.Contains(upper, []byte("\nDATA\r\n")) {
		return "DATA"
	}
	return ""
}

func checkAttackEvent(t *testing.T, want attackCell, events []map[string]any, rcpt, mxHost string) {
	t.Helper()
	var final map[string]any
	for _, e := range events {
		if e["email"] == rcpt && e["event"] != "processed" {
			if final != nil {
				t.Errorf("more than one outcome event: %v and %v", final, e)
			}
			final = e
		}
	}
	if final == nil {
		t.Fatalf("no outcome event among %v", kinds(events))
	}
	facts, _ := final["sealpost"].(map[string]any)
	if facts["mx_host"] != mxHost {
		t.Errorf("mx_host %v, want %s", facts["mx_host"], mxHost)
	}
	wantTLS := 0.0
	if want.tls {
		wantTLS = 1
	}
	switch want.event {
	case "blocked":
		if final["event"] != "bounce" || final["type"] != "blocked" || final["reason"] != sealpost.BlockedReason ||
			final["status"] != sealpost.BlockedStatus || final["tls"] != 0.0 {
			t.Errorf("event %v, want a blocked bounce with %q", final, sealpost.BlockedReason)
		}
		if facts["result_type"] != want.resultType {
			t.Errorf("result_type %v, want %s", facts["result_type"], want.resultType)
		}
	case "delivered":
		if final["event"] != "delivered" || final["tls"] != wantTLS {
			t.Errorf("event %v, want delivered with tls %v", final, wantTLS)
		}
		if want.tls && (facts["tls_version"] != want.version || facts["cert_verified"] != want.verified) {
			t.Errorf("tls_version %v cert_verified %v, want %s %v", facts["tls_version"], facts["cert_verified"], want.version, want.verified)
		}
		if want.tls && !want.verified && !strings.Contains(fmt.Sprint(facts["cert_error"]), mxtest.ImpersonatorName) {
			t.Errorf("cert_error %v does not name the certificate's host", facts["cert_error"])
		}
	}
}

func attackVersion(v uint16) string {
	if v == 0 {
		return "none"
	}
	return versionName(v)
}

// With sessions reused, an attacker who goes on the path after a first
// message went through, and strips STARTTLS from the connection the
// second message needs, still gets nothing under a mandatory policy: the
// second connection is judged afresh, and the first one's session never
// carries mail under another policy.
func TestEnforcedTLSUnderAttackWithReuse(t *testing.T) {
	t.Parallel()
	reqTLS12 := sealpost.EnforcedTLS{RequireTLS: true, Version: sealpost.TLS12}
	reqCert13 := sealpost.EnforcedTLS{RequireValidCert: true, Version: sealpost.TLS13}
	tests := []struct {
		name          string
		first, second sealpost.EnforcedTLS
		// expire: the first session is gone (idle time) before the second
		// message, so the same policy needs a new connection too.
		expire bool
	}{
		{"stricter policy", reqTLS12, reqCert13, false},
		{"weaker mandatory policy", reqCert13, reqTLS12, false},
		{"from opportunistic", sealpost.DefaultEnforcedTLS(), reqCert13, false},
		{"same policy, session expired", reqCert13, reqCert13, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := newRunnerWorld(t)
			client := w.runner.Deliverer.(*delivery.Client)
			client.Reuse = delivery.ReuseLimits{MaxMessages: 100, Idle: time.Hour}
			if tt.expire {
				client.Reuse.Idle = 50 * time.Millisecond
			}
			t.Cleanup(func() { client.Close() })
			setPolicy := func(p sealpost.EnforcedTLS) {
				w.setPolicy(sealpost.EnforcedTLSPatch{RequireTLS: &p.RequireTLS, RequireValidCert: &p.RequireValidCert, Version: &p.Version})
			}
			proxy, mx := w.h.AddProxiedMX(attackDomain, 10, mxtest.Behavior{}, mxtest.Passthrough)
			rcpt := "victim@" + attackDomain

			setPolicy(tt.first)
			first := w.send(attackMail("first-message", rcpt))
			w.drain()
			if st := w.states(first)[rcpt]; st != sealpost.StateDelivered {
				t.Fatalf("first message %s, want delivered", st)
			}
			if tt.expire {
				deadline := time.Now().Add(20 * time.Second)
				for client.IdleSessions() > 0 && time.Now().Before(deadline) {
					time.Sleep(10 * time.Millisecond)
				}
			} else if client.IdleSessions() != 1 {
				t.Fatalf("%d idle sessions after the first message, want 1", client.IdleSessions())
			}
			wireBefore := len(proxy.ClientCleartext())

			proxy.SetMode(t, mxtest.StripSTARTTLS)
			setPolicy(tt.second)
			marker := fmt.Sprintf("reuse-attack-marker-%d", time.Now().UnixNano())
			second := w.send(attackMail(marker, rcpt))
			w.drain()
			if st := w.states(second)[rcpt]; st != sealpost.StateBlocked {
				t.Errorf("second message %s, want blocked", st)
			}
			if n := mx.Connections(); n != 2 {
				t.Errorf("the MX saw %d connections, want 2", n)
			}
			for _, d := range mx.Received() {
				if bytes.Contains(d.Data, []byte(marker)) {
					t.Errorf("the MX received the second message")
				}
			}
			clear := proxy.ClientCleartext()[wireBefore:]
			for what, b := range map[string][]byte{"the wire": proxy.ClientToServer(), "the cleartext": clear, "what was forwarded": proxy.Forwarded()} {
				if bytes.Contains(b, []byte(marker)) {
					t.Errorf("%s carries the second message", what)
				}
			}
			if got := attackLeaks(clear, marker); got != "" {
				t.Errorf("sent in clear on the second connection: %s", got)
			}
		})
	}
}
