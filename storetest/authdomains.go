package storetest

import (
	"bytes"
	"testing"

	"github.com/sealpost/sealpost"
)

// testAuthenticatedDomains: create, read, list, validate and delete, one
// default per account, a domain once per account, and accounts isolated.
func testAuthenticatedDomains(t *testing.T, s sealpost.Store) {
	ctx := t.Context()
	a := createUser(t, s, "alice")
	b := createUser(t, s, "bob")
	if list, err := s.AuthenticatedDomains(ctx, a.ID); err != nil || list == nil || len(list) != 0 {
		t.Fatalf("AuthenticatedDomains of a new account = %#v, %v; want an empty, non-nil list", list, err)
	}
	key := []byte{0x30, 0x01, 0x02, 0x03}
	d := sealpost.AuthenticatedDomain{Domain: "example.com", Subdomain: "em", Default: true, CustomSPF: true,
		Selector: sealpost.DKIMSelector, KeyAlgorithm: sealpost.DKIMKeyEd25519, PrivateKey: key}
	first, err := s.CreateAuthenticatedDomain(ctx, a.ID, d)
	if err != nil {
		t.Fatalf("CreateAuthenticatedDomain: %v", err)
	}
	if first.ID == 0 || first.AccountID != a.ID || first.Domain != "example.com" || first.Subdomain != "em" || !first.Default ||
		!first.CustomSPF || first.Valid || first.ReturnPathValid || first.Selector != sealpost.DKIMSelector || first.KeyAlgorithm != sealpost.DKIMKeyEd25519 ||
		!bytes.Equal(first.PrivateKey, key) || first.CreatedAt.IsZero() {
		t.Errorf("stored %+v", first)
	}
	_, err = s.CreateAuthenticatedDomain(ctx, a.ID, d)
	wantCode(t, err, sealpost.ECONFLICT, "the same domain twice")
	// Another account may authenticate the same domain: whoever publishes
	// the record proves control, not whoever asked first.
	if _, err := s.CreateAuthenticatedDomain(ctx, b.ID, d); err != nil {
		t.Errorf("another account's domain: %v", err)
	}

	d.Domain, d.KeyAlgorithm, d.CustomSPF = "example.org", sealpost.DKIMKeyRSA, false
	second, err := s.CreateAuthenticatedDomain(ctx, a.ID, d)
	if err != nil {
		t.Fatalf("second domain: %v", err)
	}
	got, err := s.AuthenticatedDomain(ctx, a.ID, first.ID)
	if err != nil || got.Default {
		t.Errorf("the first domain after a second default = %+v, %v; want default false", got, err)
	}
	_, err = s.AuthenticatedDomain(ctx, b.ID, second.ID)
	wantCode(t, err, sealpost.ENOTFOUND, "another account's domain")

	if err := s.SetAuthenticatedDomainValid(ctx, a.ID, second.ID, true); err != nil {
		t.Fatalf("SetAuthenticatedDomainValid: %v", err)
	}
	wantCode(t, s.SetAuthenticatedDomainValid(ctx, b.ID, second.ID, true), sealpost.ENOTFOUND, "validating another account's domain")
	list, err := s.AuthenticatedDomains(ctx, a.ID)
	if err != nil || len(list) != 2 || list[0].ID != first.ID || list[1].ID != second.ID || !list[1].Valid || list[0].Valid {
		t.Fatalf("AuthenticatedDomains = %+v, %v", list, err)
	}

	if err := s.SetReturnPathValid(ctx, a.ID, second.ID, true); err != nil {
		t.Fatalf("SetReturnPathValid: %v", err)
	}
	wantCode(t, s.SetReturnPathValid(ctx, b.ID, second.ID, true), sealpost.ENOTFOUND, "the return path of another account's domain")
	if got, err := s.AuthenticatedDomain(ctx, a.ID, second.ID); err != nil || !got.ReturnPathValid || !got.Valid {
		t.Errorf("after SetReturnPathValid: %+v, %v", got, err)
	}

	// PATCH: the default moves back to the first domain, and custom_spf
	// changes alone, the other member left as it was.
	yes, no := true, false
	updated, err := s.UpdateAuthenticatedDomain(ctx, a.ID, first.ID, sealpost.AuthenticatedDomainUpdate{Default: &yes})
	if err != nil || !updated.Default || !updated.CustomSPF || updated.ID != first.ID {
		t.Errorf("UpdateAuthenticatedDomain(default) = %+v, %v", updated, err)
	}
	if got, _ := s.AuthenticatedDomain(ctx, a.ID, second.ID); got == nil || got.Default {
		t.Errorf("the second domain after the first became the default: %+v", got)
	}
	if err := s.SetReturnPathValid(ctx, a.ID, first.ID, true); err != nil {
		t.Fatal(err)
	}
	updated, err = s.UpdateAuthenticatedDomain(ctx, a.ID, first.ID, sealpost.AuthenticatedDomainUpdate{CustomSPF: &yes})
	if err != nil || !updated.ReturnPathValid {
		t.Errorf("UpdateAuthenticatedDomain(custom_spf unchanged) = %+v, %v; want the return path still valid", updated, err)
	}
	// Another custom_spf is another SPF record to publish.
	updated, err = s.UpdateAuthenticatedDomain(ctx, a.ID, first.ID, sealpost.AuthenticatedDomainUpdate{CustomSPF: &no})
	if err != nil || !updated.Default || updated.CustomSPF || updated.ReturnPathValid {
		t.Errorf("UpdateAuthenticatedDomain(custom_spf) = %+v, %v", updated, err)
	}
	updated, err = s.UpdateAuthenticatedDomain(ctx, a.ID, first.ID, sealpost.AuthenticatedDomainUpdate{Default: &no})
	if err != nil || updated.Default || updated.CustomSPF {
		t.Errorf("UpdateAuthenticatedDomain(default false) = %+v, %v", updated, err)
	}
	_, err = s.UpdateAuthenticatedDomain(ctx, b.ID, first.ID, sealpost.AuthenticatedDomainUpdate{Default: &yes})
	wantCode(t, err, sealpost.ENOTFOUND, "updating another account's domain")
	if got, _ := s.AuthenticatedDomain(ctx, a.ID, first.ID); got == nil || got.Default {
		t.Errorf("a refused update changed the domain: %+v", got)
	}

	wantCode(t, s.DeleteAuthenticatedDomain(ctx, b.ID, first.ID), sealpost.ENOTFOUND, "deleting another account's domain")
	if err := s.DeleteAuthenticatedDomain(ctx, a.ID, first.ID); err != nil {
		t.Fatalf("DeleteAuthenticatedDomain: %v", err)
	}
	wantCode(t, s.DeleteAuthenticatedDomain(ctx, a.ID, first.ID), sealpost.ENOTFOUND, "deleting twice")
	if list, _ := s.AuthenticatedDomains(ctx, a.ID); len(list) != 1 {
		t.Errorf("after delete: %+v", list)
	}
}

// testAssignedAuthenticatedDomains: a parent assigns one of its domains to
// one of its subusers, in place of the one assigned before; never another
// account's domain, nor to another's subuser or to a customer account;
// deleting the domain or taking it away ends the assignment.
func testAssignedAuthenticatedDomains(t *testing.T, s sealpost.Store) {
	ctx := t.Context()
	parent := createUser(t, s, "parent")
	sub := createSubuser(t, s, parent, "parent-sub")
	stranger := createUser(t, s, "stranger")
	strangersSub := createSubuser(t, s, stranger, "stranger-sub")
	customer := createCustomer(t, s, parent, "customer@example.org")
	domain := func(owner *sealpost.Account, name string) sealpost.AuthenticatedDomain {
		t.Helper()
		d, err := s.CreateAuthenticatedDomain(ctx, owner.ID, sealpost.AuthenticatedDomain{Domain: name, Subdomain: "em",
			Selector: sealpost.DKIMSelector, KeyAlgorithm: sealpost.DKIMKeyEd25519, PrivateKey: []byte{1}})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	first, second := domain(parent, "first.example"), domain(parent, "second.example")
	strangers := domain(stranger, "stranger.example")

	_, err := s.AssociatedAuthenticatedDomain(ctx, sub.ID)
	wantCode(t, err, sealpost.ENOTFOUND, "a subuser with no assigned domain")
	wantCode(t, s.DisassociateAuthenticatedDomain(ctx, sub.ID), sealpost.ENOTFOUND, "taking away no domain")

	got, err := s.AssociateAuthenticatedDomain(ctx, parent.ID, first.ID, sub.ID)
	if err != nil || got.ID != first.ID || got.AccountID != parent.ID {
		t.Fatalf("AssociateAuthenticatedDomain = %+v, %v", got, err)
	}
	got, err = s.AssociateAuthenticatedDomain(ctx, parent.ID, second.ID, sub.ID)
	if err != nil || got.ID != second.ID {
		t.Fatalf("assigning another domain = %+v, %v", got, err)
	}
	if got, err := s.AssociatedAuthenticatedDomain(ctx, sub.ID); err != nil || got.ID != second.ID || got.Domain != "second.example" {
		t.Errorf("AssociatedAuthenticatedDomain = %+v, %v; want the second domain", got, err)
	}
	for _, tc := range []struct {
		name                          string
		parentID, domainID, subuserID int64
	}{
		{"another account's domain", parent.ID, strangers.ID, sub.ID},
		{"to another account's subuser", parent.ID, first.ID, strangersSub.ID},
		{"to a customer account", parent.ID, first.ID, customer.ID},
		{"by another account", stranger.ID, strangers.ID, sub.ID},
		{"an unknown domain", parent.ID, second.ID + 1000, sub.ID},
	} {
		_, err := s.AssociateAuthenticatedDomain(ctx, tc.parentID, tc.domainID, tc.subuserID)
		wantCode(t, err, sealpost.ENOTFOUND, tc.name)
	}
	if got, err := s.AssociatedAuthenticatedDomain(ctx, sub.ID); err != nil || got.ID != second.ID {
		t.Errorf("after refused assignments: %+v, %v; want the second domain still", got, err)
	}

	if err := s.DeleteAuthenticatedDomain(ctx, parent.ID, second.ID); err != nil {
		t.Fatal(err)
	}
	_, err = s.AssociatedAuthenticatedDomain(ctx, sub.ID)
	wantCode(t, err, sealpost.ENOTFOUND, "the assigned domain deleted")

	if _, err := s.AssociateAuthenticatedDomain(ctx, parent.ID, first.ID, sub.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.DisassociateAuthenticatedDomain(ctx, sub.ID); err != nil {
		t.Fatalf("DisassociateAuthenticatedDomain: %v", err)
	}
	_, err = s.AssociatedAuthenticatedDomain(ctx, sub.ID)
	wantCode(t, err, sealpost.ENOTFOUND, "after taking it away")
	if _, err := s.AuthenticatedDomain(ctx, parent.ID, first.ID); err != nil {
		t.Errorf("taking the domain away deleted it: %v", err)
	}
}
