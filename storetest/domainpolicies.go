package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
)

func domainPolicy(domain string, requireTLS, requireValidCert bool, v sealpost.TLSVersion) sealpost.DomainTLSPolicy {
	return sealpost.DomainTLSPolicy{Domain: domain, Policy: setting(requireTLS, requireValidCert, v)}
}

func putPolicy(t *testing.T, s sealpost.Store, accountID int64, p sealpost.DomainTLSPolicy) (sealpost.DomainTLSPolicy, bool) {
	t.Helper()
	stored, created, err := s.PutDomainTLSPolicy(t.Context(), accountID, p)
	if err != nil {
		t.Fatalf("PutDomainTLSPolicy(%d, %s): %v", accountID, p.Domain, err)
	}
	return stored, created
}

// testDomainTLSPolicies: create, read, replace (idempotently), list and
// delete one account's policies.
func testDomainTLSPolicies(t *testing.T, s sealpost.Store) {
	ctx := t.Context()
	a := createUser(t, s, "alice")
	if list, err := s.DomainTLSPolicies(ctx, a.ID); err != nil || list == nil || len(list) != 0 {
		t.Fatalf("DomainTLSPolicies of a new account = %#v, %v; want an empty, non-nil list", list, err)
	}
	_, err := s.DomainTLSPolicy(ctx, a.ID, "example.com")
	wantCode(t, err, sealpost.ENOTFOUND, "DomainTLSPolicy before any put")

	before := time.Now().Add(-time.Second)
	first, created := putPolicy(t, s, a.ID, domainPolicy("example.com", true, false, sealpost.TLS12))
	if !created {
		t.Error("the first put did not report a creation")
	}
	if first.Domain != "example.com" || first.Policy != setting(true, false, sealpost.TLS12) {
		t.Errorf("stored %+v", first)
	}
	if first.CreatedAt.Before(before) || !first.UpdatedAt.Equal(first.CreatedAt) {
		t.Errorf("created %v, updated %v; want both now", first.CreatedAt, first.UpdatedAt)
	}
	got, err := s.DomainTLSPolicy(ctx, a.ID, "example.com")
	if err != nil || *got != first {
		t.Fatalf("DomainTLSPolicy = %+v, %v; want %+v", got, err, first)
	}

	// The same put again is not a creation and changes nothing, not even
	// updated_at: a tool that applies its state repeatedly sees no drift.
	again, created := putPolicy(t, s, a.ID, domainPolicy("example.com", true, false, sealpost.TLS12))
	if created || again != first {
		t.Errorf("repeated put = %+v, created %v; want %+v, false", again, created, first)
	}

	time.Sleep(2 * time.Millisecond) // timestamps of different writes differ
	replaced, created := putPolicy(t, s, a.ID, domainPolicy("example.com", false, true, sealpost.TLS13))
	if created || replaced.Policy != setting(false, true, sealpost.TLS13) {
		t.Errorf("replacement = %+v, created %v", replaced, created)
	}
	if !replaced.CreatedAt.Equal(first.CreatedAt) || !replaced.UpdatedAt.After(first.UpdatedAt) {
		t.Errorf("replacement times created %v updated %v; want created %v kept and updated later", replaced.CreatedAt, replaced.UpdatedAt, first.CreatedAt)
	}

	putPolicy(t, s, a.ID, domainPolicy("a.example", false, false, sealpost.TLS11))
	putPolicy(t, s, a.ID, domainPolicy("xn--bcher-kva.example", true, true, sealpost.TLS13))
	list, err := s.DomainTLSPolicies(ctx, a.ID)
	if err != nil {
		t.Fatalf("DomainTLSPolicies: %v", err)
	}
	var domains []string
	for _, p := range list {
		domains = append(domains, p.Domain)
	}
	if fmt.Sprint(domains) != "[a.example example.com xn--bcher-kva.example]" {
		t.Errorf("listed %v, want them by domain", domains)
	}
	if list[1] != replaced {
		t.Errorf("listed %+v, want %+v", list[1], replaced)
	}

	if err := s.DeleteDomainTLSPolicy(ctx, a.ID, "example.com"); err != nil {
		t.Fatalf("DeleteDomainTLSPolicy: %v", err)
	}
	wantCode(t, s.DeleteDomainTLSPolicy(ctx, a.ID, "example.com"), sealpost.ENOTFOUND, "DeleteDomainTLSPolicy twice")
	_, err = s.DomainTLSPolicy(ctx, a.ID, "example.com")
	wantCode(t, err, sealpost.ENOTFOUND, "DomainTLSPolicy after delete")
	if _, created := putPolicy(t, s, a.ID, domainPolicy("example.com", true, false, sealpost.TLS11)); !created {
		t.Error("a put after the delete did not report a creation")
	}
}

// testDomainTLSPolicyRefused: stores keep only normalised domains and
// versions SendGrid knows, and only for accounts that exist.
func testDomainTLSPolicyRefused(t *testing.T, s sealpost.Store) {
	ctx := t.Context()
	a := createUser(t, s, "alice")
	for _, p := range []sealpost.DomainTLSPolicy{
		domainPolicy("Example.com", true, false, sealpost.TLS12),
		domainPolicy("example.com.", true, false, sealpost.TLS12),
		domainPolicy("bücher.example", true, false, sealpost.TLS12),
		domainPolicy("", true, false, sealpost.TLS12),
		domainPolicy("example.com", true, false, sealpost.TLSVersion(0x0301)),
	} {
		_, _, err := s.PutDomainTLSPolicy(ctx, a.ID, p)
		wantCode(t, err, sealpost.EINVALID, fmt.Sprintf("PutDomainTLSPolicy(%q, %v)", p.Domain, p.Policy.Version))
	}
	if list, err := s.DomainTLSPolicies(ctx, a.ID); err != nil || len(list) != 0 {
		t.Errorf("refused policies stored: %+v, %v", list, err)
	}
	_, _, err := s.PutDomainTLSPolicy(ctx, a.ID+1000, domainPolicy("example.com", true, false, sealpost.TLS12))
	wantCode(t, err, sealpost.ENOTFOUND, "PutDomainTLSPolicy of an unknown account")
}

// testDomainTLSPoliciesIsolated: an account sees and changes only its own
// policies, a subuser's are apart from its parent's, and deleting an
// account deletes its policies.
func testDomainTLSPoliciesIsolated(t *testing.T, s sealpost.Store) {
	ctx := t.Context()
	a := createUser(t, s, "alice")
	sub := createSubuser(t, s, a, "sub")
	b := createUser(t, s, "bob")
	putPolicy(t, s, a.ID, domainPolicy("example.com", true, false, sealpost.TLS12))
	putPolicy(t, s, sub.ID, domainPolicy("example.com", false, true, sealpost.TLS13))
	if _, created := putPolicy(t, s, b.ID, domainPolicy("example.com", false, false, sealpost.TLS11)); !created {
		t.Error("bob's policy for a domain alice has one for is not a creation")
	}
	for id, want := range map[int64]sealpost.EnforcedTLS{
		a.ID:   setting(true, false, sealpost.TLS12),
		sub.ID: setting(false, true, sealpost.TLS13),
		b.ID:   setting(false, false, sealpost.TLS11),
	} {
		got, err := s.DomainTLSPolicy(ctx, id, "example.com")
		if err != nil || got.Policy != want {
			t.Errorf("account %d: %+v, %v; want %+v", id, got, err, want)
		}
		if list, err := s.DomainTLSPolicies(ctx, id); err != nil || len(list) != 1 {
			t.Errorf("account %d lists %+v, %v; want its one policy", id, list, err)
		}
	}
	putPolicy(t, s, a.ID, domainPolicy("only-alice.example", true, true, sealpost.TLS13))
	_, err := s.DomainTLSPolicy(ctx, b.ID, "only-alice.example")
	wantCode(t, err, sealpost.ENOTFOUND, "reading another account's policy")
	wantCode(t, s.DeleteDomainTLSPolicy(ctx, b.ID, "only-alice.example"), sealpost.ENOTFOUND, "deleting another account's policy")
	if _, err := s.DomainTLSPolicy(ctx, a.ID, "only-alice.example"); err != nil {
		t.Errorf("alice's policy after bob's delete: %v", err)
	}

	if err := s.DeleteAccount(ctx, b.ID); err != nil {
		t.Fatalf("DeleteAccount: %v", err)
	}
	if list, err := s.DomainTLSPolicies(ctx, b.ID); err != nil || len(list) != 0 {
		t.Errorf("a deleted account's policies remain: %+v, %v", list, err)
	}
}

// testDomainTLSPolicyCap: the cap counts creations only; replacing a
// policy at the cap succeeds, and racing creations (on PostgreSQL, on
// separate connections, as on separate nodes) stop exactly at it.
func testDomainTLSPolicyCap(t *testing.T, s sealpost.Store) {
	ctx := t.Context()
	a := createUser(t, s, "alice")
	b := createUser(t, s, "bob")
	const raced = 20
	for i := range sealpost.MaxDomainTLSPoliciesPerAccount - raced/2 {
		putPolicy(t, s, a.ID, domainPolicy(fmt.Sprintf("d%d.example", i), true, false, sealpost.TLS12))
	}
	codes := make([]string, raced)
	var wg sync.WaitGroup
	for i := range raced {
		wg.Go(func() {
			_, _, err := s.PutDomainTLSPolicy(ctx, a.ID, domainPolicy(fmt.Sprintf("race%d.example", i), true, false, sealpost.TLS12))
			codes[i] = sealpost.ErrorCode(err)
		})
	}
	wg.Wait()
	created, limited := tallyCreations(t, codes)
	if created != raced/2 || limited != raced/2 {
		t.Errorf("%d racing creations succeeded, %d refused; want %d each", created, limited, raced/2)
	}
	_, _, err := s.PutDomainTLSPolicy(ctx, a.ID, domainPolicy("one-more.example", true, false, sealpost.TLS12))
	wantCode(t, err, sealpost.ELIMIT, "PutDomainTLSPolicy past the cap")
	if f := sealpost.ErrorFields(err); len(f) != 1 || f[0].Message != sealpost.DomainTLSPolicyLimit().Fields[0].Message {
		t.Errorf("cap error fields %+v, want the limit message", f)
	}
	if _, created := putPolicy(t, s, a.ID, domainPolicy("d0.example", true, true, sealpost.TLS13)); created {
		t.Error("a replacement at the cap reported a creation")
	}
	list, err := s.DomainTLSPolicies(ctx, a.ID)
	if err != nil || len(list) != sealpost.MaxDomainTLSPoliciesPerAccount {
		t.Errorf("%d policies stored (%v), want %d", len(list), err, sealpost.MaxDomainTLSPoliciesPerAccount)
	}
	putPolicy(t, s, b.ID, domainPolicy("one-more.example", true, false, sealpost.TLS12))
	if err := s.DeleteDomainTLSPolicy(ctx, a.ID, "d1.example"); err != nil {
		t.Fatal(err)
	}
	putPolicy(t, s, a.ID, domainPolicy("one-more.example", true, false, sealpost.TLS12))
}
