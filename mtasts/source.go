// Package mtasts finds the MTA-STS policies (RFC 8461) of recipient
// domains: discovery by the "_mta-sts" TXT record, the policy fetched over
// HTTPS, kept in a cache that every node shares and refreshed when the
// record's id changes or the policy ages. It decides which policy applies;
// delivery applies it.
package mtasts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/sealpost/sealpost"
)

// Resolver finds TXT records.
type Resolver interface {
	// LookupTXT returns name's TXT records, each one's strings joined; a
	// name without any returns (nil, nil).
	LookupTXT(ctx context.Context, name string) ([]string, error)
}

// Fetcher gets and strictly parses a domain's policy file from
// https://mta-sts.<domain>/.well-known/mta-sts.txt.
type Fetcher interface {
	FetchMTASTSPolicy(ctx context.Context, domain string) (sealpost.MTASTSPolicy, error)
}

// Cache keeps the policies as last fetched, for all nodes (the Store).
type Cache interface {
	// CachedMTASTSPolicy returns domain's policy, expired or not, or an
	// ENOTFOUND error.
	CachedMTASTSPolicy(ctx context.Context, domain string) (*sealpost.CachedMTASTSPolicy, error)
	// PutMTASTSPolicy stores p unless a policy fetched later is stored.
	PutMTASTSPolicy(ctx context.Context, p sealpost.CachedMTASTSPolicy) error
}

// Defaults of Source's intervals.
const (
	// DefaultRefreshAge: RFC 8461 3.3 says to refresh a cached policy
	// before it expires, suggesting daily, so that an attacker who blocks
	// one refresh cannot make it lapse.
	DefaultRefreshAge = 24 * time.Hour
	// DefaultRetryAfter: after a failed fetch, RFC 8461 3.3 suggests
	// waiting five minutes or longer per policy id before the next.
	DefaultRetryAfter = 5 * time.Minute
	// DefaultReuse is how long a node answers from a fetch it just made
	// instead of fetching again, whatever the policy's max_age or the
	// callers asking: a burst of deliveries costs the domain one fetch.
	DefaultReuse = time.Minute
	// DefaultFetchTimeout bounds one fetch, whichever caller waits for it.
	DefaultFetchTimeout = 2 * time.Minute
)

// Source gives recipient domains' MTA-STS policies (delivery.MTASTSSource).
// Its zero intervals are the defaults above. Concurrent callers asking for
// one domain share one fetch; a Source must not be copied after first use.
type Source struct {
	Resolver Resolver
	Fetcher  Fetcher
	Cache    Cache
	Logger   *slog.Logger     // nil: discard
	Now      func() time.Time // nil: time.Now

	RefreshAge   time.Duration
	RetryAfter   time.Duration
	Reuse        time.Duration
	FetchTimeout time.Duration

	mu      sync.Mutex
	domains map[string]*domainFetches
}

// domainFetches is one domain's fetch in flight on this node, and the last
// one that finished.
type domainFetches struct {
	running *fetch
	last    *fetch
}

// fetch is one fetch of a domain's policy under the record's id. Its
// fields other than done are written before done is closed.
type fetch struct {
	id   string
	done chan struct{}

	at       time.Time
	policy   sealpost.MTASTSPolicy
	fetchErr error // the policy could not be fetched
	cacheErr error // fetched, but the cache could not store it
}

// Policy returns the policy that applies to mail for domain now, as
// delivery.MTASTSSource documents: RFC 8461 3.3 and 5.1.
func (s *Source) Policy(ctx context.Context, domain string) (*sealpost.MTASTSPolicy, error) {
	domain = normalize(domain)
	now := s.now()
	cached, err := s.cached(ctx, domain, now)
	if err != nil {
		return nil, err
	}
	id, found, err := s.lookupID(ctx, domain)
	switch {
	case ctx.Err() != nil:
		return nil, ctx.Err() // the caller gave up: nothing was learnt
	case err != nil:
		// No live policy can be discovered; a cached one still applies
		// (RFC 8461 3.3), and without one mail goes as though the domain
		// had none.
		s.logger().Debug("MTA-STS record lookup failed", slog.String("domain", domain), slog.Bool("cached", cached != nil), slog.Any("err", err))
		return applicable(cached), nil
	case !found:
		// Without a usable record there is nothing to fetch, but its
		// absence does not remove a cached policy before it expires
		// (RFC 8461 3.1): an attacker who strips the record gains nothing.
		return applicable(cached), nil
	case cached != nil && cached.ID == id && now.Sub(cached.FetchedAt) < s.refreshAge():
		return applicable(cached), nil
	}
	// Nothing cached, a new id, or a refresh due before the policy expires.
	failure := fetchFailure{consequence: "no policy is cached: mail goes as though the domain published none (RFC 8461 3.3)", warn: true}
	if cached != nil {
		// RFC 8461 3.3: administrators should learn that a refresh fails,
		// unless the policy cached is mode none.
		failure = fetchFailure{consequence: "the cached policy applies until it expires at " + cached.ExpiresAt.UTC().Format(time.RFC3339),
			warn: cached.Policy.Mode != "none"}
	}
	f, err := s.fetch(ctx, domain, id, failure)
	if err != nil {
		return nil, err
	}
	if f.fetchErr != nil {
		if cached != nil {
			return applicable(cached), nil
		}
		// RFC 8461 3.3: with no policy cached, deliver as though the
		// domain had not implemented MTA-STS.
		s.logger().Debug("no MTA-STS policy to apply", slog.String("domain", domain), slog.Any("err", f.fetchErr))
		return nil, nil
	}
	return applicable(&sealpost.CachedMTASTSPolicy{Policy: f.policy}), nil
}

// Refresh fetches domain's policy afresh, past the cache, as RFC 8461 5.1
// requires before a delivery failing under the policy fails permanently.
// An error means no new policy could be fetched: the delivery is deferred.
// A fetch made less than Reuse ago serves as this one (a failed one, less
// than RetryAfter ago), so that a domain whose mail fails is not hammered.
// A domain that no longer publishes a record has no new policy to fetch;
// the cached one applies until it expires (RFC 8461 3.1).
func (s *Source) Refresh(ctx context.Context, domain string) (*sealpost.MTASTSPolicy, error) {
	domain = normalize(domain)
	id, found, err := s.lookupID(ctx, domain)
	if err != nil {
		return nil, fmt.Errorf("looking for a new MTA-STS policy of %s: %w", domain, err)
	}
	if !found {
		cached, err := s.cached(ctx, domain, s.now())
		if err != nil {
			return nil, err
		}
		return applicable(cached), nil
	}
	f, err := s.fetch(ctx, domain, id, fetchFailure{consequence: "mail that fails under the policy is deferred", warn: true})
	if err != nil {
		return nil, err
	}
	if f.fetchErr != nil {
		return nil, fmt.Errorf("refreshing the MTA-STS policy of %s: %w", domain, f.fetchErr)
	}
	return applicable(&sealpost.CachedMTASTSPolicy{Policy: f.policy}), nil
}

// cached returns domain's cached policy unless it has expired.
func (s *Source) cached(ctx context.Context, domain string, now time.Time) (*sealpost.CachedMTASTSPolicy, error) {
	p, err := s.Cache.CachedMTASTSPolicy(ctx, domain)
	if sealpost.ErrorCode(err) == sealpost.ENOTFOUND {
		return nil, nil
	}
	if err != nil {
		// Without the cache a policy that applies cannot be told from
		// none: nothing may be sent.
		return nil, fmt.Errorf("reading the cached MTA-STS policy of %s: %w", domain, err)
	}
	if p.Expired(now) {
		return nil, nil
	}
	return p, nil
}

// lookupID returns the id of domain's MTA-STS record; found is false when
// there is no usable record (none, several, or a malformed one: RFC 8461
// 3.1 treats them alike).
func (s *Source) lookupID(ctx context.Context, domain string) (id string, found bool, err error) {
	txts, err := s.Resolver.LookupTXT(ctx, "_mta-sts."+domain)
	if err != nil {
		return "", false, err
	}
	rec, err := sealpost.FindMTASTSRecord(txts)
	if err != nil {
		if !errors.Is(err, sealpost.ErrNoRecord) {
			s.logger().Info("unusable MTA-STS record", slog.String("domain", domain), slog.Any("err", err))
		}
		return "", false, nil
	}
	return rec.ID, true, nil
}

// fetch returns the outcome of a fetch of domain's policy under id: the
// one in flight, one that finished less than Reuse ago (one that failed,
// less than RetryAfter ago), or a new one, stored in the cache on success.
// The fetch runs apart from ctx, so that a caller who gives up does not
// fail the others waiting for it; the error is then ctx's, or the cache's.
func (s *Source) fetch(ctx context.Context, domain, id string, failure fetchFailure) (*fetch, error) {
	for {
		s.mu.Lock()
		if s.domains == nil {
			s.domains = make(map[string]*domainFetches)
		}
		d := s.domains[domain]
		if d == nil {
			s.forgetIdle()
			d = &domainFetches{}
			s.domains[domain] = d
		}
		if f := d.running; f != nil {
			s.mu.Unlock()
			select {
			case <-f.done:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			if f.id == id && f.cacheErr == nil {
				return f, nil
			}
			continue // a fetch for another id, or one the cache lost: decide again
		}
		if f := d.last; f != nil && f.id == id {
			age := s.now().Sub(f.at)
			if (f.fetchErr == nil && age < s.reuse()) || (f.fetchErr != nil && age < s.retryAfter()) {
				s.mu.Unlock()
				return f, nil
			}
		}
		f := &fetch{id: id, done: make(chan struct{})}
		d.running = f
		s.mu.Unlock()
		go s.run(context.WithoutCancel(ctx), domain, d, f, failure)
		select {
		case <-f.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if f.cacheErr != nil {
			return nil, f.cacheErr
		}
		return f, nil
	}
}

// fetchFailure is what a failed fetch means to the caller who started it,
// for the log.
type fetchFailure struct {
	consequence string
	warn        bool
}

// run makes fetch f and records it as d's last one.
func (s *Source) run(ctx context.Context, domain string, d *domainFetches, f *fetch, failure fetchFailure) {
	ctx, cancel := context.WithTimeout(ctx, s.fetchTimeout())
	defer cancel()
	log := s.logger().With(slog.String("domain", domain), slog.String("policy_id", f.id))
	f.policy, f.fetchErr = s.Fetcher.FetchMTASTSPolicy(ctx, domain)
	f.at = s.now()
	if f.fetchErr != nil {
		level := slog.LevelInfo
		if failure.warn {
			level = slog.LevelWarn
		}
		log.Log(ctx, level, "MTA-STS policy fetch failed", slog.String("consequence", failure.consequence),
			slog.Duration("retry_after", s.retryAfter()), slog.Any("err", f.fetchErr))
	} else {
		err := s.Cache.PutMTASTSPolicy(ctx, sealpost.CachedMTASTSPolicy{Domain: domain, ID: f.id, Policy: f.policy,
			FetchedAt: f.at, ExpiresAt: f.at.Add(time.Duration(f.policy.MaxAge) * time.Second)})
		if err != nil {
			f.cacheErr = fmt.Errorf("caching the MTA-STS policy of %s: %w", domain, err)
		} else {
			log.Info("MTA-STS policy fetched", slog.String("mode", f.policy.Mode), slog.Int64("max_age", f.policy.MaxAge))
		}
	}
	s.mu.Lock()
	d.running = nil
	if f.cacheErr == nil {
		d.last = f // a fetch the cache lost is not one to answer from
	}
	s.mu.Unlock()
	close(f.done)
}

// maxRemembered bounds the domains whose last fetch a Source keeps before
// forgetting those it no longer needs.
const maxRemembered = 1024

// forgetIdle drops the domains with no fetch running whose last one is too
// old to answer from. s.mu is held.
func (s *Source) forgetIdle() {
	if len(s.domains) < maxRemembered {
		return
	}
	keep := max(s.retryAfter(), s.reuse())
	now := s.now()
	for name, d := range s.domains {
		if d.running == nil && (d.last == nil || now.Sub(d.last.at) >= keep) {
			delete(s.domains, name)
		}
	}
}

// applicable is the policy p requires of delivery: none for mode none.
func applicable(p *sealpost.CachedMTASTSPolicy) *sealpost.MTASTSPolicy {
	if p == nil || p.Policy.Mode == "none" {
		return nil
	}
	policy := p.Policy
	policy.MX = append([]string(nil), policy.MX...)
	return &policy
}

func normalize(domain string) string {
	return strings.ToLower(strings.TrimSuffix(domain, "."))
}

func (s *Source) now() time.Time {
	if s.Now == nil {
		return time.Now()
	}
	return s.Now()
}

func (s *Source) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

func (s *Source) refreshAge() time.Duration   { return orDefault(s.RefreshAge, DefaultRefreshAge) }
func (s *Source) retryAfter() time.Duration   { return orDefault(s.RetryAfter, DefaultRetryAfter) }
func (s *Source) reuse() time.Duration        { return orDefault(s.Reuse, DefaultReuse) }
func (s *Source) fetchTimeout() time.Duration { return orDefault(s.FetchTimeout, DefaultFetchTimeout) }
