// Command postfixbench holds the two helpers scripts/bench-vs-postfix.sh needs
// on the sealpost side of its comparison with Postfix:
//
//	postfixbench dns  -addr 127.0.0.1:15353 -mx-ip 127.0.0.10 -zone bench.test
//	postfixbench send -url http://127.0.0.1:18095 -key KEY -n 2000 -domains 50 -conns 32 -size 2048
//
// dns answers authoritatively, over UDP and TCP, for the zone and every name
// under it: MX 10 mx.ZONE for each name, and A MX-IP for mx.ZONE, so that
// sealpost resolves every bench domain to the receiving Postfix. Other names
// get NXDOMAIN; nothing is forwarded, so no query leaves the machine.
//
// send posts n messages of about size bytes through POST /v3/mail/send, one
// request per message, on conns connections at once, spreading recipients
// round-robin over bench.test (domains = 1) or d1.bench.test ... dN.bench.test.
// It prints the time of the first request (Unix seconds, with fractions) and
// fails on any answer but 202.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: postfixbench dns|send [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "dns":
		err = runDNS(ctx, os.Args[2:])
	case "send":
		err = runSend(ctx, os.Args[2:], os.Stdout)
	default:
		err = fmt.Errorf("unknown command %q (dns or send)", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "postfixbench:", err)
		os.Exit(1)
	}
}

func runDNS(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("dns", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:15353", "host:port to answer on (UDP and TCP)")
	mxIP := fs.String("mx-ip", "127.0.0.10", "IPv4 address of mx.ZONE")
	zoneName := fs.String("zone", "bench.test", "zone to answer for")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ip := net.ParseIP(*mxIP).To4()
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-mx-ip %q: must be an IPv4 loopback address", *mxIP)
	}
	h := benchZone{zone: dns.Fqdn(strings.ToLower(*zoneName)), mxIP: ip}
	pc, err := net.ListenPacket("udp", *addr)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		pc.Close()
		return err
	}
	servers := []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: ln, Handler: h}}
	errs := make(chan error, len(servers))
	for _, srv := range servers {
		go func() { errs <- srv.ActivateAndServe() }()
	}
	select {
	case <-ctx.Done():
	case err = <-errs:
	}
	for _, srv := range servers {
		srv.Shutdown()
	}
	return err
}

type benchZone struct {
	zone string
	mxIP net.IP
}

func (z benchZone) ServeDNS(rw dns.ResponseWriter, req *dns.Msg) {
	resp := new(dns.Msg)
	resp.SetReply(req)
	resp.Authoritative = true
	if req.Opcode != dns.OpcodeQuery || len(req.Question) != 1 {
		resp.Rcode = dns.RcodeRefused
		rw.WriteMsg(resp)
		return
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	mx := "mx." + z.zone
	hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: 300}
	switch {
	case name == mx && q.Qtype == dns.TypeA:
		hdr.Rrtype = dns.TypeA
		resp.Answer = append(resp.Answer, &dns.A{Hdr: hdr, A: z.mxIP})
	case name == mx:
		// The name exists, without records of this type.
	case name == z.zone || (strings.HasSuffix(name, "."+z.zone) && !strings.HasPrefix(name, "_")):
		if q.Qtype == dns.TypeMX {
			hdr.Rrtype = dns.TypeMX
			resp.Answer = append(resp.Answer, &dns.MX{Hdr: hdr, Preference: 10, Mx: mx})
		}
	default:
		resp.Rcode = dns.RcodeNameError
	}
	if len(resp.Answer) == 0 {
		// As from any authoritative server: the zone's SOA, whose MINIMUM
		// tells resolvers how long the negative answer holds (RFC 2308).
		resp.Ns = append(resp.Ns, &dns.SOA{Hdr: dns.RR_Header{Name: dns.Fqdn(z.zone), Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 300},
			Ns: "ns." + dns.Fqdn(z.zone), Mbox: "hostmaster." + dns.Fqdn(z.zone), Serial: 1, Refresh: 3600, Retry: 600, Expire: 86400, Minttl: 300})
	}
	rw.WriteMsg(resp)
}

func runSend(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("send", flag.ContinueOnError)
	url := fs.String("url", "http://127.0.0.1:18095", "sealpost's base URL")
	key := fs.String("key", "", "API key")
	n := fs.Int("n", 2000, "messages to send")
	domains := fs.Int("domains", 1, "recipient domains: 1 is bench.test, more are d1.bench.test ... dN.bench.test")
	conns := fs.Int("conns", 32, "requests in flight at once")
	size := fs.Int("size", 2048, "approximate size of each message in bytes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *key == "" || *n < 1 || *domains < 1 || *conns < 1 {
		return errors.New("send: -key, and -n, -domains, -conns of at least 1, are required")
	}
	client := &http.Client{
		Timeout:   60 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: *conns, MaxConnsPerHost: *conns},
	}
	// The text makes up the size, less the headers sealpost adds (~500 bytes).
	text := strings.Repeat("The quick brown fox jumps over the lazy dog. 0123456789\n", max(1, (*size-500)/56))
	bodies := make([][]byte, *domains)
	for d := range bodies {
		domain := "bench.test"
		if *domains > 1 {
			domain = fmt.Sprintf("d%d.bench.test", d+1)
		}
		b, err := json.Marshal(map[string]any{
			"personalizations": []any{map[string]any{"to": []any{map[string]string{"email": "rcpt@" + domain}}}},
			"from":             map[string]string{"email": "sender@sender.test"},
			"subject":          "bench",
			"content":          []any{map[string]string{"type": "text/plain", "value": text}},
		})
		if err != nil {
			return err
		}
		bodies[d] = b
	}
	var next atomic.Int64
	var first sync.Once
	var start time.Time
	errs := make(chan error, *conns)
	var wg sync.WaitGroup
	for range *conns {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= *n || ctx.Err() != nil {
					return
				}
				first.Do(func() { start = time.Now() })
				if err := post(ctx, client, *url, *key, bodies[i%len(bodies)]); err != nil {
					errs <- err
					next.Store(int64(*n))
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	fmt.Fprintf(out, "%.6f\n", float64(start.UnixNano())/1e9)
	return nil
}

func post(ctx context.Context, client *http.Client, base, key string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v3/mail/send", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("mail send: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("mail send: %s: %s", resp.Status, msg)
	}
	return nil
}
