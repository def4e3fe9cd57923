package delivery_test

import (
	"context"
	"slices"
	"testing"

	"github.com/sealpost/sealpost"
	"github.com/sealpost/sealpost/delivery/mxtest"
)

// Mail an account queued before it was disabled is never delivered: each
// pending recipient, queued or deferred, ends dropped with SendGrid's
// dropped event, at once rather than at its next retry. It used to be
// delivered as if nothing had happened.
func TestRunnerDropsMailOfDisabledAccount(t *testing.T) {
	t.Parallel()
	w := newRunnerWorld(t)
	ctx := context.Background()
	good := w.h.AddMX("good.test", 10, mxtest.Behavior{})
	slow := w.h.AddMX("slow.test", 10, mxtest.Behavior{TempFailRcpt: 1})

	deferred := w.send(mailTo("c@slow.test"))
	w.drain()
	if st := w.states(deferred); st["c@slow.test"] != sealpost.StateQueued {
		t.Fatalf("state after the first attempt = %v, want queued", st)
	}
	w.events() // the deferral's
	queued := w.send(mailTo("a@good.test", "b@good.test"))

	if err := w.store.SetAccountDisabled(ctx, w.account.ID, true); err != nil {
		t.Fatal(err)
	}
	w.drain() // the clock has not moved: the deferred one is due all the same
	if n := len(good.Accepted()) + len(slow.Accepted()); n != 0 {
		t.Fatalf("%d transactions accepted from a disabled account", n)
	}
	for xid, rcpts := range map[string][]string{deferred: {"c@slow.test"}, queued: {"a@good.test", "b@good.test"}} {
		st := w.states(xid)
		for _, r := range rcpts {
			if st[r] != sealpost.StateDropped {
				t.Errorf("%s is %s, want dropped", r, st[r])
			}
		}
	}
	evs := w.events()
	got := kinds(evs)
	slices.Sort(got)
	if want := []string{"a@good.test:dropped", "b@good.test:dropped", "c@slow.test:dropped"}; !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	for _, e := range evs {
		if e["reason"] != "Account disabled" || e["status"] != "5.0.0" || e["order"] != "42" || e["sg_message_id"] == nil || e["smtp-id"] == nil {
			t.Errorf("dropped event %v", e)
		}
		if _, ok := e["tls"]; ok {
			t.Errorf("dropped event carries tls: %v", e)
		}
	}
	w.drain()
	if got := w.events(); len(got) != 0 {
		t.Errorf("events after the drop was recorded: %v", kinds(got))
	}

	// Enabled again, the account sends again; what was dropped stays so.
	if err := w.store.SetAccountDisabled(ctx, w.account.ID, false); err != nil {
		t.Fatal(err)
	}
	again := w.send(mailTo("a@good.test"))
	w.drain()
	if st := w.states(again); st["a@good.test"] != sealpost.StateDelivered {
		t.Errorf("after enabling: %v, want delivered", st)
	}
	if st := w.states(queued); st["a@good.test"] != sealpost.StateDropped {
		t.Errorf("a dropped recipient came back: %v", st)
	}
}
