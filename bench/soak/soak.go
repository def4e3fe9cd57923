// Package soak holds the pieces of sealpost's sustained-load test: its
// configuration, latency statistics, the rule that decides whether a
// resource grew without bound, and readers of a process's resource use.
// The test itself, TestSoak in soak_test.go, starts the real binary and is
// skipped unless SEALPOST_SOAK is set; scripts/soak.sh runs it.
package soak

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The request kinds of the load, in report order.
const (
	KindTLSGet    = "tls_get"    // GET /v3/user/settings/enforced_tls
	KindTLSPatch  = "tls_patch"  // PATCH /v3/user/settings/enforced_tls
	KindHookGet   = "hook_get"   // GET /v3/user/webhooks/event/settings
	KindHookPatch = "hook_patch" // PATCH /v3/user/webhooks/event/settings
	KindSend      = "send"       // POST /v3/mail/send
)

// Kinds lists every request kind in report order.
func Kinds() []string {
	return []string{KindTLSGet, KindTLSPatch, KindHookGet, KindHookPatch, KindSend}
}

// DefaultMix is 60% reads, 10% writes and 30% mail send.
const DefaultMix = "tls_get=50,hook_get=10,tls_patch=7,hook_patch=3,send=30"

// Mix is the relative weight of each request kind.
type Mix map[string]int

// ParseMix reads "kind=weight,kind=weight"; kinds left out get weight 0.
func ParseMix(s string) (Mix, error) {
	m := Mix{}
	total := 0
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		kind, w, ok := strings.Cut(part, "=")
		if !ok || !slices.Contains(Kinds(), kind) {
			return nil, fmt.Errorf("mix %q: %q is not kind=weight with kind one of %s", s, part, strings.Join(Kinds(), ", "))
		}
		n, err := strconv.Atoi(w)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("mix %q: weight of %s must be a whole number >= 0", s, kind)
		}
		m[kind] = n
		total += n
	}
	if total == 0 {
		return nil, fmt.Errorf("mix %q: all weights are zero", s)
	}
	return m, nil
}

// Pick draws a kind with probability proportional to its weight.
func (m Mix) Pick(r *rand.Rand) string {
	total := 0
	for _, k := range Kinds() {
		total += m[k]
	}
	n := r.IntN(total)
	for _, k := range Kinds() {
		if n < m[k] {
			return k
		}
		n -= m[k]
	}
	panic("unreachable")
}

func (m Mix) String() string {
	var parts []string
	for _, k := range Kinds() {
		if m[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
		}
	}
	return strings.Join(parts, ",")
}

// Config is everything the soak can be told, all through the environment.
type Config struct {
	Duration time.Duration // SEALPOST_SOAK: how long the load runs
	Rate     float64       // SEALPOST_SOAK_RATE: requests/s over all clients; 0 ("max") is closed loop
	Clients  int           // SEALPOST_SOAK_CLIENTS: concurrent clients
	Mix      Mix           // SEALPOST_SOAK_MIX
	Interval time.Duration // SEALPOST_SOAK_INTERVAL: how often throughput and latency are reported
	Sample   time.Duration // SEALPOST_SOAK_SAMPLE: how often the server's RSS, fds and goroutines are read
	Drain    time.Duration // SEALPOST_SOAK_DRAIN: longest wait after the load for every message to be delivered
	Database string        // SEALPOST_SOAK_DATABASE: "sqlite" (default), "postgres" (a fresh schema on SEALPOST_TEST_POSTGRES) or a postgres:// URL of an empty database
	Report   string        // SEALPOST_SOAK_REPORT: file to write the text report to
	CSV      string        // SEALPOST_SOAK_CSV: file to write the resource time series to
	Seed     uint64        // SEALPOST_SOAK_SEED: seeds the clients' choices
	Binary   string        // SEALPOST_SOAK_BINARY: a sealpost binary to run instead of building this checkout

	// SEALPOST_SOAK_RSS_TOLERANCE (percent) and SEALPOST_SOAK_RSS_SLACK_MIB.
	RSS GrowthRule
}

// Defaults. The rate is meant to keep a 2-core machine running server, fake
// MX servers and clients busy without saturating it: a request of the
// default mix costs about 1.2 ms of CPU in all (a mail send's share of
// acceptance, delivery over TLS on both ends, and events; 343 req/s took 41%
// of one core), so 800 req/s is about one of the two cores.
const (
	DefaultRate     = 800
	DefaultClients  = 16
	DefaultInterval = 30 * time.Second
	DefaultDrain    = 2 * time.Minute
)

// DefaultRSSRule: after the first third of the load, the mean RSS of the last
// third may exceed the mean of the middle third by at most 10% plus 8 MiB.
func DefaultRSSRule() GrowthRule { return GrowthRule{Tolerance: 0.10, Slack: 8 << 20} }

// ParseConfig reads the configuration through getenv. ok is false when
// SEALPOST_SOAK is unset: the soak is not to run.
func ParseConfig(getenv func(string) string) (c Config, ok bool, err error) {
	v := getenv("SEALPOST_SOAK")
	if v == "" {
		return Config{}, false, nil
	}
	var problems []string
	c = Config{
		Rate:     DefaultRate,
		Clients:  DefaultClients,
		Interval: DefaultInterval,
		Drain:    DefaultDrain,
		Database: "sqlite",
		Report:   getenv("SEALPOST_SOAK_REPORT"),
		CSV:      getenv("SEALPOST_SOAK_CSV"),
		Binary:   getenv("SEALPOST_SOAK_BINARY"),
		Seed:     uint64(time.Now().UnixNano()),
		RSS:      DefaultRSSRule(),
	}
	duration := func(name string, p *time.Duration) {
		if s := getenv(name); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil || d <= 0 {
				problems = append(problems, fmt.Sprintf("%s=%q: not a positive duration", name, s))
			}
			*p = d
		}
	}
	number := func(name string, p *float64) {
		if s := getenv(name); s != "" {
			f, err := strconv.ParseFloat(s, 64)
			if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
				problems = append(problems, fmt.Sprintf("%s=%q: not a number >= 0", name, s))
			}
			*p = f
		}
	}
	duration("SEALPOST_SOAK", &c.Duration)
	duration("SEALPOST_SOAK_INTERVAL", &c.Interval)
	duration("SEALPOST_SOAK_SAMPLE", &c.Sample)
	duration("SEALPOST_SOAK_DRAIN", &c.Drain)
	if s := getenv("SEALPOST_SOAK_RATE"); s == "max" {
		c.Rate = 0
	} else {
		number("SEALPOST_SOAK_RATE", &c.Rate)
	}
	if s := getenv("SEALPOST_SOAK_CLIENTS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			problems = append(problems, fmt.Sprintf("SEALPOST_SOAK_CLIENTS=%q: not a whole number >= 1", s))
		}
		c.Clients = n
	}
	mix := DefaultMix
	if s := getenv("SEALPOST_SOAK_MIX"); s != "" {
		mix = s
	}
	if c.Mix, err = ParseMix(mix); err != nil {
		problems = append(problems, "SEALPOST_SOAK_MIX: "+err.Error())
	}
	if s := getenv("SEALPOST_SOAK_DATABASE"); s != "" {
		if s != "sqlite" && s != "postgres" && !strings.HasPrefix(s, "postgres://") && !strings.HasPrefix(s, "postgresql://") {
			problems = append(problems, fmt.Sprintf("SEALPOST_SOAK_DATABASE=%q: want sqlite, postgres or a postgres:// URL", s))
		}
		c.Database = s
	}
	if s := getenv("SEALPOST_SOAK_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			problems = append(problems, fmt.Sprintf("SEALPOST_SOAK_SEED=%q: not a whole number", s))
		}
		c.Seed = n
	}
	pct := c.RSS.Tolerance * 100
	number("SEALPOST_SOAK_RSS_TOLERANCE", &pct)
	c.RSS.Tolerance = pct / 100
	slack := c.RSS.Slack / (1 << 20)
	number("SEALPOST_SOAK_RSS_SLACK_MIB", &slack)
	c.RSS.Slack = slack * (1 << 20)
	if len(problems) > 0 {
		return Config{}, true, fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	c.Interval = min(c.Interval, c.Duration)
	if c.Sample == 0 {
		// Every 10s, but at least a dozen samples in a short run so that
		// each third of it has some.
		c.Sample = min(10*time.Second, max(time.Second, c.Duration/12))
	}
	return c, true, nil
}

// Latency summarizes one kind's requests over a span of time.
type Latency struct {
	N             int
	P50, P99, Max time.Duration
}

// Summarize sorts d in place and returns its count, nearest-rank
// percentiles and maximum.
func Summarize(d []time.Duration) Latency {
	if len(d) == 0 {
		return Latency{}
	}
	slices.Sort(d)
	rank := func(p float64) time.Duration {
		i := int(math.Ceil(p*float64(len(d)))) - 1
		return d[max(0, min(i, len(d)-1))]
	}
	return Latency{N: len(d), P50: rank(0.50), P99: rank(0.99), Max: d[len(d)-1]}
}

// GrowthRule bounds how much a resource may grow during a steady load: the
// mean of the last third of the samples may exceed the mean of the middle
// third by at most Tolerance (a fraction) of it plus Slack (in the
// resource's unit). The first third is warm-up (caches, pools and the heap
// settling) and is ignored. A leak proportional to the work done shows as
// the last third sitting above the middle one by the work of a third of the
// run; steady use shows as two equal means.
type GrowthRule struct {
	Tolerance float64
	Slack     float64
}

// MinGrowthSamples is the fewest samples the rule judges: two per third.
const MinGrowthSamples = 6

// Growth is the outcome of applying a GrowthRule.
type Growth struct {
	Middle, Last, Limit float64
	Judged              bool // false: too few samples to judge
	OK                  bool
}

// Check applies the rule to samples in time order.
func (r GrowthRule) Check(samples []float64) Growth {
	if len(samples) < MinGrowthSamples {
		return Growth{OK: true}
	}
	third := len(samples) / 3
	middle := mean(samples[third : 2*third])
	last := mean(samples[len(samples)-third:])
	limit := middle*(1+r.Tolerance) + r.Slack
	return Growth{Middle: middle, Last: last, Limit: limit, Judged: true, OK: last <= limit}
}

func mean(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

// VmRSS reads a process's resident set size, in bytes, from
// /proc/<pid>/status.
func VmRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("reading VmRSS: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) != 2 || f[1] != "kB" {
				return 0, fmt.Errorf("VmRSS line %q", sc.Text())
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmRSS line %q: %w", sc.Text(), err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// OpenFDs counts a process's open file descriptors.
func OpenFDs(pid int) (int, error) {
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0, fmt.Errorf("listing fds: %w", err)
	}
	return len(entries), nil
}

// clockTicks is USER_HZ, which Linux fixes at 100 on every architecture Go
// supports.
const clockTicks = 100

// CPUTime reads the user plus system CPU time a process has used, from
// /proc/<pid>/stat (pid 0: this process).
func CPUTime(pid int) (time.Duration, error) {
	path := "/proc/self/stat"
	if pid != 0 {
		path = fmt.Sprintf("/proc/%d/stat", pid)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("reading CPU time: %w", err)
	}
	// The command name, field 2, may hold spaces; it ends at the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("%s: no ')'", path)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("%s: %d fields", path, len(f))
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%s: utime %q stime %q", path, f[11], f[12])
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// CPUPressure reads the share of the last 10 seconds in which some runnable
// task on the machine waited for a CPU (Linux PSI, /proc/pressure/cpu), in
// percent. A high value means the soak's numbers describe a starved machine
// rather than the server.
func CPUPressure() (float64, bool) {
	b, err := os.ReadFile("/proc/pressure/cpu")
	if err != nil {
		return 0, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	for f := range strings.FieldsSeq(line) {
		if v, ok := strings.CutPrefix(f, "avg10="); ok {
			p, err := strconv.ParseFloat(v, 64)
			return p, err == nil
		}
	}
	return 0, false
}

// MetricValue finds an unlabelled sample "name value" in a Prometheus text
// exposition.
func MetricValue(exposition []byte, name string) (float64, bool) {
	sc := bufio.NewScanner(bytes.NewReader(exposition))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), name+" ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		return v, err == nil
	}
	return 0, false
}
