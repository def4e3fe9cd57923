package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
)

func testEventWebhookPosts(t *testing.T, s sealpost.Store) {
	ctx := t.Context()
	a := createUser(t, s, "posts-a")
	b := createUser(t, s, "posts-b")

	got, err := s.EventWebhookPosts(ctx, a.ID, 10)
	if err != nil || len(got) != 0 {
		t.Fatalf("EventWebhookPosts of a new account = %v, %v; want none", got, err)
	}

	start := time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC)
	first := sealpost.EventWebhookPost{AccountID: a.ID, At: start, Host: "hooks.example.com:8443", Events: 3,
		Status: 204, Duration: 42 * time.Millisecond}
	second := sealpost.EventWebhookPost{AccountID: a.ID, At: start.Add(time.Second), Host: "hooks.example.com",
		Events: 1, Error: "the test post failed", Duration: time.Second, Test: true}
	for _, p := range []sealpost.EventWebhookPost{first, second, {AccountID: b.ID, At: start, Host: "b.example", Events: 9, Status: 500}} {
		if err := s.RecordEventWebhookPost(ctx, p); err != nil {
			t.Fatalf("RecordEventWebhookPost(%+v): %v", p, err)
		}
	}
	got, err = s.EventWebhookPosts(ctx, a.ID, 10)
	if err != nil {
		t.Fatal(err)
	}
	if want := []sealpost.EventWebhookPost{second, first}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("EventWebhookPosts = %+v\nwant (newest first, the other account's left out) %+v", got, want)
	}
	if got, _ := s.EventWebhookPosts(ctx, a.ID, 1); len(got) != 1 || !got[0].Test {
		t.Fatalf("EventWebhookPosts with limit 1 = %+v; want the newest only", got)
	}

	// The history is bounded per account: recording past the cap forgets
	// the oldest, and only the account's own.
	for i := range sealpost.MaxEventWebhookPosts + 5 {
		p := sealpost.EventWebhookPost{AccountID: a.ID, At: start.Add(time.Duration(i+2) * time.Second), Host: "h", Events: i, Status: 200}
		if err := s.RecordEventWebhookPost(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	got, err = s.EventWebhookPosts(ctx, a.ID, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != sealpost.MaxEventWebhookPosts {
		t.Fatalf("kept %d posts; want %d", len(got), sealpost.MaxEventWebhookPosts)
	}
	if got[0].Events != sealpost.MaxEventWebhookPosts+4 || got[len(got)-1].Events != 5 {
		t.Fatalf("kept posts %d..%d; want the newest, %d..5", got[0].Events, got[len(got)-1].Events, sealpost.MaxEventWebhookPosts+4)
	}
	if got, _ := s.EventWebhookPosts(ctx, b.ID, 10); len(got) != 1 {
		t.Fatalf("the other account's posts = %+v; want its one post kept", got)
	}

	err = s.RecordEventWebhookPost(ctx, sealpost.EventWebhookPost{AccountID: 1 << 40, At: start, Host: "h"})
	wantCode(t, err, sealpost.ENOTFOUND, "RecordEventWebhookPost for an unknown account")
}
