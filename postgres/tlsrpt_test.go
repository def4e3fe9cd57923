package postgres_test

import (
	"sync"
	"testing"
	"time"
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
