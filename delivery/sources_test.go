package delivery_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
	"github.com/sealpost/sealpost/delivery"
	"github.com/sealpost/sealpost/delivery/mxtest"
)

// In-test implementations of the policy sources delivery consumes.

// fakeMTASTS serves one policy for every domain; Refresh serves refreshed
// (the same policy when nil) and counts its calls.
type fakeMTASTS struct {
	policy     *sealpost.MTASTSPolicy
	err        error
	refreshed  *sealpost.MTASTSPolicy
	refreshErr error

	mu        sync.Mutex
	refreshes int
}

func (f *fakeMTASTS) Policy(context.Context, string) (*sealpost.MTASTSPolicy, error) {
	return f.policy, f.err
}

func (f *fakeMTASTS) Refresh(context.Context, string) (*sealpost.MTASTSPolicy, error) {
	f.mu.Lock()
	f.refreshes++
	f.mu.Unlock()
	if f.refreshErr != nil {
		return nil, f.refreshErr
	}
	if f.refreshed != nil {
		return f.refreshed, nil
	}
	return f.policy, nil
}

func (f *fakeMTASTS) Refreshes() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.refreshes
}

func enforceMTASTS(mx ...string) *fakeMTASTS {
	return &fakeMTASTS{policy: &sealpost.MTASTSPolicy{Mode: "enforce", MX: mx, MaxAge: 86400}}
}

func testingMTASTS(mx ...string) *fakeMTASTS {
	return &fakeMTASTS{policy: &sealpost.MTASTSPolicy{Mode: "testing", MX: mx, MaxAge: 86400}}
}

// fakeDANE publishes one usable DANE-EE record for every MX host, or
// fails every lookup with err. unusable: every host's TLSA records are
// secure but none is usable, so the policy has no records.
type fakeDANE struct {
	err      error
	unusable bool
}

func (f fakeDANE) HostPolicy(_ context.Context, _, mxHost string) (*delivery.DANEPolicy, error) {
	if f.err != nil {
		return nil, f.err
	}
	if f.unusable {
		return &delivery.DANEPolicy{Names: []string{mxHost}}, nil
	}
	return &delivery.DANEPolicy{
		Records: []sealpost.TLSARecord{{Usage: sealpost.TLSAUsageDANEEE, Selector: sealpost.TLSASelectorSPKI, MatchingType: sealpost.TLSAMatchingSHA256, Data: make([]byte, 32)}},
		Names:   []string{mxHost},
	}, nil
}

// daneMatchesIssuedBy stands in for sealpost.VerifyDANE: the records match
// every certificate the harness CA issued, whatever its names and validity
// period, as DANE-EE records published for each of them would (RFC 7672
// 3.1.1).
func daneMatchesIssuedBy(t testing.TB, ca *mxtest.CA) func([]*x509.Certificate, []sealpost.TLSARecord, []string, time.Time) error {
	block, _ := pem.Decode(ca.PEM())
	if block == nil {
		t.Fatal("harness CA: no PEM block")
	}
	root, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return func(chain []*x509.Certificate, records []sealpost.TLSARecord, _ []string, _ time.Time) error {
		if len(chain) == 0 || len(records) == 0 {
			return errors.New("nothing to match")
		}
		if chain[0].CheckSignatureFrom(root) != nil {
			return errors.New("no TLSA record matches the certificate")
		}
		return nil
	}
}

// fakeDomainPolicies holds one account's per-domain policies.
type fakeDomainPolicies struct {
	policies map[string]sealpost.EnforcedTLS
	err      error
}

func (f fakeDomainPolicies) DomainTLSPolicy(_ context.Context, _ int64, domain string) (*sealpost.DomainTLSPolicy, error) {
	if f.err != nil {
		return nil, f.err
	}
	p, ok := f.policies[domain]
	if !ok {
		return nil, sealpost.Errorf(sealpost.ENOTFOUND, "no policy for %s", domain)
	}
	return &sealpost.DomainTLSPolicy{Domain: domain, Policy: p}, nil
}
