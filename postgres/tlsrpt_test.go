package postgres_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
)

// TestTLSRPTRunOnceAcrossNodes: nodes racing for one day's TLS reports,
// each on its own connection pool, claim it exactly once between them.
func TestTLSRPTRunOnceAcrossNodes(t *testing.T) {
	t.Parallel()
	nodes, _, _ := twoNodes(t)
	for day := int64(20000); day < 20020; day++ {
		var wg sync.WaitGroup
		var mu sync.Mutex
		winners := 0
		for i, n := range nodes {
			for range 3 {
				wg.Go(func() {
					ok, err := n.ClaimTLSRPTRun(t.Context(), day, []string{"a", "b"}[i], time.Now(), nil)
					if err != nil {
						t.Errorf("claim: %v", err)
					}
					if ok {
						mu.Lock()
						winners++
						mu.Unlock()
					}
				})
			}
		}
		wg.Wait()
		if winners != 1 {
			t.Fatalf("day %d claimed %d times, want once", day, winners)
		}
	}
}

// TestTLSRPTSendsLeasedOnceAcrossNodes: nodes racing for due report sends
// each lease a send at most once between them.
func TestTLSRPTSendsLeasedOnceAcrossNodes(t *testing.T) {
	t.Parallel()
	nodes, _, _ := twoNodes(t)
	now := time.Now()
	var sends []sealpost.TLSRPTSend
	for i := range 40 {
		sends = append(sends, sealpost.TLSRPTSend{Day: 30000, PolicyDomain: fmt.Sprintf("d%d.example", i), RUA: "https://rua.example/",
			Report: []byte("{}"), NextAttemptAt: now, GiveUpAt: now.Add(time.Hour)})
	}
	if ok, err := nodes[0].ClaimTLSRPTRun(t.Context(), 30000, "a", now, sends); err != nil || !ok {
		t.Fatalf("claim = %v, %v", ok, err)
	}
	var mu sync.Mutex
	leased := map[string]int{}
	var wg sync.WaitGroup
	for i, n := range nodes {
		for range 3 {
			wg.Go(func() {
				for {
					got, err := n.ClaimTLSRPTSends(t.Context(), []string{"a", "b"}[i], now, time.Minute, 3)
					if err != nil {
						t.Errorf("claim sends: %v", err)
						return
					}
					if len(got) == 0 {
						return
					}
					mu.Lock()
					for _, s := range got {
						leased[s.PolicyDomain]++
					}
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	if len(leased) != len(sends) {
		t.Errorf("%d sends leased, want %d", len(leased), len(sends))
	}
	for d, n := range leased {
		if n != 1 {
			t.Errorf("%s leased %d times, want once", d, n)
		}
	}
}
