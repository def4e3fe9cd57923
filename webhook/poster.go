// Package webhook posts the events waiting in the durable outbox to each
// account's Event Webhook, batched and signed the way SendGrid does it.
//
// Delivery is at least once: a batch is acknowledged only after its post got
// a 2xx answer, so a crash or a lost lease between the answer and the
// acknowledgement makes another poster post it again. Receivers de-duplicate
// on sg_event_id, as they must with SendGrid.
package webhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sealpost/sealpost"
)

// Store is what a Poster needs from the database.
type Store interface {
	sealpost.OutboxService
	sealpost.EventWebhookService
}

// MaxBodyBytes is the largest body a post carries unless a single event is
// larger: SendGrid posts at 768 KB, and receivers size their limits for it.
const MaxBodyBytes = 768 << 10

const (
	userAgent       = "sealpost-event-webhook"
	defaultLease    = time.Minute
	defaultMaxBatch = 1000
	defaultInterval = 200 * time.Millisecond
	defaultWorkers  = 4
	defaultMaxPosts = 64
	defaultMaxAge   = 24 * time.Hour
	defaultTimeout  = 10 * time.Second
	firstBackoff    = 5 * time.Second
	maxBackoff      = 10 * time.Minute
	ackTimeout      = 5 * time.Second
)

// Poster claims batches of events from the outbox and posts them. The zero
// value of every field but Store and Owner is a usable default.
type Poster struct {
	Store Store
	// Client posts the batches. nil: NewClient(Destinations). A client of
	// one's own decides by its transport where posts may go: make it with
	// NewClient to keep the destination rule. Redirects are never
	// followed, whatever the client says: a 3xx is a failure.
	Client *http.Client
	// Destinations are the addresses posts may connect to; the zero value
	// allows public unicast addresses only. A post to a URL whose name
	// resolves to a refused address fails like any other failed post.
	Destinations sealpost.Destinations
	// Owner names this node in leases.
	Owner string
	// Lease is how long a claimed batch stays this poster's; 0: 1 minute.
	// A post is cut off at half the lease so that its acknowledgement
	// normally comes while the lease still holds.
	Lease time.Duration
	// MaxBatch is the most events claimed, and so posted, at once; 0: 1000.
	// Bodies are also kept to MaxBodyBytes.
	MaxBatch int
	// Interval is how long a worker waits when nothing is due; 0: 200 ms.
	Interval time.Duration
	// Workers is how many goroutines claim batches and start their posts;
	// 0: 4. They never wait on a receiver, only for room in MaxPosts.
	Workers int
	// MaxPosts is how many posts may be in flight at once; 0: 64. Accounts
	// whose last post failed may hold at most half of them: however many
	// receivers hang or fail, healthy accounts keep the other half, and a
	// receiver that hangs holds one post until the timeout, never a worker.
	MaxPosts int
	// MaxAge is how long events are retried: a batch is given up on (acked
	// unposted) when its posts have failed for MaxAge, or when its oldest
	// event has waited MaxAge and its post fails; 0: 24 hours.
	MaxAge time.Duration
	// Backoff is the wait before the attempt-th retry (1 for the first);
	// nil: DefaultBackoff.
	Backoff func(attempt int) time.Duration
	Logger  *slog.Logger
	// Outage logs the store's unavailability as changes of state rather
	// than a line per poll; nil: one of the poster's own.
	Outage *sealpost.OutageLog
	Now    func() time.Time
	// Recorder keeps each post's outcome after its batch is settled; nil:
	// posts are not recorded.
	Recorder PostRecorder

	stats counters
}

// Stats are a Poster's counters since it was made, and its posts in flight.
type Stats struct {
	Posts         int64 // posts answered 2xx
	FailedPosts   int64 // posts that failed (non-2xx, 3xx, network, timeout)
	EventsPosted  int64
	EventsSkipped int64 // acked unposted: kind not wanted, webhook off, account gone
	EventsGivenUp int64 // acked unposted after failing for MaxAge
	LeasesLost    int64 // acks and retries refused because the lease had moved on
	// Posts in flight now, and those of them to accounts whose last post
	// failed: receivers that hang show here until they time out.
	InFlight, FailingInFlight int64
}

type counters struct {
	posts, failedPosts, eventsPosted, eventsSkipped, eventsGivenUp, leasesLost atomic.Int64
	inFlight, failingInFlight                                                  atomic.Int64
}

// Stats returns the counters; safe to call while Run runs.
func (p *Poster) Stats() Stats {
	return Stats{
		Posts:         p.stats.posts.Load(),
		FailedPosts:   p.stats.failedPosts.Load(),
		EventsPosted:  p.stats.eventsPosted.Load(),
		EventsSkipped: p.stats.eventsSkipped.Load(),
		EventsGivenUp: p.stats.eventsGivenUp.Load(),
		LeasesLost:    p.stats.leasesLost.Load(),

		InFlight:        p.stats.inFlight.Load(),
		FailingInFlight: p.stats.failingInFlight.Load(),
	}
}

// DefaultBackoff doubles from 5 s up to 10 minutes, taking up to a fifth
// off at random so that accounts failing together spread out.
func DefaultBackoff(attempt int) time.Duration {
	d := firstBackoff
	for i := 1; i < attempt && d < maxBackoff; i++ {
		d *= 2
	}
	d = min(d, maxBackoff)
	return d - rand.N(d/5)
}

// NewClient returns the client a Poster uses when given none: a 10 s
// timeout, no redirects, and connections only to addresses dest allows.
func NewClient(dest sealpost.Destinations) *http.Client {
	return newClient(dest, nil)
}

// newClient is NewClient with the resolver names are looked up with (nil:
// the system's), so that tests can make a name resolve to what they need.
func newClient(dest sealpost.Destinations, resolver *net.Resolver) *http.Client {
	// The rule is checked on the address actually dialled, after name
	// resolution, so a name that resolves (or rebinds) to a refused
	// address is refused too.
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, Resolver: resolver, Control: dest.Control}
	t := http.DefaultTransport.(*http.Transport).Clone()
	// A proxy from the environment would connect on sealpost's behalf,
	// to wherever the URL says, past the rule.
	t.Proxy = nil
	t.DialContext = dialer.DialContext
	t.DialTLSContext = nil
	return &http.Client{Timeout: defaultTimeout, CheckRedirect: refuseRedirect, Transport: t}
}

func refuseRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// noRedirects returns c, or a copy of it that does not follow redirects: a
// webhook URL that redirects must not make sealpost post events, signed or
// not, to a place the account never configured. c nil: NewClient(dest).
func noRedirects(c *http.Client, dest sealpost.Destinations) *http.Client {
	if c == nil {
		return NewClient(dest)
	}
	cc := *c
	cc.CheckRedirect = refuseRedirect
	return &cc
}

// run is a Poster's configuration with the defaults filled in, so that the
// Poster itself is never written to while workers read it.
type run struct {
	p        *Poster
	client   *http.Client
	lease    time.Duration
	maxBatch int
	interval time.Duration
	workers  int
	maxPosts int
	maxAge   time.Duration
	backoff  func(int) time.Duration
	log      *slog.Logger
	now      func() time.Time
	outage   *sealpost.OutageLog
}

func (p *Poster) resolve() (*run, error) {
	if p.Store == nil {
		return nil, errors.New("webhook poster: no store")
	}
	if p.Owner == "" {
		return nil, errors.New("webhook poster: no owner")
	}
	r := &run{
		p: p, client: noRedirects(p.Client, p.Destinations), lease: p.Lease, maxBatch: p.MaxBatch,
		interval: p.Interval, workers: p.Workers, maxPosts: p.MaxPosts,
		maxAge: p.MaxAge, backoff: p.Backoff, log: p.Logger, now: p.Now, outage: p.Outage,
	}
	if r.lease <= 0 {
		r.lease = defaultLease
	}
	if r.maxBatch <= 0 {
		r.maxBatch = defaultMaxBatch
	}
	if r.interval <= 0 {
		r.interval = defaultInterval
	}
	if r.workers <= 0 {
		r.workers = defaultWorkers
	}
	if r.maxPosts <= 0 {
		r.maxPosts = defaultMaxPosts
	}
	if r.maxAge <= 0 {
		r.maxAge = defaultMaxAge
	}
	if r.backoff == nil {
		r.backoff = DefaultBackoff
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.outage == nil {
		r.outage = sealpost.NewOutageLog(r.log, "database")
	}
	return r, nil
}

// posting is the posts in flight of one Run or Flush.
type posting struct {
	posts   chan struct{} // a token per post in flight
	failing chan struct{} // a token per failing account's post, a part of posts
	wg      sync.WaitGroup
	report  func(error) // a store error of a batch handled in the background
}

func (r *run) newPosting(report func(error)) *posting {
	return &posting{
		posts:   make(chan struct{}, r.maxPosts),
		failing: make(chan struct{}, max(1, r.maxPosts/2)),
		report:  report,
	}
}

// Run claims and posts batches with Workers workers, up to MaxPosts at once,
// until ctx is done, and then returns nil. Store errors are logged and
// retried after Interval.
func (p *Poster) Run(ctx context.Context) error {
	r, err := p.resolve()
	if err != nil {
		return err
	}
	ps := r.newPosting(func(err error) { r.logStoreError(ctx, err) })
	var wg sync.WaitGroup
	for range r.workers {
		wg.Go(func() { r.loop(ctx, func() (bool, error) { return r.startHealthy(ctx, ps) }) })
	}
	// One worker is enough for the failing accounts: their share of the
	// posts, not the claiming, is what bounds them.
	wg.Go(func() { r.loop(ctx, func() (bool, error) { return r.startFailing(ctx, ps) }) })
	wg.Wait()
	ps.wg.Wait()
	return nil
}

// logStoreError logs a failed claim; an unavailable database goes to the
// outage log, which says so once rather than on every claim.
func (r *run) logStoreError(ctx context.Context, err error) {
	if ctx.Err() == nil && !r.outage.Report(ctx, err) && err != nil {
		r.log.ErrorContext(ctx, "event webhook", "err", err)
	}
}

// loop runs once until ctx is done, at once again after a claim and after
// Interval when nothing was due or the store failed.
func (r *run) loop(ctx context.Context, once func() (bool, error)) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		claimed, err := once()
		r.logStoreError(ctx, err)
		if claimed && err == nil {
			timer.Reset(0)
		} else {
			timer.Reset(r.interval)
		}
	}
}

// Flush claims and posts until nothing is due, with Workers workers and up
// to MaxPosts posts at once, and returns the store errors it met. A failed
// post is not an error: its batch is retried later (or given up on) as in
// Run. A Backoff of zero makes a failing batch due again at once, so Flush
// would not end while its receiver fails.
func (p *Poster) Flush(ctx context.Context) error {
	r, err := p.resolve()
	if err != nil {
		return err
	}
	var (
		mu   sync.Mutex
		errs []error
	)
	report := func(err error) {
		if err != nil {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}
	}
	failed := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(errs) > 0
	}
	ps := r.newPosting(report)
	// A round ends when the workers find nothing due; posts settled
	// meanwhile (a failure with no backoff) can make more due, so rounds
	// go on until one claims nothing.
	for ctx.Err() == nil && !failed() {
		var (
			wg      sync.WaitGroup
			claimed atomic.Bool
		)
		drain := func(once func() (bool, error)) {
			for ctx.Err() == nil {
				ok, err := once()
				if err != nil {
					report(err)
					return
				}
				if !ok {
					return
				}
				claimed.Store(true)
			}
		}
		for range r.workers {
			wg.Go(func() { drain(func() (bool, error) { return r.startHealthy(ctx, ps) }) })
		}
		wg.Go(func() { drain(func() (bool, error) { return r.startFailing(ctx, ps) }) })
		wg.Wait()
		ps.wg.Wait()
		if !claimed.Load() {
			break
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return errors.Join(errs...)
}

// startHealthy claims a batch of an account whose last post did not fail,
// once there is room for its post, and posts it in the background. It
// reports whether there was one.
func (r *run) startHealthy(ctx context.Context, ps *posting) (bool, error) {
	return r.start(ctx, ps, sealpost.HealthyOutbox, []*atomic.Int64{&r.p.stats.inFlight}, ps.posts)
}

// startFailing is startHealthy for the accounts whose last post failed,
// within their share of the posts.
func (r *run) startFailing(ctx context.Context, ps *posting) (bool, error) {
	gauges := []*atomic.Int64{&r.p.stats.inFlight, &r.p.stats.failingInFlight}
	return r.start(ctx, ps, sealpost.FailingOutbox, gauges, ps.failing, ps.posts)
}

// start takes a token of each of slots, in order, claims a batch of lane
// and posts it in the background, holding the tokens (and counting the post
// in gauges) until it is settled. Tokens come first so that no batch is
// leased while its post could not start.
func (r *run) start(ctx context.Context, ps *posting, lane sealpost.OutboxLane, gauges []*atomic.Int64, slots ...chan struct{}) (bool, error) {
	release := func(taken []chan struct{}) {
		for _, s := range taken {
			<-s
		}
	}
	for i, s := range slots {
		select {
		case s <- struct{}{}:
		case <-ctx.Done():
			release(slots[:i])
			return false, nil
		}
	}
	b, held, err := r.claim(ctx, lane)
	if b == nil || err != nil {
		release(slots)
		return false, err
	}
	for _, g := range gauges {
		g.Add(1)
	}
	ps.wg.Go(func() {
		defer release(slots)
		defer func() {
			for _, g := range gauges {
				g.Add(-1)
			}
		}()
		ps.report(r.settle(ctx, held, b))
	})
	return true, nil
}

// claim leases one batch of lane, or returns nil when none is due.
func (r *run) claim(ctx context.Context, lane sealpost.OutboxLane) (*sealpost.EventBatch, *holding, error) {
	claimed := time.Now()
	b, err := r.p.Store.ClaimEventBatchInLane(ctx, r.p.Owner, lane, r.now(), r.lease, r.maxBatch)
	if err != nil {
		return nil, nil, fmt.Errorf("claiming an event batch: %w", err)
	}
	if b == nil {
		return nil, nil, nil
	}
	// Work on the batch may wait out a database outage only while the
	// lease is surely still this poster's; the lease was taken at or
	// after claimed.
	return b, &holding{r: r, ctx: ctx, until: claimed.Add(r.lease / 2)}, nil
}

// settle posts a claimed batch and acknowledges or defers it.
func (r *run) settle(ctx context.Context, held *holding, b *sealpost.EventBatch) error {
	if len(b.Events) == 0 {
		return r.ack(ctx, held, r.log, b)
	}
	return r.handle(ctx, held, b)
}

// holding is a claimed batch's hold on the store. A batch claimed just
// before the database goes away would otherwise be dropped at the first
// failed read or acknowledgement and wait out its whole lease (a minute by
// default) before anyone posts it, or posts it again; instead its store
// calls are retried for as long as the lease is surely held.
type holding struct {
	r     *run
	ctx   context.Context // ends the retries: a shutdown
	until time.Time
}

// retry runs fn until it succeeds, fails with anything but EUNAVAILABLE,
// the poster stops, or the hold is over.
func (h *holding) retry(fn func() error) error {
	for {
		err := fn()
		if sealpost.ErrorCode(err) != sealpost.EUNAVAILABLE || !time.Now().Add(h.r.interval).Before(h.until) {
			return err
		}
		select {
		case <-h.ctx.Done():
			return err
		case <-time.After(h.r.interval):
		}
	}
}

// handle posts the wanted events at the head of b and settles the batch.
// A store error that outlasts held leaves the batch alone: its lease runs
// out and it is claimed again, so that a database hiccup is not counted as
// a failure of the account's endpoint.
func (r *run) handle(ctx context.Context, held *holding, b *sealpost.EventBatch) error {
	log := r.log.With("account_id", b.AccountID)
	var settings sealpost.EventWebhookSettings
	err := held.retry(func() (err error) {
		settings, err = r.p.Store.EventWebhookSettings(ctx, b.AccountID)
		return err
	})
	if sealpost.ErrorCode(err) == sealpost.ENOTFOUND {
		// The account is gone: nobody is left to post to.
		r.p.stats.eventsSkipped.Add(int64(len(b.Events)))
		return r.ack(ctx, held, log, b)
	}
	if err != nil {
		return fmt.Errorf("reading event webhook settings of account %d: %w", b.AccountID, err)
	}
	wanted := make([]sealpost.StoredEvent, 0, len(b.Events))
	for _, e := range b.Events {
		if settings.Wants(e.Kind) {
			wanted = append(wanted, e)
		}
	}
	if len(wanted) == 0 {
		r.p.stats.eventsSkipped.Add(int64(len(b.Events)))
		return r.ack(ctx, held, log, b)
	}
	chunk, body := firstChunk(wanted, MaxBodyBytes)
	// The acknowledged part is a prefix of the batch, up to the last event
	// posted: the skipped events in it go with it, and the rest of the
	// batch is claimed again at once, in order.
	last := chunk[len(chunk)-1].ID
	cut := 0
	for cut < len(b.Events) && b.Events[cut].ID <= last {
		cut++
	}
	done := b
	if cut < len(b.Events) {
		head := *b
		head.Events = b.Events[:cut]
		done = &head
	}
	posted := len(chunk)
	// The events are in body now: a post waiting on a slow receiver, one
	// of up to MaxPosts, keeps one copy of them, not two (wanted and chunk
	// are dead from here).
	for i := range b.Events {
		b.Events[i].Payload = nil
	}

	var key []byte
	err = held.retry(func() (err error) {
		key, err = r.p.Store.EventWebhookSigningKey(ctx, b.AccountID)
		return err
	})
	if err != nil {
		return fmt.Errorf("reading event webhook signing key of account %d: %w", b.AccountID, err)
	}
	at, start := r.now(), time.Now()
	status, postErr := r.post(ctx, settings.URL, key, body)
	took := time.Since(start)
	log = log.With("host", hostOf(settings.URL), "events", posted, "bytes", len(body))
	if postErr == nil || ctx.Err() == nil {
		// A post cut off by shutdown is no answer of the receiver's, so
		// only the others are recorded.
		defer r.record(ctx, sealpost.EventWebhookPost{AccountID: b.AccountID, At: at, Host: hostOf(settings.URL),
			Events: posted, Status: status, Error: PostFailure(status, postErr), Duration: took})
	}
	if postErr == nil {
		r.p.stats.posts.Add(1)
		r.p.stats.eventsPosted.Add(int64(posted))
		r.p.stats.eventsSkipped.Add(int64(cut - posted))
		log.DebugContext(ctx, "event webhook posted", "duration", took)
		// The receiver has the events: record it even when shutting down,
		// so that they are not posted twice; during an outage, for as long
		// as the batch is held, for the same reason.
		actx, cancel := context.WithDeadline(context.WithoutCancel(ctx), later(held.until, time.Now().Add(ackTimeout)))
		defer cancel()
		return r.ack(actx, held, log, done)
	}
	if ctx.Err() != nil {
		// Shutting down: the post was cut off here, not failed by the
		// endpoint; the lease runs out and another poster takes the batch.
		return nil
	}
	r.p.stats.failedPosts.Add(1)
	now := r.now()
	if r.expired(b, now) {
		r.p.stats.eventsGivenUp.Add(int64(len(b.Events)))
		log.WarnContext(ctx, "event webhook: giving up on events", "err", postErr,
			"attempts", b.Attempts+1, "failing_since", b.FailingSince, "given_up", len(b.Events))
		return r.ack(ctx, held, log, b)
	}
	wait := r.backoff(b.Attempts + 1)
	log.InfoContext(ctx, "event webhook post failed", "err", postErr,
		"attempts", b.Attempts+1, "retry_in", wait)
	err = held.retry(func() error { return r.p.Store.RetryEventBatch(ctx, b, now.Add(wait)) })
	return r.settled(ctx, log, err, "retrying")
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// expired reports whether b's events have been retried long enough: its
// posts have failed for maxAge, or its oldest event has waited that long.
func (r *run) expired(b *sealpost.EventBatch, now time.Time) bool {
	if !b.FailingSince.IsZero() && now.Sub(b.FailingSince) >= r.maxAge {
		return true
	}
	head := b.Events[0].CreatedAt
	return !head.IsZero() && now.Sub(head) >= r.maxAge
}

func (r *run) ack(ctx context.Context, held *holding, log *slog.Logger, b *sealpost.EventBatch) error {
	err := held.retry(func() error { return r.p.Store.AckEventBatch(ctx, b) })
	return r.settled(ctx, log, err, "acknowledging")
}

// settled treats a lost lease as normal: another poster has the batch and
// posts it again, which at-least-once delivery allows.
func (r *run) settled(ctx context.Context, log *slog.Logger, err error, what string) error {
	if sealpost.ErrorCode(err) == sealpost.ECONFLICT {
		r.p.stats.leasesLost.Add(1)
		log.WarnContext(ctx, "event webhook: lease lost before "+what+" the batch", "err", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s an event batch: %w", what, err)
	}
	return nil
}

// firstChunk returns the longest prefix of events whose JSON array stays
// within limit bytes (at least one event), and that array. Payloads are
// copied byte for byte: they are what was stored, and re-encoding could
// change what a receiver sees.
func firstChunk(events []sealpost.StoredEvent, limit int) ([]sealpost.StoredEvent, []byte) {
	size, n := 1, 0
	for n < len(events) {
		next := size + len(events[n].Payload) + 1 // payload and ',' or ']'
		if n > 0 && next > limit {
			break
		}
		size = next
		n++
	}
	body := make([]byte, 0, size)
	body = append(body, '[')
	for i, e := range events[:n] {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, e.Payload...)
	}
	body = append(body, ']')
	return events[:n], body
}
