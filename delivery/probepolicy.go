package delivery

import (
	"context"
	"errors"
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
	port := p.MTASTSPort
	if port == 0 {
		port = p.Client.MTASTSPort
	}
	policy, err := p.Client.fetchMTASTSPolicy(ctx, domain, port, p.step())
	if err != nil {
		f.Error = err.Error()
		return f
	}
	f.Policy = &policy
	return f
}
