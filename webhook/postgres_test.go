package webhook

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
	"github.com/sealpost/sealpost/postgres"
	"github.com/sealpost/sealpost/postgres/pgtest"
)

func openPostgres(t *testing.T, url string) *postgres.DB {
	t.Helper()
	db, err := postgres.Open(t.Context(), url)
	if err != nil {
		t.Fatalf("postgres.Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestPostgresNodesShareTheOutbox runs two nodes' Posters on one database:
// every account's events arrive once each and in order although both nodes
// claim, and receivers fail now and then.
func TestPostgresNodesShareTheOutbox(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	nodes := []*postgres.DB{openPostgres(t, url), openPostgres(t, url)}

	const (
		accounts = 5
		rounds   = 12 // three wanted events a round
	)
	type acct struct {
		a    *sealpost.Account
		rcv  *receiver
		want []string
	}
	var all []*acct
	for i := range accounts {
		rcv := newReceiver(t, func(n int) int {
			if n%4 == 2 {
				return http.StatusInternalServerError
			}
			return http.StatusOK
		})
		all = append(all, &acct{a: storeAccount(t, nodes[0], fmt.Sprintf("user%d", i), rcv.URL, nil), rcv: rcv})
	}
	for range rounds {
		for _, ac := range all {
			stored := enqueueEvents(t, nodes[0], ac.a, "",
				sealpost.EventProcessed, sealpost.EventDeferred, sealpost.EventDelivered, sealpost.EventDropped)
			ac.want = append(ac.want, stored[0], stored[2], stored[3])
		}
	}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	posters := make([]*Poster, len(nodes))
	done := make(chan error, len(nodes))
	for i, db := range nodes {
		posters[i] = &Poster{
			Store: db, Owner: fmt.Sprintf("node-%d", i), Destinations: loopback(), MaxBatch: 5, Workers: 2,
			Interval: 5 * time.Millisecond,
			Backoff:  func(int) time.Duration { return 10 * time.Millisecond },
			Logger:   testLogger(t),
		}
		go func() { done <- posters[i].Run(ctx) }()
	}

	deadline := time.Now().Add(30 * time.Second)
	for {
		complete := 0
		for _, ac := range all {
			if len(ac.rcv.accepted(t)) >= len(ac.want) {
				complete++
			}
		}
		if complete == len(all) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("events not all posted after 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	for range nodes {
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}

	if b, err := nodes[1].ClaimEventBatch(t.Context(), "check", time.Now().Add(time.Hour), time.Minute, 10); err != nil || b != nil {
		t.Errorf("outbox after posting: %+v, %v; want empty", b, err)
	}
	for _, ac := range all {
		var got []string
		for _, e := range ac.rcv.accepted(t) {
			got = append(got, string(e))
		}
		if len(got) != len(ac.want) {
			t.Errorf("account %d: %d events accepted, want %d", ac.a.ID, len(got), len(ac.want))
			continue
		}
		for i := range got {
			if got[i] != ac.want[i] {
				t.Errorf("account %d: event %d is\n%s\nwant\n%s", ac.a.ID, i, got[i], ac.want[i])
				break
			}
		}
	}
	for i, p := range posters {
		if p.Stats().Posts == 0 {
			t.Logf("node %d posted nothing", i)
		}
	}
}
