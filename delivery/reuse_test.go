package delivery

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
)

// reuseScenario is one fake MX with a valid certificate behind mx1.example.test.
func reuseScenario(t *testing.T, b mxBehaviour, limits ReuseLimits) (*scenario, *fakeMX) {
	t.Helper()
	ca := newTestCA(t)
	if b.TLS == nil {
		b.TLS = serverTLS(ca.validLeaf(t, "mx1.example.test"))
	}
	sc := newScenario(t, ca, "example.test", mxSpec{name: "mx1.example.test", ip: "127.0.0.2", pref: 10, b: &b})
	sc.client.Reuse = limits
	// Idle sessions would hold the fake MX open past the test.
	t.Cleanup(func() { sc.client.Close() })
	return sc, sc.mxs["mx1.example.test"]
}

func deliverOK(t *testing.T, c *Client, policy sealpost.EnforcedTLS, rcpts ...string) Result {
	t.Helper()
	res := c.Deliver(t.Context(), policy, testEnvelope(rcpts...))
	for i, rr := range res.Recipients {
		if rr.Status != Delivered {
			t.Fatalf("recipient %d: %v (%s)", i, rr.Status, rr.Response)
		}
	}
	return res
}

func count(tr transcript, verb string) int {
	n := 0
	for _, c := range tr.Commands {
		if strings.HasPrefix(strings.ToUpper(c), verb) {
			n++
		}
	}
	return n
}

var reqCert12 = sealpost.EnforcedTLS{RequireValidCert: true, Version: sealpost.TLS12}

// Messages to one host under one policy share a session, RSET between
// them, up to the limit of messages per session; without reuse, each has
// its own connection.
func TestReuseSharesASession(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		limits   ReuseLimits
		messages int
		conns    []int // messages per connection, in order
	}{
		{"reuse", ReuseLimits{MaxMessages: 100}, 5, []int{5}},
		{"messages per session", ReuseLimits{MaxMessages: 2}, 5, []int{2, 2, 1}},
		{"off", ReuseLimits{}, 3, []int{1, 1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sc, mx := reuseScenario(t, mxBehaviour{}, tt.limits)
			for i := range tt.messages {
				deliverOK(t, sc.client, reqCert12, fmt.Sprintf("r%d@example.test", i))
			}
			if err := sc.client.Close(); err != nil {
				t.Fatal(err)
			}
			if n := sc.client.IdleSessions(); n != 0 {
				t.Errorf("%d idle sessions after Close", n)
			}
			trs := mx.transcripts()
			var got []int
			for _, tr := range trs {
				got = append(got, tr.Messages)
				if !tr.has("<TLS 1.") || count(tr, "STARTTLS") != 1 {
					t.Errorf("connection without its own STARTTLS: %q", tr.Commands)
				}
				if r := count(tr, "RSET"); r != tr.Messages-1 {
					t.Errorf("%d RSETs for %d messages: %q", r, tr.Messages, tr.Commands)
				}
				if last := tr.Commands[len(tr.Commands)-1]; last != "QUIT" {
					t.Errorf("connection ended with %q, not QUIT", last)
				}
			}
			if !slices.Equal(got, tt.conns) {
				t.Errorf("messages per connection %v, want %v", got, tt.conns)
			}
		})
	}
}

// On a reused session the RSET, MAIL, RCPT and DATA go in one write (RFC
// 2920 lets RSET and DATA be pipelined), and the message text only after
// the 354: two round trips a message.
func TestReusePipelinesRSETAndDATA(t *testing.T) {
	t.Parallel()
	sc, mx := reuseScenario(t, mxBehaviour{WatchPipelining: true}, ReuseLimits{MaxMessages: 100})
	for i := range 3 {
		deliverOK(t, sc.client, reqCert12, fmt.Sprintf("r%d@example.test", i))
	}
	sc.client.Close()
	trs := mx.transcripts()
	if len(trs) != 1 || trs[0].Messages != 3 {
		t.Fatalf("want one connection carrying 3 messages: %+v", trs)
	}
	if tr := trs[0]; count(tr, "RSET") != 2 || tr.RSETPipelined != 2 || !tr.Pipelined {
		t.Errorf("RSETs %d, of them pipelined %d, MAIL pipelined %v; want 2, 2, true: %q", count(tr, "RSET"), tr.RSETPipelined, tr.Pipelined, tr.Commands)
	}
}

// A session serves only the exact policy it was opened under: a change of
// policy, stricter or weaker, opens a new connection with its own STARTTLS.
func TestReuseNeverAcrossPolicies(t *testing.T) {
	t.Parallel()
	opportunistic := sealpost.DefaultEnforcedTLS()
	reqTLS12 := sealpost.EnforcedTLS{RequireTLS: true, Version: sealpost.TLS12}
	reqCert13 := sealpost.EnforcedTLS{RequireValidCert: true, Version: sealpost.TLS13}
	both12 := sealpost.EnforcedTLS{RequireTLS: true, RequireValidCert: true, Version: sealpost.TLS12}
	sequence := []sealpost.EnforcedTLS{opportunistic, reqTLS12, reqCert12, reqCert13, reqCert13, both12, reqCert12, opportunistic}
	// Each change of policy is a new connection; reqCert13 twice in a row
	// shares one; reqCert12 and opportunistic come back to the idle
	// sessions they opened.
	sc, mx := reuseScenario(t, mxBehaviour{}, ReuseLimits{MaxMessages: 100})
	for _, p := range sequence {
		deliverOK(t, sc.client, p, "a@example.test")
	}
	sc.client.Close()
	trs := mx.transcripts()
	var got []int
	for _, tr := range trs {
		got = append(got, tr.Messages)
		if !tr.has("<TLS 1.") {
			t.Errorf("connection without STARTTLS: %q", tr.Commands)
		}
	}
	if want := []int{2, 1, 2, 2, 1}; !slices.Equal(got, want) {
		t.Errorf("messages per connection %v, want %v", got, want)
	}
}

// A session the server answered badly, or lost while idle, is not used
// again: the next message goes over a fresh connection, delivered once,
// and the failed reuse is not an attempt's failure.
func TestReuseFallsBackToAFreshSession(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		b     mxBehaviour
		rcpts []string
		conns []int
	}{
		{"RSET refused", mxBehaviour{RSETReply: "421 4.4.2 too slow"}, []string{"a@example.test"}, []int{1, 1}},
		{"RSET 5xx", mxBehaviour{RSETReply: "502 5.5.1 no"}, []string{"a@example.test"}, []int{1, 1}},
		{"dropped while idle", mxBehaviour{DropAfterEnd: true}, []string{"a@example.test"}, []int{1, 1}},
		{"a recipient refused", mxBehaviour{RcptReplies: map[string]string{"gone@example.test": "550 5.1.1 no such user"}},
			[]string{"a@example.test", "gone@example.test"}, []int{1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sc, mx := reuseScenario(t, tt.b, ReuseLimits{MaxMessages: 100})
			for range 2 {
				res := sc.client.Deliver(t.Context(), reqCert12, testEnvelope(tt.rcpts...))
				if rr := res.Recipients[0]; rr.Status != Delivered {
					t.Fatalf("%v (%s)", rr.Status, rr.Response)
				}
			}
			sc.client.Close()
			var got []int
			for _, tr := range mx.transcripts() {
				got = append(got, tr.Messages)
			}
			if !slices.Equal(got, tt.conns) {
				t.Errorf("messages per connection %v, want %v", got, tt.conns)
			}
		})
	}
}

// An idle session is ended with QUIT once its idle time is up.
func TestReuseIdleSessionQuits(t *testing.T) {
	t.Parallel()
	sc, mx := reuseScenario(t, mxBehaviour{}, ReuseLimits{MaxMessages: 100, Idle: 100 * time.Millisecond})
	deliverOK(t, sc.client, reqCert12, "a@example.test")
	deadline := time.Now().Add(20 * time.Second)
	for {
		trs := mx.snapshot()
		if len(trs) == 1 && len(trs[0].Commands) > 0 && trs[0].Commands[len(trs[0].Commands)-1] == "QUIT" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the idle session was not ended: %+v", trs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := sc.client.IdleSessions(); n != 0 {
		t.Errorf("%d idle sessions after the idle time", n)
	}
	deliverOK(t, sc.client, reqCert12, "a@example.test")
	sc.client.Close()
	if n := len(mx.transcripts()); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

// A Client closed keeps no session: the pool takes none back afterwards.
func TestReuseAfterClose(t *testing.T) {
	t.Parallel()
	sc, mx := reuseScenario(t, mxBehaviour{}, ReuseLimits{MaxMessages: 100})
	deliverOK(t, sc.client, reqCert12, "a@example.test")
	sc.client.Close()
	deliverOK(t, sc.client, reqCert12, "a@example.test")
	if n := sc.client.IdleSessions(); n != 0 {
		t.Errorf("%d idle sessions after Close", n)
	}
	for _, tr := range mx.transcripts() {
		if last := tr.Commands[len(tr.Commands)-1]; last != "QUIT" {
			t.Errorf("connection ended with %q, not QUIT", last)
		}
	}
}

// MAIL and the RCPTs go in one write when the server offers PIPELINING,
// one at a time when it does not; per-recipient outcomes are the same.
func TestPipelining(t *testing.T) {
	t.Parallel()
	for _, offered := range []bool{true, false} {
		t.Run(fmt.Sprint("offered=", offered), func(t *testing.T) {
			t.Parallel()
			b := mxBehaviour{WatchPipelining: true, NoPipelining: !offered,
				RcptReplies: map[string]string{"gone@example.test": "550 5.1.1 no such user"}}
			sc, mx := reuseScenario(t, b, ReuseLimits{})
			res := sc.client.Deliver(t.Context(), reqCert12, testEnvelope("a@example.test", "gone@example.test", "b@example.test"))
			var got []Status
			for _, rr := range res.Recipients {
				got = append(got, rr.Status)
			}
			if want := []Status{Delivered, Bounced, Delivered}; !slices.Equal(got, want) {
				t.Errorf("statuses %v, want %v", got, want)
			}
			trs := mx.transcripts()
			if len(trs) != 1 || trs[0].Pipelined != offered {
				t.Errorf("pipelined %+v, want %v", trs, offered)
			}
		})
	}
}

// Many recipients are pipelined in windows; each gets its own outcome.
func TestPipeliningManyRecipients(t *testing.T) {
	t.Parallel()
	var rcpts []string
	for i := range 2*pipelineWindow + 50 {
		rcpts = append(rcpts, fmt.Sprintf("r%d@example.test", i))
	}
	b := mxBehaviour{RcptReplies: map[string]string{rcpts[pipelineWindow]: "550 5.1.1 no such user"}}
	sc, mx := reuseScenario(t, b, ReuseLimits{})
	res := sc.client.Deliver(t.Context(), reqCert12, testEnvelope(rcpts...))
	for i, rr := range res.Recipients {
		want := Delivered
		if i == pipelineWindow {
			want = Bounced
		}
		if rr.Status != want {
			t.Errorf("recipient %d: %v (%s), want %v", i, rr.Status, rr.Response, want)
		}
	}
	trs := mx.transcripts()
	if len(trs) != 1 || count(trs[0], "RCPT") != len(rcpts) || trs[0].Messages != 1 {
		t.Errorf("server saw %d connections, want one with %d RCPTs and a message", len(trs), len(rcpts))
	}
}
