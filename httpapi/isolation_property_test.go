package httpapi

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sendgrid/sendgrid-go/helpers/eventwebhook"

	"github.com/sealpost/sealpost"
)

// Environment variables of TestIsolationProperty.
const (
	propSeedEnv = "SEALPOST_PROPERTY_SEED" // reproduce a run
	propOpsEnv  = "SEALPOST_PROPERTY_OPS"  // requests per store
	// propDefaultOps keeps a run to about 10 s per store under -race on
	// an idle machine (SQLite is the slower).
	propDefaultOps = 1000
	// propFullAuditEvery is how often every account's whole state is
	// compared with the model; after each write only the accounts a
	// plausible bug would reach are, which keeps a run affordable.
	propFullAuditEvery = 25
)

// TestIsolationProperty is the random counterpart of TestIsolation. It builds
// a tenancy of several parents, each with subusers (some disabled) and
// customer accounts, gives every account keys with random scope subsets, and
// then fires random requests at every authenticated route with random keys
// (live, deleted, of disabled or deleted accounts, garbage) and random
// on-behalf-of values (own and other parents' subusers and customer
// accounts, both forms, the caller itself, names that exist nowhere,
// malformed values, empty, repeated). Each answer, status and body, is
// compared with a model small enough to trust by reading:
//
//   - a key acts as its own account; a parent key may act as its own live
//     subuser (disabled or not) by username and as its own customer account
//     by "account-id <id>"; a key of a subuser or customer account sending
//     the header is 403; any other name is the one 404; mail send ignores
//     the header;
//   - the calling key's scopes gate every route, also under on-behalf-of;
//   - each body shows the acting account's data and no other's;
//   - each write changes the acting account, and only it: after every
//     write, the state of that kind of the caller's family, of any account
//     the header names and of two others is read from the store and
//     compared with the model, and every account's whole state every
//     propFullAuditEvery requests;
//   - authentication follows every change at once: the keys of a subuser
//     being disabled, enabled or deleted, and a key being changed or
//     deleted, are tried before and after.
//
// A parent may act as its disabled subuser: nothing documents otherwise,
// and it is how the parent still manages that subuser's settings.
//
// The seed comes from SEALPOST_PROPERTY_SEED or the clock and is in every
// failure message; SEALPOST_PROPERTY_OPS sets the number of requests.
func TestIsolationProperty(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv(propSeedEnv); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", propSeedEnv, v, err)
		}
		seed = s
	}
	ops := propDefaultOps
	if v := os.Getenv(propOpsEnv); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			t.Fatalf("%s=%q: want a non-negative integer", propOpsEnv, v)
		}
		ops = n
	}
	if testing.Short() {
		ops = min(ops, 200)
	}
	t.Logf("seed %d, %d requests per store (reproduce with %s=%d %s=%d)", seed, ops, propSeedEnv, seed, propOpsEnv, ops)
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		r := newPropRun(t, open, seed, ops)
		start := time.Now()
		for r.op = 1; r.op <= ops; r.op++ {
			r.step()
			if r.op%propFullAuditEvery == 0 {
				r.auditAll()
			}
		}
		r.auditAll()
		t.Logf("seed %d: %d requests in %v; %d accounts (%d deleted), %d keys (%d deleted)",
			seed, ops, time.Since(start).Round(time.Millisecond), len(r.accounts), r.countDeletedAccounts(),
			len(r.keys), r.countDeletedKeys())
		for _, rt := range propRoutes {
			t.Logf("  %-24s %v", rt.name, r.statuses[rt.name])
		}
	})
}

// propAccount is the model of one account.
type propAccount struct {
	id       int64
	label    string
	kind     sealpost.AccountKind
	parent   *propAccount
	username string
	publicID string
	email    string
	disabled bool
	deleted  bool
	tls      sealpost.EnforcedTLS
	// previewRecipients are the recipients of its own domain (see
	// previewDomain) that the registry holds, blocked under require_tls.
	previewRecipients int
	hook              sealpost.EventWebhookSettings
	pubKey            string // "" while signing is off
	// batches are the mail batches it created, with the scheduled-send
	// status of those that have one.
	batches  []string
	statuses map[string]sealpost.BatchStatus
	// sent are the recipients of the mail it sent, latest first: its
	// Email Activity feed.
	sent []string
}

// propKey is the model of one API key.
type propKey struct {
	id      string
	token   string
	name    string
	acct    *propAccount
	scopes  []string // sorted
	deleted bool
}

func (k *propKey) live() bool {
	return !k.deleted && !k.acct.deleted && !k.acct.disabled
}

func (k *propKey) String() string {
	state := ""
	switch {
	case k.deleted:
		state = " deleted"
	case k.acct.deleted:
		state = " of a deleted account"
	case k.acct.disabled:
		state = " of a disabled account"
	}
	return fmt.Sprintf("key %s of %s%s, scopes %v", k.name, k.acct.label, state, k.scopes)
}

// propOBO is one on-behalf-of header as sent, and what it names.
type propOBO struct {
	values []string // nil: no header
	class  oboClass
	ref    string // the username or account id named
	label  string // the model's name of the account named, if any
}

type oboClass int

const (
	oboNone      oboClass = iota // no header, or an empty value: the caller's own account
	oboUsername                  // names ref as a subuser
	oboAccountID                 // names ref as a customer account
	oboNothing                   // well formed but names no account that can be acted as
	oboMalformed                 // 400 for a parent's key
)

func (o propOBO) String() string {
	if o.values == nil {
		return "no on-behalf-of"
	}
	if o.label != "" {
		return fmt.Sprintf("on-behalf-of %q (%s)", o.values, o.label)
	}
	return fmt.Sprintf("on-behalf-of %q", o.values)
}

type propRun struct {
	t        *testing.T
	e        *env
	rng      *rand.Rand
	seed     uint64
	op       int
	what     string // the current request, for failure messages
	accounts []*propAccount
	keys     []*propKey
	recv     *receiver
	registry *fakeRegistry          // where probes file their facts
	n        int                    // makes names and URLs unique
	statuses map[string]map[int]int // route -> status -> count
	// writes lists the writes since the last full audit, which a
	// difference it finds is due to.
	writes []string
	// batches are every account's mail batches, which requests name
	// whatever account they act as.
	batches []string
}

var propAllScopes = sealpost.FullAccessScopes(sealpost.KindUser)

func newPropRun(t *testing.T, open func(testing.TB) sealpost.Store, seed uint64, ops int) *propRun {
	registry := &fakeRegistry{}
	r := &propRun{
		t:        t,
		e:        newEnv(t, open, withSigner, func(c *Config) { c.Prober, c.Observations = &fakeProber{}, registry }),
		registry: registry,
		rng:      rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		seed:     seed,
		recv:     newReceiver(t, http.StatusOK),
		statuses: map[string]map[int]int{},
	}
	r.what = "setup"
	for p := range 4 {
		pa := r.e.user(fmt.Sprintf("prop-u%d", p))
		parent := r.addAccount(pa, nil, fmt.Sprintf("U%d", p))
		for s := range 3 {
			sub := r.addAccount(r.e.subuser(pa, fmt.Sprintf("prop-u%d-s%d", p, s)), parent, fmt.Sprintf("U%d.s%d", p, s))
			if r.rng.IntN(3) == 0 {
				if err := r.e.store.SetAccountDisabled(t.Context(), sub.id, true); err != nil {
					t.Fatal(err)
				}
				sub.disabled = true
			}
		}
		for c := range 2 {
			r.addAccount(r.e.customer(pa), parent, fmt.Sprintf("U%d.c%d", p, c))
		}
	}
	for _, a := range r.accounts {
		r.randomizeState(a)
		r.storeKey(a, sealpost.FullAccessScopes(a.kind))
		extra := 1
		if a.kind == sealpost.KindUser {
			extra = 2
		}
		for range extra {
			r.storeKey(a, r.randomSubset(sealpost.FullAccessScopes(a.kind), 0.7))
		}
	}
	r.auditAll()
	t.Logf("%d accounts, %d keys at the start", len(r.accounts), len(r.keys))
	return r
}

func (r *propRun) addAccount(a *sealpost.Account, parent *propAccount, label string) *propAccount {
	m := &propAccount{
		id: a.ID, label: label, kind: a.Kind, parent: parent, username: a.Username,
		publicID: a.PublicID, email: a.Email, tls: sealpost.DefaultEnforcedTLS(),
	}
	r.accounts = append(r.accounts, m)
	return m
}

// randomizeState gives a a setting, a webhook and maybe a signing key of
// its own, so that a body showing another account's data is told apart.
func (r *propRun) randomizeState(a *propAccount) {
	ctx := r.t.Context()
	tls, err := r.e.store.UpdateEnforcedTLS(ctx, a.id, r.randomTLSPatch())
	if err != nil {
		r.t.Fatal(err)
	}
	a.tls = tls
	patch, _ := r.randomHookPatch(a, true)
	hook, err := r.e.store.UpdateEventWebhookSettings(ctx, a.id, patch)
	if err != nil {
		r.t.Fatal(err)
	}
	a.hook = hook
	r.seedPreview(a)
	if r.rng.IntN(2) == 0 {
		priv, pub, err := ecdsaSigner{}.GenerateKey()
		if err != nil {
			r.t.Fatal(err)
		}
		if err := r.e.store.SetEventWebhookSigningKey(ctx, a.id, priv); err != nil {
			r.t.Fatal(err)
		}
		a.pubKey = pub
	}
}

// previewDomain is a's own recipient domain, which no mail send of the
// run uses.
func (a *propAccount) previewDomain() string { return fmt.Sprintf("acct-%d.preview.test", a.id) }

// seedPreview gives a registry history of its own: recipients at its
// domain, whose MX host offers no STARTTLS.
func (r *propRun) seedPreview(a *propAccount) {
	ctx := r.t.Context()
	n := 1 + r.rng.IntN(5)
	domain := a.previewDomain()
	m := &sealpost.Message{AccountID: a.id, XMessageID: "preview-" + domain, SMTPID: "<preview@" + domain + ">", From: "s@example.com",
		Body: &sealpost.MessageBody{Data: []byte("Subject: x\r\n\r\nx\r\n")}}
	for i := range n {
		m.Recipients = append(m.Recipients, sealpost.Recipient{Email: fmt.Sprintf("r%d@%s", i, domain), Domain: domain, SGMessageID: fmt.Sprintf("preview-%d.%d", a.id, i)})
		a.sent = append(a.sent, m.Recipients[i].Email)
	}
	if err := r.e.store.EnqueueMessages(ctx, []*sealpost.Message{m}, nil); err != nil {
		r.t.Fatal(err)
	}
	err := r.e.store.RecordObservations(ctx, []sealpost.HostObservation{{AccountID: a.id, Domain: domain, MXHost: "mx." + domain, At: time.Now(),
		Facts: sealpost.TLSFacts{MXHost: "mx." + domain, ResultType: sealpost.ResultSTARTTLSNotSupported}}})
	if err != nil {
		r.t.Fatal(err)
	}
	a.previewRecipients = n
}

func (r *propRun) storeKey(a *propAccount, scopes []string) *propKey {
	r.n++
	name := fmt.Sprintf("prop key %d", r.n)
	scopes = nonNil(slices.Sorted(slices.Values(scopes)))
	k, token, err := sealpost.NewAPIKey(a.id, name, scopes)
	if err != nil {
		r.t.Fatal(err)
	}
	if err := r.e.store.CreateAPIKey(r.t.Context(), k); err != nil {
		r.t.Fatal(err)
	}
	m := &propKey{id: k.ID, token: token, name: name, acct: a, scopes: scopes}
	r.keys = append(r.keys, m)
	return m
}

func (r *propRun) randomSubset(from []string, p float64) []string {
	out := []string{}
	for _, s := range from {
		if r.rng.Float64() < p {
			out = append(out, s)
		}
	}
	return out
}

func (r *propRun) fail(format string, args ...any) {
	r.t.Helper()
	r.t.Fatalf("seed %d, request %d (%s): %s\nreproduce: %s=%d %s=%d go test -race -count=1 -run '^%s$' ./httpapi",
		r.seed, r.op, r.what, fmt.Sprintf(format, args...), propSeedEnv, r.seed, propOpsEnv, r.op, r.t.Name())
}

// expect fails unless res is status with exactly body ("" checks no body).
func (r *propRun) expect(res response, status int, body string) {
	r.t.Helper()
	if res.status != status || res.body != body {
		r.fail("got %d %s\nwant %d %s", res.status, res.body, status, body)
	}
}

// expect400 fails unless res is a 400 whose errors name exactly fields.
func (r *propRun) expect400(res response, fields ...string) {
	r.t.Helper()
	var out struct {
		Errors []struct {
			Field *string `json:"field"`
		} `json:"errors"`
	}
	var got []string
	if res.status == http.StatusBadRequest && json.Unmarshal([]byte(res.body), &out) == nil {
		for _, e := range out.Errors {
			if e.Field != nil {
				got = append(got, *e.Field)
			} else {
				got = append(got, "<null>")
			}
		}
	}
	if res.status != http.StatusBadRequest || !slices.Equal(got, fields) {
		r.fail("got %d %s\nwant 400 naming %q", res.status, res.body, fields)
	}
}

// propRoute is one method of one route with what the pipeline checks
// before its handler.
type propRoute struct {
	name       string
	weight     int
	scope      string
	userOnly   bool // acting account must be top-level
	ignoresOBO bool
	// provisioning routes answer errors in the Account Provisioning form.
	provisioning bool
	// aspect is what the route may change, audited after each call; "" for
	// reads.
	aspect string
	// build makes the request for an acting account (which may be nil or
	// not the real one when the call is refused before its handler) and
	// returns the check of a response that reached the handler.
	build func(r *propRun, k *propKey, acting *propAccount) (request, func(response))
}

const (
	aspectTLS      = "enforced TLS settings"
	aspectHook     = "event webhook settings"
	aspectSigned   = "event webhook signing keys"
	aspectKeys     = "API keys"
	aspectAccounts = "accounts"
	aspectMail     = "queued mail"
	aspectBatches  = "mail batches"
)

var propRoutes = []propRoute{
	{name: "GET enforced_tls", weight: 10, scope: sealpost.ScopeEnforcedTLSRead, build: (*propRun).getTLS},
	{name: "PATCH enforced_tls", weight: 10, scope: sealpost.ScopeEnforcedTLSUpdate, aspect: aspectTLS, build: (*propRun).patchTLS},
	{name: "GET enforced_tls preview", weight: 5, scope: sealpost.ScopeEnforcedTLSRead, build: (*propRun).previewTLS},
	{name: "GET scopes", weight: 3, build: (*propRun).getScopes},
	{name: "GET api_keys", weight: 4, scope: sealpost.ScopeAPIKeysRead, build: (*propRun).listKeys},
	{name: "POST api_keys", weight: 5, scope: sealpost.ScopeAPIKeysCreate, aspect: aspectKeys, build: (*propRun).createKey},
	{name: "GET api_keys/{id}", weight: 4, scope: sealpost.ScopeAPIKeysRead, build: (*propRun).getKey},
	{name: "PUT api_keys/{id}", weight: 3, scope: sealpost.ScopeAPIKeysUpdate, aspect: aspectKeys, build: (*propRun).putKey},
	{name: "PATCH api_keys/{id}", weight: 3, scope: sealpost.ScopeAPIKeysUpdate, aspect: aspectKeys, build: (*propRun).patchKey},
	{name: "DELETE api_keys/{id}", weight: 2, scope: sealpost.ScopeAPIKeysDelete, aspect: aspectKeys, build: (*propRun).deleteKey},
	{name: "GET subusers", weight: 4, scope: sealpost.ScopeSubusersRead, userOnly: true, build: (*propRun).listSubusers},
	{name: "POST subusers", weight: 2, scope: sealpost.ScopeSubusersCreate, userOnly: true, aspect: aspectAccounts, build: (*propRun).createSubuser},
	{name: "PATCH subusers/{name}", weight: 3, scope: sealpost.ScopeSubusersUpdate, userOnly: true, aspect: aspectAccounts, build: (*propRun).patchSubuser},
	{name: "DELETE subusers/{name}", weight: 1, scope: sealpost.ScopeSubusersDelete, userOnly: true, aspect: aspectAccounts, build: (*propRun).deleteSubuser},
	{name: "GET partners/accounts", weight: 3, scope: sealpost.ScopePartnerAccountsRead, userOnly: true, provisioning: true, build: (*propRun).listCustomers},
	{name: "POST partners/accounts", weight: 1, scope: sealpost.ScopePartnerAccountsCreate, userOnly: true, provisioning: true, aspect: aspectAccounts, build: (*propRun).createCustomer},
	{name: "POST mail/send", weight: 4, scope: sealpost.ScopeMailSend, ignoresOBO: true, aspect: aspectMail, build: (*propRun).sendMail},
	{name: "POST mail/batch", weight: 3, scope: sealpost.ScopeMailBatchCreate, aspect: aspectBatches, build: (*propRun).createBatch},
	{name: "GET mail/batch/{id}", weight: 3, scope: sealpost.ScopeMailBatchRead, build: (*propRun).getBatch},
	{name: "GET scheduled_sends", weight: 3, scope: sealpost.ScopeScheduledSendsRead, build: (*propRun).listScheduledSends},
	{name: "POST scheduled_sends", weight: 3, scope: sealpost.ScopeScheduledSendsCreate, aspect: aspectBatches, build: (*propRun).createScheduledSend},
	{name: "PATCH scheduled_sends/{id}", weight: 2, scope: sealpost.ScopeScheduledSendsUpdate, aspect: aspectBatches, build: (*propRun).patchScheduledSend},
	{name: "DELETE scheduled_sends/{id}", weight: 2, scope: sealpost.ScopeScheduledSendsDelete, aspect: aspectBatches, build: (*propRun).deleteScheduledSend},
	{name: "GET webhook settings", weight: 6, scope: sealpost.ScopeEventWebhookRead, build: (*propRun).getHook},
	{name: "PATCH webhook settings", weight: 6, scope: sealpost.ScopeEventWebhookUpdate, aspect: aspectHook, build: (*propRun).patchHook},
	{name: "GET webhook signed", weight: 3, scope: sealpost.ScopeEventWebhookRead, build: (*propRun).getSigned},
	{name: "PATCH webhook signed", weight: 3, scope: sealpost.ScopeEventWebhookUpdate, aspect: aspectSigned, build: (*propRun).patchSigned},
	{name: "POST webhook test", weight: 2, scope: sealpost.ScopeEventWebhookTest, build: (*propRun).testHook},
	{name: "GET messages", weight: 3, scope: sealpost.ScopeMessagesRead, build: (*propRun).listMessages},
	{name: "POST tls/probe", weight: 3, scope: sealpost.ScopeTLSProbe, build: (*propRun).probeTLS},
}

// step makes one random request and checks its answer and its effects.
func (r *propRun) step() {
	total := 0
	for _, rt := range propRoutes {
		total += rt.weight
	}
	i := r.rng.IntN(total)
	var rt propRoute
	for _, rt = range propRoutes {
		if i < rt.weight {
			break
		}
		i -= rt.weight
	}
	k := r.pickCaller(rt)
	obo := r.pickOBO(k, rt.userOnly)
	caller := "a garbage key"
	if k != nil {
		caller = k.String()
	}
	r.what = fmt.Sprintf("%s with %s, %s", rt.name, caller, obo)

	// The pipeline, in the contract's order: authentication, scope,
	// on-behalf-of, a route for top-level accounts only.
	var acting *propAccount
	status, body := 0, ""
	switch {
	case k == nil || !k.live():
		status, body = http.StatusUnauthorized, wantUnauthorized
	case rt.scope != "" && !slices.Contains(k.scopes, rt.scope):
		status, body = http.StatusForbidden, wantForbidden
	case rt.ignoresOBO || obo.class == oboNone:
		acting = k.acct
	case k.acct.kind != sealpost.KindUser:
		status, body = http.StatusForbidden, wantForbidden
	case obo.class == oboMalformed:
		status = http.StatusBadRequest
	default:
		acting = r.resolve(k.acct, obo)
		if acting == nil {
			status, body = http.StatusNotFound, wantOBONotFound
		}
	}
	if acting != nil && rt.userOnly && acting.kind != sealpost.KindUser {
		acting, status, body = nil, http.StatusForbidden, wantForbidden
	}
	if acting != nil {
		r.what += " acting as " + acting.label
	}
	if rt.provisioning {
		body = provisioningForm[body]
	}

	base := acting
	if base == nil && k != nil {
		base = k.acct
	}
	req, check := rt.build(r, k, base)
	if k != nil {
		req.token = k.token
	} else {
		req.token = []string{"", "SG.nokey.nosecret", "not-a-key", "SG." + r.keys[0].id + ".wrong-secret"}[r.rng.IntN(4)]
	}
	if obo.values != nil {
		req.header = http.Header{headerOnBehalfOf: obo.values}
	}
	res := r.e.do(req)
	if r.statuses[rt.name] == nil {
		r.statuses[rt.name] = map[int]int{}
	}
	r.statuses[rt.name][res.status]++
	if acting == nil {
		if status == http.StatusBadRequest {
			r.expect400(res, "on-behalf-of")
		} else {
			r.expect(res, status, body)
		}
	} else {
		check(res)
	}
	if rt.aspect != "" {
		r.writes = append(r.writes, fmt.Sprintf("request %d: %s: %d %s", r.op, r.what, res.status, res.body))
		r.audit(rt.aspect, r.nearby(k, obo)...)
	}
}

// nearby returns the accounts a misdirected write would most likely reach:
// the caller's family (its parent and every child of it), any account the
// header names, and two others at random.
func (r *propRun) nearby(k *propKey, obo propOBO) []*propAccount {
	var root *propAccount
	if k != nil {
		root = k.acct
		if root.parent != nil {
			root = root.parent
		}
	}
	var out []*propAccount
	for _, a := range r.accounts {
		named := obo.ref != "" && (a.username == obo.ref || a.publicID == obo.ref)
		if root != nil && (a == root || a.parent == root) || named {
			out = append(out, a)
		}
	}
	for range 2 {
		out = append(out, r.accounts[r.rng.IntN(len(r.accounts))])
	}
	return out
}

// resolve is the model of on-behalf-of for a parent's key: its own live
// subuser by username, its own live customer account by account id.
func (r *propRun) resolve(parent *propAccount, obo propOBO) *propAccount {
	for _, a := range r.accounts {
		if a.deleted || a.parent != parent {
			continue
		}
		switch {
		case obo.class == oboUsername && a.kind == sealpost.KindSubuser && a.username == obo.ref:
			return a
		case obo.class == oboAccountID && a.kind == sealpost.KindCustomer && a.publicID == obo.ref:
			return a
		}
	}
	return nil
}

// pickCaller returns a live key most of the time, otherwise any key ever
// made (deleted, of a disabled or deleted account) or nil for garbage.
func (r *propRun) pickCaller(rt propRoute) *propKey {
	switch n := r.rng.IntN(100); {
	case n < 4:
		return nil
	case n < 12:
		return r.keys[r.rng.IntN(len(r.keys))]
	}
	// Half the calls come from parents' keys, the only ones on-behalf-of
	// lets through, and most calls of routes only parents may use. Most
	// come from keys holding the route's scope, so that most reach the
	// route's handler.
	scoped := rt.scope != "" && r.rng.IntN(10) < 7
	var parents, others []*propKey
	for {
		for _, k := range r.keys {
			switch {
			case !k.live():
			case scoped && !slices.Contains(k.scopes, rt.scope):
			case k.acct.kind == sealpost.KindUser:
				parents = append(parents, k)
			default:
				others = append(others, k)
			}
		}
		if len(parents) > 0 || len(others) > 0 {
			break
		}
		if !scoped {
			r.fail("no live key left")
		}
		scoped = false
	}
	if p := r.rng.IntN(10); len(others) == 0 || len(parents) > 0 && (p < 5 || rt.userOnly && p < 8) {
		return parents[r.rng.IntN(len(parents))]
	}
	return others[r.rng.IntN(len(others))]
}

// pickOBO returns a random on-behalf-of header, often one naming an
// account of the caller's own family.
func (r *propRun) pickOBO(k *propKey, userOnly bool) propOBO {
	family := r.accounts[r.rng.IntN(len(r.accounts))]
	if k != nil {
		family = k.acct
		if family.parent != nil {
			family = family.parent
		}
	}
	var children, anyone []*propAccount
	for _, a := range r.accounts {
		anyone = append(anyone, a)
		if a.parent == family {
			children = append(children, a)
		}
	}
	named := func(a *propAccount) propOBO {
		if a.kind == sealpost.KindCustomer {
			prefix := []string{"account-id ", "ACCOUNT-ID ", "Account-Id\t", "account-id   "}[r.rng.IntN(4)]
			return propOBO{values: []string{prefix + a.publicID}, class: oboAccountID, ref: a.publicID, label: a.label}
		}
		v := a.username
		if r.rng.IntN(5) == 0 {
			v = " " + v + " "
		}
		return propOBO{values: []string{v}, class: oboUsername, ref: a.username, label: a.label}
	}
	none := 30
	if userOnly || k != nil && k.acct.kind != sealpost.KindUser {
		none = 60 // any header at all is refused
	}
	switch n := r.rng.IntN(100); {
	case n < none:
		return propOBO{}
	case n < 33:
		return propOBO{values: []string{""}}
	case n < 60 && len(children) > 0:
		return named(children[r.rng.IntN(len(children))])
	case n < 75:
		return named(anyone[r.rng.IntN(len(anyone))])
	case n < 78:
		return named(family) // the parent itself
	case n < 90:
		a := anyone[r.rng.IntN(len(anyone))]
		nothing := []string{
			"no-such-subuser",
			"account-id sg000000000000000000000000",
			"account-id no-such-account",
			"account-id " + strconv.FormatInt(a.id, 10),
			"bad name!",
			strings.ToUpper(a.username + "x"),
			strings.Repeat("x", 65),
		}
		if a.kind == sealpost.KindCustomer {
			nothing = append(nothing, a.publicID) // an account id without its prefix
		} else {
			nothing = append(nothing, "account-id "+a.username) // a username as an account id
		}
		return propOBO{values: []string{nothing[r.rng.IntN(len(nothing))]}, class: oboNothing}
	default:
		malformed := [][]string{
			{"account-id"}, {"account-id "}, {"account-idsg000000000000000000000000"}, {"   "},
			{strings.Repeat("a", 300)}, {family.username, family.username},
		}
		return propOBO{values: malformed[r.rng.IntN(len(malformed))], class: oboMalformed}
	}
}

func (r *propRun) unique() int {
	r.n++
	return r.n
}

// ---- Enforced TLS

func (r *propRun) randomTLSPatch() sealpost.EnforcedTLSPatch {
	var p sealpost.EnforcedTLSPatch
	if r.rng.IntN(2) == 0 {
		p.RequireTLS = new(r.rng.IntN(2) == 0)
	}
	if r.rng.IntN(2) == 0 {
		p.RequireValidCert = new(r.rng.IntN(2) == 0)
	}
	if r.rng.IntN(2) == 0 {
		p.Version = new([]sealpost.TLSVersion{sealpost.TLS11, sealpost.TLS12, sealpost.TLS13}[r.rng.IntN(3)])
	}
	return p
}

func (r *propRun) getTLS(_ *propKey, acting *propAccount) (request, func(response)) {
	return request{method: http.MethodGet, path: pathTLS}, func(res response) {
		r.expect(res, http.StatusOK, settingJSON(acting.tls))
	}
}

func (r *propRun) patchTLS(_ *propKey, acting *propAccount) (request, func(response)) {
	if r.rng.IntN(10) == 0 {
		return request{method: http.MethodPatch, path: pathTLS, body: `{"require_tls":true,"version":"1.2"}`}, func(res response) {
			r.expect400(res, "version")
		}
	}
	p := r.randomTLSPatch()
	var fields []string
	if p.RequireTLS != nil {
		fields = append(fields, fmt.Sprintf(`"require_tls":%t`, *p.RequireTLS))
	}
	if p.RequireValidCert != nil {
		fields = append(fields, fmt.Sprintf(`"require_valid_cert":%t`, *p.RequireValidCert))
	}
	if p.Version != nil {
		fields = append(fields, `"version":`+p.Version.String())
	}
	body := "{" + strings.Join(fields, ",") + "}"
	return request{method: http.MethodPatch, path: pathTLS, body: body}, func(res response) {
		acting.tls = p.Apply(acting.tls)
		r.expect(res, http.StatusOK, settingJSON(acting.tls))
	}
}

// previewTLS asks what require_tls would block: the acting account's own
// domain and nothing else, whatever its mail sends added.
func (r *propRun) previewTLS(_ *propKey, acting *propAccount) (request, func(response)) {
	if r.rng.IntN(10) == 0 {
		return request{method: http.MethodGet, path: pathPreview + "?require_tls=maybe"}, func(res response) {
			r.expect400(res, "require_tls")
		}
	}
	return request{method: http.MethodGet, path: pathPreview + "?require_tls=true&days=1"}, func(res response) {
		var got struct {
			Policy     sealpost.EnforcedTLS  `json:"policy"`
			WouldBlock sealpost.PreviewCount `json:"would_block"`
			Domains    []struct {
				Domain     string `json:"domain"`
				Recipients int64  `json:"recipients"`
			} `json:"domains"`
		}
		if res.status != http.StatusOK || json.Unmarshal([]byte(res.body), &got) != nil {
			r.t.Fatalf("%s: %d %s, want 200 with a preview", r.what, res.status, res.body)
		}
		want := acting.tls
		want.RequireTLS = true
		var wantDomains []string
		wantCount := sealpost.PreviewCount{}
		if acting.previewRecipients > 0 {
			wantDomains = []string{acting.previewDomain()}
			wantCount = sealpost.PreviewCount{Domains: 1, Recipients: int64(acting.previewRecipients)}
		}
		var gotDomains []string
		for _, d := range got.Domains {
			gotDomains = append(gotDomains, d.Domain)
		}
		if got.Policy != want || got.WouldBlock != wantCount || !slices.Equal(gotDomains, wantDomains) {
			r.t.Fatalf("%s: %s, want policy %+v blocking %v (%+v)", r.what, res.body, want, wantDomains, wantCount)
		}
	}
}

// ---- scopes and API keys

func (r *propRun) getScopes(k *propKey, _ *propAccount) (request, func(response)) {
	return request{method: http.MethodGet, path: "/v3/scopes"}, func(res response) {
		b, _ := json.Marshal(map[string][]string{"scopes": k.scopes})
		r.expect(res, http.StatusOK, string(b))
	}
}

func (r *propRun) liveKeys(a *propAccount) []*propKey {
	var out []*propKey
	for _, k := range r.keys {
		if k.acct == a && !k.deleted {
			out = append(out, k)
		}
	}
	return out
}

func (r *propRun) listKeys(_ *propKey, acting *propAccount) (request, func(response)) {
	return request{method: http.MethodGet, path: "/v3/api_keys"}, func(res response) {
		var out struct {
			Result []struct {
				Name     string `json:"name"`
				APIKeyID string `json:"api_key_id"`
			} `json:"result"`
		}
		if res.status != http.StatusOK || json.Unmarshal([]byte(res.body), &out) != nil || out.Result == nil {
			r.fail("got %d %s, want 200 and a result list", res.status, res.body)
		}
		var got, want []string
		for _, e := range out.Result {
			got = append(got, e.APIKeyID+" "+e.Name)
		}
		for _, k := range r.liveKeys(acting) {
			want = append(want, k.id+" "+k.name)
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			r.fail("listed keys %q, want %s's %q", got, acting.label, want)
		}
	}
}

// pickKeyID names one of the acting account's keys most of the time,
// otherwise any key ever made or none at all.
func (r *propRun) pickKeyID(acting *propAccount) (string, *propKey) {
	own := r.liveKeys(acting)
	switch n := r.rng.IntN(10); {
	case n < 6 && len(own) > 0:
		k := own[r.rng.IntN(len(own))]
		return k.id, k
	case n < 9:
		k := r.keys[r.rng.IntN(len(r.keys))]
		if k.acct == acting && !k.deleted {
			return k.id, k
		}
		return k.id, nil
	}
	return []string{"no-such-key", "bad.key", strings.Repeat("k", 65)}[r.rng.IntN(3)], nil
}

// requestScopes picks scopes to ask for: mostly ones the calling key holds
// and the acting account may hold, sometimes any scope at all. It returns
// the problems the contract says the request has.
func (r *propRun) requestScopes(k *propKey, acting *propAccount) ([]string, []string) {
	allowed := sealpost.FullAccessScopes(acting.kind)
	pool := k.scopes
	if r.rng.IntN(4) == 0 {
		pool = propAllScopes
	}
	req := r.randomSubset(pool, 0.5)
	r.rng.Shuffle(len(req), func(i, j int) { req[i], req[j] = req[j], req[i] })
	var problems []string
	for _, s := range req {
		switch {
		case !slices.Contains(allowed, s):
			problems = append(problems, "unknown scope: "+s)
		case !slices.Contains(k.scopes, s):
			problems = append(problems, "cannot grant a scope the calling key lacks: "+s)
		}
	}
	return req, problems
}

func scopeErrors(problems []string) string {
	var b strings.Builder
	b.WriteString(`{"errors":[`)
	for i, p := range problems {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"field":"scopes","message":%q}`, p)
	}
	b.WriteString("]}")
	return b.String()
}

func (r *propRun) createKey(k *propKey, acting *propAccount) (request, func(response)) {
	name := fmt.Sprintf("made key %d", r.unique())
	body := fmt.Sprintf(`{"name":%q}`, name)
	var scopes, problems []string
	full := acting == nil || r.rng.IntN(5) == 0
	if full {
		if acting != nil && k != nil {
			for _, s := range sealpost.FullAccessScopes(acting.kind) {
				if slices.Contains(k.scopes, s) {
					scopes = append(scopes, s)
				}
			}
		}
	} else if k != nil {
		var req []string
		req, problems = r.requestScopes(k, acting)
		b, _ := json.Marshal(req)
		body = fmt.Sprintf(`{"name":%q,"scopes":%s}`, name, b)
		scopes = slices.Compact(slices.Sorted(slices.Values(req)))
	}
	return request{method: http.MethodPost, path: "/v3/api_keys", body: body}, func(res response) {
		if len(problems) > 0 {
			r.expect(res, http.StatusBadRequest, scopeErrors(problems))
			return
		}
		if len(r.liveKeys(acting)) >= sealpost.MaxAPIKeysPerAccount {
			r.expect(res, http.StatusBadRequest, `{"errors":[{"field":null,"message":"There is a limit of 100 API Keys on your account."}]}`)
			return
		}
		var out struct {
			APIKey   string `json:"api_key"`
			APIKeyID string `json:"api_key_id"`
		}
		if res.status != http.StatusCreated || json.Unmarshal([]byte(res.body), &out) != nil {
			r.fail("got %d %s, want 201", res.status, res.body)
		}
		id, _, ok := sealpost.ParseToken(out.APIKey)
		if !ok || id != out.APIKeyID {
			r.fail("new key %q does not carry its id %q", out.APIKey, out.APIKeyID)
		}
		want, _ := json.Marshal(struct {
			APIKey   string   `json:"api_key"`
			APIKeyID string   `json:"api_key_id"`
			Name     string   `json:"name"`
			Scopes   []string `json:"scopes"`
		}{out.APIKey, out.APIKeyID, name, nonNil(scopes)})
		r.expect(res, http.StatusCreated, string(want))
		r.keys = append(r.keys, &propKey{id: out.APIKeyID, token: out.APIKey, name: name, acct: acting, scopes: nonNil(scopes)})
	}
}

func keyDetail(k *propKey) string {
	b, _ := json.Marshal(struct {
		Result []apiKeyDetail `json:"result"`
	}{[]apiKeyDetail{{Name: k.name, APIKeyID: k.id, Scopes: k.scopes}}})
	return string(b)
}

func (r *propRun) getKey(_ *propKey, acting *propAccount) (request, func(response)) {
	id, target := r.pickKeyID(acting)
	return request{method: http.MethodGet, path: "/v3/api_keys/" + id}, func(res response) {
		if target == nil {
			r.expect(res, http.StatusNotFound, wantNotFound)
			return
		}
		r.expect(res, http.StatusOK, keyDetail(target))
	}
}

func (r *propRun) putKey(k *propKey, acting *propAccount) (request, func(response)) {
	id, target := r.pickKeyID(acting)
	name := fmt.Sprintf("renamed key %d", r.unique())
	body := fmt.Sprintf(`{"name":%q}`, name)
	var scopes, problems []string
	withScopes := k != nil && r.rng.IntN(5) != 0
	if withScopes {
		var req []string
		req, problems = r.requestScopes(k, acting)
		b, _ := json.Marshal(req)
		body = fmt.Sprintf(`{"name":%q,"scopes":%s}`, name, b)
		scopes = slices.Compact(slices.Sorted(slices.Values(req)))
	}
	r.what += " on key " + id
	if target != nil {
		r.probe(target)
	}
	return request{method: http.MethodPut, path: "/v3/api_keys/" + id, body: body}, func(res response) {
		switch {
		case len(problems) > 0:
			r.expect(res, http.StatusBadRequest, scopeErrors(problems))
			return
		case target == nil:
			r.expect(res, http.StatusNotFound, wantNotFound)
			return
		case !r.mayChange(k, target):
			r.expect(res, http.StatusForbidden, wantForbidden)
			return
		}
		target.name = name
		if withScopes {
			target.scopes = nonNil(scopes)
		}
		b, _ := json.Marshal(struct {
			APIKeyID string   `json:"api_key_id"`
			Name     string   `json:"name"`
			Scopes   []string `json:"scopes"`
		}{target.id, target.name, target.scopes})
		r.expect(res, http.StatusOK, string(b))
		r.probe(target)
	}
}

func (r *propRun) patchKey(k *propKey, acting *propAccount) (request, func(response)) {
	id, target := r.pickKeyID(acting)
	name := fmt.Sprintf("patched key %d", r.unique())
	r.what += " on key " + id
	return request{method: http.MethodPatch, path: "/v3/api_keys/" + id, body: fmt.Sprintf(`{"name":%q}`, name)}, func(res response) {
		if target == nil {
			r.expect(res, http.StatusNotFound, wantNotFound)
			return
		}
		if !r.mayChange(k, target) {
			r.expect(res, http.StatusForbidden, wantForbidden)
			return
		}
		target.name = name
		r.expect(res, http.StatusOK, fmt.Sprintf(`{"api_key_id":%q,"name":%q}`, target.id, name))
	}
}

func (r *propRun) deleteKey(k *propKey, acting *propAccount) (request, func(response)) {
	id, target := r.pickKeyID(acting)
	r.what += " on key " + id
	if target != nil {
		r.probe(target)
	}
	return request{method: http.MethodDelete, path: "/v3/api_keys/" + id}, func(res response) {
		if target == nil {
			r.expect(res, http.StatusNotFound, wantNotFound)
			return
		}
		if !r.mayChange(k, target) {
			r.expect(res, http.StatusForbidden, wantForbidden)
			r.probe(target)
			return
		}
		target.deleted = true
		r.expect(res, http.StatusNoContent, "")
		r.probe(target)
	}
}

// mayChange is the contract's bound on updating and deleting keys: the
// calling key (the parent's, under on-behalf-of) must hold every scope of
// the target.
func (r *propRun) mayChange(caller, target *propKey) bool {
	return caller == nil || sealpost.ScopesWithin(target.scopes, caller.scopes)
}

// probe calls GET /v3/scopes with each of keys, which must answer as the
// model says: authentication reflects every change committed before it
// (a cache that outlives a disable, delete or scope change fails here).
func (r *propRun) probe(keys ...*propKey) {
	r.t.Helper()
	for _, k := range keys {
		res := r.e.do(request{method: http.MethodGet, path: "/v3/scopes", token: k.token})
		if !k.live() {
			if res.status != http.StatusUnauthorized || res.body != wantUnauthorized {
				r.fail("probe with %s: got %d %s, want 401", k, res.status, res.body)
			}
			continue
		}
		b, _ := json.Marshal(map[string][]string{"scopes": k.scopes})
		if res.status != http.StatusOK || res.body != string(b) {
			r.fail("probe with %s: got %d %s, want 200 %s", k, res.status, res.body, b)
		}
	}
}

func (r *propRun) keysOf(a *propAccount) []*propKey {
	var out []*propKey
	for _, k := range r.keys {
		if k.acct == a {
			out = append(out, k)
		}
	}
	return out
}

// ---- subusers and customer accounts

func (r *propRun) children(parent *propAccount, kind sealpost.AccountKind) []*propAccount {
	var out []*propAccount
	for _, a := range r.accounts {
		if a.parent == parent && a.kind == kind && !a.deleted {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(x, y *propAccount) int { return int(x.id - y.id) })
	return out
}

func subuserList(subs []*propAccount) string {
	out := make([]subuserEntry, 0, len(subs))
	for _, a := range subs {
		out = append(out, subuserEntry{Disabled: a.disabled, ID: a.id, Username: a.username, Email: a.email})
	}
	b, _ := json.Marshal(out)
	return string(b)
}

// pickUsername names any account ever made that has a username, or none.
func (r *propRun) pickUsername(acting *propAccount) string {
	if acting != nil && r.rng.IntN(2) == 0 {
		if subs := r.children(acting, sealpost.KindSubuser); len(subs) > 0 {
			return subs[r.rng.IntN(len(subs))].username
		}
	}
	for range 10 {
		if a := r.accounts[r.rng.IntN(len(r.accounts))]; a.username != "" {
			return a.username
		}
	}
	return "no-such-subuser"
}

func (r *propRun) liveByUsername(name string) *propAccount {
	for _, a := range r.accounts {
		if !a.deleted && a.username == name {
			return a
		}
	}
	return nil
}

func (r *propRun) listSubusers(_ *propKey, acting *propAccount) (request, func(response)) {
	path, filter := "/v3/subusers", ""
	if r.rng.IntN(4) == 0 {
		filter = r.pickUsername(acting)
		path += "?username=" + filter
	}
	return request{method: http.MethodGet, path: path}, func(res response) {
		subs := r.children(acting, sealpost.KindSubuser)
		if filter != "" {
			subs = slices.DeleteFunc(subs, func(a *propAccount) bool { return a.username != filter })
		}
		r.expect(res, http.StatusOK, subuserList(subs))
	}
}

func (r *propRun) createSubuser(_ *propKey, acting *propAccount) (request, func(response)) {
	name := fmt.Sprintf("prop-new-%d", r.unique())
	switch r.rng.IntN(6) {
	case 0:
		name = r.pickUsername(nil) // taken, or free again once deleted
	case 1:
		var deleted []string
		for _, a := range r.accounts {
			if a.deleted && a.username != "" {
				deleted = append(deleted, a.username)
			}
		}
		if len(deleted) > 0 {
			name = deleted[r.rng.IntN(len(deleted))]
		}
	}
	email := name + "@example.net"
	body := fmt.Sprintf(`{"username":%q,"email":%q,"password":"s3cret-Pass","ips":[]}`, name, email)
	return request{method: http.MethodPost, path: "/v3/subusers", body: body}, func(res response) {
		if len(r.children(acting, sealpost.KindSubuser)) >= DefaultMaxSubusers {
			r.expect(res, http.StatusBadRequest, `{"errors":[{"field":null,"message":"There is a limit of 100 subusers on your account."}]}`)
			return
		}
		if r.liveByUsername(name) != nil {
			r.expect(res, http.StatusBadRequest, `{"errors":[{"field":"username","message":"username is already taken"}]}`)
			return
		}
		var out struct {
			UserID int64 `json:"user_id"`
		}
		if res.status != http.StatusOK || json.Unmarshal([]byte(res.body), &out) != nil {
			r.fail("got %d %s, want 200", res.status, res.body)
		}
		r.expect(res, http.StatusOK, fmt.Sprintf(`{"username":%q,"user_id":%d,"email":%q,"credit_allocation":{"type":"unlimited"}}`, name, out.UserID, email))
		r.accounts = append(r.accounts, &propAccount{
			id: out.UserID, label: fmt.Sprintf("%s.new%d", acting.label, r.unique()), kind: sealpost.KindSubuser,
			parent: acting, username: name, email: email, tls: sealpost.DefaultEnforcedTLS(),
		})
	}
}

func (r *propRun) patchSubuser(_ *propKey, acting *propAccount) (request, func(response)) {
	name := r.pickUsername(acting)
	disabled := r.rng.IntN(2) == 0
	r.what += " on " + name
	target := r.liveByUsername(name)
	if target != nil {
		r.probe(r.keysOf(target)...)
	}
	return request{method: http.MethodPatch, path: "/v3/subusers/" + name, body: fmt.Sprintf(`{"disabled":%t}`, disabled)}, func(res response) {
		if target == nil || target.kind != sealpost.KindSubuser || target.parent != acting {
			r.expect(res, http.StatusNotFound, wantNotFound)
			return
		}
		target.disabled = disabled
		r.expect(res, http.StatusNoContent, "")
		r.probe(r.keysOf(target)...)
	}
}

func (r *propRun) deleteSubuser(_ *propKey, acting *propAccount) (request, func(response)) {
	name := r.pickUsername(acting)
	r.what += " on " + name
	target := r.liveByUsername(name)
	if target != nil {
		r.probe(r.keysOf(target)...)
	}
	return request{method: http.MethodDelete, path: "/v3/subusers/" + name}, func(res response) {
		if target == nil || target.kind != sealpost.KindSubuser || target.parent != acting {
			r.expect(res, http.StatusNotFound, wantNotFound)
			return
		}
		target.deleted = true
		r.expect(res, http.StatusNoContent, "")
		r.probe(r.keysOf(target)...)
	}
}

func (r *propRun) listCustomers(_ *propKey, acting *propAccount) (request, func(response)) {
	return request{method: http.MethodGet, path: "/v3/partners/accounts"}, func(res response) {
		var out struct {
			Accounts []struct {
				ID        string `json:"id"`
				CreatedAt string `json:"created_at"`
			} `json:"accounts"`
		}
		if res.status != http.StatusOK || json.Unmarshal([]byte(res.body), &out) != nil || out.Accounts == nil {
			r.fail("got %d %s, want 200 and an accounts list", res.status, res.body)
		}
		var got, want []string
		for _, a := range out.Accounts {
			if _, err := time.Parse(time.RFC3339, a.CreatedAt); err != nil {
				r.fail("customer account %s has created_at %q", a.ID, a.CreatedAt)
			}
			got = append(got, a.ID)
		}
		for _, a := range r.children(acting, sealpost.KindCustomer) {
			want = append(want, a.publicID)
		}
		if !slices.Equal(got, want) {
			r.fail("listed customer accounts %q, want %s's %q", got, acting.label, want)
		}
	}
}

func (r *propRun) createCustomer(_ *propKey, acting *propAccount) (request, func(response)) {
	email := fmt.Sprintf("customer-%d@example.org", r.unique())
	body := `{}`
	if r.rng.IntN(2) == 0 {
		body = fmt.Sprintf(`{"profile":{"email":%q}}`, email)
	} else {
		email = ""
	}
	return request{method: http.MethodPost, path: "/v3/partners/accounts", body: body}, func(res response) {
		if len(r.children(acting, sealpost.KindCustomer)) >= DefaultMaxSubusers {
			r.expect(res, http.StatusBadRequest, `{"errors":[{"field":null,"message":"There is a limit of 100 customer accounts on your account."}]}`)
			return
		}
		var out struct {
			AccountID string `json:"account_id"`
		}
		if res.status != http.StatusCreated || json.Unmarshal([]byte(res.body), &out) != nil {
			r.fail("got %d %s, want 201", res.status, res.body)
		}
		r.expect(res, http.StatusCreated, fmt.Sprintf(`{"account_id":%q}`, out.AccountID))
		a, err := r.e.store.AccountByPublicID(r.t.Context(), out.AccountID)
		if err != nil {
			r.fail("new customer account %s: %v", out.AccountID, err)
		}
		r.accounts = append(r.accounts, &propAccount{
			id: a.ID, label: fmt.Sprintf("%s.newc%d", acting.label, r.unique()), kind: sealpost.KindCustomer,
			parent: acting, publicID: out.AccountID, email: email, tls: sealpost.DefaultEnforcedTLS(),
		})
	}
}

// ---- mail send

func (r *propRun) sendMail(k *propKey, _ *propAccount) (request, func(response)) {
	rcpt := fmt.Sprintf("rcpt-%d@example.com", r.unique())
	body := fmt.Sprintf(`{"personalizations":[{"to":[{"email":%q}]}],"from":{"email":"sender@example.com"},"subject":"s","content":[{"type":"text/plain","value":"v"}]}`, rcpt)
	return request{method: http.MethodPost, path: "/v3/mail/send", body: body}, func(res response) {
		r.expect(res, http.StatusAccepted, "")
		xid := res.header.Get("X-Message-Id")
		if xid == "" {
			r.fail("202 without X-Message-Id")
		}
		// The key's own account sent it, whatever on-behalf-of said.
		for _, a := range r.accounts {
			got, err := r.e.store.RecipientStates(r.t.Context(), a.id, xid)
			if err != nil {
				r.fail("RecipientStates(%s): %v", a.label, err)
			}
			want := 0
			if a == k.acct {
				want = 1
			}
			if len(got) != want || (want == 1 && got[0].Email != rcpt) {
				r.fail("%s has %d recipients of mail send %s (%v), want %d", a.label, len(got), xid, got, want)
			}
		}
		k.acct.sent = append([]string{rcpt}, k.acct.sent...)
	}
}

// listMessages checks that the Email Activity feed is the acting
// account's mail and no other's.
func (r *propRun) listMessages(_ *propKey, acting *propAccount) (request, func(response)) {
	return request{method: http.MethodGet, path: pathMessages + "?limit=1000"}, func(res response) {
		var b struct {
			Messages []struct {
				ToEmail string `json:"to_email"`
			} `json:"messages"`
		}
		if err := json.Unmarshal([]byte(res.body), &b); res.status != http.StatusOK || err != nil {
			r.fail("got %d %s (%v), want 200 and the feed", res.status, res.body, err)
		}
		got := []string{}
		for _, m := range b.Messages {
			got = append(got, m.ToEmail)
		}
		// Mail sent within one clock tick may come in either order.
		want := slices.Sorted(slices.Values(acting.sent))
		if slices.Sort(got); !slices.Equal(got, want) {
			r.fail("%s's feed lists %v, want %v", acting.label, got, want)
		}
	}
}

// ---- mail batches and scheduled sends

// scheduledSends is the model's answer to GET /v3/user/scheduled_sends.
func (a *propAccount) scheduledSends() []sealpost.ScheduledSend {
	out := []sealpost.ScheduledSend{}
	for id, st := range a.statuses {
		out = append(out, sealpost.ScheduledSend{BatchID: id, Status: st})
	}
	slices.SortFunc(out, func(x, y sealpost.ScheduledSend) int { return strings.Compare(x.BatchID, y.BatchID) })
	return out
}

func scheduledSendsJSON(list []sealpost.ScheduledSend) string {
	b, err := json.Marshal(scheduledSendBodies(list))
	if err != nil {
		panic(err)
	}
	return string(b)
}

// pickBatch names a batch: often one of acting's, else one of any
// account, now and then one nobody made.
func (r *propRun) pickBatch(acting *propAccount) string {
	if acting != nil && len(acting.batches) > 0 && r.rng.IntN(2) == 0 {
		return acting.batches[r.rng.IntN(len(acting.batches))]
	}
	if len(r.batches) == 0 || r.rng.IntN(8) == 0 {
		return fmt.Sprintf("NoSuchBatch%d", r.unique())
	}
	return r.batches[r.rng.IntN(len(r.batches))]
}

func (r *propRun) createBatch(_ *propKey, acting *propAccount) (request, func(response)) {
	return request{method: http.MethodPost, path: "/v3/mail/batch"}, func(res response) {
		var b batchIDBody
		if res.status != http.StatusCreated || json.Unmarshal([]byte(res.body), &b) != nil || !sealpost.ValidBatchID(b.BatchID) {
			r.fail("got %d %s, want 201 with a batch id", res.status, res.body)
		}
		acting.batches = append(acting.batches, b.BatchID)
		r.batches = append(r.batches, b.BatchID)
	}
}

func (r *propRun) getBatch(_ *propKey, acting *propAccount) (request, func(response)) {
	id := r.pickBatch(acting)
	return request{method: http.MethodGet, path: "/v3/mail/batch/" + id}, func(res response) {
		if slices.Contains(acting.batches, id) {
			r.expect(res, http.StatusOK, `{"batch_id":"`+id+`"}`)
		} else {
			r.expect(res, http.StatusBadRequest, wantInvalidBatch)
		}
	}
}

func (r *propRun) listScheduledSends(_ *propKey, acting *propAccount) (request, func(response)) {
	return request{method: http.MethodGet, path: "/v3/user/scheduled_sends"}, func(res response) {
		r.expect(res, http.StatusOK, scheduledSendsJSON(acting.scheduledSends()))
	}
}

func (r *propRun) randomStatus() sealpost.BatchStatus {
	if r.rng.IntN(2) == 0 {
		return sealpost.BatchPause
	}
	return sealpost.BatchCancel
}

func (r *propRun) createScheduledSend(_ *propKey, acting *propAccount) (request, func(response)) {
	id, status := r.pickBatch(acting), r.randomStatus()
	body := fmt.Sprintf(`{"batch_id":%q,"status":%q}`, id, status)
	return request{method: http.MethodPost, path: "/v3/user/scheduled_sends", body: body}, func(res response) {
		switch _, set := acting.statuses[id]; {
		case !slices.Contains(acting.batches, id):
			r.expect(res, http.StatusBadRequest, wantInvalidBatch)
		case set:
			r.expect400(res, "batch_id")
		default:
			r.expect(res, http.StatusCreated, body)
			if acting.statuses == nil {
				acting.statuses = map[string]sealpost.BatchStatus{}
			}
			acting.statuses[id] = status
		}
	}
}

func (r *propRun) patchScheduledSend(_ *propKey, acting *propAccount) (request, func(response)) {
	id, status := r.pickBatch(acting), r.randomStatus()
	return request{method: http.MethodPatch, path: "/v3/user/scheduled_sends/" + id, body: fmt.Sprintf(`{"status":%q}`, status)}, func(res response) {
		switch _, set := acting.statuses[id]; {
		case !slices.Contains(acting.batches, id):
			r.expect(res, http.StatusBadRequest, wantInvalidBatch)
		case !set:
			r.expect(res, http.StatusNotFound, wantNotFound)
		default:
			r.expect(res, http.StatusNoContent, "")
			acting.statuses[id] = status
		}
	}
}

func (r *propRun) deleteScheduledSend(_ *propKey, acting *propAccount) (request, func(response)) {
	id := r.pickBatch(acting)
	return request{method: http.MethodDelete, path: "/v3/user/scheduled_sends/" + id}, func(res response) {
		switch _, set := acting.statuses[id]; {
		case !slices.Contains(acting.batches, id):
			r.expect(res, http.StatusBadRequest, wantInvalidBatch)
		case !set:
			r.expect(res, http.StatusNotFound, wantNotFound)
		default:
			r.expect(res, http.StatusNoContent, "")
			delete(acting.statuses, id)
		}
	}
}

// ---- event webhook

func hookJSON(s sealpost.EventWebhookSettings) string {
	_, b, err := eventWebhookResponse(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

var propHookBools = []string{
	"enabled", "group_resubscribe", "delivered", "group_unsubscribe", "spam_report",
	"bounce", "deferred", "unsubscribe", "processed", "open", "click", "dropped",
}

// randomHookPatch returns a patch and its JSON body; the URL it may set
// names the account so that a body of another account's shows.
func (r *propRun) randomHookPatch(a *propAccount, withURL bool) (sealpost.EventWebhookPatch, string) {
	p := sealpost.EventWebhookPatch{Bools: map[string]bool{}}
	var fields []string
	for _, name := range propHookBools {
		if r.rng.IntN(3) == 0 {
			v := r.rng.IntN(2) == 0
			p.Bools[name] = v
			fields = append(fields, fmt.Sprintf("%q:%t", name, v))
		}
	}
	if withURL || r.rng.IntN(2) == 0 {
		u := fmt.Sprintf("https://hooks.example.com/%s/%d?a=1&b=2", a.label, r.unique())
		p.URL = &u
		fields = append(fields, fmt.Sprintf(`"url":%q`, u))
	}
	return p, "{" + strings.Join(fields, ",") + "}"
}

func (r *propRun) getHook(_ *propKey, acting *propAccount) (request, func(response)) {
	return request{method: http.MethodGet, path: pathWebhook}, func(res response) {
		r.expect(res, http.StatusOK, hookJSON(acting.hook))
	}
}

func (r *propRun) patchHook(_ *propKey, acting *propAccount) (request, func(response)) {
	if acting == nil {
		acting = r.accounts[0]
	}
	if r.rng.IntN(10) == 0 {
		return request{method: http.MethodPatch, path: pathWebhook, body: `{"enabled":"yes","url":"https://hooks.example.com/x"}`}, func(res response) {
			r.expect400(res, "enabled")
		}
	}
	p, body := r.randomHookPatch(acting, false)
	return request{method: http.MethodPatch, path: pathWebhook, body: body}, func(res response) {
		next := p.Apply(acting.hook)
		if next.Enabled && next.URL == "" {
			r.expect400(res, "url")
			return
		}
		acting.hook = next
		r.expect(res, http.StatusOK, hookJSON(next))
	}
}

func (r *propRun) getSigned(_ *propKey, acting *propAccount) (request, func(response)) {
	return request{method: http.MethodGet, path: pathWebhookSigned}, func(res response) {
		r.expect(res, http.StatusOK, fmt.Sprintf(`{"public_key":%q}`, acting.pubKey))
	}
}

func (r *propRun) patchSigned(_ *propKey, acting *propAccount) (request, func(response)) {
	enabled := r.rng.IntN(3) != 0
	return request{method: http.MethodPatch, path: pathWebhookSigned, body: fmt.Sprintf(`{"enabled":%t}`, enabled)}, func(res response) {
		if !enabled {
			acting.pubKey = ""
			r.expect(res, http.StatusOK, wantUnsigned)
			return
		}
		if acting.pubKey != "" {
			r.expect(res, http.StatusOK, fmt.Sprintf(`{"public_key":%q}`, acting.pubKey))
			return
		}
		var out signedWebhookBody
		if res.status != http.StatusOK || json.Unmarshal([]byte(res.body), &out) != nil || out.PublicKey == "" {
			r.fail("got %d %s, want 200 and a new public key", res.status, res.body)
		}
		for _, a := range r.accounts {
			if a.pubKey == out.PublicKey {
				r.fail("new public key is %s's", a.label)
			}
		}
		acting.pubKey = out.PublicKey
	}
}

func (r *propRun) testHook(_ *propKey, acting *propAccount) (request, func(response)) {
	path := fmt.Sprintf("/test/%d", r.unique())
	before := len(r.recv.received())
	return request{method: http.MethodPost, path: pathWebhookTest, body: fmt.Sprintf(`{"url":%q}`, r.recv.URL+path)}, func(res response) {
		r.expect(res, http.StatusNoContent, "")
		posts := r.recv.received()
		if len(posts) != before+1 {
			r.fail("receiver got %d posts, want 1", len(posts)-before)
		}
		p := posts[before]
		sig, ts := p.header.Get(eventwebhook.VerificationHTTPHeader), p.header.Get(eventwebhook.TimestampHTTPHeader)
		if acting.pubKey == "" {
			if sig != "" {
				r.fail("test post signed although %s signs nothing", acting.label)
			}
			return
		}
		pub, err := eventwebhook.ConvertPublicKeyBase64ToECDSA(acting.pubKey)
		if err != nil {
			r.fail("%s's public key: %v", acting.label, err)
		}
		if ok, err := eventwebhook.VerifySignature(pub, p.body, sig, ts); !ok || err != nil {
			r.fail("test post does not verify with %s's public key: %v", acting.label, err)
		}
	}
}

// probeTLS checks that a probe's facts are filed under the acting account.
func (r *propRun) probeTLS(_ *propKey, acting *propAccount) (request, func(response)) {
	domain := fmt.Sprintf("probe%d.example", r.unique())
	before := len(r.registry.recorded())
	return request{method: http.MethodPost, path: pathProbe, body: fmt.Sprintf(`{"domain":%q}`, domain)}, func(res response) {
		var rep sealpost.TLSProbe
		if err := json.Unmarshal([]byte(res.body), &rep); res.status != http.StatusOK || err != nil || rep.Domain != domain {
			r.fail("got %d %s (%v), want 200 and the probe of %s", res.status, res.body, err, domain)
		}
		obs := r.registry.recorded()
		if len(obs) != before+1 || obs[before].AccountID != acting.id || obs[before].Domain != domain {
			r.fail("observations after the probe %+v, want one of %s for %s", obs[before:], domain, acting.label)
		}
	}
}

// ---- audits: the store against the model

func (r *propRun) auditAll() {
	saved := r.what
	r.what = "full audit after these writes:\n\t" + strings.Join(r.writes, "\n\t")
	for _, aspect := range []string{aspectTLS, aspectHook, aspectSigned, aspectKeys, aspectAccounts, aspectBatches} {
		r.audit(aspect, r.accounts...)
	}
	// A deleted key, or one of a deleted account, is gone for good.
	for _, k := range r.keys {
		if k.deleted || k.acct.deleted {
			if _, err := r.e.store.LookupAPIKey(r.t.Context(), k.id); sealpost.ErrorCode(err) != sealpost.ENOTFOUND {
				r.fail("%s: LookupAPIKey = %v, want not found", k, err)
			}
		}
	}
	r.what, r.writes = saved, nil
}

// audit compares the stored state of one aspect of accounts with the model,
// so a write that reached a second account fails.
func (r *propRun) audit(aspect string, accounts ...*propAccount) {
	r.t.Helper()
	ctx := r.t.Context()
	for _, a := range accounts {
		if a.deleted {
			if aspect == aspectAccounts {
				if _, err := r.e.store.Account(ctx, a.id); sealpost.ErrorCode(err) != sealpost.ENOTFOUND {
					r.fail("deleted account %s: Account = %v, want not found", a.label, err)
				}
			}
			continue
		}
		switch aspect {
		case aspectTLS:
			got, err := r.e.store.EnforcedTLS(ctx, a.id)
			if err != nil || got != a.tls {
				r.fail("%s's stored enforced TLS is %+v (%v), want %+v", a.label, got, err, a.tls)
			}
		case aspectHook:
			got, err := r.e.store.EventWebhookSettings(ctx, a.id)
			if err != nil || got != a.hook {
				r.fail("%s's stored webhook is %+v (%v), want %+v", a.label, got, err, a.hook)
			}
		case aspectSigned:
			key, err := r.e.store.EventWebhookSigningKey(ctx, a.id)
			if err != nil {
				r.fail("%s's signing key: %v", a.label, err)
			}
			got := ""
			if key != nil {
				if got, err = (ecdsaSigner{}).PublicKey(key); err != nil {
					r.fail("%s's signing key: %v", a.label, err)
				}
			}
			if got != a.pubKey {
				r.fail("%s's stored signing key has public key %q, want %q", a.label, got, a.pubKey)
			}
		case aspectKeys:
			stored, err := r.e.store.APIKeys(ctx, a.id)
			if err != nil {
				r.fail("%s's keys: %v", a.label, err)
			}
			var got, want []string
			for _, k := range stored {
				got = append(got, fmt.Sprintf("%s %q %v", k.ID, k.Name, nonNil(k.Scopes)))
			}
			slices.Sort(got)
			for _, k := range r.liveKeys(a) {
				want = append(want, fmt.Sprintf("%s %q %v", k.id, k.name, k.scopes))
			}
			slices.Sort(want)
			if !slices.Equal(got, want) {
				r.fail("%s's stored keys are\n%s\nwant\n%s", a.label, strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		case aspectAccounts:
			stored, err := r.e.store.Account(ctx, a.id)
			if err != nil {
				r.fail("%s: %v", a.label, err)
			}
			var parentID int64
			if a.parent != nil {
				parentID = a.parent.id
			}
			if stored.Kind != a.kind || stored.ParentID != parentID || stored.Username != a.username ||
				stored.PublicID != a.publicID || stored.Email != a.email || stored.Disabled != a.disabled {
				r.fail("%s is stored as %+v, want kind %s, parent %d, username %q, account id %q, email %q, disabled %t",
					a.label, *stored, a.kind, parentID, a.username, a.publicID, a.email, a.disabled)
			}
			if a.kind != sealpost.KindUser {
				continue
			}
			for _, kind := range []sealpost.AccountKind{sealpost.KindSubuser, sealpost.KindCustomer} {
				children, err := r.e.store.ChildAccounts(ctx, a.id, kind, sealpost.SubuserFilter{})
				if err != nil {
					r.fail("%s's %s accounts: %v", a.label, kind, err)
				}
				var got, want []int64
				for _, c := range children {
					got = append(got, c.ID)
				}
				for _, c := range r.children(a, kind) {
					want = append(want, c.id)
				}
				if !slices.Equal(got, want) {
					r.fail("%s's stored %s accounts are %v, want %v", a.label, kind, got, want)
				}
			}
		case aspectBatches:
			stored, err := r.e.store.ScheduledSends(ctx, a.id)
			if err != nil {
				r.fail("%s's scheduled sends: %v", a.label, err)
			}
			if got, want := scheduledSendsJSON(stored), scheduledSendsJSON(a.scheduledSends()); got != want {
				r.fail("%s's stored scheduled sends are %s, want %s", a.label, got, want)
			}
			for _, id := range a.batches {
				if ok, err := r.e.store.BatchExists(ctx, a.id, id); err != nil || !ok {
					r.fail("%s's batch %s: BatchExists = %v, %v", a.label, id, ok, err)
				}
			}
		case aspectMail:
			// Checked by the mail send itself, against every account.
			return
		}
	}
}

func (r *propRun) countDeletedAccounts() int {
	n := 0
	for _, a := range r.accounts {
		if a.deleted {
			n++
		}
	}
	return n
}

func (r *propRun) countDeletedKeys() int {
	n := 0
	for _, k := range r.keys {
		if k.deleted || k.acct.deleted {
			n++
		}
	}
	return n
}
