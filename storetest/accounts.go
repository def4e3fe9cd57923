package storetest

import (
	"fmt"
	"slices"
	"testing"

	"github.com/sealpost/sealpost"
)

func testCreateAccount(t *testing.T, s sealpost.Store) {
	ctx := t.Context()
	user := createUser(t, s, "alice")
	sub := createSubuser(t, s, user, "alice.sub")
	cust := createCustomer(t, s, user, "billing@customer.example")

	for _, a := range []*sealpost.Account{user, sub, cust} {
		what := fmt.Sprintf("%s account %q", a.Kind, a.Username)
		if a.ID == 0 {
			t.Errorf("%s: ID not set", what)
		}
		recent(t, a.CreatedAt, what)

		got, err := s.Account(ctx, a.ID)
		if err != nil {
			t.Fatalf("Account(%d): %v", a.ID, err)
		}
		wantAccount(t, got, a, "Account of "+what)

		setting, err := s.EnforcedTLS(ctx, a.ID)
		if err != nil {
			t.Fatalf("EnforcedTLS(%d): %v", a.ID, err)
		}
		if want := (sealpost.EnforcedTLS{Version: sealpost.TLS11}); setting != want {
			t.Errorf("%s: Enforced TLS %+v, want default %+v", what, setting, want)
		}
	}
	if user.ID == sub.ID || sub.ID == cust.ID || user.ID == cust.ID {
		t.Errorf("IDs not distinct: %d %d %d", user.ID, sub.ID, cust.ID)
	}

	got, err := s.AccountByUsername(ctx, "alice.sub")
	if err != nil {
		t.Fatalf("AccountByUsername: %v", err)
	}
	wantAccount(t, got, sub, "AccountByUsername")

	got, err = s.AccountByPublicID(ctx, cust.PublicID)
	if err != nil {
		t.Fatalf("AccountByPublicID: %v", err)
	}
	wantAccount(t, got, cust, "AccountByPublicID")

	// A store must keep what it is given, disabled included.
	off := createAccount(t, s, &sealpost.Account{Kind: sealpost.KindUser, Username: "bob", Email: "bob@example.com", Disabled: true})
	got, err = s.Account(ctx, off.ID)
	if err != nil {
		t.Fatalf("Account: %v", err)
	}
	wantAccount(t, got, off, "Account created disabled")
}

func testCreateAccountDuplicateUsername(t *testing.T, s sealpost.Store) {
	ctx := t.Context()
	alice := createUser(t, s, "alice")
	createSubuser(t, s, alice, "carol")

	tests := []struct {
		name string
		a    sealpost.Account
	}{
		{"user as user", sealpost.Account{Kind: sealpost.KindUser, Username: "alice", Email: "other@example.com"}},
		{"subuser as user", sealpost.Account{Kind: sealpost.KindUser, Username: "carol", Email: "other@example.com"}},
		{"user as subuser", sealpost.Account{Kind: sealpost.KindSubuser, ParentID: alice.ID, Username: "alice", Email: "other@example.com"}},
		{"subuser as subuser", sealpost.Account{Kind: sealpost.KindSubuser, ParentID: alice.ID, Username: "carol", Email: "x@example.com"}},
	}
	for _, tc := range tests {
		a := tc.a
		wantCode(t, s.CreateAccount(ctx, &a), sealpost.ECONFLICT, "CreateAccount duplicate "+tc.name)
	}

	// A refused account must leave nothing behind.
	n, err := s.CountAccounts(ctx)
	if err != nil {
		t.Fatalf("CountAccounts: %v", err)
	}
	if n != 2 {
		t.Errorf("CountAccounts after refused duplicates = %d, want 2", n)
	}
	got, err := s.AccountByUsername(ctx, "alice")
	if err != nil {
		t.Fatalf("AccountByUsername: %v", err)
	}
	wantAccount(t, got, alice, "original account after refused duplicate")
}

func testCustomerAccounts(t *testing.T, s sealpost.Store) {
	ctx := t.Context()
	parent := createUser(t, s, "reseller")
	c1 := createCustomer(t, s, parent, "one@customer.example")
	c2 := createCustomer(t, s, parent, "two@customer.example")
	if c1.Username != "" || c2.Username != "" {
		t.Errorf("customer usernames %q, %q; want empty", c1.Username, c2.Username)
	}
	if c1.PublicID == c2.PublicID {
		t.Fatalf("customers share PublicID %q", c1.PublicID)
	}
	for _, c := range []*sealpost.Account{c1, c2} {
		got, err := s.AccountByPublicID(ctx, c.PublicID)
		if err != nil {
			t.Fatalf("AccountByPublicID(%q): %v", c.PublicID, err)
		}
		wantAccount(t, got, c, "AccountByPublicID")
	}

	dup := sealpost.Account{Kind: sealpost.KindCustomer, PublicID: c1.PublicID, ParentID: parent.ID, Email: "three@customer.example"}
	wantCode(t, s.CreateAccount(ctx, &dup), sealpost.ECONFLICT, "CreateAccount with a taken PublicID")

	// Customers have no username and users no public id: the empty string
	// must never find them.
	_, err := s.AccountByUsername(ctx, "")
	wantCode(t, err, sealpost.ENOTFOUND, `AccountByUsername("")`)
	_, err = s.AccountByPublicID(ctx, "")
	wantCode(t, err, sealpost.ENOTFOUND, `AccountByPublicID("")`)

	got, err := s.Account(ctx, parent.ID)
	if err != nil {
		t.Fatalf("Account: %v", err)
	}
	if got.PublicID != "" {
		t.Errorf("user account PublicID = %q, want empty", got.PublicID)
	}
}

func testAccountNotFound(t *testing.T, s sealpost.Store) {
	ctx := t.Context()
	user := createUser(t, s, "alice")
	cust := createCustomer(t, s, user, "c@customer.example")

	tests := []struct {
		name string
		call func() (*sealpost.Account, error)
	}{
		{"Account unknown id", func() (*sealpost.Account, error) { return s.Account(ctx, user.ID+cust.ID+1000) }},
		{"Account zero id", func() (*sealpost.Account, error) { return s.Account(ctx, 0) }},
		{"AccountByUsername unknown", func() (*sealpost.Account, error) { return s.AccountByUsername(ctx, "nobody") }},
		{"AccountByUsername with a trailing space", func() (*sealpost.Account, error) { return s.AccountByUsername(ctx, "alice ") }},
		{"AccountByPublicID unknown", func() (*sealpost.Account, error) { return s.AccountByPublicID(ctx, "sg000000000000000000000000") }},
		{"AccountByPublicID username", func() (*sealpost.Account, error) { return s.AccountByPublicID(ctx, "alice") }},
	}
	for _, tc := range tests {
		a, err := tc.call()
		wantCode(t, err, sealpost.ENOTFOUND, tc.name)
		if a != nil {
			t.Errorf("%s: returned account %+v with the error", tc.name, *a)
		}
	}
}

func testChildAccounts(t *testing.T, s sealpost.Store) {
	ctx := t.Context()
	p := createUser(t, s, "parent")
	q := createUser(t, s, "other")
	s1 := createSubuser(t, s, p, "s1")
	c1 := createCustomer(t, s, p, "c1@customer.example")
	q1 := createSubuser(t, s, q, "q1")
	s2 := createSubuser(t, s, p, "s2")
	qc := createCustomer(t, s, q, "qc@customer.example")
	s3 := createSubuser(t, s, p, "s3")
	c2 := createCustomer(t, s, p, "c2@customer.example")

	// A disabled child is still listed, and listed as disabled.
	if err := s.SetAccountDisabled(ctx, s2.ID, true); err != nil {
		t.Fatalf("SetAccountDisabled: %v", err)
	}
	s2.Disabled = true

	tests := []struct {
		name   string
		parent int64
		kind   sealpost.AccountKind
		filter sealpost.SubuserFilter
		want   []*sealpost.Account
	}{
		{"subusers", p.ID, sealpost.KindSubuser, sealpost.SubuserFilter{}, []*sealpost.Account{s1, s2, s3}},
		{"customers", p.ID, sealpost.KindCustomer, sealpost.SubuserFilter{}, []*sealpost.Account{c1, c2}},
		{"other parent's subusers", q.ID, sealpost.KindSubuser, sealpost.SubuserFilter{}, []*sealpost.Account{q1}},
		{"other parent's customers", q.ID, sealpost.KindCustomer, sealpost.SubuserFilter{}, []*sealpost.Account{qc}},
		{"users under a parent", p.ID, sealpost.KindUser, sealpost.SubuserFilter{}, nil},
		{"children of a subuser", s1.ID, sealpost.KindSubuser, sealpost.SubuserFilter{}, nil},
		{"unknown parent", p.ID + 10000, sealpost.KindSubuser, sealpost.SubuserFilter{}, nil},
		{"username", p.ID, sealpost.KindSubuser, sealpost.SubuserFilter{Username: "s2"}, []*sealpost.Account{s2}},
		{"username is exact", p.ID, sealpost.KindSubuser, sealpost.SubuserFilter{Username: "s"}, nil},
		{"username of another parent's subuser", p.ID, sealpost.KindSubuser, sealpost.SubuserFilter{Username: "q1"}, nil},
		{"username of the parent itself", p.ID, sealpost.KindSubuser, sealpost.SubuserFilter{Username: "parent"}, nil},
		{"limit", p.ID, sealpost.KindSubuser, sealpost.SubuserFilter{Limit: 2}, []*sealpost.Account{s1, s2}},
		{"limit above count", p.ID, sealpost.KindSubuser, sealpost.SubuserFilter{Limit: 10}, []*sealpost.Account{s1, s2, s3}},
		{"limit and offset", p.ID, sealpost.KindSubuser, sealpost.SubuserFilter{Limit: 1, Offset: 1}, []*sealpost.Account{s2}},
		{"offset without limit", p.ID, sealpost.KindSubuser, sealpost.SubuserFilter{Offset: 1}, []*sealpost.Account{s2, s3}},
		{"offset past the end", p.ID, sealpost.KindSubuser, sealpost.SubuserFilter{Offset: 3}, nil},
		{"username with limit", p.ID, sealpost.KindSubuser, sealpost.SubuserFilter{Username: "s3", Limit: 1}, []*sealpost.Account{s3}},
		{"username with offset", p.ID, sealpost.KindSubuser, sealpost.SubuserFilter{Username: "s3", Offset: 1}, nil},
		{"customers with offset", p.ID, sealpost.KindCustomer, sealpost.SubuserFilter{Offset: 1}, []*sealpost.Account{c2}},
	}
	for _, tc := range tests {
		got, err := s.ChildAccounts(ctx, tc.parent, tc.kind, tc.filter)
		if err != nil {
			t.Errorf("%s: ChildAccounts: %v", tc.name, err)
			continue
		}
		if !slices.Equal(ids(got), ids(tc.want)) {
			t.Errorf("%s: ChildAccounts IDs = %v, want %v", tc.name, ids(got), ids(tc.want))
			continue
		}
		for i := range got {
			wantAccount(t, got[i], tc.want[i], tc.name)
		}
	}
}

func testSetAccountDisabled(t *testing.T, s sealpost.Store) {
	ctx := t.Context()
	a := createUser(t, s, "alice")
	b := createUser(t, s, "bob")

	for _, step := range []bool{true, true, false, false, true} {
		if err := s.SetAccountDisabled(ctx, a.ID, step); err != nil {
			t.Fatalf("SetAccountDisabled(%v): %v", step, err)
		}
		a.Disabled = step
		got, err := s.Account(ctx, a.ID)
		if err != nil {
			t.Fatalf("Account: %v", err)
		}
		wantAccount(t, got, a, fmt.Sprintf("Account after SetAccountDisabled(%v)", step))
		got, err = s.AccountByUsername(ctx, "alice")
		if err != nil {
			t.Fatalf("AccountByUsername: %v", err)
		}
		wantAccount(t, got, a, fmt.Sprintf("AccountByUsername after SetAccountDisabled(%v)", step))
	}

	got, err := s.Account(ctx, b.ID)
	if err != nil {
		t.Fatalf("Account: %v", err)
	}
	wantAccount(t, got, b, "untouched account")

	wantCode(t, s.SetAccountDisabled(ctx, a.ID+b.ID+1000, true), sealpost.ENOTFOUND, "SetAccountDisabled of an unknown account")
}

func testDeleteAccount(t *testing.T, s sealpost.Store) {
	ctx := t.Context()
	p := createUser(t, s, "parent")
	sub := createSubuser(t, s, p, "sub")
	cust := createCustomer(t, s, p, "c@customer.example")
	other := createUser(t, s, "other")
	otherSub := createSubuser(t, s, other, "othersub")

	full := sealpost.EnforcedTLSPatch{RequireTLS: ptr(true), RequireValidCert: ptr(true), Version: ptr(sealpost.TLS13)}
	var keys []*sealpost.APIKey
	for _, a := range []*sealpost.Account{p, sub, cust} {
		keys = append(keys, createKey(t, s, a.ID, "key", []string{sealpost.ScopeMailSend}))
		if _, err := s.UpdateEnforcedTLS(ctx, a.ID, full); err != nil {
			t.Fatalf("UpdateEnforcedTLS: %v", err)
		}
		// Read once so that a store with a cache has something to forget.
		if _, err := s.LookupAPIKey(ctx, keys[len(keys)-1].ID); err != nil {
			t.Fatalf("LookupAPIKey: %v", err)
		}
	}
	otherKey := createKey(t, s, other.ID, "key", []string{sealpost.ScopeMailSend})
	otherSubKey := createKey(t, s, otherSub.ID, "key", []string{sealpost.ScopeMailSend})
	if _, err := s.UpdateEnforcedTLS(ctx, other.ID, full); err != nil {
		t.Fatalf("UpdateEnforcedTLS: %v", err)
	}

	if err := s.DeleteAccount(ctx, p.ID); err != nil {
		t.Fatalf("DeleteAccount: %v", err)
	}

	for _, a := range []*sealpost.Account{p, sub, cust} {
		what := fmt.Sprintf("deleted %s %d", a.Kind, a.ID)
		_, err := s.Account(ctx, a.ID)
		wantCode(t, err, sealpost.ENOTFOUND, "Account of "+what)
		_, err = s.EnforcedTLS(ctx, a.ID)
		wantCode(t, err, sealpost.ENOTFOUND, "EnforcedTLS of "+what)
		_, err = s.UpdateEnforcedTLS(ctx, a.ID, full)
		wantCode(t, err, sealpost.ENOTFOUND, "UpdateEnforcedTLS of "+what)
		wantCode(t, s.SetAccountDisabled(ctx, a.ID, true), sealpost.ENOTFOUND, "SetAccountDisabled of "+what)
		list, err := s.APIKeys(ctx, a.ID)
		if err != nil && sealpost.ErrorCode(err) != sealpost.ENOTFOUND {
			t.Errorf("APIKeys of %s: %v", what, err)
		}
		if len(list) != 0 {
			t.Errorf("APIKeys of %s: %d keys left", what, len(list))
		}
	}
	for _, k := range keys {
		_, err := s.LookupAPIKey(ctx, k.ID)
		wantCode(t, err, sealpost.ENOTFOUND, "LookupAPIKey of a deleted account's key")
		_, err = s.APIKey(ctx, k.AccountID, k.ID)
		wantCode(t, err, sealpost.ENOTFOUND, "APIKey of a deleted account's key")
	}
	_, err := s.AccountByUsername(ctx, "sub")
	wantCode(t, err, sealpost.ENOTFOUND, "AccountByUsername of a deleted subuser")
	_, err = s.AccountByPublicID(ctx, cust.PublicID)
	wantCode(t, err, sealpost.ENOTFOUND, "AccountByPublicID of a deleted customer")
	wantCode(t, s.DeleteAccount(ctx, p.ID), sealpost.ENOTFOUND, "DeleteAccount twice")

	// The other tenant is untouched.
	for _, k := range []*sealpost.APIKey{otherKey, otherSubKey} {
		pr, err := s.LookupAPIKey(ctx, k.ID)
		if err != nil {
			t.Fatalf("LookupAPIKey of an untouched key: %v", err)
		}
		wantKey(t, pr.Key, k, "untouched key")
	}
	got, err := s.Account(ctx, otherSub.ID)
	if err != nil {
		t.Fatalf("Account of an untouched subuser: %v", err)
	}
	wantAccount(t, got, otherSub, "untouched subuser")
	if setting, err := s.EnforcedTLS(ctx, other.ID); err != nil || setting != full.Apply(sealpost.EnforcedTLS{}) {
		t.Errorf("EnforcedTLS of untouched account = %+v, %v; want %+v", setting, err, full.Apply(sealpost.EnforcedTLS{}))
	}

	// The freed names can be taken again, by new accounts with new settings.
	again := createUser(t, s, "parent")
	if again.ID == p.ID {
		t.Errorf("new account reuses deleted ID %d", p.ID)
	}
	createSubuser(t, s, again, "sub")
	if setting, err := s.EnforcedTLS(ctx, again.ID); err != nil || setting != sealpost.DefaultEnforcedTLS() {
		t.Errorf("EnforcedTLS of a re-created account = %+v, %v; want default", setting, err)
	}
	n, err := s.CountAccounts(ctx)
	if err != nil {
		t.Fatalf("CountAccounts: %v", err)
	}
	if n != 4 {
		t.Errorf("CountAccounts = %d, want 4", n)
	}

	wantCode(t, s.DeleteAccount(ctx, again.ID+1000), sealpost.ENOTFOUND, "DeleteAccount of an unknown account")
}

func testDeleteSubuser(t *testing.T, s sealpost.Store) {
	ctx := t.Context()
	p := createUser(t, s, "parent")
	s1 := createSubuser(t, s, p, "s1")
	s2 := createSubuser(t, s, p, "s2")
	k1 := createKey(t, s, s1.ID, "k1", nil)
	kp := createKey(t, s, p.ID, "kp", nil)

	if err := s.DeleteAccount(ctx, s1.ID); err != nil {
		t.Fatalf("DeleteAccount: %v", err)
	}
	_, err := s.LookupAPIKey(ctx, k1.ID)
	wantCode(t, err, sealpost.ENOTFOUND, "LookupAPIKey of the deleted subuser's key")

	got, err := s.Account(ctx, p.ID)
	if err != nil {
		t.Fatalf("Account of the parent: %v", err)
	}
	wantAccount(t, got, p, "parent after its subuser's deletion")
	if _, err := s.LookupAPIKey(ctx, kp.ID); err != nil {
		t.Errorf("LookupAPIKey of the parent's key: %v", err)
	}
	children, err := s.ChildAccounts(ctx, p.ID, sealpost.KindSubuser, sealpost.SubuserFilter{})
	if err != nil {
		t.Fatalf("ChildAccounts: %v", err)
	}
	if want := []int64{s2.ID}; !slices.Equal(ids(children), want) {
		t.Errorf("ChildAccounts after deletion = %v, want %v", ids(children), want)
	}
}

func testCountAccounts(t *testing.T, s sealpost.Store) {
	ctx := t.Context()
	count := func(want int, when string) {
		t.Helper()
		n, err := s.CountAccounts(ctx)
		if err != nil {
			t.Fatalf("CountAccounts %s: %v", when, err)
		}
		if n != want {
			t.Errorf("CountAccounts %s = %d, want %d", when, n, want)
		}
	}
	count(0, "of a new store")
	u := createUser(t, s, "alice")
	count(1, "after one user")
	createSubuser(t, s, u, "sub")
	createCustomer(t, s, u, "c@customer.example")
	b := createUser(t, s, "bob")
	count(4, "after four accounts")
	if err := s.DeleteAccount(ctx, u.ID); err != nil {
		t.Fatalf("DeleteAccount: %v", err)
	}
	count(1, "after deleting a user with two children")
	if err := s.DeleteAccount(ctx, b.ID); err != nil {
		t.Fatalf("DeleteAccount: %v", err)
	}
	count(0, "after deleting every account")
}
