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
	if p == nil {
		return nil, nil
	}
	// No usable records is passed on as such: RFC 7672 2.2 still requires
	// TLS of the host, unauthenticated, and delivery's DANEPolicy says so
	// with no records.
	return &delivery.DANEPolicy{Records: p.Records, Names: p.Names}, nil
}

// daneSource is DANE for delivery: nil, DANE off, without --dnssec-resolver.
func (c Config) daneSource() delivery.DANESource {
	if c.DNSSECResolver == "" {
		return nil
	}
	return daneSource{lookup: dane.NewResolver(c.DNSSECResolver)}
}
