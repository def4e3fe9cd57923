package delivery

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
)

// TestMandatoryGuardRefusesPlaintext drives the command writer directly:
// under a mandatory policy and without TLS, no transaction command and no
// message byte may reach the wire, whatever the caller asks.
func TestMandatoryGuardRefusesPlaintext(t *testing.T) {
	t.Parallel()
	for _, policy := range []sealpost.EnforcedTLS{
		{RequireTLS: true, Version: sealpost.TLS11},
		{RequireValidCert: true, Version: sealpost.TLS12},
	} {
		client, server := net.Pipe()
		var got strings.Builder
		done := make(chan struct{})
		go func() {
			defer close(done)
			io.Copy(&got, server)
		}()
		s := &session{
			c: &Client{Timeout: time.Second}, ctx: t.Context(), pol: accountPolicy(policy), host: "mx.example.test",
			raw: client, conn: client, r: bufio.NewReader(client), w: textproto.NewWriter(bufio.NewWriter(client)),
		}
		for _, line := range []string{"MAIL FROM:<a@b.test>", "RCPT TO:<c@d.test>", "DATA", "RSET", "NOOP", "mail from:<a@b.test>"} {
			if _, err := s.cmd(time.Second, line); !errors.Is(err, errPlaintextRefused) {
				t.Errorf("%+v: cmd(%q) = %v, want errPlaintextRefused", policy, line, err)
			}
		}
		if err := s.writeData([]byte("Subject: x\r\n\r\nsecret\r\n")); !errors.Is(err, errPlaintextRefused) {
			t.Errorf("%+v: writeData = %v, want errPlaintextRefused", policy, err)
		}
		// A pipelined batch is refused whole, even behind allowed verbs.
		if _, err := s.cmds(time.Second, "EHLO client.test", "MAIL FROM:<a@b.test>", "RCPT TO:<c@d.test>"); !errors.Is(err, errPlaintextRefused) {
			t.Errorf("%+v: pipelined batch = %v, want errPlaintextRefused", policy, err)
		}
		s.ext = map[string]string{"PIPELINING": ""}
		for _, rset := range []bool{false, true} {
			out, unfit := s.transaction(testEnvelope("c@d.test"), []int{0}, rset)
			if unfit == nil && out.perRecipient[0].Status == Delivered {
				t.Errorf("transaction without TLS (RSET first: %v) delivered: %+v", rset, out)
			}
		}
		client.Close()
		<-done
		if got.Len() != 0 {
			t.Errorf("%+v: bytes reached the wire: %q", policy, got.String())
		}
	}
}

func TestCommandRefusesLineBreaks(t *testing.T) {
	t.Parallel()
	client, server := net.Pipe()
	defer server.Close()
	s := &session{c: &Client{}, ctx: t.Context(), pol: accountPolicy(sealpost.DefaultEnforcedTLS()), raw: client, conn: client,
		r: bufio.NewReader(client), w: textproto.NewWriter(bufio.NewWriter(client))}
	for _, line := range []string{"RCPT TO:<a@b.test>\r\nDATA", "EHLO x\n", "EHLO x\r"} {
		if _, err := s.cmd(time.Second, line); err == nil || errors.Is(err, errPlaintextRefused) {
			t.Errorf("cmd(%q) = %v, want a line-break error", line, err)
		}
	}
}

func TestTransactionReplies(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	tests := []struct {
		name     string
		b        mxBehaviour
		want     []Status
		enhanced []string
		data     bool // whether the message text was sent (a pipelined DATA may go without)
	}{
		{name: "all accepted", b: mxBehaviour{}, want: []Status{Delivered, Delivered, Delivered}, enhanced: []string{"2.0.0", "2.0.0", "2.0.0"}, data: true},
		{name: "mixed RCPT replies", b: mxBehaviour{RcptReplies: map[string]string{"b@example.test": "450 4.2.1 mailbox busy", "c@example.test": "550 5.1.1 no such user"}},
			want: []Status{Delivered, Deferred, Bounced}, enhanced: []string{"2.0.0", "4.2.1", "5.1.1"}, data: true},
		{name: "no enhanced code: derived", b: mxBehaviour{RcptReplies: map[string]string{"a@example.test": "550 no", "b@example.test": "451 later"}},
			want: []Status{Bounced, Deferred, Delivered}, enhanced: []string{"5.0.0", "4.0.0", "2.0.0"}, data: true},
		{name: "no recipient accepted: no message text", b: mxBehaviour{RcptReplies: map[string]string{"a@example.test": "550 5.1.1 x", "b@example.test": "550 5.1.1 x", "c@example.test": "452 4.5.3 too many"}},
			want: []Status{Bounced, Bounced, Deferred}, enhanced: []string{"5.1.1", "5.1.1", "4.5.3"}},
		{name: "MAIL 4xx", b: mxBehaviour{MailReply: "451 4.3.0 try later"}, want: []Status{Deferred, Deferred, Deferred}, enhanced: []string{"4.3.0", "4.3.0", "4.3.0"}},
		{name: "MAIL 5xx", b: mxBehaviour{MailReply: "553 5.7.1 sender rejected"}, want: []Status{Bounced, Bounced, Bounced}, enhanced: []string{"5.7.1", "5.7.1", "5.7.1"}},
		{name: "DATA refused", b: mxBehaviour{DataReply: "554 5.5.1 no valid recipients"}, want: []Status{Bounced, Bounced, Bounced}, enhanced: []string{"5.5.1", "5.5.1", "5.5.1"}},
		{name: "end of data 5xx applies to accepted only", b: mxBehaviour{EndReply: "554 5.7.1 spam", RcptReplies: map[string]string{"c@example.test": "450 4.2.1 busy"}},
			want: []Status{Bounced, Bounced, Deferred}, enhanced: []string{"5.7.1", "5.7.1", "4.2.1"}, data: true},
		{name: "end of data 4xx", b: mxBehaviour{EndReply: "451 4.3.0 queue full"}, want: []Status{Deferred, Deferred, Deferred}, enhanced: []string{"4.3.0", "4.3.0", "4.3.0"}, data: true},
		{name: "multi-line end of data", b: mxBehaviour{EndReply: "250-2.0.0 first\r\n250 2.0.0 queued as Y"}, want: []Status{Delivered, Delivered, Delivered}, enhanced: []string{"2.0.0", "2.0.0", "2.0.0"}, data: true},
		{name: "drop before the final reply: never delivered", b: mxBehaviour{DropBeforeEnd: true}, want: []Status{Deferred, Deferred, Deferred}, enhanced: []string{"4.4.2", "4.4.2", "4.4.2"}, data: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := tt.b
			sc := newScenario(t, ca, "example.test", mxSpec{name: "mx.example.test", ip: "127.0.0.2", pref: 10, b: &b})
			res := sc.client.Deliver(t.Context(), sealpost.DefaultEnforcedTLS(), testEnvelope("a@example.test", "b@example.test", "c@example.test"))
			trs := sc.mxs["mx.example.test"].transcripts()
			for i, rr := range res.Recipients {
				if rr.Status != tt.want[i] || rr.EnhancedStatus != tt.enhanced[i] {
					t.Errorf("recipient %d: %v %q (%s), want %v %q", i, rr.Status, rr.EnhancedStatus, rr.Response, tt.want[i], tt.enhanced[i])
				}
				if strings.ContainsAny(rr.Response, "\r\n") || rr.Response == "" {
					t.Errorf("recipient %d: bad response %q", i, rr.Response)
				}
			}
			if got := len(trs) == 1 && trs[0].Data != ""; got != tt.data {
				t.Errorf("message text sent = %v, want %v: %+v", got, tt.data, trs)
			}
		})
	}
}

func TestTransactionResponseText(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	sc := newScenario(t, ca, "example.test", mxSpec{name: "mx.example.test", ip: "127.0.0.2", pref: 10,
		b: &mxBehaviour{RcptReplies: map[string]string{"b@example.test": "550-5.1.1 no such user\r\n550 5.1.1 see https://x.test"}}})
	res := sc.client.Deliver(t.Context(), sealpost.DefaultEnforcedTLS(), testEnvelope("a@example.test", "b@example.test"))
	want := []RecipientResult{
		{Status: Delivered, Response: "250 2.0.0 Ok: queued as X", EnhancedStatus: "2.0.0"},
		{Status: Bounced, Response: "550 5.1.1 no such user 5.1.1 see https://x.test", EnhancedStatus: "5.1.1"},
	}
	for i := range want {
		if res.Recipients[i] != want[i] {
			t.Errorf("recipient %d = %+v, want %+v", i, res.Recipients[i], want[i])
		}
	}
}

func TestMultipleMX(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	valid := func(name string) *mxBehaviour {
		return &mxBehaviour{TLS: serverTLS(ca.validLeaf(t, name))}
	}
	untrusted := newTestCA(t)
	reqTLS := sealpost.EnforcedTLS{RequireTLS: true, Version: sealpost.TLS12}
	reqCert := sealpost.EnforcedTLS{RequireValidCert: true, Version: sealpost.TLS12}
	tests := []struct {
		name        string
		policy      sealpost.EnforcedTLS
		specs       []mxSpec
		want        Status
		deliveredBy string
		factsHost   string
		resultType  string
	}{
		{name: "first refuses connections, second delivers", policy: reqTLS,
			specs: []mxSpec{{name: "mx1.example.test", ip: "127.0.0.2", pref: 10}, {name: "mx2.example.test", ip: "127.0.0.3", pref: 20, b: valid("mx2.example.test")}},
			want:  Delivered, deliveredBy: "mx2.example.test", factsHost: "mx2.example.test"},
		{name: "preference order respected", policy: reqTLS,
			specs: []mxSpec{{name: "mx2.example.test", ip: "127.0.0.3", pref: 20, b: valid("mx2.example.test")}, {name: "mx1.example.test", ip: "127.0.0.2", pref: 10, b: valid("mx1.example.test")}},
			want:  Delivered, deliveredBy: "mx1.example.test", factsHost: "mx1.example.test"},
		{name: "4xx greeting, next host delivers", policy: sealpost.DefaultEnforcedTLS(),
			specs: []mxSpec{{name: "mx1.example.test", ip: "127.0.0.2", pref: 10, b: &mxBehaviour{Greeting: "421 4.3.2 busy"}}, {name: "mx2.example.test", ip: "127.0.0.3", pref: 20, b: &mxBehaviour{}}},
			want:  Delivered, deliveredBy: "mx2.example.test", factsHost: "mx2.example.test"},
		{name: "first fails the policy, second delivers", policy: reqTLS,
			specs: []mxSpec{{name: "mx1.example.test", ip: "127.0.0.2", pref: 10, b: &mxBehaviour{}}, {name: "mx2.example.test", ip: "127.0.0.3", pref: 20, b: valid("mx2.example.test")}},
			want:  Delivered, deliveredBy: "mx2.example.test", factsHost: "mx2.example.test"},
		{name: "every host fails the policy: blocked with the last host's facts", policy: reqCert,
			specs: []mxSpec{
				{name: "mx1.example.test", ip: "127.0.0.2", pref: 10, b: &mxBehaviour{}},
				{name: "mx2.example.test", ip: "127.0.0.3", pref: 20, b: &mxBehaviour{TLS: serverTLS(untrusted.validLeaf(t, "mx2.example.test"))}},
			},
			want: Blocked, factsHost: "mx2.example.test", resultType: sealpost.ResultCertificateNotTrusted},
		{name: "policy failure and an unreachable host: deferred", policy: reqTLS,
			specs: []mxSpec{{name: "mx1.example.test", ip: "127.0.0.2", pref: 10, b: &mxBehaviour{}}, {name: "mx2.example.test", ip: "127.0.0.3", pref: 20}},
			want:  Deferred, factsHost: "mx2.example.test"},
		{name: "every host unreachable: deferred", policy: sealpost.DefaultEnforcedTLS(),
			specs: []mxSpec{{name: "mx1.example.test", ip: "127.0.0.2", pref: 10}, {name: "mx2.example.test", ip: "127.0.0.3", pref: 20}},
			want:  Deferred, factsHost: "mx2.example.test"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sc := newScenario(t, ca, "example.test", tt.specs...)
			res := sc.client.Deliver(t.Context(), tt.policy, testEnvelope("a@example.test"))
			rr := res.Recipients[0]
			if rr.Status != tt.want {
				t.Fatalf("status %v (%s), want %v", rr.Status, rr.Response, tt.want)
			}
			if res.TLS.MXHost != tt.factsHost || res.TLS.ResultType != tt.resultType {
				t.Errorf("facts %+v, want host %q result type %q", res.TLS, tt.factsHost, tt.resultType)
			}
			if tt.want == Deferred && !strings.HasPrefix(rr.EnhancedStatus, "4.") {
				t.Errorf("deferred with %q", rr.EnhancedStatus)
			}
			for name, mx := range sc.mxs {
				for _, tr := range mx.transcripts() {
					if tr.has("MAIL") != (name == tt.deliveredBy) {
						t.Errorf("%s: MAIL sent = %v: %q", name, tr.has("MAIL"), tr.Commands)
					}
				}
			}
		})
	}
}

func TestInvalidAddressesNeverReachTheNetwork(t *testing.T) {
	t.Parallel()
	res := &fakeResolver{}
	c := &Client{Resolver: res, Logger: testLogger(t), Destinations: loopbackOnly()}
	out := c.Deliver(t.Context(), sealpost.DefaultEnforcedTLS(), Envelope{
		From: "a@b.test\r\nRCPT TO:<evil@x.test>", Domain: "example.test", Recipients: []string{"x@example.test"},
	})
	if out.Recipients[0].Status != Bounced || out.Recipients[0].EnhancedStatus != "5.1.7" {
		t.Errorf("bad sender: %+v", out.Recipients[0])
	}
	out = c.Deliver(t.Context(), sealpost.DefaultEnforcedTLS(), Envelope{
		From: "a@b.test", Domain: "example.test",
		Recipients: []string{"x@example.test>\r\nDATA", "y\n@example.test", "a b@example.test", "<z@example.test>", "noat", ""},
	})
	for i, rr := range out.Recipients {
		if rr.Status != Bounced || rr.EnhancedStatus != "5.1.3" {
			t.Errorf("recipient %d: %+v", i, rr)
		}
	}
	if res.calls != 0 {
		t.Errorf("resolver called %d times", res.calls)
	}
	out = c.Deliver(t.Context(), sealpost.DefaultEnforcedTLS(), Envelope{From: "a@b.test", Domain: "exa mple.test", Recipients: []string{"x@example.test"}})
	if out.Recipients[0].Status != Bounced || out.Recipients[0].EnhancedStatus != "5.1.2" {
		t.Errorf("bad domain: %+v", out.Recipients[0])
	}
}

func TestContextCancelCutsOffASilentServer(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // never greets
		}
	}()
	c := &Client{
		Resolver:     &fakeResolver{mx: map[string][]*net.MX{"example.test": {{Host: "mx.example.test.", Pref: 1}}}, addrs: map[string][]string{"mx.example.test": {"127.0.0.2"}}},
		Port:         ln.Addr().(*net.TCPAddr).Port,
		Logger:       testLogger(t),
		Destinations: loopbackOnly(),
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	res := c.Deliver(ctx, sealpost.EnforcedTLS{RequireTLS: true, Version: sealpost.TLS12}, testEnvelope("a@example.test"))
	if time.Since(start) > 5*time.Second {
		t.Errorf("Deliver took %v", time.Since(start))
	}
	if rr := res.Recipients[0]; rr.Status != Deferred {
		t.Errorf("got %+v, want deferred", rr)
	}
}

func TestSecondAddressOfAHost(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	port, lns := listenAll(t, "127.0.0.6")
	mx := startMX(t, "mx.example.test", lns[0], mxBehaviour{TLS: serverTLS(ca.validLeaf(t, "mx.example.test"))})
	c := &Client{
		Resolver: &fakeResolver{
			mx:    map[string][]*net.MX{"example.test": {{Host: "mx.example.test.", Pref: 10}}},
			addrs: map[string][]string{"mx.example.test": {"127.0.0.5", "127.0.0.6"}}, // nothing on .5
		},
		Port: port, RootCAs: ca.pool, Logger: testLogger(t), Destinations: loopbackOnly(),
	}
	res := c.Deliver(t.Context(), sealpost.EnforcedTLS{RequireValidCert: true, Version: sealpost.TLS12}, testEnvelope("a@example.test"))
	if res.Recipients[0].Status != Delivered || res.TLS.MXIP != "127.0.0.6" {
		t.Errorf("got %+v", res)
	}
	if trs := mx.transcripts(); len(trs) != 1 {
		t.Errorf("transcripts %+v", trs)
	}
}

func TestTimeoutOnAStalledReply(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.7:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.WriteString(c, "220 hi\r\n")
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if strings.HasPrefix(line, "EHLO") {
						io.WriteString(c, "250 hi\r\n")
					}
					// MAIL and everything after it: no answer.
				}
			}()
		}
	}()
	c := &Client{
		Resolver:     &fakeResolver{mx: map[string][]*net.MX{"example.test": {{Host: "mx.example.test.", Pref: 1}}}, addrs: map[string][]string{"mx.example.test": {"127.0.0.7"}}},
		Port:         ln.Addr().(*net.TCPAddr).Port,
		Timeout:      200 * time.Millisecond,
		Logger:       testLogger(t),
		Destinations: loopbackOnly(),
	}
	start := time.Now()
	res := c.Deliver(t.Context(), sealpost.DefaultEnforcedTLS(), testEnvelope("a@example.test"))
	if rr := res.Recipients[0]; rr.Status != Deferred || !strings.Contains(rr.Response, "timeout") {
		t.Errorf("got %+v, want deferred after a timeout", rr)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v", d)
	}
}
