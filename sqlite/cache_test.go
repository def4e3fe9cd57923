package sqlite

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
)

func newTestDB(t testing.TB, opts ...Option) *DB {
	t.Helper()
	db, err := Open(t.Context(), filepath.Join(t.TempDir(), "sealpost.db"), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func mustAccount(t testing.TB, db *DB, username string) *sealpost.Account {
	t.Helper()
	a := &sealpost.Account{Kind: sealpost.KindUser, Username: username, Email: username + "@example.com"}
	if err := db.CreateAccount(t.Context(), a); err != nil {
		t.Fatal(err)
	}
	return a
}

func mustKey(t testing.TB, db *DB, accountID int64) *sealpost.APIKey {
	t.Helper()
	k, _, err := sealpost.NewAPIKey(accountID, "key", []string{sealpost.ScopeEnforcedTLSRead})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CreateAPIKey(t.Context(), k); err != nil {
		t.Fatal(err)
	}
	return k
}

// TestConnectionPragmas checks every connection of both pools, not just the
// first: a PRAGMA run once on one connection would leave the others without.
// Commits are durable (synchronous=FULL) unless asked otherwise.
func TestConnectionPragmas(t *testing.T) {
	for _, tt := range []struct {
		name        string
		opts        []Option
		synchronous int64
	}{
		{"default", nil, 2}, // FULL
		{"full", []Option{WithSynchronous(SynchronousFull)}, 2},
		{"normal", []Option{WithSynchronous(SynchronousNormal)}, 1},
	} {
		t.Run(tt.name, func(t *testing.T) { checkConnectionPragmas(t, newTestDB(t, tt.opts...), tt.synchronous) })
	}
}

func checkConnectionPragmas(t *testing.T, db *DB, synchronous int64) {
	ctx := t.Context()
	check := func(name string, conns int, queryOnly int, open func() (*sql.Conn, error)) {
		var held []*sql.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for i := range conns {
			c, err := open()
			if err != nil {
				t.Fatalf("%s conn %d: %v", name, i, err)
			}
			held = append(held, c)
			want := map[string]any{
				"foreign_keys": int64(1),
				"busy_timeout": int64(5000),
				"synchronous":  synchronous,
				"journal_mode": "wal",
				"query_only":   int64(queryOnly),
			}
			for pragma, w := range want {
				var got any
				if err := c.QueryRowContext(ctx, "PRAGMA "+pragma).Scan(&got); err != nil {
					t.Fatalf("%s conn %d: PRAGMA %s: %v", name, i, pragma, err)
				}
				if fmt.Sprint(got) != fmt.Sprint(w) {
					t.Errorf("%s conn %d: PRAGMA %s = %v, want %v", name, i, pragma, got, w)
				}
			}
		}
	}
	check("read", 4, 1, func() (*sql.Conn, error) { return db.read.Conn(ctx) })
	check("write", 1, 0, func() (*sql.Conn, error) { return db.write.Conn(ctx) })
}

// TestEveryWriteBumpsGeneration is what makes the cache sound: a write that
// forgot to bump would leave stale entries in use.
func TestEveryWriteBumpsGeneration(t *testing.T) {
	ctx := t.Context()
	db := newTestDB(t)
	a := mustAccount(t, db, "alice")
	k := mustKey(t, db, a.ID)
	doomed := mustAccount(t, db, "doomed")
	sub := &sealpost.Account{Kind: sealpost.KindSubuser, ParentID: a.ID, Username: "sub", Email: "sub@example.com"}
	if err := db.CreateAccount(ctx, sub); err != nil {
		t.Fatal(err)
	}
	firstDomain := func() int64 {
		ds, err := db.AuthenticatedDomains(ctx, a.ID)
		if err != nil || len(ds) == 0 {
			t.Fatalf("AuthenticatedDomains = %v, %v", ds, err)
		}
		return ds[0].ID
	}
	writes := []struct {
		name string
		fn   func() error
	}{
		{"CreateAccount", func() error {
			return db.CreateAccount(ctx, &sealpost.Account{Kind: sealpost.KindUser, Username: "bob", Email: "bob@example.com"})
		}},
		{"CreateAccount refused", func() error {
			return db.CreateAccount(ctx, &sealpost.Account{Kind: sealpost.KindUser, Username: "bob", Email: "bob@example.com"})
		}},
		{"SetAccountDisabled", func() error { return db.SetAccountDisabled(ctx, a.ID, true) }},
		{"CreateAPIKey", func() error { mustKey(t, db, a.ID); return nil }},
		{"UpdateAPIKey", func() error {
			_, err := db.UpdateAPIKey(ctx, a.ID, k.ID, sealpost.APIKeyUpdate{Scopes: []string{sealpost.ScopeMailSend}})
			return err
		}},
		{"UpdateEnforcedTLS", func() error {
			_, err := db.UpdateEnforcedTLS(ctx, a.ID, sealpost.EnforcedTLSPatch{RequireTLS: new(true)})
			return err
		}},
		{"UpdateEnforcedTLS empty", func() error {
			_, err := db.UpdateEnforcedTLS(ctx, a.ID, sealpost.EnforcedTLSPatch{})
			return err
		}},
		{"DeleteAPIKey", func() error { return db.DeleteAPIKey(ctx, a.ID, k.ID, nil) }},
		{"PutDomainTLSPolicy", func() error {
			_, _, err := db.PutDomainTLSPolicy(ctx, a.ID, sealpost.DomainTLSPolicy{Domain: "example.net", Policy: sealpost.DefaultEnforcedTLS()})
			return err
		}},
		{"DeleteDomainTLSPolicy", func() error { return db.DeleteDomainTLSPolicy(ctx, a.ID, "example.net") }},
		{"CreateAuthenticatedDomain", func() error {
			_, err := db.CreateAuthenticatedDomain(ctx, a.ID, testAuthDomain())
			return err
		}},
		{"SetAuthenticatedDomainValid", func() error { return db.SetAuthenticatedDomainValid(ctx, a.ID, firstDomain(), true) }},
		{"SetReturnPathValid", func() error { return db.SetReturnPathValid(ctx, a.ID, firstDomain(), true) }},
		{"UpdateAuthenticatedDomain", func() error {
			_, err := db.UpdateAuthenticatedDomain(ctx, a.ID, firstDomain(), sealpost.AuthenticatedDomainUpdate{Default: new(true)})
			return err
		}},
		{"AssociateAuthenticatedDomain", func() error {
			_, err := db.AssociateAuthenticatedDomain(ctx, a.ID, firstDomain(), sub.ID)
			return err
		}},
		{"DisassociateAuthenticatedDomain", func() error { return db.DisassociateAuthenticatedDomain(ctx, sub.ID) }},
		{"DeleteAuthenticatedDomain", func() error {
			ds, err := db.AuthenticatedDomains(ctx, a.ID)
			if err != nil {
				return err
			}
			return db.DeleteAuthenticatedDomain(ctx, a.ID, ds[0].ID)
		}},
		{"PutMTASTSPolicy", func() error { return db.PutMTASTSPolicy(ctx, testMTASTSPolicy()) }},
		{"DeleteAccount", func() error { return db.DeleteAccount(ctx, doomed.ID) }},
	}
	for _, w := range writes {
		before := db.cache.gen.Load()
		err := w.fn()
		if err != nil && w.name != "CreateAccount refused" {
			t.Fatalf("%s: %v", w.name, err)
		}
		if after := db.cache.gen.Load(); after <= before {
			t.Errorf("%s did not bump the cache generation (%d -> %d)", w.name, before, after)
		}
	}
}

// TestCacheServesHits proves reads are answered from memory by taking the
// database read path away, and that a write sends them back to it.
func TestCacheServesHits(t *testing.T) {
	ctx := t.Context()
	db := newTestDB(t)
	a := mustAccount(t, db, "alice")
	k := mustKey(t, db, a.ID)
	other := mustAccount(t, db, "other")

	if _, err := db.LookupAPIKey(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.EnforcedTLS(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	db.lookupStmt.Close()
	db.settingsStmt.Close()

	var hits []*sealpost.Principal
	for range 2 {
		p, err := db.LookupAPIKey(ctx, k.ID)
		if err != nil {
			t.Fatalf("LookupAPIKey was not served from the cache: %v", err)
		}
		hits = append(hits, p)
	}
	if hits[0].Key == hits[1].Key || hits[0].Account == hits[1].Account || &hits[0].Key.Scopes[0] == &hits[1].Key.Scopes[0] || &hits[0].Key.SecretHash[0] == &hits[1].Key.SecretHash[0] {
		t.Error("LookupAPIKey handed out shared values; callers could change each other's")
	}
	if s, err := db.EnforcedTLS(ctx, a.ID); err != nil || s != sealpost.DefaultEnforcedTLS() {
		t.Fatalf("EnforcedTLS was not served from the cache: %+v, %v", s, err)
	}

	// Any write, even to another account, sends reads back to the database.
	if err := db.SetAccountDisabled(ctx, other.ID, true); err != nil {
		t.Fatal(err)
	}
	if _, err := db.LookupAPIKey(ctx, k.ID); err == nil {
		t.Error("LookupAPIKey after a write was served from the cache")
	}
	if _, err := db.EnforcedTLS(ctx, a.ID); err == nil {
		t.Error("EnforcedTLS after a write was served from the cache")
	}
}

func testAuthDomain() sealpost.AuthenticatedDomain {
	return sealpost.AuthenticatedDomain{Domain: "example.com", Subdomain: "em", Selector: sealpost.DKIMSelector,
		KeyAlgorithm: sealpost.DKIMKeyEd25519, PrivateKey: []byte{0x30, 0x01}}
}

func testMTASTSPolicy() sealpost.CachedMTASTSPolicy {
	at := time.Unix(1_800_000_000, 0)
	return sealpost.CachedMTASTSPolicy{Domain: "sts.example", ID: "1",
		Policy:    sealpost.MTASTSPolicy{Mode: "enforce", MX: []string{"mx.sts.example"}, MaxAge: 86400},
		FetchedAt: at, ExpiresAt: at.Add(24 * time.Hour)}
}

// TestDeliveryReadsCached: the reads every delivery attempt makes are
// answered from memory, "none" answers included where the table is serve's
// alone, until a write; then they go back to the database. The database
// read path is taken away to tell the two apart.
func TestDeliveryReadsCached(t *testing.T) {
	ctx := t.Context()
	db := newTestDB(t)
	a := mustAccount(t, db, "alice")
	other := mustAccount(t, db, "other")
	if _, _, err := db.PutDomainTLSPolicy(ctx, a.ID, sealpost.DomainTLSPolicy{Domain: "policy.example", Policy: sealpost.DefaultEnforcedTLS()}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateAuthenticatedDomain(ctx, a.ID, testAuthDomain()); err != nil {
		t.Fatal(err)
	}
	if err := db.PutMTASTSPolicy(ctx, testMTASTSPolicy()); err != nil {
		t.Fatal(err)
	}
	reads := []struct {
		name     string
		notFound bool
		read     func() (any, error)
	}{
		{"Account", false, func() (any, error) { return db.Account(ctx, a.ID) }},
		{"DomainTLSPolicy", false, func() (any, error) { return db.DomainTLSPolicy(ctx, a.ID, "policy.example") }},
		{"DomainTLSPolicy none", true, func() (any, error) { return db.DomainTLSPolicy(ctx, a.ID, "none.example") }},
		{"AuthenticatedDomains", false, func() (any, error) { return db.AuthenticatedDomains(ctx, a.ID) }},
		{"AuthenticatedDomains none", false, func() (any, error) { return db.AuthenticatedDomains(ctx, other.ID) }},
		{"AssociatedAuthenticatedDomain none", true, func() (any, error) { return db.AssociatedAuthenticatedDomain(ctx, other.ID) }},
		{"CachedMTASTSPolicy", false, func() (any, error) { return db.CachedMTASTSPolicy(ctx, "sts.example") }},
		{"CachedMTASTSPolicy none", true, func() (any, error) { return db.CachedMTASTSPolicy(ctx, "none.example") }},
	}
	first := make([]any, len(reads))
	for i, r := range reads {
		v, err := r.read()
		if r.notFound != (sealpost.ErrorCode(err) == sealpost.ENOTFOUND) || (!r.notFound && err != nil) {
			t.Fatalf("%s: %v", r.name, err)
		}
		first[i] = v
	}
	read := db.read
	db.read = closedDB(t)
	defer func() { db.read = read }()
	for i, r := range reads {
		v, err := r.read()
		if r.notFound != (sealpost.ErrorCode(err) == sealpost.ENOTFOUND) || (!r.notFound && err != nil) {
			t.Errorf("%s was not served from the cache: %v", r.name, err)
			continue
		}
		if !r.notFound && !reflect.DeepEqual(v, first[i]) {
			t.Errorf("%s from the cache = %+v, want %+v", r.name, v, first[i])
		}
	}
	if acct, err := db.Account(ctx, a.ID); err == nil {
		acct.Disabled = true
		if again, err := db.Account(ctx, a.ID); err != nil || again.Disabled {
			t.Error("Account handed out the cached value itself; a caller changed it")
		}
	}

	// A write, even to another account, sends every read back to the
	// database.
	if err := db.SetAccountDisabled(ctx, other.ID, true); err != nil {
		t.Fatal(err)
	}
	for _, r := range reads {
		if _, err := r.read(); err == nil || sealpost.ErrorCode(err) == sealpost.ENOTFOUND {
			t.Errorf("%s after a write was served from the cache (%v)", r.name, err)
		}
	}
}

// closedDB is a database handle whose every use fails.
func closedDB(t *testing.T) *sql.DB {
	t.Helper()
	d, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "closed.db"))
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	return d
}

func TestCacheDisabled(t *testing.T) {
	ctx := t.Context()
	db := newTestDB(t)
	db.SetCacheEnabled(false)
	a := mustAccount(t, db, "alice")
	k := mustKey(t, db, a.ID)
	for range 2 {
		if _, err := db.LookupAPIKey(ctx, k.ID); err != nil {
			t.Fatal(err)
		}
	}
	db.lookupStmt.Close()
	if _, err := db.LookupAPIKey(ctx, k.ID); err == nil {
		t.Error("LookupAPIKey with the cache off was served from memory")
	}
}

// TestWriteDuringMissRead makes a write commit while a cache miss is between
// its database read and storing the result: that result is from before the
// write and must not be served after it.
func TestWriteDuringMissRead(t *testing.T) {
	ctx := t.Context()
	tests := []struct {
		name  string
		read  func(db *DB, a *sealpost.Account, k *sealpost.APIKey) error
		write func(db *DB, a *sealpost.Account, k *sealpost.APIKey) error
		fresh func(db *DB, a *sealpost.Account, k *sealpost.APIKey) error
	}{
		{
			"LookupAPIKey and SetAccountDisabled",
			func(db *DB, a *sealpost.Account, k *sealpost.APIKey) error {
				_, err := db.LookupAPIKey(ctx, k.ID)
				return err
			},
			func(db *DB, a *sealpost.Account, k *sealpost.APIKey) error {
				return db.SetAccountDisabled(ctx, a.ID, true)
			},
			func(db *DB, a *sealpost.Account, k *sealpost.APIKey) error {
				p, err := db.LookupAPIKey(ctx, k.ID)
				if err == nil && !p.Account.Disabled {
					err = fmt.Errorf("account not disabled")
				}
				return err
			},
		},
		{
			"EnforcedTLS and UpdateEnforcedTLS",
			func(db *DB, a *sealpost.Account, k *sealpost.APIKey) error {
				_, err := db.EnforcedTLS(ctx, a.ID)
				return err
			},
			func(db *DB, a *sealpost.Account, k *sealpost.APIKey) error {
				_, err := db.UpdateEnforcedTLS(ctx, a.ID, sealpost.EnforcedTLSPatch{RequireTLS: new(true)})
				return err
			},
			func(db *DB, a *sealpost.Account, k *sealpost.APIKey) error {
				s, err := db.EnforcedTLS(ctx, a.ID)
				if err == nil && !s.RequireTLS {
					err = fmt.Errorf("require_tls not set")
				}
				return err
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := newTestDB(t)
			a := mustAccount(t, db, "alice")
			k := mustKey(t, db, a.ID)

			inWindow, release := make(chan struct{}), make(chan struct{})
			var once sync.Once
			db.cache.afterMiss = func() {
				once.Do(func() {
					close(inWindow)
					<-release
				})
			}
			done := make(chan error)
			go func() { done <- tc.read(db, a, k) }()
			<-inWindow
			if err := tc.write(db, a, k); err != nil {
				t.Fatal(err)
			}
			close(release)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if err := tc.fresh(db, a, k); err != nil {
				t.Errorf("read after the write: %v", err)
			}
		})
	}
}

// TestCacheFreshUnderConcurrentReads changes a key, its account and its
// setting while other goroutines keep refilling the cache, and checks that
// the read right after each change sees it.
func TestCacheFreshUnderConcurrentReads(t *testing.T) {
	ctx := t.Context()
	db := newTestDB(t)
	a := mustAccount(t, db, "alice")
	k := mustKey(t, db, a.ID)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := db.LookupAPIKey(ctx, k.ID); err != nil && sealpost.ErrorCode(err) != sealpost.ENOTFOUND {
					t.Errorf("LookupAPIKey: %v", err)
					return
				}
				if _, err := db.EnforcedTLS(ctx, a.ID); err != nil && sealpost.ErrorCode(err) != sealpost.ENOTFOUND {
					t.Errorf("EnforcedTLS: %v", err)
					return
				}
			}
		})
	}

	settings := []sealpost.EnforcedTLS{
		{RequireTLS: true, Version: sealpost.TLS12},
		{RequireValidCert: true, Version: sealpost.TLS13},
		{Version: sealpost.TLS11},
	}
	scopes := [][]string{{sealpost.ScopeMailSend}, {sealpost.ScopeEnforcedTLSRead, sealpost.ScopeEnforcedTLSUpdate}}
	for i := range 100 {
		want := settings[i%len(settings)]
		patch := sealpost.EnforcedTLSPatch{RequireTLS: &want.RequireTLS, RequireValidCert: &want.RequireValidCert, Version: &want.Version}
		if _, err := db.UpdateEnforcedTLS(ctx, a.ID, patch); err != nil {
			t.Fatal(err)
		}
		if got, err := db.EnforcedTLS(ctx, a.ID); err != nil || got != want {
			t.Fatalf("round %d: EnforcedTLS right after PATCH = %+v, %v; want %+v", i, got, err, want)
		}

		disabled := i%2 == 0
		if err := db.SetAccountDisabled(ctx, a.ID, disabled); err != nil {
			t.Fatal(err)
		}
		if p, err := db.LookupAPIKey(ctx, k.ID); err != nil || p.Account.Disabled != disabled {
			t.Fatalf("round %d: LookupAPIKey right after SetAccountDisabled(%v) = %+v, %v", i, disabled, p, err)
		}

		s := scopes[i%len(scopes)]
		if _, err := db.UpdateAPIKey(ctx, a.ID, k.ID, sealpost.APIKeyUpdate{Scopes: s}); err != nil {
			t.Fatal(err)
		}
		if p, err := db.LookupAPIKey(ctx, k.ID); err != nil || !slices.Equal(p.Key.Scopes, s) {
			t.Fatalf("round %d: LookupAPIKey right after a scope change = %+v, %v; want scopes %q", i, p, err, s)
		}
	}

	if err := db.DeleteAPIKey(ctx, a.ID, k.ID, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := db.LookupAPIKey(ctx, k.ID); sealpost.ErrorCode(err) != sealpost.ENOTFOUND {
		t.Errorf("LookupAPIKey right after DeleteAPIKey: %v, want not found", err)
	}
	if err := db.DeleteAccount(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.EnforcedTLS(ctx, a.ID); sealpost.ErrorCode(err) != sealpost.ENOTFOUND {
		t.Errorf("EnforcedTLS right after DeleteAccount: %v, want not found", err)
	}
	close(stop)
	wg.Wait()
}

// BenchmarkLookupAndSettings measures the two reads of an authenticated
// GET /v3/user/settings/enforced_tls, with and without the cache.
func BenchmarkLookupAndSettings(b *testing.B) {
	for _, cached := range []bool{true, false} {
		name := "uncached"
		if cached {
			name = "cached"
		}
		b.Run(name, func(b *testing.B) {
			ctx := b.Context()
			db := newTestDB(b)
			db.SetCacheEnabled(cached)
			const n = 100
			keys := make([]string, n)
			for i := range keys {
				keys[i] = mustKey(b, db, mustAccount(b, db, fmt.Sprintf("user%d", i)).ID).ID
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					p, err := db.LookupAPIKey(ctx, keys[i%n])
					if err != nil {
						b.Error(err)
						return
					}
					if _, err := db.EnforcedTLS(ctx, p.Account.ID); err != nil {
						b.Error(err)
						return
					}
					i++
				}
			})
		})
	}
}
