package sqlite

import (
	"bytes"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/sealpost/sealpost"
)

// cache holds the reads every authenticated request makes (the key and the
// account's setting) and those every delivery attempt makes (see memo). It
// is invalidated wholesale: every write bumps gen after it commits, and an entry
// is used only while gen still has the value it had before the entry's
// database read began. So an entry can never be older than the last write
// that returned, which is what LookupAPIKey and EnforcedTLS promise. Writes
// are rare next to reads; the cost of forgetting everything on each is small.
//
// This holds only while this process is the database's one writer, which
// LockExclusive enforces for serve. Other processes may still insert rows
// (sealpost account create): misses of the tables they write are never
// cached, so an insert cannot leave a stale entry behind.
type cache struct {
	enabled    atomic.Bool
	gen        atomic.Uint64
	principals memo[string, *sealpost.Principal] // by key id
	settings   memo[int64, sealpost.EnforcedTLS] // by account id

	accounts       memo[int64, *sealpost.Account]
	domainPolicies memo[domainPolicyKey, *sealpost.DomainTLSPolicy]
	authDomains    memo[int64, []sealpost.AuthenticatedDomain]
	// assignedDomains: the domain a subuser's parent assigned it.
	assignedDomains memo[int64, *sealpost.AuthenticatedDomain]
	mtastsPolicies  memo[string, *sealpost.CachedMTASTSPolicy]

	// afterMiss, when set (by tests, before any use), runs between a miss's
	// database read and the store of its result: the window in which a
	// write must make the result unusable.
	afterMiss func()
}

type domainPolicyKey struct {
	accountID int64
	domain    string
}

// bump invalidates every entry. Call it after a write has committed (or
// failed) and before the write method returns.
func (c *cache) bump() { c.gen.Add(1) }

// clonePrincipal copies p deeply: a caller may change what it is handed,
// and the cached value must not change with it.
func clonePrincipal(p *sealpost.Principal) *sealpost.Principal {
	return &sealpost.Principal{Key: cloneKey(p.Key), Account: new(*p.Account)}
}

func cloneKey(k *sealpost.APIKey) *sealpost.APIKey {
	c := *k
	c.Scopes = slices.Clone(k.Scopes)
	c.SecretHash = bytes.Clone(k.SecretHash)
	return &c
}

// memo caches the answers of one kind of read: an API key, an account's
// setting, and on the delivery path, which asks them for every attempt, the
// sending account, its policy for the recipient domain, its authenticated
// and assigned domains, a domain's cached MTA-STS policy. It follows
// cache's rule (an entry is used only at the generation its read began at).
// Where asked, it also keeps "not found" answers, which only tables that no
// other process writes may do: serve alone writes domain policies,
// authenticated domains and MTA-STS policies. Every write to them must bump
// the generation, as every account write does.
type memo[K comparable, V any] struct {
	entries sync.Map // K -> *memoEntry[V]
}

type memoEntry[V any] struct {
	gen uint64
	v   V
	err error // nil or an ENOTFOUND error
}

// memoized answers read through m: from the entry for k when it is of the
// current generation, else from read, whose answer is kept when it is a
// value or, with keepNotFound, an ENOTFOUND error. clone copies a value so
// that a caller changing what it is handed changes nothing cached.
func memoized[K comparable, V any](c *cache, m *memo[K, V], k K, keepNotFound bool, clone func(V) V, read func() (V, error)) (V, error) {
	if !c.enabled.Load() {
		return read()
	}
	g := c.gen.Load()
	if v, ok := m.entries.Load(k); ok {
		if e := v.(*memoEntry[V]); e.gen == g {
			if e.err != nil {
				var zero V
				return zero, e.err
			}
			return clone(e.v), nil
		}
	}
	v, err := read()
	if c.afterMiss != nil {
		c.afterMiss()
	}
	switch {
	case err == nil:
		m.entries.Store(k, &memoEntry[V]{gen: g, v: clone(v)})
	case keepNotFound && sealpost.ErrorCode(err) == sealpost.ENOTFOUND:
		m.entries.Store(k, &memoEntry[V]{gen: g, err: err})
	default:
		m.entries.Delete(k)
	}
	return v, err
}
