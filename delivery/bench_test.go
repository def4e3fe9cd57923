package delivery_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
	"github.com/sealpost/sealpost/delivery"
	"github.com/sealpost/sealpost/delivery/mxtest"
)

// benchWorkers is the concurrency of both sides of the delivery benchmark.
const benchWorkers = 8

// BenchmarkDeliveryRate compares sealpost's delivery (SQLite queue, runner,
// SMTP client under require_valid_cert with version 1.3, events recorded)
// with a minimal Go SMTP client loop doing the same TLS 1.3 handshakes and
// verification against the same fake MX, at the same concurrency. Each op
// is one message to one recipient; msgs/s is the figure to compare. The
// sealpost case runs twice: with a fresh connection per message, and with
// sessions reused (RSET between messages, up to 100 per session).
//
//	go test -run '^$' -bench BenchmarkDeliveryRate -benchtime 2000x -count 5 ./delivery/
func BenchmarkDeliveryRate(b *testing.B) {
	w := newRunnerWorld(b)
	h := w.h
	mx := h.AddMX("bench.test", 10, mxtest.Behavior{})
	w.setPolicy(sealpost.EnforcedTLSPatch{RequireValidCert: ptr(true), Version: ptr(sealpost.TLS13)})
	w.runner.Workers = benchWorkers
	w.runner.Poll = 5 * time.Millisecond
	w.runner.Now = time.Now
	b.Run("baseline=minimal-client", func(b *testing.B) {
		start := mx.AcceptedCount()
		var next atomic.Int64
		var wg sync.WaitGroup
		b.ResetTimer()
		for range benchWorkers {
			wg.Go(func() {
				for next.Add(1) <= int64(b.N) {
					if err := minimalSend(mx.Addr(), mx.Host(), h.CertPool(), benchMessage); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		b.StopTimer()
		reportRate(b, mx.AcceptedCount()-start)
	})
	// Without reuse every message pays the TCP, TLS 1.3 and EHLO round
	// trips, as the baseline does; with it, sessions carry up to 100.
	base := w.runner.Deliverer.(*delivery.Client)
	for _, c := range []struct {
		name  string
		reuse delivery.ReuseLimits
	}{
		{"sealpost=require_valid_cert+1.3", delivery.ReuseLimits{}},
		{"sealpost-reuse=require_valid_cert+1.3", delivery.ReuseLimits{MaxMessages: 100, MaxIdlePerHost: benchWorkers}},
	} {
		b.Run(c.name, func(b *testing.B) {
			// A closed Client keeps no session, so each run gets its own.
			client := &delivery.Client{Resolver: base.Resolver, Port: base.Port, HeloHostname: base.HeloHostname,
				RootCAs: base.RootCAs, Timeout: base.Timeout, Destinations: base.Destinations, Reuse: c.reuse}
			defer client.Close()
			w.runner.Deliverer = client
			for i := range b.N {
				w.send(mailTo(fmt.Sprintf("r%d@bench.test", i)))
			}
			start, conns := mx.AcceptedCount(), mx.Connections()
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			b.ResetTimer()
			go func() { done <- w.runner.Run(ctx) }()
			deadline := time.Now().Add(time.Minute + time.Duration(b.N)*10*time.Millisecond)
			for mx.AcceptedCount()-start < b.N && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			b.StopTimer()
			cancel()
			<-done
			reportRate(b, mx.AcceptedCount()-start)
			b.ReportMetric(float64(mx.Connections()-conns), "conns")
			for _, d := range mx.Accepted()[start:] {
				if !d.TLS || d.Version != tls.VersionTLS13 {
					b.Fatalf("a message went over TLS %v version %x", d.TLS, d.Version)
				}
			}
		})
	}
}

func reportRate(b *testing.B, delivered int) {
	if delivered != b.N {
		b.Fatalf("delivered %d of %d", delivered, b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

var benchMessage = []byte("From: s@sealpost.test\r\nTo: r@bench.test\r\nSubject: hello\r\n\r\n" + strings.Repeat("the body of the message\r\n", 40))

// minimalSend is the least a Go program can do to deliver one message over
// verified STARTTLS 1.3: no MX lookup, no queue, no events.
func minimalSend(addr, host string, roots *x509.CertPool, msg []byte) error {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	tp := textproto.NewConn(conn)
	step := func(code int, format string, args ...any) error {
		if format != "" {
			if err := tp.PrintfLine(format, args...); err != nil {
				return err
			}
		}
		_, _, err := tp.ReadResponse(code)
		return err
	}
	if err := step(220, ""); err != nil {
		return err
	}
	if err := step(250, "EHLO bench.client"); err != nil {
		return err
	}
	if err := step(220, "STARTTLS"); err != nil {
		return err
	}
	tc := tls.Client(conn, &tls.Config{ServerName: host, RootCAs: roots, MinVersion: tls.VersionTLS13})
	if err := tc.Handshake(); err != nil {
		return err
	}
	tp = textproto.NewConn(tc)
	for _, c := range []struct {
		code int
		line string
	}{{250, "EHLO bench.client"}, {250, "MAIL FROM:<s@sealpost.test>"}, {250, "RCPT TO:<r@bench.test>"}, {354, "DATA"}} {
		if err := step(c.code, "%s", c.line); err != nil {
			return err
		}
	}
	dw := tp.DotWriter()
	bw := bufio.NewWriter(dw)
	bw.Write(msg)
	bw.Flush()
	if err := dw.Close(); err != nil {
		return err
	}
	if err := step(250, ""); err != nil {
		return err
	}
	return step(221, "QUIT")
}
