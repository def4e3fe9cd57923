package storetest

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
)

func readWebhook(t *testing.T, s sealpost.Store, accountID int64) sealpost.EventWebhookSettings {
	t.Helper()
	got, err := s.EventWebhookSettings(t.Context(), accountID)
	if err != nil {
		t.Fatalf("EventWebhookSettings(%d): %v", accountID, err)
	}
	return got
}

func readSigningKey(t *testing.T, s sealpost.Store, accountID int64) []byte {
	t.Helper()
	got, err := s.EventWebhookSigningKey(t.Context(), accountID)
	if err != nil {
		t.Fatalf("EventWebhookSigningKey(%d): %v", accountID, err)
	}
	return got
}

func boolPatch(bools map[string]bool) sealpost.EventWebhookPatch {
	return sealpost.EventWebhookPatch{Bools: bools}
}

// eventKinds are the kinds of event sealpost produces.
var eventKinds = []sealpost.EventKind{
	sealpost.EventProcessed, sealpost.EventDelivered, sealpost.EventDeferred, sealpost.EventBounce, sealpost.EventDropped,
}

// SubscribeAll turns the webhook on, to a URL, for every kind of event
// sealpost produces, so that a store queues all of them for it.
func SubscribeAll() sealpost.EventWebhookPatch {
	bools := map[string]bool{"enabled": true}
	for _, k := range eventKinds {
		bools[string(k)] = true
	}
	return sealpost.EventWebhookPatch{URL: ptr("https://hooks.example.com/all"), Bools: bools}
}

// createSubscriber is a user whose Event Webhook is on and wants every kind
// of event, so that all of them are queued for it.
func createSubscriber(t *testing.T, s sealpost.Store, username string) *sealpost.Account {
	t.Helper()
	a := createUser(t, s, username)
	if _, err := s.UpdateEventWebhookSettings(t.Context(), a.ID, SubscribeAll()); err != nil {
		t.Fatalf("UpdateEventWebhookSettings(%s): %v", username, err)
	}
	return a
}

func testEventWebhookDefault(t *testing.T, s sealpost.Store) {
	a := createUser(t, s, "alice")
	for range 2 {
		if got := readWebhook(t, s, a.ID); got != (sealpost.EventWebhookSettings{}) {
			t.Errorf("EventWebhookSettings of a new account = %+v, want every member off and no url", got)
		}
	}
	if key := readSigningKey(t, s, a.ID); key != nil {
		t.Errorf("EventWebhookSigningKey of a new account = %x, want nil", key)
	}
	// An empty patch on an account that never had settings stores the default.
	got, err := s.UpdateEventWebhookSettings(t.Context(), a.ID, sealpost.EventWebhookPatch{})
	if err != nil {
		t.Fatalf("UpdateEventWebhookSettings(empty): %v", err)
	}
	if got != (sealpost.EventWebhookSettings{}) {
		t.Errorf("UpdateEventWebhookSettings(empty) on a new account = %+v, want the default", got)
	}
}

func testEventWebhookPatch(t *testing.T, s sealpost.Store) {
	ctx := t.Context()
	a := createUser(t, s, "alice")
	all := map[string]bool{}
	for _, name := range []string{
		"enabled", "group_resubscribe", "delivered", "group_unsubscribe", "spam_report",
		"bounce", "deferred", "unsubscribe", "processed", "open", "click", "dropped",
	} {
		all[name] = true
	}
	allOff := map[string]bool{}
	for k := range all {
		allOff[k] = false
	}
	steps := []struct {
		name  string
		patch sealpost.EventWebhookPatch
	}{
		{"url", sealpost.EventWebhookPatch{URL: ptr("https://hooks.example.com/a")}},
		{"enabled and delivered", boolPatch(map[string]bool{"enabled": true, "delivered": true})},
		{"bounce", boolPatch(map[string]bool{"bounce": true})},
		{"delivered off, url changed", sealpost.EventWebhookPatch{Bools: map[string]bool{"delivered": false}, URL: ptr("http://127.0.0.1:8080/hook?x=1")}},
		{"empty patch", sealpost.EventWebhookPatch{}},
		{"every member on", boolPatch(all)},
		{"same values again", boolPatch(all)},
		{"every member off, url cleared", sealpost.EventWebhookPatch{Bools: allOff, URL: ptr("")}},
		{"one member per kind", boolPatch(map[string]bool{"processed": true, "deferred": true, "dropped": true, "open": true})},
	}
	var want sealpost.EventWebhookSettings
	for _, st := range steps {
		want = st.patch.Apply(want)
		got, err := s.UpdateEventWebhookSettings(ctx, a.ID, st.patch)
		if err != nil {
			t.Fatalf("%s: UpdateEventWebhookSettings: %v", st.name, err)
		}
		if got != want {
			t.Errorf("%s: UpdateEventWebhookSettings returned %+v, want %+v", st.name, got, want)
		}
		if got := readWebhook(t, s, a.ID); got != want {
			t.Errorf("%s: EventWebhookSettings after the patch = %+v, want %+v", st.name, got, want)
		}
	}
}

func testEventWebhookIsolated(t *testing.T, s sealpost.Store) {
	ctx := t.Context()
	a := createUser(t, s, "alice")
	sub := createSubuser(t, s, a, "sub")
	b := createUser(t, s, "bob")
	want := map[int64]sealpost.EventWebhookSettings{a.ID: {}, sub.ID: {}, b.ID: {}}
	steps := []struct {
		account int64
		patch   sealpost.EventWebhookPatch
	}{
		{a.ID, sealpost.EventWebhookPatch{Bools: map[string]bool{"enabled": true}, URL: ptr("https://a.example/hook")}},
		{sub.ID, boolPatch(map[string]bool{"bounce": true})},
		{b.ID, sealpost.EventWebhookPatch{URL: ptr("https://b.example/hook")}},
		{a.ID, boolPatch(map[string]bool{"delivered": true})},
		{sub.ID, sealpost.EventWebhookPatch{Bools: map[string]bool{"enabled": true}, URL: ptr("https://sub.example/hook")}},
	}
	for i, st := range steps {
		if _, err := s.UpdateEventWebhookSettings(ctx, st.account, st.patch); err != nil {
			t.Fatalf("step %d: UpdateEventWebhookSettings: %v", i, err)
		}
		want[st.account] = st.patch.Apply(want[st.account])
		for id, w := range want {
			if got := readWebhook(t, s, id); got != w {
				t.Errorf("step %d: EventWebhookSettings(%d) = %+v, want %+v", i, id, got, w)
			}
		}
	}
	if err := s.SetEventWebhookSigningKey(ctx, a.ID, []byte("key of a")); err != nil {
		t.Fatalf("SetEventWebhookSigningKey: %v", err)
	}
	for _, id := range []int64{sub.ID, b.ID} {
		if key := readSigningKey(t, s, id); key != nil {
			t.Errorf("EventWebhookSigningKey(%d) = %q after setting another account's, want nil", id, key)
		}
	}
}

func testEventWebhookNotFound(t *testing.T, s sealpost.Store) {
	ctx := t.Context()
	a := createUser(t, s, "alice")
	for _, id := range []int64{0, -1, a.ID + 1000} {
		_, err := s.EventWebhookSettings(ctx, id)
		wantCode(t, err, sealpost.ENOTFOUND, fmt.Sprintf("EventWebhookSettings(%d)", id))
		_, err = s.UpdateEventWebhookSettings(ctx, id, sealpost.EventWebhookPatch{URL: ptr("https://x.example/")})
		wantCode(t, err, sealpost.ENOTFOUND, fmt.Sprintf("UpdateEventWebhookSettings(%d)", id))
		_, err = s.UpdateEventWebhookSettings(ctx, id, sealpost.EventWebhookPatch{})
		wantCode(t, err, sealpost.ENOTFOUND, fmt.Sprintf("UpdateEventWebhookSettings(%d, empty patch)", id))
		_, err = s.EventWebhookSigningKey(ctx, id)
		wantCode(t, err, sealpost.ENOTFOUND, fmt.Sprintf("EventWebhookSigningKey(%d)", id))
		err = s.SetEventWebhookSigningKey(ctx, id, []byte("k"))
		wantCode(t, err, sealpost.ENOTFOUND, fmt.Sprintf("SetEventWebhookSigningKey(%d, key)", id))
		err = s.SetEventWebhookSigningKey(ctx, id, nil)
		wantCode(t, err, sealpost.ENOTFOUND, fmt.Sprintf("SetEventWebhookSigningKey(%d, nil)", id))
	}

	// A deleted account's settings go with it.
	if _, err := s.UpdateEventWebhookSettings(ctx, a.ID, boolPatch(map[string]bool{"bounce": true})); err != nil {
		t.Fatalf("UpdateEventWebhookSettings: %v", err)
	}
	if err := s.SetEventWebhookSigningKey(ctx, a.ID, []byte("k")); err != nil {
		t.Fatalf("SetEventWebhookSigningKey: %v", err)
	}
	if err := s.DeleteAccount(ctx, a.ID); err != nil {
		t.Fatalf("DeleteAccount: %v", err)
	}
	_, err := s.EventWebhookSettings(ctx, a.ID)
	wantCode(t, err, sealpost.ENOTFOUND, "EventWebhookSettings of a deleted account")
	_, err = s.EventWebhookSigningKey(ctx, a.ID)
	wantCode(t, err, sealpost.ENOTFOUND, "EventWebhookSigningKey of a deleted account")
}

func testEventWebhookSigningKey(t *testing.T, s sealpost.Store) {
	ctx := t.Context()
	a := createUser(t, s, "alice")
	// Bytes that text columns would mangle: NUL, invalid UTF-8.
	keys := [][]byte{
		bytes.Repeat([]byte{0x30, 0x81, 0x87, 0x02, 0x01, 0x00, 0xff, 0x00}, 18),
		[]byte("a second key"),
	}
	settings := sealpost.EventWebhookPatch{Bools: map[string]bool{"enabled": true, "bounce": true}, URL: ptr("https://a.example/hook")}
	want, err := s.UpdateEventWebhookSettings(ctx, a.ID, settings)
	if err != nil {
		t.Fatalf("UpdateEventWebhookSettings: %v", err)
	}
	for _, key := range keys {
		if err := s.SetEventWebhookSigningKey(ctx, a.ID, key); err != nil {
			t.Fatalf("SetEventWebhookSigningKey: %v", err)
		}
		if got := readSigningKey(t, s, a.ID); !bytes.Equal(got, key) {
			t.Errorf("EventWebhookSigningKey = %x, want %x", got, key)
		}
		if got := readWebhook(t, s, a.ID); got != want {
			t.Errorf("EventWebhookSettings after setting the key = %+v, want %+v (unchanged)", got, want)
		}
	}
	// Patching the settings keeps the key.
	want, err = s.UpdateEventWebhookSettings(ctx, a.ID, boolPatch(map[string]bool{"delivered": true}))
	if err != nil {
		t.Fatalf("UpdateEventWebhookSettings: %v", err)
	}
	if got := readSigningKey(t, s, a.ID); !bytes.Equal(got, keys[len(keys)-1]) {
		t.Errorf("EventWebhookSigningKey after a settings patch = %x, want %x", got, keys[len(keys)-1])
	}
	if err := s.SetEventWebhookSigningKey(ctx, a.ID, nil); err != nil {
		t.Fatalf("SetEventWebhookSigningKey(nil): %v", err)
	}
	if got := readSigningKey(t, s, a.ID); got != nil {
		t.Errorf("EventWebhookSigningKey after turning signing off = %x, want nil", got)
	}
	if got := readWebhook(t, s, a.ID); got != want {
		t.Errorf("EventWebhookSettings after turning signing off = %+v, want %+v", got, want)
	}

	// The key can be set on an account that never stored settings.
	b := createUser(t, s, "bob")
	if err := s.SetEventWebhookSigningKey(ctx, b.ID, keys[0]); err != nil {
		t.Fatalf("SetEventWebhookSigningKey on a new account: %v", err)
	}
	if got := readSigningKey(t, s, b.ID); !bytes.Equal(got, keys[0]) {
		t.Errorf("EventWebhookSigningKey of the new account = %x, want %x", got, keys[0])
	}
	if got := readWebhook(t, s, b.ID); got != (sealpost.EventWebhookSettings{}) {
		t.Errorf("EventWebhookSettings of the new account after setting a key = %+v, want the default", got)
	}
}

// testEventWebhookConcurrentPatches checks that each patch is applied to
// the value the one before left: a read-modify-write outside one
// transaction would lose members.
func testEventWebhookConcurrentPatches(t *testing.T, s sealpost.Store) {
	a := createUser(t, s, "alice")
	names := []string{
		"enabled", "group_resubscribe", "delivered", "group_unsubscribe", "spam_report",
		"bounce", "deferred", "unsubscribe", "processed", "open", "click", "dropped",
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for _, name := range names {
		wg.Go(func() {
			<-start
			if _, err := s.UpdateEventWebhookSettings(t.Context(), a.ID, boolPatch(map[string]bool{name: true})); err != nil {
				t.Errorf("UpdateEventWebhookSettings(%s): %v", name, err)
			}
		})
	}
	close(start)
	wg.Wait()
	want := sealpost.EventWebhookSettings{}
	for _, name := range names {
		want = boolPatch(map[string]bool{name: true}).Apply(want)
	}
	if got := readWebhook(t, s, a.ID); got != want {
		t.Errorf("EventWebhookSettings after concurrent patches = %+v, want %+v (a patch was lost)", got, want)
	}
}

// testEventWebhookBacklog: the backlog counts the account's waiting events
// alone, dates the first in line, and reports a failed post's retry until
// a post works.
func testEventWebhookBacklog(t *testing.T, s sealpost.Store) {
	ctx := t.Context()
	a := createSubscriber(t, s, "alice")
	other := createSubscriber(t, s, "bob")
	read := func(id int64) sealpost.EventWebhookBacklog {
		t.Helper()
		b, err := s.EventWebhookBacklog(ctx, id)
		if err != nil {
			t.Fatalf("EventWebhookBacklog(%d): %v", id, err)
		}
		return b
	}
	if b := read(a.ID); b != (sealpost.EventWebhookBacklog{}) {
		t.Errorf("backlog of a new account = %+v, want zero", b)
	}
	before := time.Now().Add(-time.Second)
	storeEvents(t, s, a.ID, newEvent(a.ID, sealpost.EventProcessed, "e1"), newEvent(a.ID, sealpost.EventDelivered, "e2"))
	storeEvents(t, s, other.ID, newEvent(other.ID, sealpost.EventProcessed, "o1"))
	b := read(a.ID)
	if b.Pending != 2 || b.Oldest.Before(before) || b.Attempts != 0 || !b.NextAttempt.IsZero() || !b.FailingSince.IsZero() {
		t.Errorf("backlog with two waiting events = %+v", b)
	}

	now := time.Now()
	batch := claimInLane(t, s, "p", sealpost.AnyOutbox, now)
	for batch != nil && batch.AccountID != a.ID {
		if err := s.AckEventBatch(ctx, batch); err != nil {
			t.Fatal(err)
		}
		batch = claimInLane(t, s, "p", sealpost.AnyOutbox, now)
	}
	if batch == nil {
		t.Fatal("no batch of alice's to claim")
	}
	next := now.Add(time.Hour)
	if err := s.RetryEventBatch(ctx, batch, next); err != nil {
		t.Fatalf("RetryEventBatch: %v", err)
	}
	b = read(a.ID)
	if b.Pending != 2 || b.Attempts != 1 || !b.NextAttempt.Equal(time.Unix(0, next.UnixNano())) || b.FailingSince.IsZero() {
		t.Errorf("backlog after a failed post = %+v, want 2 pending, 1 attempt, next at %v, failing", b, next)
	}
	if _, err := s.EventWebhookBacklog(ctx, a.ID+other.ID+1000); sealpost.ErrorCode(err) != sealpost.ENOTFOUND {
		t.Errorf("backlog of an unknown account: %v, want ENOTFOUND", err)
	}
}
