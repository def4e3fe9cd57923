package storetest

import (
	"fmt"
	"sync"
	"testing"

	"github.com/sealpost/sealpost"
)

func setting(requireTLS, requireValidCert bool, v sealpost.TLSVersion) sealpost.EnforcedTLS {
	return sealpost.EnforcedTLS{RequireTLS: requireTLS, RequireValidCert: requireValidCert, Version: v}
}

// fullPatch is a patch that sets every field to s's.
func fullPatch(s sealpost.EnforcedTLS) sealpost.EnforcedTLSPatch {
	return sealpost.EnforcedTLSPatch{RequireTLS: ptr(s.RequireTLS), RequireValidCert: ptr(s.RequireValidCert), Version: ptr(s.Version)}
}

func readTLS(t *testing.T, s sealpost.Store, accountID int64) sealpost.EnforcedTLS {
	t.Helper()
	got, err := s.EnforcedTLS(t.Context(), accountID)
	if err != nil {
		t.Fatalf("EnforcedTLS(%d): %v", accountID, err)
	}
	return got
}

func testEnforcedTLSDefault(t *testing.T, s sealpost.Store) {
	a := createUser(t, s, "alice")
	want := setting(false, false, sealpost.TLS11)
	if want != sealpost.DefaultEnforcedTLS() {
		t.Fatalf("DefaultEnforcedTLS() = %+v, want %+v", sealpost.DefaultEnforcedTLS(), want)
	}
	for range 2 {
		if got := readTLS(t, s, a.ID); got != want {
			t.Errorf("EnforcedTLS of a new account = %+v, want %+v", got, want)
		}
	}
}

func testEnforcedTLSPatch(t *testing.T, s sealpost.Store) {
	ctx := t.Context()
	a := createUser(t, s, "alice")
	steps := []struct {
		name  string
		patch sealpost.EnforcedTLSPatch
		want  sealpost.EnforcedTLS
	}{
		{"empty patch on the default", sealpost.EnforcedTLSPatch{}, setting(false, false, sealpost.TLS11)},
		{"require_tls", sealpost.EnforcedTLSPatch{RequireTLS: ptr(true)}, setting(true, false, sealpost.TLS11)},
		{"version", sealpost.EnforcedTLSPatch{Version: ptr(sealpost.TLS12)}, setting(true, false, sealpost.TLS12)},
		{"require_valid_cert", sealpost.EnforcedTLSPatch{RequireValidCert: ptr(true)}, setting(true, true, sealpost.TLS12)},
		{"require_tls off", sealpost.EnforcedTLSPatch{RequireTLS: ptr(false)}, setting(false, true, sealpost.TLS12)},
		{"same value again", sealpost.EnforcedTLSPatch{RequireTLS: ptr(false)}, setting(false, true, sealpost.TLS12)},
		{"empty patch on a changed setting", sealpost.EnforcedTLSPatch{}, setting(false, true, sealpost.TLS12)},
		{"all fields", fullPatch(setting(true, false, sealpost.TLS13)), setting(true, false, sealpost.TLS13)},
		{"two fields", sealpost.EnforcedTLSPatch{RequireValidCert: ptr(true), Version: ptr(sealpost.TLS11)}, setting(true, true, sealpost.TLS11)},
		{"back to the default", fullPatch(sealpost.DefaultEnforcedTLS()), setting(false, false, sealpost.TLS11)},
	}
	for _, st := range steps {
		got, err := s.UpdateEnforcedTLS(ctx, a.ID, st.patch)
		if err != nil {
			t.Fatalf("%s: UpdateEnforcedTLS: %v", st.name, err)
		}
		if got != st.want {
			t.Errorf("%s: UpdateEnforcedTLS returned %+v, want %+v", st.name, got, st.want)
		}
		if got := readTLS(t, s, a.ID); got != st.want {
			t.Errorf("%s: EnforcedTLS after the patch = %+v, want %+v", st.name, got, st.want)
		}
	}
}

func testEnforcedTLSVersions(t *testing.T, s sealpost.Store) {
	ctx := t.Context()
	a := createUser(t, s, "alice")
	// Each version is written from a state holding another, so a store that
	// ignored the write would fail.
	for _, v := range []sealpost.TLSVersion{sealpost.TLS13, sealpost.TLS12, sealpost.TLS11, sealpost.TLS13, sealpost.TLS11, sealpost.TLS12} {
		want := setting(false, false, v)
		got, err := s.UpdateEnforcedTLS(ctx, a.ID, sealpost.EnforcedTLSPatch{Version: ptr(v)})
		if err != nil {
			t.Fatalf("UpdateEnforcedTLS(version %v): %v", v, err)
		}
		if got != want {
			t.Errorf("UpdateEnforcedTLS(version %v) returned %+v, want %+v", v, got, want)
		}
		if got := readTLS(t, s, a.ID); got != want || !got.Version.Valid() {
			t.Errorf("EnforcedTLS after version %v = %+v, want %+v", v, got, want)
		}
	}
}

func testEnforcedTLSIsolated(t *testing.T, s sealpost.Store) {
	ctx := t.Context()
	a := createUser(t, s, "alice")
	sub := createSubuser(t, s, a, "sub")
	b := createUser(t, s, "bob")
	want := map[int64]sealpost.EnforcedTLS{
		a.ID:   sealpost.DefaultEnforcedTLS(),
		sub.ID: sealpost.DefaultEnforcedTLS(),
		b.ID:   sealpost.DefaultEnforcedTLS(),
	}
	steps := []struct {
		account int64
		patch   sealpost.EnforcedTLSPatch
	}{
		{a.ID, sealpost.EnforcedTLSPatch{RequireTLS: ptr(true)}},
		{sub.ID, sealpost.EnforcedTLSPatch{Version: ptr(sealpost.TLS13)}},
		{b.ID, fullPatch(setting(false, true, sealpost.TLS12))},
		{a.ID, sealpost.EnforcedTLSPatch{RequireValidCert: ptr(true)}},
		{sub.ID, sealpost.EnforcedTLSPatch{RequireTLS: ptr(true), Version: ptr(sealpost.TLS11)}},
	}
	for i, st := range steps {
		if _, err := s.UpdateEnforcedTLS(ctx, st.account, st.patch); err != nil {
			t.Fatalf("step %d: UpdateEnforcedTLS: %v", i, err)
		}
		want[st.account] = st.patch.Apply(want[st.account])
		for id, w := range want {
			if got := readTLS(t, s, id); got != w {
				t.Errorf("step %d: EnforcedTLS(%d) = %+v, want %+v", i, id, got, w)
			}
		}
	}
}

func testEnforcedTLSNotFound(t *testing.T, s sealpost.Store) {
	ctx := t.Context()
	a := createUser(t, s, "alice")
	for _, id := range []int64{0, -1, a.ID + 1000} {
		_, err := s.EnforcedTLS(ctx, id)
		wantCode(t, err, sealpost.ENOTFOUND, fmt.Sprintf("EnforcedTLS(%d)", id))
		_, err = s.UpdateEnforcedTLS(ctx, id, fullPatch(setting(true, true, sealpost.TLS13)))
		wantCode(t, err, sealpost.ENOTFOUND, fmt.Sprintf("UpdateEnforcedTLS(%d, full patch)", id))
		// An empty patch changes nothing but must still find the account.
		_, err = s.UpdateEnforcedTLS(ctx, id, sealpost.EnforcedTLSPatch{})
		wantCode(t, err, sealpost.ENOTFOUND, fmt.Sprintf("UpdateEnforcedTLS(%d, empty patch)", id))
	}
	if got := readTLS(t, s, a.ID); got != sealpost.DefaultEnforcedTLS() {
		t.Errorf("EnforcedTLS of the existing account = %+v, want default", got)
	}
}

// testEnforcedTLSFreshness checks that a PATCH is seen by the very next
// read, after reads that would have warmed any cache.
func testEnforcedTLSFreshness(t *testing.T, s sealpost.Store) {
	ctx := t.Context()
	a := createUser(t, s, "alice")
	b := createUser(t, s, "bob")
	want := sealpost.DefaultEnforcedTLS()
	patches := []sealpost.EnforcedTLSPatch{
		{RequireTLS: ptr(true)},
		{Version: ptr(sealpost.TLS13)},
		{RequireValidCert: ptr(true)},
		fullPatch(sealpost.DefaultEnforcedTLS()),
		fullPatch(setting(true, true, sealpost.TLS12)),
	}
	for i, p := range patches {
		for range 3 {
			readTLS(t, s, a.ID)
			readTLS(t, s, b.ID)
		}
		if _, err := s.UpdateEnforcedTLS(ctx, a.ID, p); err != nil {
			t.Fatalf("step %d: UpdateEnforcedTLS: %v", i, err)
		}
		want = p.Apply(want)
		if got := readTLS(t, s, a.ID); got != want {
			t.Errorf("step %d: EnforcedTLS right after the patch = %+v, want %+v", i, got, want)
		}
		if got := readTLS(t, s, b.ID); got != sealpost.DefaultEnforcedTLS() {
			t.Errorf("step %d: other account's EnforcedTLS = %+v, want default", i, got)
		}
	}
}

// testEnforcedTLSConcurrentPatches races full PATCHes against each other and
// against reads on one account. The written states differ in every field,
// so a store that wrote field by field would leave a state nobody wrote.
func testEnforcedTLSConcurrentPatches(t *testing.T, s sealpost.Store) {
	ctx := t.Context()
	a := createUser(t, s, "alice")
	written := []sealpost.EnforcedTLS{
		setting(true, false, sealpost.TLS12),
		setting(false, true, sealpost.TLS13),
	}
	isWritten := func(x sealpost.EnforcedTLS) bool { return x == written[0] || x == written[1] }

	const writers, readers = 50, 4
	start := make(chan struct{})
	writing := make(chan struct{})
	var wg, writersWG sync.WaitGroup
	for i := range writers {
		want := written[i%len(written)]
		writersWG.Go(func() {
			<-start
			got, err := s.UpdateEnforcedTLS(ctx, a.ID, fullPatch(want))
			if err != nil {
				t.Errorf("writer %d: UpdateEnforcedTLS: %v", i, err)
				return
			}
			// The result is the state this write produced, not a later one.
			if got != want {
				t.Errorf("writer %d: UpdateEnforcedTLS returned %+v, want %+v", i, got, want)
			}
		})
	}
	for i := range readers {
		wg.Go(func() {
			<-start
			seenWrite := false
			for n := 0; ; n++ {
				select {
				case <-writing:
					if n > 0 {
						return
					}
				default:
				}
				got, err := s.EnforcedTLS(ctx, a.ID)
				if err != nil {
					t.Errorf("reader %d: EnforcedTLS: %v", i, err)
					return
				}
				switch {
				case isWritten(got):
					seenWrite = true
				case got == sealpost.DefaultEnforcedTLS() && !seenWrite:
				default:
					t.Errorf("reader %d: EnforcedTLS = %+v; want the default (before any write) or one of %+v", i, got, written)
					return
				}
			}
		})
	}
	close(start)
	writersWG.Wait()
	close(writing)
	wg.Wait()

	final := readTLS(t, s, a.ID)
	if !isWritten(final) {
		t.Errorf("EnforcedTLS after concurrent patches = %+v, want exactly one of %+v", final, written)
	}
}

// testEnforcedTLSConcurrentPartialPatches races patches that each set a
// different field: a read-modify-write that is not atomic loses one of them.
func testEnforcedTLSConcurrentPartialPatches(t *testing.T, s sealpost.Store) {
	ctx := t.Context()
	const rounds = 20
	patches := []sealpost.EnforcedTLSPatch{
		{RequireTLS: ptr(true)},
		{RequireValidCert: ptr(true)},
		{Version: ptr(sealpost.TLS13)},
	}
	want := setting(true, true, sealpost.TLS13)

	accounts := make([]*sealpost.Account, rounds)
	for i := range accounts {
		accounts[i] = createUser(t, s, fmt.Sprintf("user%d", i))
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for _, a := range accounts {
		for _, p := range patches {
			wg.Go(func() {
				<-start
				got, err := s.UpdateEnforcedTLS(ctx, a.ID, p)
				if err != nil {
					t.Errorf("UpdateEnforcedTLS(%d): %v", a.ID, err)
					return
				}
				// Whatever else has landed, this patch's own field is set.
				if p.Apply(got) != got {
					t.Errorf("UpdateEnforcedTLS(%d) returned %+v, which lacks its own patch", a.ID, got)
				}
			})
		}
	}
	close(start)
	wg.Wait()
	for _, a := range accounts {
		if got := readTLS(t, s, a.ID); got != want {
			t.Errorf("EnforcedTLS(%d) after concurrent partial patches = %+v, want %+v (an update was lost)", a.ID, got, want)
		}
	}
}
