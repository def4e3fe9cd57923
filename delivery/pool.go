package delivery

import (
	"context"
	"crypto/x509"
	"log/slog"
	"sync"
	"time"

	"github.com/sealpost/sealpost"
)

// ReuseLimits bound the SMTP sessions a Client keeps open between
// deliveries. The zero value keeps none: every delivery opens its own
// connection.
type ReuseLimits struct {
	// MaxMessages is how many transactions one session may carry; 0 or
	// 1: sessions are never reused.
	MaxMessages int
	// Idle is how long a session may wait for its next delivery; 30s when
	// zero. It must stay well below servers' own idle timeout (RFC 5321
	// 4.5.3.2.7 suggests 5 minutes), or the next RSET meets a closed
	// connection.
	Idle time.Duration
	// MaxIdlePerHost and MaxIdle bound the sessions kept idle for one MX
	// address and in all; 4 and 256 when zero.
	MaxIdlePerHost int
	MaxIdle        int
}

const (
	defaultSessionIdle    = 30 * time.Second
	defaultMaxIdlePerHost = 4
	defaultMaxIdle        = 256
	// maxSessionAge bounds how long ago a reused session's certificate was
	// checked: its verdict must not outlive the certificate by much.
	maxSessionAge = 5 * time.Minute
)

// poolKey is everything a session's fitness for a delivery depends on: the
// host and address it reached, and the exact Enforced TLS policy and client
// settings it was opened and judged under. A session is only ever reused
// under the policy it was opened with, never a weaker or a stricter one.
type poolKey struct {
	host   string
	ip     string
	port   int
	req    sealpost.TLSRequirement
	policy string // hostPolicy.key: every source, mode and record
	helo   string
	roots  *x509.CertPool
}

// sessionPool holds idle sessions. It is a cache of connections local to
// this process: nothing in it is shared between nodes.
type sessionPool struct {
	mu     sync.Mutex
	idle   map[poolKey][]*session
	count  int
	closed bool
}

func (c *Client) reuseOn() bool { return c.Reuse.MaxMessages > 1 }

func (c *Client) sessions() *sessionPool {
	c.poolOnce.Do(func() { c.pool = &sessionPool{idle: map[poolKey][]*session{}} })
	return c.pool
}

func (c *Client) poolKey(host, ip string, pol hostPolicy) poolKey {
	return poolKey{host: host, ip: ip, port: c.port(), req: pol.req, policy: pol.key(), helo: c.helo(), roots: c.RootCAs}
}

// take returns the most recently used idle session for key, or nil.
func (p *sessionPool) take(key poolKey) *session {
	p.mu.Lock()
	defer p.mu.Unlock()
	list := p.idle[key]
	if len(list) == 0 {
		return nil
	}
	s := list[len(list)-1]
	p.remove(key, s)
	s.idleTimer.Stop()
	return s
}

// remove takes s out of the pool and reports whether it was there; the
// caller holds mu. Whoever removes a session owns it.
func (p *sessionPool) remove(key poolKey, s *session) bool {
	list := p.idle[key]
	for i, x := range list {
		if x == s {
			list = append(list[:i], list[i+1:]...)
			if len(list) == 0 {
				delete(p.idle, key)
			} else {
				p.idle[key] = list
			}
			p.count--
			return true
		}
	}
	return false
}

// put keeps s for a later delivery and reports whether it did; when it
// did not, the caller still owns s and must end it.
func (c *Client) put(s *session) bool {
	p := c.sessions()
	if s.messages >= c.Reuse.MaxMessages || time.Since(s.opened) > maxSessionAge || s.r.Buffered() > 0 {
		return false
	}
	perHost, total := c.Reuse.MaxIdlePerHost, c.Reuse.MaxIdle
	if perHost <= 0 {
		perHost = defaultMaxIdlePerHost
	}
	if total <= 0 {
		total = defaultMaxIdle
	}
	idle := c.Reuse.Idle
	if idle <= 0 {
		idle = defaultSessionIdle
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.idle[s.key]) >= perHost || p.count >= total {
		return false
	}
	// The attempt that used the session is over: its context must neither
	// close the connection nor cut short the QUIT that ends it.
	s.ctx = context.Background()
	s.log = c.logger().With(slog.String("mx_host", s.host), slog.String("mx_ip", s.facts.MXIP))
	p.idle[s.key] = append(p.idle[s.key], s)
	p.count++
	s.idleTimer = time.AfterFunc(idle, func() {
		p.mu.Lock()
		mine := p.remove(s.key, s)
		p.mu.Unlock()
		if mine {
			s.log.Debug("closing an idle SMTP session")
			s.end()
		}
	})
	return true
}

// Close ends every idle session with QUIT; sessions in use end when their
// delivery does, since the pool takes none back once closed.
func (c *Client) Close() error {
	p := c.sessions()
	p.mu.Lock()
	p.closed = true
	var all []*session
	for _, list := range p.idle {
		for _, s := range list {
			s.idleTimer.Stop()
			all = append(all, s)
		}
	}
	p.idle = map[poolKey][]*session{}
	p.count = 0
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range all {
		wg.Go(s.end)
	}
	wg.Wait()
	return nil
}

// IdleSessions is how many sessions are kept open for later deliveries.
func (c *Client) IdleSessions() int {
	p := c.sessions()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.count
}

// end says QUIT and closes the connection.
func (s *session) end() {
	s.quit()
	s.conn.Close()
}

// reuse runs a delivery on an idle session taken from the pool. ok false
// means the session was not fit for it (RSET failed): it is closed and the
// delivery must go over a fresh connection, this try not counting as one.
func (c *Client) reuse(ctx context.Context, log *slog.Logger, s *session, env Envelope, pending []int) (out outcome, ok bool) {
	s.ctx, s.log = ctx, log
	s.stop = context.AfterFunc(ctx, func() { s.raw.Close() })
	out, unfit := s.transaction(env, pending, true)
	if unfit != nil {
		s.stop()
		s.conn.Close()
		log.Debug("idle SMTP session unusable; opening a new one", slog.Any("err", unfit))
		return outcome{}, false
	}
	s.finish(&out)
	return out, true
}

// finish ends a session after its delivery: kept for the next one when its
// last transaction went through cleanly and the pool has room, otherwise
// closed, with QUIT when the server is still in a state to hear it.
func (s *session) finish(out *outcome) {
	out.reached = s.ext != nil || s.tls != nil || out.kind == outcomePolicy
	if s.check.done && s.check.err != nil {
		out.certResult = certResultType(s.check.err)
	}
	if s.reusable {
		s.reusable = false
		s.messages++
		// stop false: the attempt's context already closed the connection.
		if s.stop() && s.c.reuseOn() && s.c.put(s) {
			return
		}
		s.quit()
	}
	s.stop()
	s.conn.Close()
}
