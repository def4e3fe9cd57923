package storetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
)

// testAPIKeyGuard: an update or delete guarded by Within leaves a key
// holding a scope outside it untouched (EFORBIDDEN), and still reports a
// missing key as ENOTFOUND.
func testAPIKeyGuard(t *testing.T, s sealpost.Store) {
	ctx := t.Context()
	a := createUser(t, s, "alice")
	full := createKey(t, s, a.ID, "full", sealpost.FullAccessScopes(sealpost.KindUser))
	narrow := []string{sealpost.ScopeAPIKeysDelete, sealpost.ScopeAPIKeysUpdate, sealpost.ScopeMailSend}
	peer := createKey(t, s, a.ID, "peer", []string{sealpost.ScopeMailSend})

	_, err := s.UpdateAPIKey(ctx, a.ID, full.ID, sealpost.APIKeyUpdate{Name: ptr("stripped"), Scopes: []string{}, Within: narrow})
	wantCode(t, err, sealpost.EFORBIDDEN, "guarded UpdateAPIKey of a broader key")
	wantCode(t, s.DeleteAPIKey(ctx, a.ID, full.ID, narrow), sealpost.EFORBIDDEN, "guarded DeleteAPIKey of a broader key")
	got, err := s.APIKey(ctx, a.ID, full.ID)
	if err != nil {
		t.Fatalf("APIKey: %v", err)
	}
	wantKey(t, got, full, "the broader key after refused changes")

	// An empty guard lets through only a key without scopes.
	_, err = s.UpdateAPIKey(ctx, a.ID, peer.ID, sealpost.APIKeyUpdate{Name: ptr("x"), Within: []string{}})
	wantCode(t, err, sealpost.EFORBIDDEN, "UpdateAPIKey guarded by no scopes")

	upd, err := s.UpdateAPIKey(ctx, a.ID, peer.ID, sealpost.APIKeyUpdate{Name: ptr("renamed"), Within: narrow})
	if err != nil {
		t.Fatalf("guarded UpdateAPIKey of a key within the guard: %v", err)
	}
	if upd.Name != "renamed" || !slices.Equal(upd.Scopes, peer.Scopes) {
		t.Errorf("guarded update gave %q %q", upd.Name, upd.Scopes)
	}
	if err := s.DeleteAPIKey(ctx, a.ID, peer.ID, narrow); err != nil {
		t.Fatalf("guarded DeleteAPIKey of a key within the guard: %v", err)
	}
	_, err = s.UpdateAPIKey(ctx, a.ID, peer.ID, sealpost.APIKeyUpdate{Name: ptr("x"), Within: narrow})
	wantCode(t, err, sealpost.ENOTFOUND, "guarded UpdateAPIKey of a deleted key")
	wantCode(t, s.DeleteAPIKey(ctx, a.ID, peer.ID, narrow), sealpost.ENOTFOUND, "guarded DeleteAPIKey of a deleted key")

	// Another account's key stays not found, never forbidden.
	b := createUser(t, s, "bob")
	_, err = s.UpdateAPIKey(ctx, b.ID, full.ID, sealpost.APIKeyUpdate{Name: ptr("x"), Within: narrow})
	wantCode(t, err, sealpost.ENOTFOUND, "guarded UpdateAPIKey of another account's key")
	wantCode(t, s.DeleteAPIKey(ctx, b.ID, full.ID, narrow), sealpost.ENOTFOUND, "guarded DeleteAPIKey of another account's key")
}

// testAPIKeyCap: the 101st key of an account is ELIMIT; other accounts are
// not affected, and deleting a key makes room for one more.
func testAPIKeyCap(t *testing.T, s sealpost.Store) {
	ctx := t.Context()
	a := createUser(t, s, "alice")
	b := createUser(t, s, "bob")
	var first *sealpost.APIKey
	for i := range sealpost.MaxAPIKeysPerAccount {
		k := createKey(t, s, a.ID, fmt.Sprintf("k%d", i), []string{sealpost.ScopeMailSend})
		if first == nil {
			first = k
		}
	}
	over, _, err := sealpost.NewAPIKey(a.ID, "one too many", nil)
	if err != nil {
		t.Fatal(err)
	}
	err = s.CreateAPIKey(ctx, over)
	wantCode(t, err, sealpost.ELIMIT, "CreateAPIKey past the cap")
	if f := sealpost.ErrorFields(err); len(f) != 1 || f[0].Message != sealpost.APIKeyLimitMessage {
		t.Errorf("cap error fields %+v, want the limit message", f)
	}
	if _, err := s.LookupAPIKey(ctx, over.ID); sealpost.ErrorCode(err) != sealpost.ENOTFOUND {
		t.Errorf("the refused key is stored: %v", err)
	}
	createKey(t, s, b.ID, "bob's", nil)
	if err := s.DeleteAPIKey(ctx, a.ID, first.ID, nil); err != nil {
		t.Fatalf("DeleteAPIKey: %v", err)
	}
	createKey(t, s, a.ID, "after a delete", nil)
}

// testAPIKeyCapConcurrent: creations racing past the cap end with exactly
// the cap stored. On PostgreSQL they run on separate connections, as on
// separate nodes.
func testAPIKeyCapConcurrent(t *testing.T, s sealpost.Store) {
	ctx := t.Context()
	a := createUser(t, s, "alice")
	const tries = sealpost.MaxAPIKeysPerAccount + 30
	codes := make([]string, tries)
	var wg sync.WaitGroup
	for i := range tries {
		wg.Go(func() {
			k, _, err := sealpost.NewAPIKey(a.ID, fmt.Sprintf("k%d", i), nil)
			if err != nil {
				codes[i] = err.Error()
				return
			}
			codes[i] = sealpost.ErrorCode(s.CreateAPIKey(ctx, k))
		})
	}
	wg.Wait()
	created, limited := tallyCreations(t, codes)
	keys, err := s.APIKeys(ctx, a.ID)
	if err != nil {
		t.Fatalf("APIKeys: %v", err)
	}
	if created != sealpost.MaxAPIKeysPerAccount || limited != tries-created || len(keys) != sealpost.MaxAPIKeysPerAccount {
		t.Errorf("%d created, %d refused, %d stored; want %d, %d, %d", created, limited, len(keys), sealpost.MaxAPIKeysPerAccount, tries-sealpost.MaxAPIKeysPerAccount, sealpost.MaxAPIKeysPerAccount)
	}
}

// testChildAccountCap: each kind of child is capped on its own, per parent,
// also when creations race.
func testChildAccountCap(t *testing.T, s sealpost.Store) {
	ctx := t.Context()
	parent := createUser(t, s, "parent")
	other := createUser(t, s, "other")
	const limit, tries = 5, 16
	codes := make([]string, tries)
	var wg sync.WaitGroup
	for i := range tries {
		wg.Go(func() {
			a := &sealpost.Account{Kind: sealpost.KindSubuser, ParentID: parent.ID, Username: fmt.Sprintf("sub%d", i), Email: "s@example.net"}
			codes[i] = sealpost.ErrorCode(s.CreateChildAccount(ctx, a, limit))
		})
	}
	wg.Wait()
	created, _ := tallyCreations(t, codes)
	subs, err := s.ChildAccounts(ctx, parent.ID, sealpost.KindSubuser, sealpost.SubuserFilter{})
	if err != nil {
		t.Fatalf("ChildAccounts: %v", err)
	}
	if created != limit || len(subs) != limit {
		t.Errorf("%d subusers created, %d stored; want %d", created, len(subs), limit)
	}
	err = s.CreateChildAccount(ctx, &sealpost.Account{Kind: sealpost.KindSubuser, ParentID: parent.ID, Username: "late", Email: "s@example.net"}, limit)
	wantCode(t, err, sealpost.ELIMIT, "a subuser past the cap")
	if f := sealpost.ErrorFields(err); len(f) != 1 || f[0].Message != "There is a limit of 5 subusers on your account." {
		t.Errorf("cap error fields %+v, want the limit named", f)
	}

	// Customer accounts and other parents count separately.
	publicID, err := sealpost.NewPublicAccountID()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateChildAccount(ctx, &sealpost.Account{Kind: sealpost.KindCustomer, ParentID: parent.ID, PublicID: publicID, Email: "c@example.net"}, limit); err != nil {
		t.Errorf("a customer account beside %d subusers: %v", limit, err)
	}
	if err := s.CreateChildAccount(ctx, &sealpost.Account{Kind: sealpost.KindSubuser, ParentID: other.ID, Username: "others", Email: "s@example.net"}, limit); err != nil {
		t.Errorf("another parent's subuser: %v", err)
	}
	err = s.CreateChildAccount(ctx, &sealpost.Account{Kind: sealpost.KindSubuser, ParentID: other.ID + parent.ID + 1000, Username: "orphan", Email: "s@example.net"}, limit)
	wantCode(t, err, sealpost.ENOTFOUND, "a subuser of a parent that does not exist")
}

// testDisablingMakesPendingDue: disabling an account makes its pending
// deliveries due at once, whatever their retry time, and leaves other
// accounts' alone; a recipient can then end dropped.
func testDisablingMakesPendingDue(t *testing.T, s sealpost.Store) {
	ctx := t.Context()
	p := createUser(t, s, "parent")
	sub := createSubuser(t, s, p, "sub")
	t0 := baseTime()
	m := newMessage(sub.ID, "xid", t0, "a@x.test")
	other := newMessage(p.ID, "pxid", t0, "b@y.test")
	enqueue(t, s, []*sealpost.Message{m, other})
	ds := claim(t, s, "w1", t0, time.Minute, 10)
	if len(ds) != 2 {
		t.Fatalf("claim: %d deliveries, want 2", len(ds))
	}
	later := t0.Add(time.Hour)
	for _, d := range ds {
		complete(t, s, "w1", sealpost.DeliveryCompletion{
			DeliveryID:    d.ID,
			Recipients:    []sealpost.RecipientUpdate{{RecipientID: d.Message.Recipients[0].ID, State: sealpost.StateQueued}},
			NextAttemptAt: later,
		})
	}
	if ds := claim(t, s, "w2", t0.Add(time.Minute), time.Minute, 10); len(ds) != 0 {
		t.Fatalf("claim before the retry: %v, want none", deliveryIDs(ds))
	}
	if err := s.SetAccountDisabled(ctx, sub.ID, true); err != nil {
		t.Fatalf("SetAccountDisabled: %v", err)
	}
	ds = claim(t, s, "w2", t0.Add(time.Minute), time.Minute, 10)
	if len(ds) != 1 || ds[0].Message.AccountID != sub.ID {
		t.Fatalf("claim after disabling: %v, want the disabled account's one", deliveryIDs(ds))
	}
	complete(t, s, "w2", sealpost.DeliveryCompletion{
		DeliveryID: ds[0].ID,
		Recipients: []sealpost.RecipientUpdate{{RecipientID: m.Recipients[0].ID, State: sealpost.StateDropped}},
		Events:     []sealpost.Event{newEvent(sub.ID, sealpost.EventDropped, "dropped-a")},
	})
	if got := recipientStates(t, s, sub.ID, "xid"); len(got) != 1 || got[0].State != sealpost.StateDropped {
		t.Errorf("RecipientStates = %+v, want one dropped", got)
	}
	if ds := claim(t, s, "w3", later.Add(time.Hour), time.Minute, 10); len(ds) != 1 || ds[0].Message.AccountID != p.ID {
		t.Errorf("claim at the retry time: %v, want only the parent's", deliveryIDs(ds))
	}
	wantCode(t, s.SetAccountDisabled(ctx, sub.ID+p.ID+1000, true), sealpost.ENOTFOUND, "SetAccountDisabled of an unknown account")
}

// tallyCreations counts the outcomes of racing creations, by error code:
// stored, or refused at a cap. Any other outcome fails t.
func tallyCreations(t *testing.T, codes []string) (created, limited int) {
	t.Helper()
	for i, c := range codes {
		switch c {
		case "":
			created++
		case sealpost.ELIMIT:
			limited++
		default:
			t.Errorf("creation %d: %s", i, c)
		}
	}
	return created, limited
}
