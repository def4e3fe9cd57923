package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sealpost/sealpost"
	"github.com/sealpost/sealpost/postgres"
	"github.com/sealpost/sealpost/postgres/pgtest"
	"github.com/sealpost/sealpost/storetest"
)

func TestStore(t *testing.T) {
	pgtest.SkipIfUnset(t)
	storetest.Run(t, func(t *testing.T) sealpost.Store {
		return openURL(t, pgtest.URL(t))
	})
}

func openURL(t testing.TB, u string) *postgres.DB {
	t.Helper()
	db, err := postgres.Open(t.Context(), u)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func ptr[T any](v T) *T { return &v }

func wantCode(t *testing.T, err error, want, what string) {
	t.Helper()
	if got := sealpost.ErrorCode(err); got != want {
		t.Errorf("%s: error code %q (err %v), want %q", what, got, err, want)
	}
}

// TestNodes opens two stores on one database, as two sealpost processes
// behind a load balancer would, and checks that each change made through one
// is seen by the other's very next call, after reads that would have filled
// any cache.
func TestNodes(t *testing.T) {
	t.Parallel()
	u := pgtest.URL(t)
	nodeA, nodeB := openURL(t, u), openURL(t, u)
	ctx := t.Context()

	parent := &sealpost.Account{Kind: sealpost.KindUser, Username: "alice", Email: "alice@example.com"}
	if err := nodeA.CreateAccount(ctx, parent); err != nil {
		t.Fatalf("CreateAccount: %v", err)
	}
	key, token, err := sealpost.NewAPIKey(parent.ID, "key", []string{sealpost.ScopeMailSend})
	if err != nil {
		t.Fatal(err)
	}
	if err := nodeA.CreateAPIKey(ctx, key); err != nil {
		t.Fatalf("CreateAPIKey: %v", err)
	}
	auth := func() error {
		t.Helper()
		// Earlier reads give a caching store an entry to go stale.
		for range 3 {
			_, _ = sealpost.Authenticate(ctx, nodeB, "Bearer "+token)
		}
		_, err := sealpost.Authenticate(ctx, nodeB, "Bearer "+token)
		return err
	}
	if err := auth(); err != nil {
		t.Fatalf("Authenticate on B after create on A: %v", err)
	}

	if err := nodeA.SetAccountDisabled(ctx, parent.ID, true); err != nil {
		t.Fatalf("SetAccountDisabled: %v", err)
	}
	wantCode(t, auth(), sealpost.EUNAUTHORIZED, "Authenticate on B right after disabling on A")
	if err := nodeA.SetAccountDisabled(ctx, parent.ID, false); err != nil {
		t.Fatalf("SetAccountDisabled: %v", err)
	}
	if err := auth(); err != nil {
		t.Errorf("Authenticate on B right after re-enabling on A: %v", err)
	}

	if _, err := nodeA.UpdateAPIKey(ctx, parent.ID, key.ID, sealpost.APIKeyUpdate{Scopes: []string{sealpost.ScopeEnforcedTLSRead}}); err != nil {
		t.Fatalf("UpdateAPIKey: %v", err)
	}
	p, err := nodeB.LookupAPIKey(ctx, key.ID)
	if err != nil {
		t.Fatalf("LookupAPIKey on B: %v", err)
	}
	if p.Key.HasScope(sealpost.ScopeMailSend) || !p.Key.HasScope(sealpost.ScopeEnforcedTLSRead) {
		t.Errorf("scopes on B after update on A = %q", p.Key.Scopes)
	}

	for range 3 {
		if _, err := nodeB.EnforcedTLS(ctx, parent.ID); err != nil {
			t.Fatalf("EnforcedTLS on B: %v", err)
		}
	}
	if _, err := nodeA.UpdateEnforcedTLS(ctx, parent.ID, sealpost.EnforcedTLSPatch{RequireTLS: ptr(true)}); err != nil {
		t.Fatalf("UpdateEnforcedTLS on A: %v", err)
	}
	want := sealpost.EnforcedTLS{RequireTLS: true, Version: sealpost.TLS11}
	if got, err := nodeB.EnforcedTLS(ctx, parent.ID); err != nil || got != want {
		t.Errorf("EnforcedTLS on B right after patch on A = %+v, %v; want %+v", got, err, want)
	}
	// The other way round, and merged with A's change rather than replacing it.
	if _, err := nodeB.UpdateEnforcedTLS(ctx, parent.ID, sealpost.EnforcedTLSPatch{Version: ptr(sealpost.TLS13)}); err != nil {
		t.Fatalf("UpdateEnforcedTLS on B: %v", err)
	}
	want.Version = sealpost.TLS13
	if got, err := nodeA.EnforcedTLS(ctx, parent.ID); err != nil || got != want {
		t.Errorf("EnforcedTLS on A right after patch on B = %+v, %v; want %+v", got, err, want)
	}

	if err := nodeA.DeleteAPIKey(ctx, parent.ID, key.ID, nil); err != nil {
		t.Fatalf("DeleteAPIKey: %v", err)
	}
	wantCode(t, auth(), sealpost.EUNAUTHORIZED, "Authenticate on B right after deleting the key on A")

	sub := &sealpost.Account{Kind: sealpost.KindSubuser, ParentID: parent.ID, Username: "alice.sub", Email: "sub@example.com"}
	if err := nodeB.CreateAccount(ctx, sub); err != nil {
		t.Fatalf("CreateAccount on B: %v", err)
	}
	if got, err := nodeA.AccountByUsername(ctx, "alice.sub"); err != nil || got.ID != sub.ID {
		t.Errorf("AccountByUsername on A after create on B = %+v, %v", got, err)
	}
	if err := nodeA.DeleteAccount(ctx, parent.ID); err != nil {
		t.Fatalf("DeleteAccount: %v", err)
	}
	_, err = nodeB.Account(ctx, sub.ID)
	wantCode(t, err, sealpost.ENOTFOUND, "Account of a subuser on B after deleting its parent on A")
	_, err = nodeB.EnforcedTLS(ctx, parent.ID)
	wantCode(t, err, sealpost.ENOTFOUND, "EnforcedTLS on B after deleting the account on A")
}

// TestNodesConcurrentWrites races writes through two nodes: merges of
// different fields must all land, and of several nodes creating one username
// exactly one must win.
func TestNodesConcurrentWrites(t *testing.T) {
	t.Parallel()
	u := pgtest.URL(t)
	nodes := []*postgres.DB{openURL(t, u), openURL(t, u)}
	ctx := t.Context()

	patches := []sealpost.EnforcedTLSPatch{
		{RequireTLS: ptr(true)},
		{RequireValidCert: ptr(true)},
		{Version: ptr(sealpost.TLS12)},
	}
	var accounts []*sealpost.Account
	for i := range 10 {
		a := &sealpost.Account{Kind: sealpost.KindUser, Username: fmt.Sprintf("user%d", i), Email: "u@example.com"}
		if err := nodes[0].CreateAccount(ctx, a); err != nil {
			t.Fatalf("CreateAccount: %v", err)
		}
		accounts = append(accounts, a)
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for _, a := range accounts {
		for i, p := range patches {
			node := nodes[i%len(nodes)]
			wg.Go(func() {
				<-start
				if _, err := node.UpdateEnforcedTLS(ctx, a.ID, p); err != nil {
					t.Errorf("UpdateEnforcedTLS: %v", err)
				}
			})
		}
	}

	const racers = 10
	errs := make(chan error, racers)
	for i := range racers {
		node := nodes[i%len(nodes)]
		wg.Go(func() {
			<-start
			errs <- node.CreateAccount(ctx, &sealpost.Account{Kind: sealpost.KindUser, Username: "taken", Email: "t@example.com"})
		})
	}
	close(start)
	wg.Wait()
	close(errs)

	want := sealpost.EnforcedTLS{RequireTLS: true, RequireValidCert: true, Version: sealpost.TLS12}
	for _, a := range accounts {
		for i, n := range nodes {
			if got, err := n.EnforcedTLS(ctx, a.ID); err != nil || got != want {
				t.Errorf("node %d: EnforcedTLS(%d) = %+v, %v; want %+v", i, a.ID, got, err, want)
			}
		}
	}
	won := 0
	for err := range errs {
		switch sealpost.ErrorCode(err) {
		case "":
			won++
		case sealpost.ECONFLICT:
		default:
			t.Errorf("CreateAccount of a contested username: %v", err)
		}
	}
	if won != 1 {
		t.Errorf("%d of %d concurrent creations of one username succeeded, want 1", won, racers)
	}
	n, err := nodes[1].CountAccounts(ctx)
	if err != nil || n != len(accounts)+1 {
		t.Errorf("CountAccounts = %d, %v; want %d", n, err, len(accounts)+1)
	}
}

// TestConcurrentMigrations starts several processes' worth of Open on one
// empty schema at once, as a fleet restarting together would.
func TestConcurrentMigrations(t *testing.T) {
	t.Parallel()
	u := pgtest.URL(t)
	ctx := t.Context()

	const opens = 8
	dbs := make([]*postgres.DB, opens)
	errs := make([]error, opens)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range opens {
		wg.Go(func() {
			<-start
			dbs[i], errs[i] = postgres.Open(ctx, u)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open %d: %v", i, err)
			continue
		}
		t.Cleanup(func() { dbs[i].Close() })
	}
	if t.Failed() {
		t.FailNow()
	}

	a := &sealpost.Account{Kind: sealpost.KindUser, Username: "alice", Email: "alice@example.com"}
	if err := dbs[0].CreateAccount(ctx, a); err != nil {
		t.Fatalf("CreateAccount: %v", err)
	}
	for i, db := range dbs {
		if _, err := db.Account(ctx, a.ID); err != nil {
			t.Errorf("Account through store %d: %v", i, err)
		}
	}

	// Opening again applies nothing twice and keeps the data.
	again := openURL(t, u)
	if got, err := again.Account(ctx, a.ID); err != nil || got.Username != "alice" {
		t.Errorf("Account after reopening = %+v, %v", got, err)
	}
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var recorded, distinct int
	if err := conn.QueryRow(ctx, `SELECT count(*), count(DISTINCT version) FROM schema_migrations`).Scan(&recorded, &distinct); err != nil {
		t.Fatal(err)
	}
	if recorded == 0 || recorded != distinct {
		t.Errorf("schema_migrations holds %d rows of %d versions", recorded, distinct)
	}
}

// TestSchemasIsolated checks the test helper itself: two URLs are two
// databases as far as the store can tell.
func TestSchemasIsolated(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	for range 2 {
		db := openURL(t, pgtest.URL(t))
		if err := db.CreateAccount(ctx, &sealpost.Account{Kind: sealpost.KindUser, Username: "alice", Email: "a@example.com"}); err != nil {
			t.Fatalf("CreateAccount in a fresh schema: %v", err)
		}
		if n, err := db.CountAccounts(ctx); err != nil || n != 1 {
			t.Errorf("CountAccounts in a fresh schema = %d, %v; want 1", n, err)
		}
	}
}

func TestOpenRejectsOtherURLs(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"", "sqlite:///tmp/x.db", "host=localhost dbname=x", "mysql://localhost/x"} {
		if db, err := postgres.Open(t.Context(), u); err == nil {
			db.Close()
			t.Errorf("Open(%q) succeeded, want an error", u)
		}
	}
}

// wantUnavailable fails t unless err is EUNAVAILABLE carrying its cause.
func wantUnavailable(t *testing.T, err error, what string) {
	t.Helper()
	var se *sealpost.Error
	if !errors.As(err, &se) || se.Code != sealpost.EUNAVAILABLE {
		t.Errorf("%s: err = %v, want EUNAVAILABLE", what, err)
		return
	}
	if se.Err == nil {
		t.Errorf("%s: EUNAVAILABLE without its cause", what)
	}
	t.Logf("%s: %v", what, err)
}

// TestOpenUnreachable needs no PostgreSQL: it opens against a port nobody
// listens on and against a server that accepts but never answers.
func TestOpenUnreachable(t *testing.T) {
	t.Parallel()
	t.Run("closed port", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()

		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		_, err = postgres.Open(ctx, "postgres://postgres@"+addr+"/sealpost?sslmode=disable")
		wantUnavailable(t, err, "Open against a closed port")
	})
	t.Run("silent server", func(t *testing.T) {
		t.Parallel()
		addr, _ := silentServer(t, "127.0.0.1:0")
		const deadline = 300 * time.Millisecond
		ctx, cancel := context.WithTimeout(t.Context(), deadline)
		defer cancel()
		start := time.Now()
		_, err := postgres.Open(ctx, "postgres://postgres@"+addr+"/sealpost?sslmode=disable")
		wantUnavailable(t, err, "Open against a server that never answers")
		if d := time.Since(start); d > deadline+2*time.Second {
			t.Errorf("Open took %v with a %v deadline", d, deadline)
		}
	})
}

// silentServer accepts connections on listen and never writes a byte. stop
// closes it and every connection; it is also called at cleanup.
func silentServer(t *testing.T, listen string) (addr string, stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	})
	var once sync.Once
	stop = func() {
		once.Do(func() {
			ln.Close()
			wg.Wait()
		})
	}
	t.Cleanup(stop)
	return ln.Addr().String(), stop
}

// TestServerGoesAway runs a store through a TCP proxy to the test server and
// cuts the proxy, then puts a server that never answers in its place: calls
// must fail with EUNAVAILABLE, within their context's deadline, and the same
// store must work again once the server is back, without being reopened.
func TestServerGoesAway(t *testing.T) {
	t.Parallel()
	u := pgtest.URL(t)
	parsed, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	target := parsed.Host
	p := startProxy(t, "127.0.0.1:0", target)
	parsed.Host = p.addr()
	db := openURL(t, parsed.String())

	ctx := t.Context()
	a := &sealpost.Account{Kind: sealpost.KindUser, Username: "alice", Email: "alice@example.com"}
	if err := db.CreateAccount(ctx, a); err != nil {
		t.Fatalf("CreateAccount: %v", err)
	}
	k, _, err := sealpost.NewAPIKey(a.ID, "key", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CreateAPIKey(ctx, k); err != nil {
		t.Fatalf("CreateAPIKey: %v", err)
	}

	addr := p.addr()
	p.stop()

	calls := []struct {
		name string
		call func(context.Context) error
	}{
		{"Ping", db.Ping},
		{"Account", func(ctx context.Context) error { _, err := db.Account(ctx, a.ID); return err }},
		{"LookupAPIKey", func(ctx context.Context) error { _, err := db.LookupAPIKey(ctx, k.ID); return err }},
		{"EnforcedTLS", func(ctx context.Context) error { _, err := db.EnforcedTLS(ctx, a.ID); return err }},
		{"UpdateEnforcedTLS", func(ctx context.Context) error {
			_, err := db.UpdateEnforcedTLS(ctx, a.ID, sealpost.EnforcedTLSPatch{RequireTLS: ptr(true)})
			return err
		}},
		{"CreateAccount", func(ctx context.Context) error {
			return db.CreateAccount(ctx, &sealpost.Account{Kind: sealpost.KindUser, Username: "bob", Email: "bob@example.com"})
		}},
		{"EventWebhookSettings", func(ctx context.Context) error { _, err := db.EventWebhookSettings(ctx, a.ID); return err }},
		{"UpdateEventWebhookSettings", func(ctx context.Context) error {
			_, err := db.UpdateEventWebhookSettings(ctx, a.ID, sealpost.EventWebhookPatch{URL: ptr("https://example.com/hook")})
			return err
		}},
		{"EnqueueMessages", func(ctx context.Context) error {
			m := testMessage(a.ID, "gone", time.Now(), "a@x.test")
			return db.EnqueueMessages(ctx, []*sealpost.Message{m}, nil)
		}},
		{"ClaimDeliveries", func(ctx context.Context) error {
			_, err := db.ClaimDeliveries(ctx, "w", time.Now(), time.Minute, 10)
			return err
		}},
		{"CompleteDelivery", func(ctx context.Context) error {
			return db.CompleteDelivery(ctx, "w", sealpost.DeliveryCompletion{DeliveryID: 1})
		}},
		{"RecipientStates", func(ctx context.Context) error { _, err := db.RecipientStates(ctx, a.ID, "gone"); return err }},
		{"ClaimEventBatch", func(ctx context.Context) error {
			_, err := db.ClaimEventBatch(ctx, "p", time.Now(), time.Minute, 10)
			return err
		}},
		{"AckEventBatch", func(ctx context.Context) error {
			return db.AckEventBatch(ctx, &sealpost.EventBatch{AccountID: a.ID, LeaseOwner: "p"})
		}},
	}
	// A cut connection fails at once; a server that never answers holds
	// each call until its deadline.
	phases := []struct {
		name     string
		deadline time.Duration
	}{
		{"with the server gone", 3 * time.Second},
		{"with the server hanging", 300 * time.Millisecond},
	}
	stopSilent := func() {}
	for i, ph := range phases {
		if i == 1 {
			_, stopSilent = silentServer(t, addr)
		}
		for _, c := range calls {
			ctx, cancel := context.WithTimeout(t.Context(), ph.deadline)
			start := time.Now()
			err := c.call(ctx)
			cancel()
			wantUnavailable(t, err, c.name+" "+ph.name)
			if d := time.Since(start); d > ph.deadline+time.Second {
				t.Errorf("%s %s took %v with a %v deadline", c.name, ph.name, d, ph.deadline)
			}
		}
	}
	stopSilent()

	startProxy(t, addr, target)
	// The pool may hold a connection broken by the cut; it is dropped on
	// first use, so allow a few calls before the store must work again.
	var pingErr error
	for range 50 {
		if pingErr = db.Ping(ctx); pingErr == nil {
			break
		}
		wantUnavailable(t, pingErr, "Ping while the server comes back")
		time.Sleep(100 * time.Millisecond)
	}
	if pingErr != nil {
		t.Fatalf("Ping after the server came back: %v", pingErr)
	}
	if got, err := db.LookupAPIKey(ctx, k.ID); err != nil || got.Account.ID != a.ID {
		t.Errorf("LookupAPIKey after the server came back = %+v, %v", got, err)
	}
	if got, err := db.EnforcedTLS(ctx, a.ID); err != nil || got != sealpost.DefaultEnforcedTLS() {
		t.Errorf("EnforcedTLS after the server came back = %+v, %v; want the default (the failed patch must not have landed)", got, err)
	}
	if got, err := db.RecipientStates(ctx, a.ID, "gone"); err != nil || len(got) != 0 {
		t.Errorf("RecipientStates after the server came back = %+v, %v; want none (the failed enqueue must not have landed)", got, err)
	}
}

// TestBackendTerminated kills the store's server sessions, as a server
// restart or failover does: calls report EUNAVAILABLE or succeed on a fresh
// connection, and the store recovers on its own.
func TestBackendTerminated(t *testing.T) {
	t.Parallel()
	u := pgtest.URL(t)
	// Named, so that only this store's sessions are terminated.
	app := "sealpost_test_" + fmt.Sprint(time.Now().UnixNano())
	parsed, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	parsed.RawQuery += "&application_name=" + app
	db := openURL(t, parsed.String())
	ctx := t.Context()

	a := &sealpost.Account{Kind: sealpost.KindUser, Username: "alice", Email: "alice@example.com"}
	if err := db.CreateAccount(ctx, a); err != nil {
		t.Fatalf("CreateAccount: %v", err)
	}

	admin, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	var killed int
	if err := admin.QueryRow(ctx, `SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1) t`, app).Scan(&killed); err != nil {
		t.Fatal(err)
	}
	if killed == 0 {
		t.Fatal("no server session of the store found to terminate")
	}

	ok := false
	for range 20 {
		_, err := db.Account(ctx, a.ID)
		if err == nil {
			ok = true
			break
		}
		wantUnavailable(t, err, "Account after the server ended the session")
	}
	if !ok {
		t.Error("store did not recover after its sessions were terminated")
	}
}

// proxy forwards TCP connections to target until stopped.
type proxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]bool
	closed bool
}

func startProxy(t *testing.T, listen, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	p.wg.Go(p.serve)
	t.Cleanup(p.stop)
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.conns[c] = true
	return true
}

func (p *proxy) serve() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(client) {
			return
		}
		p.wg.Go(func() {
			server, err := net.Dial("tcp", p.target)
			if err != nil {
				client.Close()
				return
			}
			if !p.track(server) {
				client.Close()
				return
			}
			var pipes sync.WaitGroup
			pipes.Go(func() { io.Copy(server, client); server.Close() })
			pipes.Go(func() { io.Copy(client, server); client.Close() })
			pipes.Wait()
		})
	}
}

// stop closes the listener and every connection, as a server crash would.
func (p *proxy) stop() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		p.ln.Close()
		for c := range p.conns {
			c.Close()
		}
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// TestUnstorableText: PostgreSQL refuses NUL and invalid UTF-8 in text. Such
// input is the caller's fault, so it must be EINVALID, never an internal error.
func TestUnstorableText(t *testing.T) {
	t.Parallel()
	db := openURL(t, pgtest.URL(t))
	for _, name := range []string{"nul\x00byte", "bad\xffutf8"} {
		_, err := db.AccountByUsername(t.Context(), name)
		wantCode(t, err, sealpost.EINVALID, "AccountByUsername("+strconv.Quote(name)+")")
		err = db.CreateAccount(t.Context(), &sealpost.Account{Kind: sealpost.KindUser, Username: name, Email: "x@example.com"})
		wantCode(t, err, sealpost.EINVALID, "CreateAccount("+strconv.Quote(name)+")")
	}
}

// TestAddRequestCounts: counts reported by several nodes add up per key and
// window, and reporting a new window forgets the ended ones.
func TestAddRequestCounts(t *testing.T) {
	t.Parallel()
	u := pgtest.URL(t)
	a, b := openURL(t, u), openURL(t, u)
	w1 := time.Unix(1_700_000_040, 0)
	w2 := w1.Add(time.Minute)
	steps := []struct {
		db     *postgres.DB
		window time.Time
		deltas map[string]int64
		want   map[string]int64
	}{
		{a, w1, map[string]int64{"k1": 3, "k2": 1}, map[string]int64{"k1": 3, "k2": 1}},
		{b, w1, map[string]int64{"k1": 2}, map[string]int64{"k1": 5}},
		{b, w1, map[string]int64{"k1": 0, "k2": 0, "k3": 4}, map[string]int64{"k1": 5, "k2": 1, "k3": 4}},
		{a, w2, map[string]int64{"k1": 1}, map[string]int64{"k1": 1}},
		{b, w1, map[string]int64{"k2": 0}, map[string]int64{"k2": 0}}, // w1 was forgotten when w2 was reported
		{a, w2, map[string]int64{}, map[string]int64{}},
	}
	for i, s := range steps {
		got, err := s.db.AddRequestCounts(t.Context(), s.window, s.deltas)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if !maps.Equal(got, s.want) {
			t.Fatalf("step %d: totals %v, want %v", i, got, s.want)
		}
	}
}
