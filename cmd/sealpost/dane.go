package main

import (
	"context"

	"github.com/sealpost/sealpost/dane"
	"github.com/sealpost/sealpost/delivery"
)

// daneLookup is what daneSource needs of the dane package.
type daneLookup interface {
	HostPolicy(ctx context.Context, domain, mxHost string) (*dane.Policy, error)
}

// daneSource gives delivery the DANE requirements the dane package finds.
// The two packages do not know each other: each imports only the root one.
type daneSource struct{ lookup daneLookup }

func (s daneSource) HostPolicy(ctx context.Context, domain, mxHost string) (*delivery.DANEPolicy, error) {
	p, err := s.lookup.HostPolicy(ctx, domain, mxHost)
	if err != nil {
		return nil, err
	}
	// TLSA records that are all unusable would still require TLS without
	// authentication (RFC 7672 2.2); delivery's DANEPolicy cannot say so
	// yet, so such a host is treated as having no DANE.
	if p == nil || len(p.Records) == 0 {
		return nil, nil
	}
	return &delivery.DANEPolicy{Records: p.Records, Names: p.Names}, nil
}

// daneSource is DANE for delivery: nil, DANE off, without --dnssec-resolver.
func (c Config) daneSource() delivery.DANESource {
	if c.DNSSECResolver == "" {
		return nil
	}
	return daneSource{lookup: dane.NewResolver(c.DNSSECResolver)}
}
