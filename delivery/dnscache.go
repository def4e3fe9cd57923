package delivery

import (
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

const (
	// maxCacheTTL caps how long any answer is reused, whatever its TTL says,
	// so that a changed MX record is seen within minutes.
	maxCacheTTL = 5 * time.Minute
	// maxCacheEntries bounds the cache's memory.
	maxCacheEntries = 4096
)

// dnsCache keeps answers (records, or a NODATA or NXDOMAIN answer with its
// SOA) until their TTL runs out. Failures are never cached. Cached messages
// are shared and must not be modified.
type dnsCache struct {
	now     func() time.Time
	mu      sync.Mutex
	entries map[dnsCacheKey]dnsCacheEntry
}

type dnsCacheKey struct {
	name  string
	qtype uint16
}

type dnsCacheEntry struct {
	msg     *dns.Msg
	expires time.Time
}

func newDNSCache(now func() time.Time) *dnsCache {
	return &dnsCache{now: now, entries: make(map[dnsCacheKey]dnsCacheEntry)}
}

func (c *dnsCache) get(name string, qtype uint16) *dns.Msg {
	key := dnsCacheKey{strings.ToLower(dns.Fqdn(name)), qtype}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok {
		return nil
	}
	if !c.now().Before(e.expires) {
		delete(c.entries, key)
		return nil
	}
	return e.msg
}

func (c *dnsCache) put(name string, qtype uint16, msg *dns.Msg) {
	ttl, ok := answerTTL(msg)
	if !ok || ttl <= 0 {
		return
	}
	now := c.now()
	key := dnsCacheKey{strings.ToLower(dns.Fqdn(name)), qtype}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= maxCacheEntries {
		for k, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= maxCacheEntries {
			clear(c.entries)
		}
	}
	c.entries[key] = dnsCacheEntry{msg: msg, expires: now.Add(min(ttl, maxCacheTTL))}
}

// answerTTL is how long msg may be reused: the smallest TTL of its answer
// records, or for an answer without records the negative-caching TTL of
// RFC 2308 (the SOA's TTL or MINIMUM, whichever is smaller). ok is false
// when msg says nothing about how long it holds.
func answerTTL(msg *dns.Msg) (time.Duration, bool) {
	var ttl uint32
	found := false
	for _, rr := range msg.Answer {
		if h := rr.Header(); !found || h.Ttl < ttl {
			ttl, found = h.Ttl, true
		}
	}
	if !found {
		for _, rr := range msg.Ns {
			if soa, ok := rr.(*dns.SOA); ok {
				ttl, found = min(soa.Hdr.Ttl, soa.Minttl), true
			}
		}
	}
	return time.Duration(ttl) * time.Second, found
}
