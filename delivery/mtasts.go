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
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/sealpost/sealpost"
)

// mtastsFetchTimeout bounds a policy fetch: RFC 8461 3.3 suggests one
// minute. Client.Timeout bounds it further when smaller.
const mtastsFetchTimeout = time.Minute

// FetchMTASTSPolicy gets domain's MTA-STS policy from
// https://mta-sts.<domain>/.well-known/mta-sts.txt and parses it strictly.
// The probe and delivery fetch with this one function.
func (c *Client) FetchMTASTSPolicy(ctx context.Context, domain string) (sealpost.MTASTSPolicy, error) {
	return c.fetchMTASTSPolicy(ctx, domain, c.MTASTSPort, min(c.timeout(), mtastsFetchTimeout))
}

// fetchMTASTSPolicy fetches as RFC 8461 3.3 says a sender must: HTTPS with
// a certificate valid for the name (against the same roots as MX
// certificates), no redirects, no HTTP caching, a 200 answer of type
// text/plain, at most 64 KiB, within timeout. The connection goes where
// c's resolver sends it, through c's dialler, so the destination rules
// hold. port 0 is 443.
func (c *Client) fetchMTASTSPolicy(ctx context.Context, domain string, port int, timeout time.Duration) (sealpost.MTASTSPolicy, error) {
	host := "mta-sts." + domain
	if port == 0 {
		port = 443
	}
	transport := &http.Transport{
		Proxy:                  nil, // the policy host is asked directly, as the MX hosts are
		DialContext:            c.dialName,
		TLSClientConfig:        &tls.Config{RootCAs: c.RootCAs, MinVersion: tls.VersionTLS12, Time: c.now},
		TLSHandshakeTimeout:    timeout,
		ResponseHeaderTimeout:  timeout,
		DisableKeepAlives:      true,
		MaxResponseHeaderBytes: 16 << 10,
	}
	defer transport.CloseIdleConnections()
	client := &http.Client{
		Transport: transport,
		Timeout:   timeout,
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

// dialName resolves addr's host with c's resolver and connects to the
// first allowed address that answers, through c's dialler.
func (c *Client) dialName(ctx context.Context, _, addr string) (net.Conn, error) {
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return nil, err
	}
	ips, err := c.Resolver.LookupIPAddr(ctx, host)
	if err != nil {
		return nil, err
	}
	ips = slices.DeleteFunc(ips, func(a net.IPAddr) bool { return !c.Destinations.AllowsIP(a.IP) })
	if len(ips) == 0 {
		return nil, fmt.Errorf("%s: %w", host, sealpost.ErrDestinationRefused)
	}
	var errs []error
	for _, ip := range ips {
		conn, err := c.dialPort(ctx, ip, port)
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// TXTResolver is a Resolver that also finds TXT records; NewResolver's
// resolvers are.
type TXTResolver interface {
	// LookupTXT returns name's TXT records, each one's strings joined. A
	// name without any (NXDOMAIN or NODATA) returns (nil, nil).
	LookupTXT(ctx context.Context, name string) ([]string, error)
}

// LookupTXT finds name's TXT records with c's resolver (--dns-server), as
// MTA-STS discovery needs.
func (c *Client) LookupTXT(ctx context.Context, name string) ([]string, error) {
	r, ok := c.Resolver.(TXTResolver)
	if !ok {
		return nil, fmt.Errorf("looking up TXT records of %s: the resolver cannot", name)
	}
	return r.LookupTXT(ctx, name)
}

func (s systemResolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	txts, err := s.r.LookupTXT(ctx, name)
	if sealpost.IsDNSNotFound(err) {
		return nil, nil
	}
	return txts, err
}

func (r *dnsResolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	in, err := r.query(ctx, name, dns.TypeTXT)
	if sealpost.IsDNSNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return txtRecords(in), nil
}

// txtRecords are the TXT records of an answer (the CNAMEs leading to them
// left out), each one's strings joined as RFC 8461 3.1 and RFC 8460 3 say.
func txtRecords(in *dns.Msg) []string {
	var out []string
	for _, rr := range in.Answer {
		if t, ok := rr.(*dns.TXT); ok {
			out = append(out, strings.Join(t.Txt, ""))
		}
	}
	return out
}
