package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"

	"github.com/sealpost/sealpost"
)

// sendMail accepts a mail send for the acting account. The 202 and its
// X-Message-Id go out only once the messages and their processed events
// are durable; any failure before that leaves nothing stored and no id
// shown.
func (s *Server) sendMail(ctx context.Context, _ *http.Request, c *call) (int, []byte, error) {
	ms, err := ParseMailSend(c.body)
	if err != nil {
		return 0, nil, err
	}
	xMessageID, err := sealpost.NewXMessageID()
	if err != nil {
		return 0, nil, err
	}
	now := s.now()
	if err := ms.CheckSchedule(now); err != nil {
		return 0, nil, err
	}
	if s.requireAuthenticatedSender {
		domains, assigned, err := sealpost.SendingDomains(ctx, s.store, c.acting.ID)
		if err != nil {
			return 0, nil, fmt.Errorf("account %d: %w", c.acting.ID, err)
		}
		// A subuser sends as its parent's domain once it is assigned it.
		if assigned != nil {
			domains = append(domains, *assigned)
		}
		if err := ms.CheckAuthenticatedSender(domains); err != nil {
			return 0, nil, err
		}
	}
	if ms.BatchID != "" {
		if err := s.checkBatch(ctx, c, ms.BatchID); err != nil {
			return 0, nil, err
		}
	}
	msgs, err := ms.Messages(c.acting.ID, xMessageID, now, s.hostname)
	if err != nil {
		return 0, nil, err
	}
	if ms.SandboxMode {
		// SendGrid validates a sandbox send, answers 200 with no body,
		// and neither stores nor sends it.
		return http.StatusOK, nil, nil
	}
	n := 0
	for _, m := range msgs {
		n += len(m.Recipients)
	}
	events := make([]sealpost.Event, 0, n)
	for _, m := range msgs {
		for _, rcpt := range m.Recipients {
			ev, err := sealpost.NewEvent(sealpost.EventProcessed, m, rcpt, now, sealpost.EventDetails{})
			if err != nil {
				return 0, nil, err
			}
			events = append(events, ev)
		}
	}
	if err := s.enqueue.enqueue(ctx, msgs, events); err != nil {
		return 0, nil, fmt.Errorf("enqueueing mail send %s of account %d: %w", xMessageID, c.acting.ID, err)
	}
	c.header["X-Message-Id"] = []string{xMessageID}
	return http.StatusAccepted, nil, nil
}

// maxEnqueueBatch bounds how many mail sends share one transaction, so
// that a burst does not make one transaction, and the wait of every send
// in it, arbitrarily long.
const maxEnqueueBatch = 64

// groupCommit stores concurrent mail sends in shared transactions. While
// one transaction is being committed, the sends arriving meanwhile gather
// in the next batch; its first send commits the whole batch as soon as the
// previous commit is done. A send alone pays no wait at all. Each send's
// messages and events are always in the same transaction, so a send is
// stored whole or not at all.
type groupCommit struct {
	store sealpost.QueueService
	// enqueued, when set, is called after a batch with a stored send
	// commits.
	enqueued func()

	// commit is held by the batch being committed.
	commit sync.Mutex

	mu   sync.Mutex
	open *enqueueBatch // gathering sends, nil when none is
}

type enqueueBatch struct {
	sends []pendingSend
	errs  []error
	done  chan struct{} // closed once errs is set
}

type pendingSend struct {
	msgs   []*sealpost.Message
	events []sealpost.Event
}

// enqueue stores msgs and events, durably once it returns nil.
func (g *groupCommit) enqueue(ctx context.Context, msgs []*sealpost.Message, events []sealpost.Event) error {
	g.mu.Lock()
	b := g.open
	leader := b == nil || len(b.sends) >= maxEnqueueBatch
	if leader {
		b = &enqueueBatch{done: make(chan struct{})}
		g.open = b
	}
	i := len(b.sends)
	b.sends = append(b.sends, pendingSend{msgs, events})
	g.mu.Unlock()

	if !leader {
		<-b.done
		return b.errs[i]
	}
	g.commit.Lock()
	g.mu.Lock()
	if g.open == b {
		g.open = nil
	}
	g.mu.Unlock()
	// The sends of others ride on this one's request: its client hanging
	// up must not fail theirs.
	b.errs = g.storeBatch(context.WithoutCancel(ctx), b.sends)
	g.commit.Unlock()
	if g.enqueued != nil && slices.Contains(b.errs, nil) {
		g.enqueued()
	}
	close(b.done)
	return b.errs[0]
}

// storeBatch stores sends in one transaction. When the store rejects the
// transaction as invalid, one send's content is to blame, so each is
// stored on its own and only the culprit fails.
func (g *groupCommit) storeBatch(ctx context.Context, sends []pendingSend) []error {
	errs := make([]error, len(sends))
	if len(sends) == 1 {
		errs[0] = g.store.EnqueueMessages(ctx, sends[0].msgs, sends[0].events)
		return errs
	}
	var msgs []*sealpost.Message
	var events []sealpost.Event
	for _, s := range sends {
		msgs = append(msgs, s.msgs...)
		events = append(events, s.events...)
	}
	err := g.store.EnqueueMessages(ctx, msgs, events)
	if sealpost.ErrorCode(err) != sealpost.EINVALID {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	for i, s := range sends {
		errs[i] = g.store.EnqueueMessages(ctx, s.msgs, s.events)
	}
	return errs
}
