package soak

import (
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	t.Parallel()
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	tests := []struct {
		name    string
		env     func(string) string
		ok      bool
		wantErr string
		check   func(t *testing.T, c Config)
	}{
		{name: "unset: the soak does not run", env: env(), ok: false},
		{name: "defaults", env: env("SEALPOST_SOAK", "10m"), ok: true, check: func(t *testing.T, c Config) {
			if c.Duration != 10*time.Minute || c.Rate != DefaultRate || c.Clients != DefaultClients ||
				c.Interval != 30*time.Second || c.Sample != 10*time.Second || c.Database != "sqlite" ||
				c.RSS != DefaultRSSRule() || c.Mix.String() != "tls_get=50,tls_patch=7,hook_get=10,hook_patch=3,send=30" {
				t.Errorf("config %+v", c)
			}
		}},
		{name: "a short run samples often enough to judge growth", env: env("SEALPOST_SOAK", "30s"), ok: true, check: func(t *testing.T, c Config) {
			if c.Interval != 30*time.Second || c.Sample != 2500*time.Millisecond || c.Duration/c.Sample < MinGrowthSamples {
				t.Errorf("interval %v sample %v", c.Interval, c.Sample)
			}
		}},
		{name: "closed loop and overrides", env: env("SEALPOST_SOAK", "1m", "SEALPOST_SOAK_RATE", "max", "SEALPOST_SOAK_CLIENTS", "3",
			"SEALPOST_SOAK_MIX", "send=1", "SEALPOST_SOAK_DATABASE", "postgres", "SEALPOST_SOAK_RSS_TOLERANCE", "25", "SEALPOST_SOAK_RSS_SLACK_MIB", "4"), ok: true,
			check: func(t *testing.T, c Config) {
				if c.Rate != 0 || c.Clients != 3 || c.Mix.String() != "send=1" || c.Database != "postgres" ||
					c.RSS.Tolerance != 0.25 || c.RSS.Slack != 4<<20 {
					t.Errorf("config %+v", c)
				}
			}},
		{name: "bad values are all reported", env: env("SEALPOST_SOAK", "soon", "SEALPOST_SOAK_RATE", "-1", "SEALPOST_SOAK_MIX", "get=1",
			"SEALPOST_SOAK_DATABASE", "mysql://x"), ok: true, wantErr: "SEALPOST_SOAK=\"soon\""},
		{name: "all-zero mix", env: env("SEALPOST_SOAK", "1m", "SEALPOST_SOAK_MIX", "send=0"), ok: true, wantErr: "all weights are zero"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ok, err := ParseConfig(tt.env)
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v", ok, tt.ok)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				if strings.Count(err.Error(), ";") < strings.Count(tt.wantErr, ";") {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.check != nil {
				tt.check(t, c)
			}
		})
	}
}

func TestMixPickFollowsWeights(t *testing.T) {
	t.Parallel()
	m, err := ParseMix(DefaultMix)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	counts := map[string]int{}
	const n = 100000
	for range n {
		counts[m.Pick(r)]++
	}
	for _, k := range Kinds() {
		got := float64(counts[k]) / n * 100
		if want := float64(m[k]); got < want-1 || got > want+1 {
			t.Errorf("%s drawn %.1f%% of the time, want %.0f%%", k, got, want)
		}
	}
}

func TestSummarize(t *testing.T) {
	t.Parallel()
	ms := func(v ...int) []time.Duration {
		var d []time.Duration
		for _, x := range v {
			d = append(d, time.Duration(x)*time.Millisecond)
		}
		return d
	}
	hundred := make([]time.Duration, 0, 100)
	for i := 100; i >= 1; i-- {
		hundred = append(hundred, time.Duration(i)*time.Millisecond)
	}
	tests := []struct {
		name string
		in   []time.Duration
		want Latency
	}{
		{"empty", nil, Latency{}},
		{"one", ms(7), Latency{N: 1, P50: 7 * time.Millisecond, P99: 7 * time.Millisecond, Max: 7 * time.Millisecond}},
		{"1..100 reversed", hundred, Latency{N: 100, P50: 50 * time.Millisecond, P99: 99 * time.Millisecond, Max: 100 * time.Millisecond}},
	}
	for _, tt := range tests {
		if got := Summarize(tt.in); got != tt.want {
			t.Errorf("%s: %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

func TestGrowthRule(t *testing.T) {
	t.Parallel()
	const mib = 1 << 20
	series := func(n int, f func(i int) float64) []float64 {
		v := make([]float64, n)
		for i := range v {
			v[i] = f(i)
		}
		return v
	}
	rule := DefaultRSSRule()
	tests := []struct {
		name   string
		in     []float64
		judged bool
		ok     bool
	}{
		{"too few samples", series(5, func(i int) float64 { return float64(i) * 100 * mib }), false, true},
		// Warm-up growth in the first third is not held against the run.
		{"steady after warm-up", series(60, func(i int) float64 {
			if i < 20 {
				return float64(20+i) * mib
			}
			return 40*mib + float64(i%3)*mib
		}), true, true},
		{"small drift inside tolerance", series(60, func(i int) float64 { return 40*mib + float64(i)*0.1*mib }), true, true},
		// 1 MiB per sample: a leak proportional to the work done.
		{"linear leak", series(60, func(i int) float64 { return 40*mib + float64(i)*mib }), true, false},
		{"a step up late in the run", series(60, func(i int) float64 {
			if i >= 45 {
				return 80 * mib
			}
			return 40 * mib
		}), true, false},
	}
	for _, tt := range tests {
		g := rule.Check(tt.in)
		if g.Judged != tt.judged || g.OK != tt.ok {
			t.Errorf("%s: %+v, want judged %v ok %v", tt.name, g, tt.judged, tt.ok)
		}
	}
}

func TestProcReaders(t *testing.T) {
	t.Parallel()
	pid := os.Getpid()
	rss, err := VmRSS(pid)
	if err != nil || rss < 1<<20 {
		t.Errorf("VmRSS = %d, %v", rss, err)
	}
	fds, err := OpenFDs(pid)
	if err != nil || fds < 3 {
		t.Errorf("OpenFDs = %d, %v", fds, err)
	}
	if _, err := CPUTime(0); err != nil {
		t.Error(err)
	}
	if _, err := CPUTime(pid); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat("/proc/pressure/cpu"); err == nil {
		if p, ok := CPUPressure(); !ok || p < 0 || p > 100 {
			t.Errorf("CPUPressure = %v, %v", p, ok)
		}
	}
	if _, err := VmRSS(-1); err == nil {
		t.Error("VmRSS of no process: no error")
	}
}

func TestMetricValue(t *testing.T) {
	t.Parallel()
	exp := []byte("# HELP go_goroutines x\n# TYPE go_goroutines gauge\ngo_goroutines 42\ngo_goroutines_other 7\nprocess_open_fds 1.5e+01\n")
	if v, ok := MetricValue(exp, "go_goroutines"); !ok || v != 42 {
		t.Errorf("go_goroutines = %v %v", v, ok)
	}
	if v, ok := MetricValue(exp, "process_open_fds"); !ok || v != 15 {
		t.Errorf("process_open_fds = %v %v", v, ok)
	}
	if _, ok := MetricValue(exp, "missing"); ok {
		t.Error("found a missing metric")
	}
}
