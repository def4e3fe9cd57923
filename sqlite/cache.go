package sqlite

import (
	"bytes"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/sealpost/sealpost"
)

// cache holds the two reads every authenticated request makes. It is
// invalidated wholesale: every write bumps gen after it commits, and an entry
// is used only while gen still has the value it had before the entry's
// database read began. So an entry can never be older than the last write
// that returned, which is what LookupAPIKey and EnforcedTLS promise. Writes
// are rare next to reads; the cost of forgetting everything on each is small.
//
// This holds only while this process is the database's one writer, which
// LockExclusive enforces for serve. Other processes may still insert rows
// (sealpost account create): misses are never cached, so an insert cannot
// leave a stale entry behind.
type cache struct {
	enabled    atomic.Bool
	gen        atomic.Uint64
	principals sync.Map // key id -> *principalEntry
	settings   sync.Map // account id -> *settingsEntry

	// afterMiss, when set (by tests, before any use), runs between a miss's
	// database read and the store of its result: the window in which a
	// write must make the result unusable.
	afterMiss func()
}

type principalEntry struct {
	gen     uint64
	key     sealpost.APIKey
	account sealpost.Account
}

type settingsEntry struct {
	gen     uint64
	setting sealpost.EnforcedTLS
}

// bump invalidates every entry. Call it after a write has committed (or
// failed) and before the write method returns.
func (c *cache) bump() { c.gen.Add(1) }

// principal returns the cached principal for id, or nil. g must be the
// generation read before the caller's fallback database read.
func (c *cache) principal(id string, g uint64) *sealpost.Principal {
	v, ok := c.principals.Load(id)
	if !ok {
		return nil
	}
	e := v.(*principalEntry)
	if e.gen != g {
		return nil
	}
	return &sealpost.Principal{Key: cloneKey(&e.key), Account: new(e.account)}
}

// storePrincipal caches p as read from the database at generation g.
func (c *cache) storePrincipal(id string, g uint64, p *sealpost.Principal) {
	c.principals.Store(id, &principalEntry{gen: g, key: *cloneKey(p.Key), account: *p.Account})
}

func (c *cache) setting(accountID int64, g uint64) (sealpost.EnforcedTLS, bool) {
	v, ok := c.settings.Load(accountID)
	if !ok {
		return sealpost.EnforcedTLS{}, false
	}
	e := v.(*settingsEntry)
	return e.setting, e.gen == g
}

func (c *cache) storeSetting(accountID int64, g uint64, s sealpost.EnforcedTLS) {
	c.settings.Store(accountID, &settingsEntry{gen: g, setting: s})
}

// forget drops the entries of something found missing, so that deleted
// keys and accounts do not stay in memory.
func (c *cache) forgetPrincipal(id string) { c.principals.Delete(id) }
func (c *cache) forgetSetting(id int64)    { c.settings.Delete(id) }

// cloneKey copies k deeply: a caller may change what it is handed, and the
// cached value must not change with it.
func cloneKey(k *sealpost.APIKey) *sealpost.APIKey {
	c := *k
	c.Scopes = slices.Clone(k.Scopes)
	c.SecretHash = bytes.Clone(k.SecretHash)
	return &c
}
