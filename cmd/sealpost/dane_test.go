package main

import (
	"context"
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
	"github.com/sealpost/sealpost/dane"
	"github.com/sealpost/sealpost/delivery/mxtest"
	"github.com/sealpost/sealpost/internal/dnssectest"
)

type fakeDANELookup struct {
	policy *dane.Policy
	err    error
}

func (f fakeDANELookup) HostPolicy(context.Context, string, string) (*dane.Policy, error) {
	return f.policy, f.err
}

func TestDANESourceAdapts(t *testing.T) {
	t.Parallel()
	record := sealpost.TLSARecord{Usage: 3, Selector: 1, MatchingType: 1, Data: make([]byte, 32)}
	lookupErr := errors.New("SERVFAIL")
	tests := []struct {
		name        string
		lookup      fakeDANELookup
		wantRecords int // -1: no policy
		wantErr     error
	}{
		{"usable records", fakeDANELookup{policy: &dane.Policy{Records: []sealpost.TLSARecord{record}, Names: []string{"mx.example.test"}}}, 1, nil},
		{"no DANE", fakeDANELookup{}, -1, nil},
		// RFC 7672 2.2: still TLS, unauthenticated; passed on as a
		// policy with no records, never as no DANE.
		{"only unusable records", fakeDANELookup{policy: &dane.Policy{Names: []string{"mx.example.test"}}}, 0, nil},
		{"lookup failed", fakeDANELookup{err: lookupErr}, -1, lookupErr},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := daneSource{lookup: tt.lookup}.HostPolicy(context.Background(), "example.test", "mx.example.test")
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("HostPolicy error %v, want %v", err, tt.wantErr)
			}
			switch {
			case tt.wantRecords < 0 && p != nil:
				t.Errorf("HostPolicy = %+v, want nil", p)
			case tt.wantRecords >= 0 && (p == nil || len(p.Records) != tt.wantRecords || len(p.Names) != 1):
				t.Errorf("HostPolicy = %+v, want %d records and the names", p, tt.wantRecords)
			}
		})
	}
}

// TestDANESourceFromFlag: without --dnssec-resolver DANE is off (a nil
// source, not one that answers "no DANE"); with it, the source asks that
// resolver.
func TestDANESourceFromFlag(t *testing.T) {
	t.Parallel()
	if src := DefaultConfig().daneSource(); src != nil {
		t.Fatalf("daneSource without --dnssec-resolver = %#v, want nil", src)
	}

	cert := mxtest.NewCA(t).Issue(t, mxtest.Options{DNSNames: []string{"mx.example.test"}})
	auth := dnssectest.NewServer(t)
	z := auth.AddZone(t, "example.test.", dnssectest.Signed)
	z.AddMX("example.test.", 10, "mx.example.test.")
	z.AddA("mx.example.test.", "127.0.0.1")
	z.AddTLSA("mx.example.test.", 3, 1, 1, cert.Leaf)
	u := dnssectest.StartUnbound(t, auth)

	cfg := DefaultConfig()
	cfg.DNSSECResolver = u.Addr()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := cfg.daneSource().HostPolicy(ctx, "example.test", "mx.example.test")
	if err != nil || p == nil {
		t.Fatalf("HostPolicy = %+v, %v; want a policy", p, err)
	}
	if err := sealpost.VerifyDANE([]*x509.Certificate{cert.Leaf}, p.Records, p.Names, time.Now()); err != nil {
		t.Errorf("VerifyDANE: %v", err)
	}
}
