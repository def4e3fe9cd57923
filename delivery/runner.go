package delivery

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sealpost/sealpost"
)

// Deliverer makes one delivery attempt under a policy; *Client is one.
type Deliverer interface {
	Deliver(ctx context.Context, policy sealpost.EnforcedTLS, env Envelope) Result
}

// Queue is what the runner needs of the store: the queue, and the accounts'
// Enforced TLS settings and whether they are disabled, read afresh for
// every attempt.
type Queue interface {
	sealpost.QueueService
	sealpost.EnforcedTLSService
	Account(ctx context.Context, id int64) (*sealpost.Account, error)
}

// Why the recipients of a disabled account are dropped, in SendGrid's
// dropped event form.
const (
	DisabledReason = "Account disabled"
	DisabledStatus = "5.0.0"
)

// Runner works the durable queue: it claims due deliveries, delivers each
// under its account's current policy, and records the outcome with its
// events. Several runners (one per node) may share one PostgreSQL queue.
type Runner struct {
	Queue     Queue
	Deliverer Deliverer
	// DomainPolicies gives accounts' own policies per recipient domain,
	// read afresh for every attempt like the account's setting; nil: none.
	DomainPolicies DomainPolicies
	// Signer DKIM-signs each rendered message; nil: nothing is signed.
	Signer MessageSigner
	// Owner names this node in leases; it must differ between nodes.
	Owner string
	// Workers is how many deliveries are attempted at once; 0: 16.
	Workers int
	// MaxPerDomain is how many of them may go to one recipient domain at
	// once, so that one big domain cannot take every worker; 0: no limit.
	// A delivery whose domain is at the limit waits, without a worker, for
	// one of that domain's attempts to end (up to Workers of them wait);
	// past that it is handed back unattempted, due DomainBusyDelay later.
	MaxPerDomain int
	// DomainBusyDelay: 1s when zero.
	DomainBusyDelay time.Duration
	// Lease is how long a claimed delivery stays this node's; an attempt
	// is cut off well before it runs out. 0: 10 minutes.
	Lease time.Duration
	// Poll is how long to wait before looking again when nothing is due;
	// 0: 200ms.
	Poll time.Duration
	// Wake, when it delivers, ends such a wait early: mail was just
	// accepted on this node. Other nodes' mail is still found by polling.
	// nil: polling only.
	Wake <-chan struct{}
	// MaxAge is how long deferred mail is retried, counted from when it
	// was accepted; 0: 72 hours, as SendGrid does.
	MaxAge time.Duration
	// Backoff is the wait before attempt n+1 after n attempts; nil:
	// DefaultBackoff.
	Backoff func(attempts int) time.Duration
	// Grace is how long attempts in flight may go on once Run's context
	// is done (a shutdown) before they are cut off; 0: 10 seconds.
	Grace  time.Duration
	Logger *slog.Logger
	// Outage logs the queue's unavailability as changes of state rather
	// than a line per poll; nil: one of the runner's own.
	Outage *sealpost.OutageLog
	Now    func() time.Time
}

// DefaultBackoff waits 1 minute after the first attempt, doubling up to 1
// hour, with up to 10% jitter so that mail deferred together spreads out.
func DefaultBackoff(attempts int) time.Duration {
	d := time.Minute
	for i := 1; i < attempts && d < time.Hour; i++ {
		d *= 2
	}
	d = min(d, time.Hour)
	return d + time.Duration(rand.Int64N(int64(d/10)+1))
}

func (r *Runner) defaults() {
	if r.Workers <= 0 {
		r.Workers = 16
	}
	if r.Lease <= 0 {
		r.Lease = 10 * time.Minute
	}
	if r.Poll <= 0 {
		r.Poll = 200 * time.Millisecond
	}
	if r.MaxAge <= 0 {
		r.MaxAge = 72 * time.Hour
	}
	if r.Backoff == nil {
		r.Backoff = DefaultBackoff
	}
	if r.Grace <= 0 {
		r.Grace = 10 * time.Second
	}
	if r.DomainBusyDelay <= 0 {
		r.DomainBusyDelay = time.Second
	}
	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}
	if r.Now == nil {
		r.Now = time.Now
	}
	if r.Outage == nil {
		r.Outage = sealpost.NewOutageLog(r.Logger, "database")
	}
}

// Run works the queue until ctx is done, then waits for the attempts in
// flight to be recorded. It returns nil when ctx ends it.
//
// A dispatcher claims deliveries ahead of the workers, up to two per
// worker, so that a worker finishing an attempt finds the next one waiting
// rather than waiting for a claim, and each claim (a write transaction)
// takes at least one per worker.
func (r *Runner) Run(ctx context.Context) error {
	r.defaults()
	// Attempts outlive ctx by Grace: a shutdown lets them finish and be
	// recorded, so it repeats no delivery it can avoid repeating.
	hard, cut := context.WithCancel(context.WithoutCancel(ctx))
	defer cut()
	stopGrace := context.AfterFunc(ctx, func() { time.AfterFunc(r.Grace, cut) })
	defer stopGrace()

	work := make(chan *sealpost.Delivery, 2*r.Workers)
	taken := make(chan struct{}, 1) // a worker took work off the queue
	busy := &domainSlots{limit: r.MaxPerDomain, maxWaiting: r.Workers, taken: taken,
		inUse: map[string]int{}, waiting: map[string][]*sealpost.Delivery{}}
	var wg sync.WaitGroup
	defer wg.Wait()
	for range r.Workers {
		wg.Go(func() {
			for d := range work {
				select {
				case taken <- struct{}{}:
				default:
				}
				if ctx.Err() != nil {
					// Claimed but not started when the shutdown came: hand
					// it back at once rather than when its lease runs out.
					r.release(hard, d, r.Now())
					continue
				}
				switch busy.acquire(d) {
				case slotWaiting:
					// The worker goes on to other domains' mail; a worker
					// of this domain picks it up when its attempt ends.
					continue
				case slotFull:
					r.release(hard, d, r.Now().Add(r.DomainBusyDelay))
					continue
				}
				for d != nil {
					if ctx.Err() != nil || r.leaseShort(d) {
						r.release(hard, d, r.Now())
					} else {
						r.attempt(hard, d)
					}
					d = busy.next(d.Domain)
				}
			}
		})
	}
	defer close(work)

	for {
		// Refill when the queue of claimed work is half empty, so claims
		// are batched and the single SQLite writer stays free for
		// recording outcomes.
		for len(work) > cap(work)/2 || busy.crowded() {
			select {
			case <-ctx.Done():
				return nil
			case <-taken:
			}
		}
		want := cap(work) - len(work)
		claimed, err := r.Queue.ClaimDeliveries(ctx, r.Owner, r.Now(), r.Lease, want)
		if ctx.Err() == nil && !r.Outage.Report(ctx, err) && err != nil {
			r.Logger.Warn("claiming deliveries", "err", err)
		}
		for _, d := range claimed {
			work <- d // never blocks: at most want are claimed
		}
		if len(claimed) == want && want > 0 {
			continue // possibly more due
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.Wake:
		case <-time.After(r.Poll):
		}
	}
}

// release gives a claimed delivery back unattempted, due at due.
func (r *Runner) release(ctx context.Context, d *sealpost.Delivery, due time.Time) {
	log := r.Logger.With("delivery_id", d.ID, "x_message_id", d.Message.XMessageID, "domain", d.Domain)
	r.complete(ctx, log, d, sealpost.DeliveryCompletion{DeliveryID: d.ID, NextAttemptAt: due, Unattempted: true})
}

// domainSlots counts one node's attempts in flight per recipient domain,
// and holds the deliveries waiting for their domain to have room.
type domainSlots struct {
	limit      int // 0: none
	maxWaiting int
	taken      chan<- struct{} // told when a waiting delivery is taken up

	mu       sync.Mutex
	inUse    map[string]int
	waiting  map[string][]*sealpost.Delivery
	nWaiting int
}

type slotResult int

const (
	slotTaken   slotResult = iota // attempt it now
	slotWaiting                   // it waits for its domain's next free slot
	slotFull                      // hand it back
)

func (s *domainSlots) acquire(d *sealpost.Delivery) slotResult {
	if s.limit <= 0 {
		return slotTaken
	}
	domain := strings.ToLower(d.Domain)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.inUse[domain] < s.limit:
		s.inUse[domain]++
		return slotTaken
	case s.nWaiting < s.maxWaiting:
		// Only a domain at its limit has waiting deliveries, so one of its
		// attempts in flight will take this one up when it ends.
		s.waiting[domain] = append(s.waiting[domain], d)
		s.nWaiting++
		return slotWaiting
	}
	return slotFull
}

// next ends an attempt to domain: it returns the domain's next waiting
// delivery, whose attempt keeps the slot, or nil and frees the slot.
func (s *domainSlots) next(domain string) *sealpost.Delivery {
	if s.limit <= 0 {
		return nil
	}
	domain = strings.ToLower(domain)
	s.mu.Lock()
	defer s.mu.Unlock()
	if q := s.waiting[domain]; len(q) > 0 {
		d := q[0]
		if len(q) == 1 {
			delete(s.waiting, domain)
		} else {
			s.waiting[domain] = q[1:]
		}
		s.nWaiting--
		select {
		case s.taken <- struct{}{}:
		default:
		}
		return d
	}
	if s.inUse[domain]--; s.inUse[domain] <= 0 {
		delete(s.inUse, domain)
	}
	return nil
}

// crowded reports that half the waiting room is taken: claiming more now
// would likely only hand deliveries back.
func (s *domainSlots) crowded() bool {
	if s.limit <= 0 {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nWaiting > s.maxWaiting/2
}

// leaseShort reports that d waited so long for its domain that less than
// half its lease is left: it goes back to the queue instead, lest the
// attempt be cut off for want of time.
func (r *Runner) leaseShort(d *sealpost.Delivery) bool {
	return !d.LeaseUntil.IsZero() && d.LeaseUntil.Sub(r.Now()) < r.Lease/2
}

// Drain attempts every delivery due now, one claim after another, and
// returns when none is left due. Tests and benchmarks use it.
func (r *Runner) Drain(ctx context.Context) error {
	r.defaults()
	for {
		claimed, err := r.Queue.ClaimDeliveries(ctx, r.Owner, r.Now(), r.Lease, r.Workers)
		if err != nil {
			return err
		}
		if len(claimed) == 0 {
			return nil
		}
		var wg sync.WaitGroup
		for _, d := range claimed {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r.attempt(ctx, d)
			}()
		}
		wg.Wait()
	}
}

// attempt delivers d once and records the outcome.
func (r *Runner) attempt(ctx context.Context, d *sealpost.Delivery) {
	log := r.Logger.With("delivery_id", d.ID, "x_message_id", d.Message.XMessageID, "domain", d.Domain, "attempt", d.Attempts+1)
	if d.Cancelled {
		// SendGrid discards the mail of a cancelled batch when it falls
		// due, and reports no event for it.
		c := sealpost.DeliveryCompletion{DeliveryID: d.ID}
		for _, rc := range d.Message.Recipients {
			c.Recipients = append(c.Recipients, sealpost.RecipientUpdate{RecipientID: rc.ID, State: sealpost.StateDropped})
		}
		log.Info("discarded: its scheduled send is cancelled", "recipients", len(c.Recipients))
		r.complete(ctx, log, d, c)
		return
	}
	report := isTLSReport(d.Message)
	// A TLS report goes under the default policy, whatever the sending
	// (operator's) account asks of its own mail: it must reach recipients
	// whose TLS is broken, since that is what it reports.
	var policy sealpost.EnforcedTLS
	if !report {
		var err error
		policy, err = r.Queue.EnforcedTLS(ctx, d.Message.AccountID)
		if err != nil {
			// Without the policy nothing may be sent.
			if !r.Outage.Report(ctx, err) {
				log.Warn("reading the account's Enforced TLS policy", "err", err)
			}
			r.deferAll(ctx, log, d, "the sending account's Enforced TLS setting could not be read")
			return
		}
	}
	// Checked on every attempt, on whichever node claims it: mail the
	// account queued before it was disabled is never sent afterwards.
	acct, err := r.Queue.Account(ctx, d.Message.AccountID)
	if err != nil {
		if !r.Outage.Report(ctx, err) {
			log.Warn("reading the sending account", "err", err)
		}
		r.deferAll(ctx, log, d, "the sending account could not be read")
		return
	}
	if acct.Disabled {
		c, err := r.dropAll(d)
		if err != nil {
			log.Error("building events", "err", err)
			return
		}
		log.Info("dropped: the account is disabled", "recipients", len(c.Recipients))
		r.complete(ctx, log, d, c)
		return
	}
	var domainPolicy *sealpost.EnforcedTLS
	if !report {
		domainPolicy, err = r.domainPolicy(ctx, d)
	}
	if err != nil {
		// Without the policy nothing may be sent: it may raise the bar.
		if !r.Outage.Report(ctx, err) {
			log.Warn("reading the account's TLS policy for the recipient domain", "err", err)
		}
		r.deferAll(ctx, log, d, "the sending account's TLS policy for the recipient domain could not be read")
		return
	}
	// The message is put together from its mail send's shared body only
	// now, one per attempt in flight, so that a send with many
	// personalizations is never held, or stored, once per personalization.
	data, err := d.Message.Render()
	if err != nil {
		log.Error("rendering the message", "err", err)
		r.deferAll(ctx, log, d, "the stored message could not be read")
		return
	}
	from := d.Message.From
	if r.Signer != nil {
		// Mail that should be signed is held rather than sent unsigned:
		// receivers enforcing the domain's DMARC policy would refuse it.
		signed, domain, err := r.Signer.Sign(ctx, d.Message.AccountID, data)
		if err != nil {
			if !r.Outage.Report(ctx, err) {
				log.Error("DKIM-signing the message", "err", err)
			}
			r.deferAll(ctx, log, d, "the message could not be DKIM-signed")
			return
		}
		if report && (domain == nil || !sealpost.AuthenticatedFor([]sealpost.AuthenticatedDomain{*domain}, sealpost.AddressDomain(d.Message.From))) {
			// A report is DKIM-signed with its From domain, the
			// operator's authenticated domain (not a default domain's
			// signature, which would not align), or not sent: it waits,
			// within MaxAge, for the domain to be authenticated and
			// validated.
			log.Warn("TLS report not sent: its From domain is not an authenticated, validated domain of the sending account",
				"from", d.Message.From)
			r.deferAll(ctx, log, d, "the TLS report cannot be DKIM-signed: its From domain is not authenticated and validated for the sending account")
			return
		}
		data = signed
		// Bounces then go to the authenticated domain's return path, and
		// SPF is checked, and aligned, on it.
		if domain != nil {
			if sender := domain.EnvelopeSender(d.Message.AccountID, d.Message.ID); sender != "" {
				from = sender
			}
		}
	}
	// Cut the attempt off well inside the lease so that no other node can
	// start the same delivery while this one still talks to the MX. The
	// lease was taken at the claim, which may have been a moment ago.
	left := r.Lease * 9 / 10
	if !d.LeaseUntil.IsZero() {
		left = d.LeaseUntil.Sub(r.Now()) - r.Lease/10
	}
	actx, cancel := context.WithTimeout(ctx, left)
	defer cancel()
	env := Envelope{From: from, Domain: d.Domain, Data: data, DomainPolicy: domainPolicy, Attempt: d.Attempts, TLSReport: report}
	for _, rc := range d.Message.Recipients {
		env.Recipients = append(env.Recipients, rc.Email)
	}
	res := r.Deliverer.Deliver(actx, policy, env)
	c, err := r.outcome(d, res)
	if err != nil {
		log.Error("building events", "err", err)
		return
	}
	log.Debug("attempted", "policy_mandatory", policy.Mandatory(), "tls", res.TLS.TLS, "mx", res.TLS.MXHost)
	r.complete(ctx, log, d, c)
}

// domainPolicy is the account's own policy for d's recipient domain: nil
// when it has none.
func (r *Runner) domainPolicy(ctx context.Context, d *sealpost.Delivery) (*sealpost.EnforcedTLS, error) {
	if r.DomainPolicies == nil {
		return nil, nil
	}
	// Stored policies are keyed by the normalised domain; a domain that does
	// not normalise cannot have one.
	domain, err := sealpost.NormalizeDomain(d.Domain)
	if err != nil {
		return nil, nil
	}
	p, err := r.DomainPolicies.DomainTLSPolicy(ctx, d.Message.AccountID, domain)
	switch {
	case sealpost.ErrorCode(err) == sealpost.ENOTFOUND:
		return nil, nil
	case err != nil:
		return nil, err
	case p == nil:
		return nil, errors.New("no policy and no error")
	}
	return &p.Policy, nil
}

// deferAll records an attempt that could not be made as a deferral of
// every recipient. It is reported like any other, and ends at MaxAge rather
// than repeating forever (the account may be gone).
func (r *Runner) deferAll(ctx context.Context, log *slog.Logger, d *sealpost.Delivery, response string) {
	res := Result{Recipients: make([]RecipientResult, len(d.Message.Recipients))}
	for i := range res.Recipients {
		res.Recipients[i] = RecipientResult{Status: Deferred, Response: response, EnhancedStatus: statusSystemFailure}
	}
	c, err := r.outcome(d, res)
	if err != nil {
		log.Error("building events", "err", err)
		return
	}
	r.complete(ctx, log, d, c)
}

func (r *Runner) complete(ctx context.Context, log *slog.Logger, d *sealpost.Delivery, c sealpost.DeliveryCompletion) {
	// While the lease surely holds, a database outage is waited out: an
	// attempt whose outcome is dropped would sit leased until the lease
	// runs out and then be made again, a second copy if it was delivered.
	// The lease was read on the store's clock; the wait is counted on the
	// real one.
	held := r.Lease * 9 / 10
	if !d.LeaseUntil.IsZero() {
		held = d.LeaseUntil.Sub(r.Now()) - r.Lease/10
	}
	until := time.Now().Add(held)
	// An attempt that was cut off is still recorded.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), max(30*time.Second, held))
	defer cancel()
	err := r.Queue.CompleteDelivery(cctx, r.Owner, c)
retry:
	for sealpost.ErrorCode(err) == sealpost.EUNAVAILABLE && time.Now().Add(r.Poll).Before(until) {
		r.Outage.Failed(ctx, err)
		select {
		case <-ctx.Done(): // past the shutdown's grace
			break retry
		case <-time.After(r.Poll):
		}
		err = r.Queue.CompleteDelivery(cctx, r.Owner, c)
	}
	switch {
	case err == nil:
		r.Outage.Succeeded(ctx)
	case sealpost.ErrorCode(err) == sealpost.ECONFLICT:
		// The lease ran out and another node took the delivery over; its
		// attempt is the one that counts.
		log.Warn("lease lost before the attempt was recorded", "err", err)
	case errors.Is(err, context.Canceled):
	default:
		log.Error("recording an attempt", "err", err)
	}
}

// dropAll ends every recipient of d dropped, with SendGrid's dropped event.
func (r *Runner) dropAll(d *sealpost.Delivery) (sealpost.DeliveryCompletion, error) {
	now := r.Now()
	c := sealpost.DeliveryCompletion{DeliveryID: d.ID}
	for _, rc := range d.Message.Recipients {
		ev, err := sealpost.NewEvent(sealpost.EventDropped, d.Message, rc, now, sealpost.EventDetails{Reason: DisabledReason, Status: DisabledStatus})
		if err != nil {
			return c, err
		}
		c.Recipients = append(c.Recipients, sealpost.RecipientUpdate{RecipientID: rc.ID, State: sealpost.StateDropped})
		c.Events = append(c.Events, ev)
	}
	return c, nil
}

// outcome turns an attempt's result into recipient states and events.
func (r *Runner) outcome(d *sealpost.Delivery, res Result) (sealpost.DeliveryCompletion, error) {
	now := r.Now()
	c := sealpost.DeliveryCompletion{DeliveryID: d.ID}
	// The last retry lands at MaxAge exactly, not a whole backoff early;
	// a deferral at or past MaxAge is final. MaxAge counts from when the
	// delivery fell due (its created_at, the send_at of scheduled mail),
	// never from before the message was accepted.
	deadline := d.Message.CreatedAt.Add(r.MaxAge)
	if d.CreatedAt.After(d.Message.CreatedAt) {
		deadline = d.CreatedAt.Add(r.MaxAge)
	}
	next := now.Add(r.Backoff(d.Attempts + 1))
	if next.After(deadline) {
		next = deadline
	}
	expired := !now.Before(deadline)
	facts := res.TLS
	for i, rc := range d.Message.Recipients {
		var rr RecipientResult
		if i < len(res.Recipients) {
			rr = res.Recipients[i]
		} else {
			rr = RecipientResult{Status: Deferred, Response: "no result for this recipient", EnhancedStatus: "4.0.0"}
		}
		var (
			state sealpost.RecipientState
			kind  sealpost.EventKind
			det   = sealpost.EventDetails{TLS: &facts}
		)
		switch rr.Status {
		case Delivered:
			state, kind = sealpost.StateDelivered, sealpost.EventDelivered
			det.Response = rr.Response
		case Bounced:
			state, kind = sealpost.StateBounced, sealpost.EventBounce
			det.Reason, det.Status, det.Type = rr.Response, rr.EnhancedStatus, "bounce"
		case Blocked:
			state, kind = sealpost.StateBlocked, sealpost.EventBounce
			det.Reason, det.Status, det.Type = sealpost.BlockedReason, sealpost.BlockedStatus, "blocked"
		default:
			if expired {
				state, kind = sealpost.StateBounced, sealpost.EventBounce
				det.Reason = "delivery time expired after " + r.MaxAge.String() + "; last response: " + rr.Response
				det.Status, det.Type = "5.4.7", "bounce"
			} else {
				state, kind = sealpost.StateQueued, sealpost.EventDeferred
				det.Response, det.Attempt = rr.Response, d.Attempts+1
				c.NextAttemptAt = next
			}
		}
		ev, err := sealpost.NewEvent(kind, d.Message, rc, now, det)
		if err != nil {
			return c, err
		}
		c.Recipients = append(c.Recipients, sealpost.RecipientUpdate{RecipientID: rc.ID, State: state})
		c.Events = append(c.Events, ev)
	}
	for _, h := range res.Hosts {
		c.Observations = append(c.Observations, sealpost.HostObservation{
			AccountID: d.Message.AccountID, Domain: d.Domain, MXHost: h.Facts.MXHost, At: now,
			Facts: h.Facts, Recipients: len(d.Message.Recipients), CertResult: h.CertResult,
			TLSReport:    isTLSReport(d.Message),
			MTASTSPolicy: h.MTASTSPolicy, TLSARecords: h.TLSARecords, SendingIP: h.SendingIP,
		})
	}
	return c, nil
}

// isTLSReport reports whether m carries a TLS report (see
// sealpost.TLSReportCategory).
func isTLSReport(m *sealpost.Message) bool {
	return slices.Contains(m.Categories, sealpost.TLSReportCategory)
}
