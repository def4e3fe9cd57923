package delivery

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"

	"github.com/sealpost/sealpost"
)

// policies fetches and parses what domain publishes about its TLS. Only
// reported: nothing here changes how mail is delivered.
func (p *Prober) policies(ctx context.Context, domain string) sealpost.PublishedPolicies {
	var out sealpost.PublishedPolicies
	var wg sync.WaitGroup
	wg.Go(func() { out.MTASTS = p.mtasts(ctx, domain) })
	wg.Go(func() { out.TLSRPT = p.tlsrpt(ctx, domain) })
	wg.Wait()
	return out
}

// publishedRecord looks up name's TXT records and picks the one find
// recognises. published is whether such a record exists (even a broken
// one); problem is why it cannot be used, "" when it can.
func publishedRecord[R any](ctx context.Context, p *Prober, name string, find func([]string) (R, error)) (rec R, published bool, problem string) {
	txts, err := p.txt(ctx, name)
	if err != nil {
		return rec, false, err.Error()
	}
	rec, err = find(txts)
	switch {
	case errors.Is(err, sealpost.ErrNoRecord):
		return rec, false, ""
	case err != nil:
		return rec, true, err.Error()
	}
	return rec, true, ""
}

func (p *Prober) tlsrpt(ctx context.Context, domain string) sealpost.TLSRPTFinding {
	rec, published, problem := publishedRecord(ctx, p, "_smtp._tls."+domain, sealpost.FindTLSRPTRecord)
	f := sealpost.TLSRPTFinding{Published: published, RUA: []string{}, Error: problem}
	if published && problem == "" {
		f.RUA = rec.RUA
	}
	return f
}

func (p *Prober) mtasts(ctx context.Context, domain string) sealpost.MTASTSFinding {
	rec, published, problem := publishedRecord(ctx, p, "_mta-sts."+domain, sealpost.FindMTASTSRecord)
	f := sealpost.MTASTSFinding{Published: published, Error: problem}
	if !published || problem != "" {
		return f
	}
	f.ID = rec.ID
	policy, err := p.fetchMTASTSPolicy(ctx, domain)
	if err != nil {
		f.Error = err.Error()
		return f
	}
	f.Policy = &policy
	return f
}

// fetchMTASTSPolicy gets https://mta-sts.<domain>/.well-known/mta-sts.txt
// as RFC 8461 3.3 says a sender must: HTTPS with a certificate valid for
// the name (against the same roots as MX certificates), no redirects, a
// 200 answer of type text/plain, at most 64 KiB, within the step timeout.
// The connection goes where Client's resolver sends it, through Client's
// dialler.
func (p *Prober) fetchMTASTSPolicy(ctx context.Context, domain string) (sealpost.MTASTSPolicy, error) {
	host := "mta-sts." + domain
	port := p.MTASTSPort
	if port == 0 {
		port = 443
	}
	transport := &http.Transport{
		Proxy:                  nil, // the policy host is asked directly, as the MX hosts are
		DialContext:            p.dialName,
		TLSClientConfig:        &tls.Config{RootCAs: p.Client.RootCAs, MinVersion: tls.VersionTLS12, Time: p.Client.now},
		TLSHandshakeTimeout:    p.step(),
		ResponseHeaderTimeout:  p.step(),
		DisableKeepAlives:      true,
		MaxResponseHeaderBytes: 16 << 10,
	}
	defer transport.CloseIdleConnections()
	client := &http.Client{
		Transport: transport,
		Timeout:   p.step(),
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	url := "https://" + net.JoinHostPort(host, strconv.Itoa(port)) + "/.well-known/mta-sts.txt"
	if port == 443 {
		url = "https://" + host + "/.well-known/mta-sts.txt"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return sealpost.MTASTSPolicy{}, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return sealpost.MTASTSPolicy{}, fmt.Errorf("fetching the MTA-STS policy: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return sealpost.MTASTSPolicy{}, fmt.Errorf("fetching the MTA-STS policy: %s answered %s (redirects are not followed)", url, resp.Status)
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "text/plain" {
		return sealpost.MTASTSPolicy{}, fmt.Errorf("MTA-STS policy is %q, not text/plain", resp.Header.Get("Content-Type"))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, sealpost.MTASTSMaxPolicyBytes+1))
	if err != nil {
		return sealpost.MTASTSPolicy{}, fmt.Errorf("reading the MTA-STS policy: %w", err)
	}
	return sealpost.ParseMTASTSPolicy(body)
}

// dialName resolves addr's host with Client's resolver and connects to the
// first address that answers, through Client's dialler.
func (p *Prober) dialName(ctx context.Context, _, addr string) (net.Conn, error) {
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return nil, err
	}
	ips, err := p.Client.Resolver.LookupIPAddr(ctx, host)
	if err != nil {
		return nil, err
	}
	ips = slices.DeleteFunc(ips, func(a net.IPAddr) bool { return !p.Client.Destinations.AllowsIP(a.IP) })
	if len(ips) == 0 {
		return nil, fmt.Errorf("%s: %w", host, sealpost.ErrDestinationRefused)
	}
	var errs []error
	for _, ip := range ips {
		conn, err := p.Client.dialPort(ctx, ip, port)
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil, &net.DNSError{Err: "no address records", Name: host, IsNotFound: true}
	}
	return nil, errors.Join(errs...)
}
