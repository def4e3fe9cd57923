package main

import (
	"container/list"
	"context"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// fdReserve is the file descriptors kept out of the HTTP connection cap for
// everything else the process opens: database connections, SMTP and webhook
// connections, the SQLite files.
const fdReserve = 256

// limitListener caps the connections open at once at max. At the cap, a new
// connection makes room by closing the oldest connection that is not being
// served (still sending its request headers, or idle between requests), so
// that slow or idle connections cannot keep a health check or a client's
// request out; when every connection is in a handler, the new one is closed
// at once. Either way Accept keeps accepting: the kernel's backlog never
// fills and the process never runs out of descriptors.
type limitListener struct {
	net.Listener
	max    int
	logger *slog.Logger

	mu    sync.Mutex
	conns list.List // of *limitedConn, oldest first
	// Connections turned away since the last log line, and when that was.
	evicted, refused int
	lastLog          time.Time
}

type limitedConn struct {
	net.Conn
	l    *limitListener
	elem *list.Element // nil once the slot is given back
	// serving counts handlers running on this connection: while one runs,
	// the connection is doing useful work and is not closed to make room.
	serving atomic.Int32
	once    sync.Once
}

// listen listens on addr with at most max connections open, fewer if the
// process's file descriptor limit would not allow max.
func listen(addr string, max int, logger *slog.Logger) (*limitListener, error) {
	if fds, ok := fileLimit(); ok && fds > fdReserve && max > int(fds-fdReserve) {
		logger.Warn("--http-max-connections lowered to fit the open file limit (ulimit -n)",
			"configured", max, "open_file_limit", fds, "http_max_connections", fds-fdReserve)
		max = int(fds - fdReserve)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &limitListener{Listener: ln, max: max, logger: logger}, nil
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		lc := &limitedConn{Conn: c, l: l}
		l.mu.Lock()
		var victim *limitedConn
		if l.conns.Len() >= l.max {
			victim = l.oldestWaiting()
			if victim == nil {
				l.refused++
				l.logTurnedAway()
				l.mu.Unlock()
				c.Close()
				continue
			}
			l.release(victim)
			l.evicted++
			l.logTurnedAway()
		}
		lc.elem = l.conns.PushBack(lc)
		l.mu.Unlock()
		if victim != nil {
			victim.Close()
		}
		return lc, nil
	}
}

// oldestWaiting is the oldest connection with no handler running, or nil.
func (l *limitListener) oldestWaiting() *limitedConn {
	for e := l.conns.Front(); e != nil; e = e.Next() {
		if c := e.Value.(*limitedConn); c.serving.Load() == 0 {
			return c
		}
	}
	return nil
}

// release gives c's slot back; l.mu is held.
func (l *limitListener) release(c *limitedConn) {
	if c.elem != nil {
		l.conns.Remove(c.elem)
		c.elem = nil
	}
}

// logTurnedAway says the cap is reached, at most every 30 seconds; l.mu is
// held.
func (l *limitListener) logTurnedAway() {
	now := time.Now()
	if now.Sub(l.lastLog) < 30*time.Second {
		return
	}
	l.logger.Warn("HTTP connection limit reached; closing connections that wait for a request, or new ones",
		"http_max_connections", l.max, "closed_waiting", l.evicted, "closed_new", l.refused)
	l.evicted, l.refused, l.lastLog = 0, 0, now
}

// open is the number of connections holding a slot.
func (l *limitListener) open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.conns.Len()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		c.l.release(c)
		c.l.mu.Unlock()
	})
	return err
}

type connKey struct{}

// connContext puts the connection in its requests' contexts, for serving.
func connContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// serving marks a connection busy while a handler runs on it.
func serving(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, ok := r.Context().Value(connKey{}).(*limitedConn); ok {
			c.serving.Add(1)
			defer c.serving.Add(-1)
		}
		next.ServeHTTP(w, r)
	})
}
