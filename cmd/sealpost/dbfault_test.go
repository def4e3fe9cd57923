package main

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sealpost/sealpost/delivery/mxtest"
	"github.com/sealpost/sealpost/internal/conformance"
)

// The only error bodies a client may see while the database is away: api.md
// fixes the 500 body, and 503 is sealpost's own "try again" answer.
const (
	faultBody500 = `{"errors":[{"message":"internal server error"}]}`
	faultBody503 = `{"errors":[{"field":null,"message":"service unavailable"}]}`
)

// faultLeaks are pieces of driver and database text that must never reach a
// client, whatever goes wrong below the API.
var faultLeaks = []string{"connection refused", "pgx", "pgconn", "sqlstate", "postgres", "dial tcp",
	"eof", "locked", "busy", "sqlite", "shutting down", "terminating connection"}

// faultPG is a PostgreSQL cluster owned by one test: its own data directory
// and port, so the test can stop and start it without touching the shared
// test server.
type faultPG struct {
	t      *testing.T
	bindir string
	dir    string // owned by the server's user; data/ and server.log inside
	port   int
	asRoot bool // commands run through runuser as postgres
}

// faultNewPG creates and starts a cluster, or skips the test when PostgreSQL
// is not installed or cannot be run here.
func faultNewPG(t *testing.T) *faultPG {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster")
	}
	bindirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(bindirs, func(i, j int) bool { return faultVersion(bindirs[i]) < faultVersion(bindirs[j]) })
	pg := &faultPG{t: t}
	if len(bindirs) > 0 {
		pg.bindir = bindirs[len(bindirs)-1]
	} else if p, err := exec.LookPath("pg_ctl"); err == nil {
		pg.bindir = filepath.Dir(p)
	}
	for _, tool := range []string{"initdb", "pg_ctl"} {
		if _, err := os.Stat(filepath.Join(pg.bindir, tool)); pg.bindir == "" || err != nil {
			t.Skipf("PostgreSQL restart test SKIPPED: %s not installed (looked in /usr/lib/postgresql/*/bin and PATH)", tool)
		}
	}
	pg.asRoot = os.Geteuid() == 0
	dir, err := os.MkdirTemp("", "sealpost-fault-pg-")
	if err != nil {
		t.Fatal(err)
	}
	pg.dir = dir
	t.Cleanup(func() {
		pg.ctl("stop", "-m", "immediate")
		os.RemoveAll(dir)
	})
	if pg.asRoot {
		// initdb refuses to run as root: the cluster belongs to postgres.
		if _, err := exec.LookPath("runuser"); err != nil {
			t.Skip("PostgreSQL restart test SKIPPED: running as root without runuser to switch to postgres")
		}
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Skipf("PostgreSQL restart test SKIPPED: running as root and there is no postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := pg.run("initdb", "-D", pg.data(), "-U", "postgres", "-A", "trust", "--no-sync"); err != nil {
		t.Skipf("PostgreSQL restart test SKIPPED: initdb cannot run here: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pg.port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	pg.start()
	return pg
}

func faultVersion(bindir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(bindir)))
	return v
}

func (pg *faultPG) data() string { return filepath.Join(pg.dir, "data") }

func (pg *faultPG) run(tool string, args ...string) ([]byte, error) {
	name, argv := filepath.Join(pg.bindir, tool), args
	if pg.asRoot {
		name, argv = "runuser", append([]string{"-u", "postgres", "--", name}, args...)
	}
	cmd := exec.Command(name, argv...)
	cmd.Dir = pg.dir
	return cmd.CombinedOutput()
}

func (pg *faultPG) ctl(args ...string) ([]byte, error) {
	return pg.run("pg_ctl", append([]string{"-D", pg.data()}, args...)...)
}

// start starts the server and waits until it accepts connections. The
// default synchronous_commit stays on: a commit acknowledged to sealpost
// must survive the immediate stop, as it would in production.
func (pg *faultPG) start() {
	pg.t.Helper()
	opts := fmt.Sprintf("-h 127.0.0.1 -p %d -k %s -c fsync=off -c full_page_writes=off -c max_connections=100", pg.port, pg.dir)
	if out, err := pg.ctl("-l", filepath.Join(pg.dir, "server.log"), "-w", "-t", "60", "-o", opts, "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(pg.dir, "server.log"))
		pg.t.Fatalf("pg_ctl start: %v\n%s\n%s", err, out, log)
	}
}

// stop ends the server the hard way: every backend is killed at once,
// mid-query, and the next start runs crash recovery.
func (pg *faultPG) stop() {
	pg.t.Helper()
	if out, err := pg.ctl("-w", "stop", "-m", "immediate"); err != nil {
		pg.t.Fatalf("pg_ctl stop: %v\n%s", err, out)
	}
}

func (pg *faultPG) url() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", pg.port)
}

// faultAnswer is one request made under load.
type faultAnswer struct {
	op         string
	start, end time.Time
	status     int    // 0: no answer (transport error or timeout)
	body       string // for a mail send answered 202, its X-Message-Id
	err        error
	// offDocument says how the answer departs from SendGrid's document.
	offDocument error
	rcpt        string // a mail send's recipient
}

func (a faultAnswer) latency() time.Duration { return a.end.Sub(a.start) }

// faultRecorder keeps every answer of a load run.
type faultRecorder struct {
	mu      sync.Mutex
	answers []faultAnswer
}

func (r *faultRecorder) add(a faultAnswer) {
	r.mu.Lock()
	r.answers = append(r.answers, a)
	r.mu.Unlock()
}

func (r *faultRecorder) all() []faultAnswer {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.answers)
}

// faultClient has a timeout well above any answer sealpost should give, so
// that a hanging request shows up as an error, not as a stuck test.
var faultClient = &http.Client{Timeout: 30 * time.Second}

// faultDo makes one request; it never fails the test, so that load
// goroutines can use it.
func faultDo(op, method, url, key, obo, body string) faultAnswer {
	a := faultAnswer{op: op, start: time.Now()}
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err == nil {
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		if obo != "" {
			req.Header.Set("On-Behalf-Of", obo)
		}
		var resp *http.Response
		if resp, err = faultClient.Do(req); err == nil {
			var b []byte
			b, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			a.status, a.body = resp.StatusCode, string(b)
			if err == nil {
				a.offDocument = faultConformance(req, resp, b)
			}
			if err == nil && a.op == "send" && a.status == 202 {
				a.body = resp.Header.Get("X-Message-Id")
			}
		}
	}
	a.err, a.end = err, time.Now()
	return a
}

// faultConformance checks an answer against SendGrid's documents.
func faultConformance(req *http.Request, resp *http.Response, body []byte) error {
	c, err := conformance.Load()
	if err != nil {
		return err
	}
	return c.Check(req.Context(), req, resp.StatusCode, resp.Header, body)
}

// faultCheckBodies requires every answer to be one the API may give: a
// success, or a 500 or 503 with exactly SendGrid's body, and no driver text,
// each in the shape SendGrid's documents give.
func faultCheckBodies(t *testing.T, answers []faultAnswer, ok ...int) {
	t.Helper()
	bad := 0
	for _, a := range answers {
		var problem string
		switch {
		case a.err != nil:
			problem = "no answer: " + a.err.Error()
		case a.status == 500 && a.body != faultBody500, a.status == 503 && a.body != faultBody503:
			problem = "not SendGrid's error body"
		case a.status != 500 && a.status != 503 && !slices.Contains(ok, a.status):
			problem = "unexpected status"
		case a.offDocument != nil:
			problem = a.offDocument.Error()
		}
		if problem == "" && a.status >= 300 {
			lower := strings.ToLower(a.body)
			for _, leak := range faultLeaks {
				if strings.Contains(lower, leak) {
					problem = "leaks " + leak
				}
			}
		}
		if problem != "" {
			if bad++; bad <= 10 {
				t.Errorf("%s at %s: %d %q: %s", a.op, a.start.Format("15:04:05.000"), a.status, a.body, problem)
			}
		}
	}
	if bad > 10 {
		t.Errorf("... %d bad answers in all", bad)
	}
}

// faultCount tallies answers by status (0: no answer) and returns the
// longest latency among them.
func faultCount(answers []faultAnswer) (map[int]int, time.Duration) {
	counts := map[int]int{}
	var longest time.Duration
	for _, a := range answers {
		counts[a.status]++
		longest = max(longest, a.latency())
	}
	return counts, longest
}

// faultSetting is one full Enforced TLS value; PATCHing all three members
// makes each PATCH's outcome independent of the ones before it.
type faultSetting struct {
	RequireTLS       bool    `json:"require_tls"`
	RequireValidCert bool    `json:"require_valid_cert"`
	Version          float64 `json:"version"`
}

func (s faultSetting) json() string {
	return fmt.Sprintf(`{"require_tls":%t,"require_valid_cert":%t,"version":%s}`, s.RequireTLS, s.RequireValidCert,
		strconv.FormatFloat(s.Version, 'f', 1, 64))
}

// faultSettingN is the n-th of the twelve settings, so that a sequence of
// PATCHes changes the value every time.
func faultSettingN(n int) faultSetting {
	return faultSetting{RequireTLS: n%2 == 1, RequireValidCert: n/2%2 == 1, Version: []float64{1.1, 1.2, 1.3}[n/4%3]}
}

// faultPatchRun is one account's sequence of PATCHes, made one after another.
type faultPatchRun struct {
	account string // on-behalf-of
	values  []faultSetting
	answers []faultAnswer
}

// faultCheckPatches applies the rule for acknowledged setting changes: a
// PATCH answered 200 is durable, and a PATCH answered with an error may or
// may not have taken effect (the commit can land just before the database
// dies, after the answer was lost). So, with each account's PATCHes made
// one at a time, the value read afterwards must be the value of the last
// PATCH answered 200, or of a later PATCH answered with an error.
func faultCheckPatches(t *testing.T, runs []*faultPatchRun, read func(account string) (faultSetting, bool)) {
	t.Helper()
	for _, run := range runs {
		last := -1
		for i, a := range run.answers {
			if a.status == 200 {
				last = i
				if want := run.values[i].json(); a.body != want {
					t.Errorf("%s: PATCH %d answered %s, want %s", run.account, i, a.body, want)
				}
			}
		}
		if last < 0 {
			t.Errorf("%s: no PATCH was acknowledged", run.account)
			continue
		}
		got, ok := read(run.account)
		if !ok {
			t.Errorf("%s: the setting could not be read back", run.account)
			continue
		}
		allowed := []faultSetting{run.values[last]}
		for j := last + 1; j < len(run.answers); j++ {
			allowed = append(allowed, run.values[j]) // answered with an error, by the choice of last
		}
		if !slices.Contains(allowed, got) {
			t.Errorf("%s: setting is %s after %d PATCHes; the last acknowledged (#%d) was %s: an acknowledged change was lost",
				run.account, got.json(), len(run.answers), last, run.values[last].json())
		}
	}
}

func faultMailBody(n int, domain string) string {
	return fmt.Sprintf(`{"personalizations":[{"to":[{"email":"r%d@%s"}]}],"from":{"email":"s@sealpost.test"},"subject":"fault %d","content":[{"type":"text/plain","value":"message %d"}]}`,
		n, domain, n, n)
}

// faultLoad runs the request mix until stop is closed: per account, one
// goroutine PATCHing the Enforced TLS setting in sequence; readers GETting
// it; senders POSTing mail, each to its own recipient.
type faultLoad struct {
	base, key string
	accounts  []string // on-behalf-of values; "" is the key's own account
	domain    string
	readers   int
	senders   int
	extra     func(stop <-chan struct{}, rec *faultRecorder) // more load, if any

	rec     faultRecorder
	patches []*faultPatchRun
	sent    atomic.Int64
}

func (l *faultLoad) run(stop <-chan struct{}) (wait func()) {
	var wg sync.WaitGroup
	for _, acct := range l.accounts {
		run := &faultPatchRun{account: acct}
		l.patches = append(l.patches, run)
		wg.Go(func() {
			for n := 1; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				v := faultSettingN(n)
				a := faultDo("patch", "PATCH", l.base+settings, l.key, acct, v.json())
				l.rec.add(a)
				run.values = append(run.values, v)
				run.answers = append(run.answers, a)
				if a.status != 200 {
					time.Sleep(20 * time.Millisecond)
				}
			}
		})
	}
	for i := range l.readers {
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				a := faultDo("get", "GET", l.base+settings, l.key, l.accounts[(n+i)%len(l.accounts)], "")
				l.rec.add(a)
				if a.status != 200 {
					time.Sleep(20 * time.Millisecond)
				}
			}
		})
	}
	for range l.senders {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				n := l.sent.Add(1)
				a := faultDo("send", "POST", l.base+"/v3/mail/send", l.key, "", faultMailBody(int(n), l.domain))
				a.rcpt = fmt.Sprintf("r%d@%s", n, l.domain)
				l.rec.add(a)
				if a.status != 202 {
					time.Sleep(20 * time.Millisecond)
				}
			}
		})
	}
	if l.extra != nil {
		wg.Go(func() { l.extra(stop, &l.rec) })
	}
	return wg.Wait
}

// TestFaultPostgresRestartUnderLoad stops PostgreSQL (immediate mode: every
// backend killed mid-query) under a load of settings reads and writes and
// mail sends, keeps the load going while it is down, and starts it again.
//
// While it is down, every answer must be a 500 or 503 with SendGrid's body,
// promptly, with no driver text. Afterwards the same process must serve
// again by itself (/readyz ready, requests succeeding), every message
// answered 202 must reach the MX, every setting change answered 200 must
// still be there (see faultCheckPatches), and the Event Webhook must post
// the events of what was accepted.
func TestFaultPostgresRestartUnderLoad(t *testing.T) {
	t.Parallel()
	pg := faultNewPG(t)
	h := mxtest.New(t)
	mx := h.AddMX("outage.test", 10, mxtest.Behavior{})
	hook := newWebhookReceiver(t)
	p := startServe(t, buildBinary(t),
		"SEALPOST_DATABASE="+pg.url(),
		"SEALPOST_LOG_LEVEL=info",
		"SEALPOST_RATE_LIMIT=1000000",
		"SEALPOST_DNS_SERVER="+h.DNSAddr(),
		allowLoopback,
		fmt.Sprintf("SEALPOST_SMTP_PORT=%d", h.Port()),
		"SEALPOST_TLS_CA_FILE="+h.CAFile(),
		"SEALPOST_DELIVERY_WORKERS=4",
		"SEALPOST_DELIVERY_LEASE=10s",
		"SEALPOST_SMTP_TIMEOUT=5s",
		"SEALPOST_RETRY_INITIAL=1s",
		"SEALPOST_RETRY_MAX=2s",
		"SEALPOST_WEBHOOK_INTERVAL=50ms",
		"SEALPOST_WEBHOOK_RETRY=1s",
	)
	key := p.key
	settingsBody := fmt.Sprintf(`{"enabled":true,"url":%q,"processed":true,"delivered":true,"deferred":true,"bounce":true}`, hook.srv.URL)
	if status, body, _ := p.do(t, "PATCH", "/v3/user/webhooks/event/settings", key, settingsBody); status != 200 {
		t.Fatalf("PATCH webhook settings: %d %s", status, body)
	}
	accounts := []string{"fault-a", "fault-b", "fault-c"}
	for _, name := range accounts {
		body := fmt.Sprintf(`{"username":%q,"email":"%s@example.com","password":"Secr3t-pass","ips":[]}`, name, name)
		if status, resp, _ := p.do(t, "POST", "/v3/subusers", key, body); status != 201 && status != 200 {
			t.Fatalf("creating subuser %s: %d %s", name, status, resp)
		}
	}

	load := &faultLoad{base: p.base, key: key, accounts: accounts, domain: "outage.test", readers: 2, senders: 2}
	ready := &faultRecorder{}
	stop := make(chan struct{})
	wait := load.run(stop)
	readyDone := make(chan struct{})
	go func() {
		defer close(readyDone)
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			ready.add(faultDo("readyz", "GET", p.base+"/readyz", "", "", ""))
		}
	}()

	time.Sleep(2 * time.Second)
	downFrom := time.Now()
	pg.stop()
	down := time.Now() // every request starting from here meets no server
	time.Sleep(4 * time.Second)
	upFrom := time.Now() // and every request ending before this
	pg.start()
	up := time.Now()
	var readyAt time.Time
	for deadline := time.Now().Add(30 * time.Second); readyAt.IsZero(); {
		if time.Now().After(deadline) {
			close(stop)
			wait()
			t.Fatal("/readyz did not report ready within 30s of PostgreSQL starting again")
		}
		if a := faultDo("readyz", "GET", p.base+"/readyz", "", "", ""); a.status == 200 {
			readyAt = a.end
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(3 * time.Second)
	close(stop)
	wait()
	<-readyDone

	answers := load.rec.all()
	faultCheckBodies(t, answers, 200, 202)
	faultCheckBodies(t, ready.all(), 200)

	var whileDown, afterReady []faultAnswer
	var firstOK time.Time
	for _, a := range answers {
		if !a.start.Before(down) && a.end.Before(upFrom) {
			whileDown = append(whileDown, a)
		}
		if a.start.After(readyAt.Add(time.Second)) {
			afterReady = append(afterReady, a)
		}
		if a.start.After(up) && a.status < 300 && (firstOK.IsZero() || a.end.Before(firstOK)) {
			firstOK = a.end
		}
	}
	downCounts, downLongest := faultCount(whileDown)
	if len(whileDown) < 10 {
		t.Errorf("only %d requests were answered while PostgreSQL was down; the load did not run", len(whileDown))
	}
	for status, n := range downCounts {
		if status != 500 && status != 503 {
			t.Errorf("%d answers %d while PostgreSQL was down, want only 500 and 503", n, status)
		}
	}
	if downLongest > 10*time.Second {
		t.Errorf("an answer took %v while PostgreSQL was down: requests hang", downLongest)
	}
	readyDown := 0
	for _, a := range ready.all() {
		if !a.start.Before(down) && a.end.Before(upFrom) {
			if a.status != 503 {
				t.Errorf("/readyz answered %d while PostgreSQL was down", a.status)
			}
			readyDown++
		}
	}
	if readyDown == 0 {
		t.Error("/readyz was not asked while PostgreSQL was down")
	}
	afterCounts, _ := faultCount(afterReady)
	for status, n := range afterCounts {
		if status != 200 && status != 202 {
			t.Errorf("%d answers %d more than 1s after /readyz was ready again", n, status)
		}
	}
	if afterCounts[200] == 0 || afterCounts[202] == 0 {
		t.Errorf("after recovery: %v; want settings and mail sends succeeding", afterCounts)
	}
	allCounts, allLongest := faultCount(answers)
	t.Logf("PostgreSQL stopped (immediate) in %v, down %v, started in %v",
		down.Sub(downFrom).Round(time.Millisecond), upFrom.Sub(down).Round(time.Millisecond), up.Sub(upFrom).Round(time.Millisecond))
	t.Logf("while down: %d answers %v, longest %v", len(whileDown), downCounts, downLongest.Round(time.Millisecond))
	t.Logf("all answers: %v, longest %v", allCounts, allLongest.Round(time.Millisecond))
	if !firstOK.IsZero() {
		t.Logf("recovery after PostgreSQL accepted connections: first success %v, /readyz ready %v",
			firstOK.Sub(up).Round(time.Millisecond), readyAt.Sub(up).Round(time.Millisecond))
	}

	// No acknowledged setting change is lost.
	faultCheckPatches(t, load.patches, func(account string) (faultSetting, bool) {
		a := faultDo("get", "GET", p.base+settings, key, account, "")
		var s faultSetting
		return s, a.status == 200 && json.Unmarshal([]byte(a.body), &s) == nil
	})

	// No accepted message is lost; delivery resumed by itself.
	var xids []string
	for _, a := range answers {
		if a.op == "send" && a.status == 202 {
			xids = append(xids, a.body)
		}
	}
	acceptedRcpts := faultAcceptedRecipients(answers)
	start := time.Now()
	waitFor(t, "every message answered 202 at the MX", 60*time.Second, func() bool {
		got := map[string]bool{}
		for _, d := range mx.Accepted() {
			for _, r := range d.To {
				got[r] = true
			}
		}
		for r := range acceptedRcpts {
			if !got[r] {
				return false
			}
		}
		return true
	})
	t.Logf("%d messages answered 202; all at the MX %v after the load ended; %d SMTP transactions accepted (%d sends answered with an error may have been stored too)",
		len(xids), time.Since(start).Round(time.Millisecond), mx.AcceptedCount(), load.sent.Load()-int64(len(xids)))

	// The poster resumed: every accepted message's delivered event is posted.
	// The deadline is under the poster's one-minute batch lease, so a batch
	// dropped at the outage, waiting for its lease to run out, fails here.
	start = time.Now()
	waitFor(t, "a delivered event for every message answered 202", 40*time.Second, func() bool {
		for _, x := range xids {
			if !slices.ContainsFunc(hook.eventsFor(x), func(e map[string]any) bool { return e["event"] == "delivered" }) {
				return false
			}
		}
		return true
	})
	t.Logf("every delivered event posted %v after the messages reached the MX", time.Since(start).Round(time.Millisecond))
	p.stop(t)
}

// faultAcceptedRecipients returns the recipients of the sends answered 202.
func faultAcceptedRecipients(answers []faultAnswer) map[string]bool {
	out := map[string]bool{}
	for _, a := range answers {
		if a.op == "send" && a.status == 202 {
			out[a.rcpt] = true
		}
	}
	return out
}

// faultHoldWriteLock takes the SQLite database's write lock from a
// connection of the test's own, as a backup tool or the sqlite3 shell inside
// BEGIN IMMEDIATE would, holds it for d, and returns when and how long it
// was held.
func faultHoldWriteLock(t *testing.T, db *sql.DB, d time.Duration) (from, to time.Time) {
	t.Helper()
	conn, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(t.Context(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatalf("taking the write lock: %v", err)
	}
	from = time.Now()
	time.Sleep(d)
	if _, err := conn.ExecContext(t.Context(), "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	return from, time.Now()
}

// TestFaultSQLiteWriteLockHeldElsewhere puts the SQLite store under
// concurrent writes and reads through the API (mail sends, settings PATCHes
// and GETs, key creation) while another connection holds the database's
// write lock: once for 2s, which writes must wait out and then succeed, and
// once for 8s, longer than the store's busy timeout (5s), which may turn a
// waiting write into a clean 503. No client may ever see a 500, nor any
// text about the database being locked or busy.
func TestFaultSQLiteWriteLockHeldElsewhere(t *testing.T) {
	t.Parallel()
	h := mxtest.New(t)
	mx := h.AddMX("locked.test", 10, mxtest.Behavior{})
	path := filepath.Join(t.TempDir(), "sealpost.db")
	p := startServe(t, buildBinary(t),
		"SEALPOST_DATABASE=sqlite:"+path,
		"SEALPOST_LOG_LEVEL=info",
		"SEALPOST_RATE_LIMIT=1000000",
		"SEALPOST_DNS_SERVER="+h.DNSAddr(),
		allowLoopback,
		fmt.Sprintf("SEALPOST_SMTP_PORT=%d", h.Port()),
		"SEALPOST_TLS_CA_FILE="+h.CAFile(),
		"SEALPOST_DELIVERY_WORKERS=4",
		"SEALPOST_DELIVERY_LEASE=10s",
		"SEALPOST_SMTP_TIMEOUT=5s",
		"SEALPOST_RETRY_INITIAL=1s",
		"SEALPOST_RETRY_MAX=2s",
	)
	key := p.key
	accounts := []string{"lock-a", "lock-b"}
	for _, name := range accounts {
		body := fmt.Sprintf(`{"username":%q,"email":"%s@example.com","password":"Secr3t-pass","ips":[]}`, name, name)
		if status, resp, _ := p.do(t, "POST", "/v3/subusers", key, body); status != 201 && status != 200 {
			t.Fatalf("creating subuser %s: %d %s", name, status, resp)
		}
	}
	other, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(30000)")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()

	load := &faultLoad{base: p.base, key: key, accounts: accounts, domain: "locked.test", readers: 2, senders: 2}
	load.extra = func(stop <-chan struct{}, rec *faultRecorder) {
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			created := faultDo("key", "POST", p.base+"/v3/api_keys", key, "", fmt.Sprintf(`{"name":"fault key %d"}`, n))
			rec.add(created)
			// Deleted again, a write of its own, so that the account stays
			// below its cap of 100 keys however long the load runs.
			var out struct {
				ID string `json:"api_key_id"`
			}
			if created.status == 201 && json.Unmarshal([]byte(created.body), &out) == nil {
				rec.add(faultDo("key", "DELETE", p.base+"/v3/api_keys/"+out.ID, key, "", ""))
			}
		}
	}
	stop := make(chan struct{})
	wait := load.run(stop)
	time.Sleep(time.Second)
	shortFrom, shortTo := faultHoldWriteLock(t, other, 2*time.Second)
	time.Sleep(time.Second)
	longFrom, longTo := faultHoldWriteLock(t, other, 8*time.Second)
	time.Sleep(time.Second)
	close(stop)
	wait()

	answers := load.rec.all()
	faultCheckBodies(t, answers, 200, 201, 202, 204)
	counts, longest := faultCount(answers)
	if counts[500] > 0 {
		t.Errorf("%d answers were 500; a held lock must make requests wait or answer 503", counts[500])
	}
	var waitedShort time.Duration
	var short, long []faultAnswer
	for _, a := range answers {
		if a.op == "get" {
			continue // served without the write lock
		}
		if a.start.Before(shortTo) && a.end.After(shortFrom) {
			short = append(short, a)
			if a.status < 300 && a.end.After(shortTo) {
				began := a.start
				if began.Before(shortFrom) {
					began = shortFrom
				}
				waitedShort = max(waitedShort, a.end.Sub(began))
			}
		}
		if a.start.Before(longTo) && a.end.After(longFrom) {
			long = append(long, a)
		}
	}
	shortCounts, shortLongest := faultCount(short)
	longCounts, longLongest := faultCount(long)
	if waitedShort < time.Second {
		t.Errorf("no write waited out the 2s lock and succeeded (longest wait %v): the lock was not in the way", waitedShort)
	}
	// Some writer, a request (503) or delivery or webhook posting (which
	// log it and try again), must have given up waiting on the long lock,
	// as "unavailable", not "internal".
	busyLogged := 0
	for _, l := range p.logs() {
		if strings.Contains(l, "SQLITE_BUSY") || strings.Contains(l, "SQLITE_LOCKED") {
			busyLogged++
			if !strings.Contains(l, "sealpost unavailable") {
				t.Errorf("a busy database is not reported as unavailable: %s", l)
			}
		}
	}
	if longCounts[503] == 0 && busyLogged == 0 {
		t.Errorf("no writer gave up while the lock was held past the busy timeout: %v", longCounts)
	}
	t.Logf("2s lock: writes overlapping it %v, longest %v, longest wait then success %v", shortCounts, shortLongest.Round(time.Millisecond), waitedShort.Round(time.Millisecond))
	t.Logf("8s lock: writes overlapping it %v, longest %v; %d log lines of a writer giving up on the busy database", longCounts, longLongest.Round(time.Millisecond), busyLogged)
	t.Logf("all answers: %v, longest %v", counts, longest.Round(time.Millisecond))

	faultCheckPatches(t, load.patches, func(account string) (faultSetting, bool) {
		a := faultDo("get", "GET", p.base+settings, key, account, "")
		var s faultSetting
		return s, a.status == 200 && json.Unmarshal([]byte(a.body), &s) == nil
	})
	acceptedRcpts := faultAcceptedRecipients(answers)
	start := time.Now()
	waitFor(t, "every message answered 202 at the MX", 60*time.Second, func() bool {
		got := map[string]bool{}
		for _, d := range mx.Accepted() {
			for _, r := range d.To {
				got[r] = true
			}
		}
		for r := range acceptedRcpts {
			if !got[r] {
				return false
			}
		}
		return true
	})
	t.Logf("%d messages answered 202, all at the MX %v after the load ended", len(acceptedRcpts), time.Since(start).Round(time.Millisecond))
	p.stop(t)
}
