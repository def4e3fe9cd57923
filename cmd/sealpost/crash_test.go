package main

// Crash safety of the real binary: SIGKILL at chosen points of acceptance
// and delivery, then a restart (SQLite) or the other node carrying on
// (PostgreSQL), checked at the fake MX and at the Event Webhook receiver.
//
// What a kill may cost, and why:
//
//   - Accepted mail: nothing. A 202 is answered only after the message, its
//     deliveries and its processed events are committed, so every 202 is
//     delivered and reported. A request that got no answer may or may not
//     have been stored; if it was, it is delivered and reported in full.
//
//   - Repeated deliveries: delivery.Runner.Run gives its dispatcher a work
//     channel of capacity Workers and refills it up to that capacity, and
//     each of the Workers workers holds one delivery in its attempt. So at
//     most 2*Workers deliveries are leased to a node at any time, and of
//     those only the at most Workers being attempted can have reached the MX
//     (one claimed ahead has not opened a connection). A delivery the MX
//     accepted whose outcome the dead node had not yet committed is
//     attempted again once its lease runs out. Hence: repeated deliveries
//     per kill <= Workers (the test asserts this, not the looser 2*Workers).
//
//   - Event Webhook posts: the outbox is leased per account, so an account
//     has at most one batch out at a time, and a batch is acknowledged only
//     after its post got a 2xx. The one post the dead node had out may have
//     reached the receiver without being acknowledged: its events are posted
//     again. Precisely, the test requires that every event posted more than
//     once was first posted in one and the same post, that this post came
//     from the killed process and was the last post it made, that no event
//     is posted more than twice, and that nothing the surviving or restarted
//     process posted is ever posted again. The number of re-posted events is
//     therefore at most one batch (MaxBatch 1000 events, 768 KB).
//
// The receiver tells which process made each post by the process owning
// the other end of the connection (Linux /proc), so that no proxy stands
// between the posters and the receiver: sealpost ignores HTTP_PROXY, which
// would carry posts past its destination rule.
//
// Run: go test -race -count=1 -run 'TestCrash' -v ./cmd/sealpost/
// (SEALPOST_CRASH_N sets the number of messages, default 2000;
// SEALPOST_TEST_POSTGRES enables the two-node PostgreSQL test).

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sealpost/sealpost/delivery/mxtest"
	"github.com/sealpost/sealpost/internal/conformance"
	"github.com/sealpost/sealpost/postgres/pgtest"
)

const (
	crashWorkers    = 4
	crashDomain     = "crash.test"
	crashHookPath   = "/events"
	crashRecoverMax = 4 * time.Minute
	crashAckWindow  = 5 * time.Second
)

// crashN is the number of messages per kill point.
func crashN(t *testing.T) int {
	t.Helper()
	v := os.Getenv("SEALPOST_CRASH_N")
	if v == "" {
		return 2000
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 10 {
		t.Fatalf("SEALPOST_CRASH_N=%q: want an integer >= 10", v)
	}
	return n
}

func crashRcpt(i int) string { return fmt.Sprintf("r%d@%s", i, crashDomain) }

func crashIndex(email string) (int, bool) {
	s, ok := strings.CutSuffix(email, "@"+crashDomain)
	if !ok || !strings.HasPrefix(s, "r") {
		return 0, false
	}
	i, err := strconv.Atoi(s[1:])
	return i, err == nil
}

// crashPost is one post the receiver took (answered 200).
type crashPost struct {
	front string // which process made it
	at    time.Time
	ids   []string
}

// crashReceiver is an Event Webhook receiver reached through per-process
// proxy addresses. It records every post it answers 200 to, with each
// event's sg_event_id, so that repeated events can be counted and traced
// to the post they first came in.
type crashReceiver struct {
	url string // the webhook URL

	mu          sync.Mutex
	pids        map[string]int      // process name -> pid
	silent      map[string]bool     // processes started with posting off
	owners      map[string]string   // socket inode -> the name of the process that had it open
	conns       map[net.Conn]string // connection -> the inode of the poster's end
	posts       []crashPost
	byID        map[string][]int           // sg_event_id -> indexes into posts
	byRcpt      map[string]map[string]bool // "email event" -> sg_event_ids
	inflight    int
	maxInflight int
	bad         []string
}

func crashNewReceiver(t *testing.T) *crashReceiver {
	if _, err := os.Stat("/proc/net/tcp"); err != nil {
		t.Skipf("telling posters apart needs Linux /proc: %v", err)
	}
	r := &crashReceiver{pids: map[string]int{}, silent: map[string]bool{}, owners: map[string]string{}, conns: map[net.Conn]string{},
		byID: map[string][]int{}, byRcpt: map[string]map[string]bool{}}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(r.serve))
	srv.Config.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		// At accept the poster's end is surely open: find its socket now.
		inode := socketInode(c.RemoteAddr().String(), c.LocalAddr().String())
		r.mu.Lock()
		r.conns[c] = inode
		r.mu.Unlock()
		return context.WithValue(ctx, crashConnKey{}, c)
	}
	srv.Start()
	t.Cleanup(srv.Close)
	r.url = srv.URL + crashHookPath

	// A process may be killed right after it opened a connection; its
	// sockets are noted while it lives, so its posts can still be named.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			r.mu.Lock()
			pids := maps.Clone(r.pids)
			r.mu.Unlock()
			for name, pid := range pids {
				for _, inode := range socketsOf(pid) {
					r.mu.Lock()
					r.owners[inode] = name
					r.mu.Unlock()
				}
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
	return r
}

type crashConnKey struct{}

// register returns a startServeNotify callback that names the process
// whose posts are recorded as made by name; env is its extra environment.
func (r *crashReceiver) register(name string, env []string) func(pid int) {
	posts := !slices.Contains(env, "SEALPOST_WEBHOOK_WORKERS=0")
	return func(pid int) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.pids[name] = pid
		if !posts {
			r.silent[name] = true
		}
	}
}

// poster names the registered process at the other end of c, waiting a
// little for the socket watcher to have seen it. A process killed right
// after connecting may never be seen: a post nobody living owns is the
// dead poster's, when exactly one posting process has died.
func (r *crashReceiver) poster(c net.Conn) string {
	for range 200 {
		r.mu.Lock()
		inode := r.conns[c]
		name, ok := r.owners[inode]
		r.mu.Unlock()
		if ok && inode != "" {
			return name
		}
		if inode == "" {
			inode = socketInode(c.RemoteAddr().String(), c.LocalAddr().String())
			r.mu.Lock()
			r.conns[c] = inode
			r.mu.Unlock()
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var dead []string
	for name, pid := range r.pids {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil && !r.silent[name] {
			dead = append(dead, name)
		}
	}
	if len(dead) == 1 {
		return dead[0]
	}
	return "unknown"
}

// socketInode finds, in /proc/net/tcp, the inode of the IPv4 socket whose
// local end is local and remote end is remote. The file is read again when
// the socket is not in it: a read while sockets come and go may skip some.
func socketInode(local, remote string) string {
	for range 5 {
		if inode := readSocketInode(local, remote); inode != "" {
			return inode
		}
	}
	return ""
}

func readSocketInode(local, remote string) string {
	hexAddr := func(hostport string) string {
		ap, err := netip.ParseAddrPort(hostport)
		if err != nil || !ap.Addr().Is4() {
			return ""
		}
		b := ap.Addr().As4()
		// /proc/net/tcp writes the address as a little-endian word.
		return fmt.Sprintf("%02X%02X%02X%02X:%04X", b[3], b[2], b[1], b[0], ap.Port())
	}
	l, rm := hexAddr(local), hexAddr(remote)
	data, err := os.ReadFile("/proc/net/tcp")
	if err != nil || l == "" || rm == "" {
		return ""
	}
	for line := range strings.Lines(string(data)) {
		f := strings.Fields(line)
		if len(f) > 9 && f[1] == l && f[2] == rm {
			return f[9]
		}
	}
	return ""
}

// socketsOf lists the inodes of pid's open sockets.
func socketsOf(pid int) []string {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var inodes []string
	for _, e := range entries {
		link, err := os.Readlink(filepath.Join(dir, e.Name()))
		if inode, ok := strings.CutPrefix(link, "socket:["); err == nil && ok {
			inodes = append(inodes, strings.TrimSuffix(inode, "]"))
		}
	}
	return inodes
}

func (r *crashReceiver) serve(w http.ResponseWriter, req *http.Request) {
	front := "unknown"
	if c, ok := req.Context().Value(crashConnKey{}).(net.Conn); ok {
		front = r.poster(c)
	}
	r.mu.Lock()
	r.inflight++
	r.maxInflight = max(r.maxInflight, r.inflight)
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.inflight--
		r.mu.Unlock()
	}()
	body, err := io.ReadAll(req.Body)
	if err != nil {
		w.WriteHeader(http.StatusInternalServerError) // the sender died mid-post
		return
	}
	var events []struct {
		ID    string `json:"sg_event_id"`
		Event string `json:"event"`
		Email string `json:"email"`
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if req.Method != http.MethodPost || req.URL.String() != crashHookPath || front == "unknown" {
		r.bad = append(r.bad, fmt.Sprintf("%s %s", req.Method, req.URL))
	}
	if err := json.Unmarshal(body, &events); err != nil || len(events) == 0 {
		r.bad = append(r.bad, fmt.Sprintf("post body %.200q", body))
		w.WriteHeader(http.StatusOK)
		return
	}
	post := crashPost{front: front, at: time.Now()}
	idx := len(r.posts)
	for _, e := range events {
		post.ids = append(post.ids, e.ID)
		r.byID[e.ID] = append(r.byID[e.ID], idx)
		k := e.Email + " " + e.Event
		if r.byRcpt[k] == nil {
			r.byRcpt[k] = map[string]bool{}
		}
		r.byRcpt[k][e.ID] = true
	}
	r.posts = append(r.posts, post)
	w.WriteHeader(http.StatusOK)
}

// has reports whether an event of kind about email was posted.
func (r *crashReceiver) has(email, kind string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.byRcpt[email+" "+kind]) > 0
}

// crashRepost is what the receiver saw of repeated posts.
type crashRepost struct {
	events int // events posted more than once
}

// checkReposts enforces the rule stated at the top of the file for the
// process front dead: every repeated event first came in the last post
// dead made, and came again from another process, exactly once more.
//
// "In flight at the kill" is seen from outside by time: a poster
// acknowledges a batch as soon as its post is answered and posts the next
// within its interval while events keep coming, so the post whose events
// come again must have been answered shortly before the kill. A post left
// unacknowledged long before would show as an old one; crashAckWindow is
// generous for a loaded machine.
func (r *crashReceiver) checkReposts(t *testing.T, dead string, killed time.Time) crashRepost {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range r.bad {
		t.Errorf("webhook receiver: unexpected %s", b)
	}
	if r.maxInflight > 1 {
		t.Errorf("%d posts were out at once for one account; at most one batch per account may be", r.maxInflight)
	}
	lastDead := -1
	for i, p := range r.posts {
		if p.front == dead {
			lastDead = i
		}
	}
	var rep crashRepost
	firsts := map[int]int{}
	for id, at := range r.byID {
		if len(at) == 1 {
			continue
		}
		rep.events++
		if len(at) > 2 {
			t.Errorf("event %s posted %d times", id, len(at))
		}
		firsts[at[0]]++
		if at[0] != lastDead {
			t.Errorf("event %s was posted again though its first post (#%d by %s) was not the last post of the killed process (#%d)",
				id, at[0], r.posts[at[0]].front, lastDead)
		}
		for _, j := range at[1:] {
			if r.posts[j].front == dead {
				t.Errorf("event %s posted twice by the killed process itself", id)
			}
		}
	}
	if len(firsts) > 0 && lastDead >= 0 && killed.Sub(r.posts[lastDead].at) > crashAckWindow {
		t.Errorf("events were posted again from a post answered %v before the kill; a post in flight at the kill is answered within %v of it",
			killed.Sub(r.posts[lastDead].at).Round(time.Millisecond), crashAckWindow)
	}
	if len(firsts) > 1 {
		t.Errorf("repeated events first came in %d different posts; at most the one in flight at the kill may repeat", len(firsts))
	}
	return rep
}

// crashOutcome is one message's fate: what the sender saw.
type crashOutcome int

const (
	crashUnsent     crashOutcome = iota
	crashAccepted                // 202
	crashUnanswered              // the request got no answer
)

// crashSender sends the crash test's messages, 8 at a time.
type crashSender struct {
	key    string
	client *http.Client
	out    []crashOutcome
}

func crashNewSender(t *testing.T, key string, n int) *crashSender {
	client := &http.Client{Timeout: time.Minute, Transport: conformance.Transport(t, nil)}
	return &crashSender{key: key, client: client, out: make([]crashOutcome, n)}
}

// send posts the given messages to base. With killAfter > 0 it calls kill
// once killAfter of them got their 202, and then stops starting new
// requests; requests out at that moment end up crashUnanswered, unless they
// were answered. Any answer but 202 fails t.
func (s *crashSender) send(t *testing.T, base string, idx []int, killAfter int, kill func()) {
	t.Helper()
	var (
		next     atomic.Int64
		accepted atomic.Int64
		killed   atomic.Bool
		once     sync.Once
		wg       sync.WaitGroup
	)
	for range 8 {
		wg.Go(func() {
			for !killed.Load() {
				k := int(next.Add(1) - 1)
				if k >= len(idx) {
					return
				}
				i := idx[k]
				body := fmt.Sprintf(`{"personalizations":[{"to":[{"email":%q}]}],"from":{"email":"s@sealpost.test"},"subject":"m%d","content":[{"type":"text/plain","value":"crash test message %d"}]}`, crashRcpt(i), i, i)
				req, err := http.NewRequest("POST", base+"/v3/mail/send", strings.NewReader(body))
				if err != nil {
					t.Error(err)
					return
				}
				req.Header.Set("Authorization", "Bearer "+s.key)
				req.Header.Set("Content-Type", "application/json")
				resp, err := s.client.Do(req)
				if err != nil {
					if !killed.Load() {
						t.Errorf("mail send %d: %v", i, err)
					}
					s.out[i] = crashUnanswered
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					t.Errorf("mail send %d: %d %s", i, resp.StatusCode, b)
					continue
				}
				s.out[i] = crashAccepted
				if killAfter > 0 && int(accepted.Add(1)) >= killAfter {
					once.Do(func() { killed.Store(true); kill() })
				}
			}
		})
	}
	wg.Wait()
}

func (s *crashSender) with(o crashOutcome) []int {
	var out []int
	for i, v := range s.out {
		if v == o {
			out = append(out, i)
		}
	}
	return out
}

// crashKill sends SIGKILL and reaps the process.
func crashKill(t *testing.T, p *process) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	p.cmd.Wait()
}

// crashCopies counts the MX's accepted copies per recipient index.
func crashCopies(t *testing.T, mx *mxtest.Server, n int) []int {
	t.Helper()
	copies := make([]int, n)
	for _, d := range mx.Accepted() {
		for _, to := range d.To {
			i, ok := crashIndex(to)
			if !ok || i >= n {
				t.Errorf("the MX received mail for %q, which was never sent", to)
				continue
			}
			copies[i]++
		}
	}
	return copies
}

// crashComplete reports whether message i is delivered and both its events
// posted.
func crashComplete(copies []int, hook *crashReceiver, i int) bool {
	return copies[i] > 0 && hook.has(crashRcpt(i), "processed") && hook.has(crashRcpt(i), "delivered")
}

// crashSettled reports whether every accepted message is complete and every
// unanswered one that left any trace is complete too.
func crashSettled(t *testing.T, mx *mxtest.Server, hook *crashReceiver, s *crashSender) bool {
	copies := crashCopies(t, mx, len(s.out))
	for i, o := range s.out {
		switch o {
		case crashAccepted:
			if !crashComplete(copies, hook, i) {
				return false
			}
		case crashUnanswered:
			trace := copies[i] > 0 || hook.has(crashRcpt(i), "processed") || hook.has(crashRcpt(i), "delivered")
			if trace && !crashComplete(copies, hook, i) {
				return false
			}
		}
	}
	return true
}

func crashAllDelivered(t *testing.T, mx *mxtest.Server, s *crashSender) bool {
	copies := crashCopies(t, mx, len(s.out))
	for i, o := range s.out {
		if o == crashAccepted && copies[i] == 0 {
			return false
		}
	}
	return true
}

// crashResult is what one kill point measured.
type crashResult struct {
	repeated                     int
	reposted                     int
	storedUnanswered, unanswered int
	recover                      time.Duration // until every event was posted too
	recoverDelivered             time.Duration // until every accepted message was delivered
}

// crashVerify waits for everything accepted to be delivered and reported,
// then checks the promises stated at the top of the file.
func crashVerify(t *testing.T, mx *mxtest.Server, hook *crashReceiver, s *crashSender, dead string, since time.Time) crashResult {
	t.Helper()
	var res crashResult
	deadline := time.Now().Add(crashRecoverMax)
	for !crashSettled(t, mx, hook, s) {
		if res.recoverDelivered == 0 && crashAllDelivered(t, mx, s) {
			res.recoverDelivered = time.Since(since)
		}
		if time.Now().After(deadline) {
			copies := crashCopies(t, mx, len(s.out))
			missing := 0
			for i, o := range s.out {
				if o == crashAccepted && !crashComplete(copies, hook, i) {
					missing++
				}
			}
			t.Fatalf("after %v, %d accepted messages are still not delivered and reported", crashRecoverMax, missing)
		}
		time.Sleep(100 * time.Millisecond)
	}
	res.recover = time.Since(since)
	if res.recoverDelivered == 0 {
		res.recoverDelivered = res.recover
	}
	// A repeated delivery or post would come now.
	time.Sleep(2 * time.Second)
	if !crashSettled(t, mx, hook, s) {
		t.Fatal("an unanswered message showed up half done after everything had settled")
	}

	copies := crashCopies(t, mx, len(s.out))
	for i, o := range s.out {
		if o == crashUnsent {
			t.Errorf("message %d was never sent", i)
			continue
		}
		if o == crashUnanswered {
			res.unanswered++
			if copies[i] > 0 {
				res.storedUnanswered++
			}
		}
		if copies[i] == 0 {
			if o == crashAccepted {
				t.Errorf("%s: accepted (202) but never delivered", crashRcpt(i))
			}
			continue
		}
		res.repeated += copies[i] - 1
		// Exactly one event of each kind per recipient: the attempt the
		// dead process made but never recorded left no event behind.
		hook.mu.Lock()
		for _, kind := range []string{"processed", "delivered"} {
			if got := len(hook.byRcpt[crashRcpt(i)+" "+kind]); got != 1 {
				t.Errorf("%s: %d distinct %s events, want 1", crashRcpt(i), got, kind)
			}
		}
		hook.mu.Unlock()
	}
	hook.mu.Lock()
	for k, ids := range hook.byRcpt {
		if !strings.HasSuffix(k, " processed") && !strings.HasSuffix(k, " delivered") {
			t.Logf("unexpected events %s: %d", k, len(ids))
		}
	}
	hook.mu.Unlock()
	if res.repeated > crashWorkers {
		t.Errorf("%d deliveries repeated after one kill; at most the %d being attempted can be", res.repeated, crashWorkers)
	}
	res.reposted = hook.checkReposts(t, dead, since).events
	return res
}

// crashEnv is the configuration every process of a kill point shares.
func crashEnv(h *mxtest.Harness, database string) []string {
	return []string{
		"SEALPOST_DATABASE=" + database,
		"SEALPOST_DNS_SERVER=" + h.DNSAddr(),
		allowLoopback,
		fmt.Sprintf("SEALPOST_SMTP_PORT=%d", h.Port()),
		"SEALPOST_HELO_HOSTNAME=sealpost.test",
		"SEALPOST_LOG_LEVEL=info",
		fmt.Sprintf("SEALPOST_DELIVERY_WORKERS=%d", crashWorkers),
		// The shortest lease allowed (>= 2x the SMTP timeout): the lease of
		// a dead node's deliveries is what recovery waits for.
		"SEALPOST_DELIVERY_LEASE=10s",
		"SEALPOST_SMTP_TIMEOUT=5s",
		"SEALPOST_RETRY_INITIAL=1s",
		"SEALPOST_RETRY_MAX=2s",
		"SEALPOST_WEBHOOK_INTERVAL=50ms",
		"SEALPOST_WEBHOOK_RETRY=200ms",
		// Likewise the shortest outbox lease: a dead node's batch in flight
		// is posted again once it has passed.
		"SEALPOST_WEBHOOK_LEASE=10s",
	}
}

// crashKillPoint is where in a run the SIGKILL comes: during acceptance
// after a fraction of the mail sends got their 202, or during delivery
// after a fraction of the messages reached the MX.
type crashKillPoint struct {
	name     string
	accept   bool
	fraction float64
}

func (k crashKillPoint) at(n int) int { return max(1, int(float64(n)*k.fraction)) }

// crashWaitDelivered polls until the MX has accepted at least want
// messages.
func crashWaitDelivered(t *testing.T, mx *mxtest.Server, want int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for mx.AcceptedCount() < want {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of the %d deliveries to wait for arrived", mx.AcceptedCount(), want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func crashEnableWebhook(t *testing.T, p *process, hook *crashReceiver) {
	t.Helper()
	body := fmt.Sprintf(`{"enabled":true,"url":%q,"processed":true,"delivered":true,"deferred":true,"bounce":true,"dropped":true}`, hook.url)
	if status, resp, _ := p.do(t, "PATCH", "/v3/user/webhooks/event/settings", p.key, body); status != 200 {
		t.Fatalf("PATCH webhook settings: %d %s", status, resp)
	}
}

func crashAll(n int) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	return idx
}

// TestCrashSQLite kills the only node on SQLite with SIGKILL at several
// points and restarts it. Recovery is timed from the kill.
func TestCrashSQLite(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	n := crashN(t)
	for _, kp := range []crashKillPoint{
		{"accepting-50%", true, 0.5},
		{"delivering-10%", false, 0.1},
		{"delivering-50%", false, 0.5},
		{"delivering-90%", false, 0.9},
	} {
		t.Run(kp.name, func(t *testing.T) {
			t.Parallel()
			crashSQLite(t, bin, n, kp)
		})
	}
}

func crashSQLite(t *testing.T, bin string, n int, kp crashKillPoint) {
	h := mxtest.New(t)
	mx := h.AddMX(crashDomain, 10, mxtest.Behavior{STARTTLS: mxtest.NoSTARTTLS})
	hook := crashNewReceiver(t)
	dbPath := filepath.Join(t.TempDir(), "sealpost.db")
	env := crashEnv(h, "sqlite:"+dbPath)
	start := func(name string, extra ...string) *process {
		return startServeNotify(t, bin, hook.register(name, extra), append(env, extra...)...)
	}

	var (
		s      *crashSender
		victim *process
		killed time.Time
		atKill int
	)
	if kp.accept {
		// Everything runs while the mail sends come in.
		victim = start("first")
		crashEnableWebhook(t, victim, hook)
		s = crashNewSender(t, victim.key, n)
		s.send(t, victim.base, crashAll(n), kp.at(n), func() {
			atKill = mx.AcceptedCount()
			killed = time.Now()
			crashKill(t, victim)
		})
	} else {
		// Accept everything with delivery and posting off, then SIGKILL:
		// no 202 may be lost even without a graceful shutdown.
		acceptor := start("acceptor", "SEALPOST_DELIVERY_WORKERS=0", "SEALPOST_WEBHOOK_WORKERS=0")
		crashEnableWebhook(t, acceptor, hook)
		s = crashNewSender(t, acceptor.key, n)
		s.send(t, acceptor.base, crashAll(n), 0, nil)
		crashKill(t, acceptor)

		victim = start("first")
		crashWaitDelivered(t, mx, kp.at(n))
		crashKill(t, victim)
		killed = time.Now()
		atKill = mx.AcceptedCount()
	}
	if t.Failed() {
		t.FailNow()
	}
	restarted := start("restarted")
	if unsent := s.with(crashUnsent); len(unsent) > 0 {
		restarted.key = s.key
		s.send(t, restarted.base, unsent, 0, nil)
	}
	res := crashVerify(t, mx, hook, s, "first", killed)
	crashReport(t, "sqlite", kp, n, res, atKill)
	restarted.stop(t)
	crashCheckDrained(t, "sqlite:"+dbPath)
}

// crashCheckDrained opens the store once every node has stopped and
// requires that nothing is left to do: no delivery still due (every
// recipient is final) and no event still waiting in the outbox. An event
// that was posted but is still waiting would be posted again later, after
// the test stopped looking; a leased batch counts as waiting because the
// claim is made as of a day later, when every lease has run out.
func crashCheckDrained(t *testing.T, database string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, _, err := openStore(ctx, database, false)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	later := time.Now().Add(24 * time.Hour)
	b, err := st.ClaimEventBatch(ctx, "crash-check", later, time.Minute, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if b != nil && len(b.Events) > 0 {
		t.Errorf("%d events still wait in the outbox after every event was posted: they would be posted again", len(b.Events))
	}
	ds, err := st.ClaimDeliveries(ctx, "crash-check", later, time.Minute, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) > 0 {
		t.Errorf("%d deliveries still queued after every message was delivered", len(ds))
	}
}

func crashReport(t *testing.T, store string, kp crashKillPoint, n int, res crashResult, atKill int) {
	t.Helper()
	line := fmt.Sprintf("%s %s: n=%d delivered_before_kill=%d repeated_deliveries=%d (bound %d) reposted_events=%d all_delivered_after=%v all_posted_after=%v",
		store, kp.name, n, atKill, res.repeated, crashWorkers, res.reposted,
		res.recoverDelivered.Round(100*time.Millisecond), res.recover.Round(100*time.Millisecond))
	if kp.accept {
		line += fmt.Sprintf(" unanswered_requests=%d of_which_stored=%d", res.unanswered, res.storedUnanswered)
	}
	t.Log(line)
}

// TestCrashPostgresTwoNodes runs two nodes on one PostgreSQL database and
// kills one of them while it takes mail sends or mid-delivery; the other
// carries on alone and takes over the dead node's deliveries and outbox once
// their leases run out. Recovery is timed from the kill.
func TestCrashPostgresTwoNodes(t *testing.T) {
	t.Parallel()
	pgtest.SkipIfUnset(t)
	bin := buildBinary(t)
	n := crashN(t)
	for _, kp := range []crashKillPoint{
		{"accepting-50%", true, 0.5},
		{"delivering-10%", false, 0.1},
		{"delivering-50%", false, 0.5},
		{"delivering-90%", false, 0.9},
	} {
		t.Run(kp.name, func(t *testing.T) {
			t.Parallel()
			crashPostgres(t, bin, n, kp)
		})
	}
}

func crashPostgres(t *testing.T, bin string, n int, kp crashKillPoint) {
	url := pgtest.URL(t)
	h := mxtest.New(t)
	mx := h.AddMX(crashDomain, 10, mxtest.Behavior{STARTTLS: mxtest.NoSTARTTLS})
	hook := crashNewReceiver(t)
	env := crashEnv(h, url)
	start := func(name string, extra ...string) *process {
		return startServeNotify(t, bin, hook.register(name, extra), append(env, append([]string{"SEALPOST_NODE_ID=" + name}, extra...)...)...)
	}

	var (
		s      *crashSender
		b      *process
		killed time.Time
		atKill int
	)
	if kp.accept {
		// The mail sends go to node a while both nodes deliver and post;
		// what a did not take is sent to b after the kill.
		b = start("node-b")
		crashEnableWebhook(t, b, hook)
		a := start("node-a")
		s = crashNewSender(t, b.key, n)
		s.send(t, a.base, crashAll(n), kp.at(n), func() {
			atKill = mx.AcceptedCount()
			killed = time.Now()
			crashKill(t, a)
		})
		if t.Failed() {
			t.FailNow()
		}
		s.send(t, b.base, s.with(crashUnsent), 0, nil)
	} else {
		acceptor := start("acceptor", "SEALPOST_DELIVERY_WORKERS=0", "SEALPOST_WEBHOOK_WORKERS=0")
		crashEnableWebhook(t, acceptor, hook)
		s = crashNewSender(t, acceptor.key, n)
		s.send(t, acceptor.base, crashAll(n), 0, nil)
		crashKill(t, acceptor)
		if t.Failed() {
			t.FailNow()
		}
		// The survivor starts first so that the victim's start-up is what
		// delays the kill point, not both nodes'.
		b = start("node-b")
		a := start("node-a")
		crashWaitDelivered(t, mx, kp.at(n))
		crashKill(t, a)
		killed = time.Now()
		atKill = mx.AcceptedCount()
	}

	res := crashVerify(t, mx, hook, s, "node-a", killed)
	crashReport(t, "postgres", kp, n, res, atKill)
	b.stop(t)
	crashCheckDrained(t, url)
}
