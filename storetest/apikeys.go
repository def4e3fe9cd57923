package storetest

import (
	"cmp"
	"fmt"
	"slices"
	"testing"

	"github.com/sealpost/sealpost"
)

func testCreateAPIKey(t *testing.T, s sealpost.Store) {
	ctx := t.Context()
	a := createUser(t, s, "alice")
	k := createKey(t, s, a.ID, "production", []string{sealpost.ScopeEnforcedTLSRead, sealpost.ScopeMailSend})
	recent(t, k.CreatedAt, "CreateAPIKey")

	got, err := s.APIKey(ctx, a.ID, k.ID)
	if err != nil {
		t.Fatalf("APIKey: %v", err)
	}
	wantKey(t, got, k, "APIKey after CreateAPIKey")

	dup := *k
	dup.Name = "copy"
	wantCode(t, s.CreateAPIKey(ctx, &dup), sealpost.ECONFLICT, "CreateAPIKey with a taken id")
	got, err = s.APIKey(ctx, a.ID, k.ID)
	if err != nil {
		t.Fatalf("APIKey: %v", err)
	}
	wantKey(t, got, k, "APIKey after a refused duplicate")
}

func testAPIKeyScopesRoundTrip(t *testing.T, s sealpost.Store) {
	ctx := t.Context()
	user := createUser(t, s, "alice")
	tests := []struct {
		name   string
		scopes []string
	}{
		{"nil", nil},
		{"empty", []string{}},
		{"one", []string{sealpost.ScopeMailSend}},
		{"two", []string{sealpost.ScopeEnforcedTLSRead, sealpost.ScopeEnforcedTLSUpdate}},
		{"full user", sealpost.FullAccessScopes(sealpost.KindUser)},
		{"full subuser", sealpost.FullAccessScopes(sealpost.KindSubuser)},
	}
	for _, tc := range tests {
		k := createKey(t, s, user.ID, tc.name, slices.Clone(tc.scopes))
		want := *k
		want.Scopes = tc.scopes

		got, err := s.APIKey(ctx, user.ID, k.ID)
		if err != nil {
			t.Fatalf("%s: APIKey: %v", tc.name, err)
		}
		wantKey(t, got, &want, tc.name+": APIKey")

		p, err := s.LookupAPIKey(ctx, k.ID)
		if err != nil {
			t.Fatalf("%s: LookupAPIKey: %v", tc.name, err)
		}
		wantKey(t, p.Key, &want, tc.name+": LookupAPIKey")
	}

	list, err := s.APIKeys(ctx, user.ID)
	if err != nil {
		t.Fatalf("APIKeys: %v", err)
	}
	if len(list) != len(tests) {
		t.Fatalf("APIKeys returned %d keys, want %d", len(list), len(tests))
	}
	byName := map[string]*sealpost.APIKey{}
	for _, k := range list {
		byName[k.Name] = k
	}
	for _, tc := range tests {
		k, ok := byName[tc.name]
		if !ok {
			t.Errorf("APIKeys: key %q missing", tc.name)
			continue
		}
		if !slices.Equal(k.Scopes, tc.scopes) {
			t.Errorf("APIKeys: key %q scopes %q, want %q", tc.name, k.Scopes, tc.scopes)
		}
	}
}

func testAPIKeys(t *testing.T, s sealpost.Store) {
	ctx := t.Context()
	a := createUser(t, s, "alice")
	b := createSubuser(t, s, a, "bob")
	c := createUser(t, s, "carol")
	want := []*sealpost.APIKey{
		createKey(t, s, a.ID, "one", []string{sealpost.ScopeMailSend}),
		createKey(t, s, a.ID, "two", sealpost.FullAccessScopes(sealpost.KindUser)),
		createKey(t, s, a.ID, "three", nil),
	}
	bKey := createKey(t, s, b.ID, "bob's", []string{sealpost.ScopeMailSend})

	got, err := s.APIKeys(ctx, a.ID)
	if err != nil {
		t.Fatalf("APIKeys: %v", err)
	}
	// The order of the list is not part of the contract.
	byID := func(x, y *sealpost.APIKey) int { return cmp.Compare(x.ID, y.ID) }
	slices.SortFunc(got, byID)
	slices.SortFunc(want, byID)
	if len(got) != len(want) {
		t.Fatalf("APIKeys returned %d keys, want %d", len(got), len(want))
	}
	for i := range got {
		wantKey(t, got[i], want[i], "APIKeys")
	}

	got, err = s.APIKeys(ctx, b.ID)
	if err != nil {
		t.Fatalf("APIKeys of subuser: %v", err)
	}
	if len(got) != 1 {
		t.Fatalf("APIKeys of subuser returned %d keys, want 1", len(got))
	}
	wantKey(t, got[0], bKey, "APIKeys of subuser")

	got, err = s.APIKeys(ctx, c.ID)
	if err != nil {
		t.Fatalf("APIKeys of an account without keys: %v", err)
	}
	if len(got) != 0 {
		t.Errorf("APIKeys of an account without keys returned %d", len(got))
	}
}

func testUpdateAPIKey(t *testing.T, s sealpost.Store) {
	ctx := t.Context()
	a := createUser(t, s, "alice")
	k := createKey(t, s, a.ID, "original", []string{sealpost.ScopeMailSend})
	bystander := createKey(t, s, a.ID, "bystander", []string{sealpost.ScopeMailSend})

	want := *k
	steps := []struct {
		name   string
		upd    sealpost.APIKeyUpdate
		name2  string
		scopes []string
	}{
		{"name only", sealpost.APIKeyUpdate{Name: ptr("renamed")}, "renamed", []string{sealpost.ScopeMailSend}},
		{"scopes only", sealpost.APIKeyUpdate{Scopes: []string{sealpost.ScopeAPIKeysRead, sealpost.ScopeEnforcedTLSRead}}, "renamed", []string{sealpost.ScopeAPIKeysRead, sealpost.ScopeEnforcedTLSRead}},
		{"both", sealpost.APIKeyUpdate{Name: ptr("both"), Scopes: []string{sealpost.ScopeEnforcedTLSUpdate}}, "both", []string{sealpost.ScopeEnforcedTLSUpdate}},
		{"nothing", sealpost.APIKeyUpdate{}, "both", []string{sealpost.ScopeEnforcedTLSUpdate}},
		{"same values", sealpost.APIKeyUpdate{Name: ptr("both"), Scopes: []string{sealpost.ScopeEnforcedTLSUpdate}}, "both", []string{sealpost.ScopeEnforcedTLSUpdate}},
		{"scopes emptied", sealpost.APIKeyUpdate{Scopes: []string{}}, "both", nil},
		{"scopes back", sealpost.APIKeyUpdate{Scopes: sealpost.FullAccessScopes(sealpost.KindUser)}, "both", sealpost.FullAccessScopes(sealpost.KindUser)},
	}
	for _, st := range steps {
		want.Name, want.Scopes = st.name2, st.scopes
		got, err := s.UpdateAPIKey(ctx, a.ID, k.ID, st.upd)
		if err != nil {
			t.Fatalf("%s: UpdateAPIKey: %v", st.name, err)
		}
		wantKey(t, got, &want, st.name+": UpdateAPIKey result")

		got, err = s.APIKey(ctx, a.ID, k.ID)
		if err != nil {
			t.Fatalf("%s: APIKey: %v", st.name, err)
		}
		wantKey(t, got, &want, st.name+": APIKey after update")

		p, err := s.LookupAPIKey(ctx, k.ID)
		if err != nil {
			t.Fatalf("%s: LookupAPIKey: %v", st.name, err)
		}
		wantKey(t, p.Key, &want, st.name+": LookupAPIKey after update")
	}

	got, err := s.APIKey(ctx, a.ID, bystander.ID)
	if err != nil {
		t.Fatalf("APIKey: %v", err)
	}
	wantKey(t, got, bystander, "the account's other key")
}

func testDeleteAPIKey(t *testing.T, s sealpost.Store) {
	ctx := t.Context()
	a := createUser(t, s, "alice")
	doomed := createKey(t, s, a.ID, "doomed", []string{sealpost.ScopeMailSend})
	kept := createKey(t, s, a.ID, "kept", []string{sealpost.ScopeMailSend})

	if err := s.DeleteAPIKey(ctx, a.ID, doomed.ID, nil); err != nil {
		t.Fatalf("DeleteAPIKey: %v", err)
	}
	_, err := s.APIKey(ctx, a.ID, doomed.ID)
	wantCode(t, err, sealpost.ENOTFOUND, "APIKey of a deleted key")
	_, err = s.LookupAPIKey(ctx, doomed.ID)
	wantCode(t, err, sealpost.ENOTFOUND, "LookupAPIKey of a deleted key")
	_, err = s.UpdateAPIKey(ctx, a.ID, doomed.ID, sealpost.APIKeyUpdate{Name: ptr("zombie")})
	wantCode(t, err, sealpost.ENOTFOUND, "UpdateAPIKey of a deleted key")
	wantCode(t, s.DeleteAPIKey(ctx, a.ID, doomed.ID, nil), sealpost.ENOTFOUND, "DeleteAPIKey twice")

	list, err := s.APIKeys(ctx, a.ID)
	if err != nil {
		t.Fatalf("APIKeys: %v", err)
	}
	if len(list) != 1 {
		t.Fatalf("APIKeys after delete returned %d keys, want 1", len(list))
	}
	wantKey(t, list[0], kept, "remaining key")
	if _, err := s.LookupAPIKey(ctx, kept.ID); err != nil {
		t.Errorf("LookupAPIKey of the remaining key: %v", err)
	}
	if _, err := s.Account(ctx, a.ID); err != nil {
		t.Errorf("Account after deleting its key: %v", err)
	}
}

func testAPIKeyScopedToAccount(t *testing.T, s sealpost.Store) {
	ctx := t.Context()
	owner := createUser(t, s, "owner")
	sub := createSubuser(t, s, owner, "sub")
	stranger := createUser(t, s, "stranger")
	ownerKey := createKey(t, s, owner.ID, "owner's", []string{sealpost.ScopeMailSend})
	subKey := createKey(t, s, sub.ID, "sub's", []string{sealpost.ScopeMailSend})

	// A parent is no exception: its subuser's keys are reached through
	// on-behalf-of, that is by the subuser's account id.
	tests := []struct {
		name    string
		account int64
		key     *sealpost.APIKey
	}{
		{"stranger with owner's key", stranger.ID, ownerKey},
		{"subuser with parent's key", sub.ID, ownerKey},
		{"parent with subuser's key", owner.ID, subKey},
		{"unknown account", stranger.ID + 1000, ownerKey},
	}
	for _, tc := range tests {
		_, err := s.APIKey(ctx, tc.account, tc.key.ID)
		wantCode(t, err, sealpost.ENOTFOUND, tc.name+": APIKey")
		_, err = s.UpdateAPIKey(ctx, tc.account, tc.key.ID, sealpost.APIKeyUpdate{Name: ptr("stolen"), Scopes: sealpost.FullAccessScopes(sealpost.KindUser)})
		wantCode(t, err, sealpost.ENOTFOUND, tc.name+": UpdateAPIKey")
		wantCode(t, s.DeleteAPIKey(ctx, tc.account, tc.key.ID, nil), sealpost.ENOTFOUND, tc.name+": DeleteAPIKey")
		list, err := s.APIKeys(ctx, tc.account)
		if err != nil {
			t.Fatalf("%s: APIKeys: %v", tc.name, err)
		}
		for _, k := range list {
			if k.ID == tc.key.ID {
				t.Errorf("%s: APIKeys lists the key", tc.name)
			}
		}
	}

	for _, k := range []*sealpost.APIKey{ownerKey, subKey} {
		got, err := s.APIKey(ctx, k.AccountID, k.ID)
		if err != nil {
			t.Fatalf("APIKey by its owner: %v", err)
		}
		wantKey(t, got, k, "key after attempts by other accounts")
	}

	const unknown = "no-such-key"
	_, err := s.APIKey(ctx, owner.ID, unknown)
	wantCode(t, err, sealpost.ENOTFOUND, "APIKey of an unknown id")
	_, err = s.UpdateAPIKey(ctx, owner.ID, unknown, sealpost.APIKeyUpdate{Name: ptr("x")})
	wantCode(t, err, sealpost.ENOTFOUND, "UpdateAPIKey of an unknown id")
	wantCode(t, s.DeleteAPIKey(ctx, owner.ID, unknown, nil), sealpost.ENOTFOUND, "DeleteAPIKey of an unknown id")
	_, err = s.LookupAPIKey(ctx, unknown)
	wantCode(t, err, sealpost.ENOTFOUND, "LookupAPIKey of an unknown id")
	_, err = s.LookupAPIKey(ctx, "")
	wantCode(t, err, sealpost.ENOTFOUND, "LookupAPIKey of the empty id")
}

func testLookupAPIKey(t *testing.T, s sealpost.Store) {
	ctx := t.Context()
	user := createUser(t, s, "alice")
	sub := createSubuser(t, s, user, "sub")
	cust := createCustomer(t, s, user, "c@customer.example")
	for _, a := range []*sealpost.Account{user, sub, cust} {
		k := createKey(t, s, a.ID, "key of "+string(a.Kind), sealpost.FullAccessScopes(a.Kind))
		p, err := s.LookupAPIKey(ctx, k.ID)
		if err != nil {
			t.Fatalf("LookupAPIKey: %v", err)
		}
		wantKey(t, p.Key, k, "LookupAPIKey key")
		wantAccount(t, p.Account, a, "LookupAPIKey account")
	}

	// What a caller does with a result must not change the next one. Three
	// rounds, so that a store that caches is caught handing out its entry
	// even if it fills the entry with a copy of the first result.
	k := createKey(t, s, user.ID, "mutable", []string{sealpost.ScopeEnforcedTLSRead, sealpost.ScopeMailSend})
	for range 3 {
		p, err := s.LookupAPIKey(ctx, k.ID)
		if err != nil {
			t.Fatalf("LookupAPIKey: %v", err)
		}
		wantKey(t, p.Key, k, "LookupAPIKey after a caller changed an earlier result")
		wantAccount(t, p.Account, user, "LookupAPIKey after a caller changed an earlier result")
		p.Key.Name = "changed"
		p.Key.Scopes[0] = "changed"
		p.Key.Scopes = append(p.Key.Scopes, "added")
		p.Key.SecretHash[0] ^= 0xff
		p.Account.Disabled = true
		p.Account.Username = "changed"
	}
}

// testLookupAPIKeyFreshness checks that every committed change is seen by
// the very next LookupAPIKey, as authentication requires. Each change is
// preceded by reads so that a store that caches has a warm entry to drop.
func testLookupAPIKeyFreshness(t *testing.T, s sealpost.Store) {
	ctx := t.Context()
	a := createUser(t, s, "alice")
	k := createKey(t, s, a.ID, "key", []string{sealpost.ScopeMailSend})
	wantK, wantA := *k, *a

	warm := func(id string) {
		t.Helper()
		for range 3 {
			if _, err := s.LookupAPIKey(ctx, id); err != nil {
				t.Fatalf("LookupAPIKey: %v", err)
			}
		}
	}
	check := func(step string) {
		t.Helper()
		p, err := s.LookupAPIKey(ctx, k.ID)
		if err != nil {
			t.Fatalf("LookupAPIKey after %s: %v", step, err)
		}
		wantKey(t, p.Key, &wantK, "LookupAPIKey after "+step)
		wantAccount(t, p.Account, &wantA, "LookupAPIKey after "+step)
	}

	steps := []struct {
		name   string
		change func() error
		apply  func()
	}{
		{"disable", func() error { return s.SetAccountDisabled(ctx, a.ID, true) }, func() { wantA.Disabled = true }},
		{"enable", func() error { return s.SetAccountDisabled(ctx, a.ID, false) }, func() { wantA.Disabled = false }},
		{"scope change", func() error {
			_, err := s.UpdateAPIKey(ctx, a.ID, k.ID, sealpost.APIKeyUpdate{Scopes: []string{sealpost.ScopeEnforcedTLSRead}})
			return err
		}, func() { wantK.Scopes = []string{sealpost.ScopeEnforcedTLSRead} }},
		{"rename", func() error {
			_, err := s.UpdateAPIKey(ctx, a.ID, k.ID, sealpost.APIKeyUpdate{Name: ptr("renamed")})
			return err
		}, func() { wantK.Name = "renamed" }},
		{"scopes emptied", func() error {
			_, err := s.UpdateAPIKey(ctx, a.ID, k.ID, sealpost.APIKeyUpdate{Scopes: []string{}})
			return err
		}, func() { wantK.Scopes = nil }},
	}
	for _, st := range steps {
		warm(k.ID)
		if err := st.change(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		st.apply()
		check(st.name)
	}

	warm(k.ID)
	if err := s.DeleteAPIKey(ctx, a.ID, k.ID, nil); err != nil {
		t.Fatalf("DeleteAPIKey: %v", err)
	}
	_, err := s.LookupAPIKey(ctx, k.ID)
	wantCode(t, err, sealpost.ENOTFOUND, "LookupAPIKey right after DeleteAPIKey")

	// A miss must not be remembered: the key may be created next.
	late, _, err := sealpost.NewAPIKey(a.ID, "late", []string{sealpost.ScopeMailSend})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		_, err = s.LookupAPIKey(ctx, late.ID)
		wantCode(t, err, sealpost.ENOTFOUND, "LookupAPIKey before CreateAPIKey")
	}
	if err := s.CreateAPIKey(ctx, late); err != nil {
		t.Fatalf("CreateAPIKey: %v", err)
	}
	p, err := s.LookupAPIKey(ctx, late.ID)
	if err != nil {
		t.Fatalf("LookupAPIKey right after CreateAPIKey: %v", err)
	}
	wantKey(t, p.Key, late, "LookupAPIKey right after CreateAPIKey")

	// Deleting the account takes its keys with it at once, and so does
	// deleting a parent for its subuser's keys.
	sub := createSubuser(t, s, a, "sub")
	subKey := createKey(t, s, sub.ID, "sub", nil)
	warm(late.ID)
	warm(subKey.ID)
	if err := s.DeleteAccount(ctx, a.ID); err != nil {
		t.Fatalf("DeleteAccount: %v", err)
	}
	for _, id := range []string{late.ID, subKey.ID} {
		_, err = s.LookupAPIKey(ctx, id)
		wantCode(t, err, sealpost.ENOTFOUND, fmt.Sprintf("LookupAPIKey(%s) right after DeleteAccount", id))
	}
}
