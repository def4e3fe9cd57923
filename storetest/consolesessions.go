package storetest

import (
	"bytes"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
)

func testConsoleSessions(t *testing.T, s sealpost.Store) {
	ctx := t.Context()
	now := time.Unix(1_800_000_000, 0)
	live := sealpost.ConsoleSession{ID: []byte("live-session-id-0123456789abcdef"), SealedKey: []byte{1, 2, 3}, ExpiresAt: now.Add(time.Hour)}
	stale := sealpost.ConsoleSession{ID: []byte("stale-session-id-0123456789abcde"), SealedKey: []byte{4}, ExpiresAt: now.Add(time.Minute)}
	for _, cs := range []sealpost.ConsoleSession{live, stale} {
		if err := s.CreateConsoleSession(ctx, cs, now); err != nil {
			t.Fatalf("CreateConsoleSession: %v", err)
		}
	}
	got, err := s.ConsoleSession(ctx, live.ID, now)
	if err != nil {
		t.Fatalf("ConsoleSession: %v", err)
	}
	if !bytes.Equal(got.SealedKey, live.SealedKey) || !got.ExpiresAt.Equal(live.ExpiresAt) {
		t.Errorf("ConsoleSession = %+v, want %+v", got, live)
	}
	if err := s.CreateConsoleSession(ctx, live, now); sealpost.ErrorCode(err) != sealpost.ECONFLICT {
		t.Errorf("creating the same session twice: %v, want ECONFLICT", err)
	}

	later := now.Add(2 * time.Minute)
	if _, err := s.ConsoleSession(ctx, stale.ID, later); sealpost.ErrorCode(err) != sealpost.ENOTFOUND {
		t.Errorf("expired session: %v, want ENOTFOUND", err)
	}
	// Creating another session forgets the expired one for good.
	other := sealpost.ConsoleSession{ID: []byte("other-session-id-0123456789abcde"), SealedKey: []byte{5}, ExpiresAt: later.Add(time.Hour)}
	if err := s.CreateConsoleSession(ctx, other, later); err != nil {
		t.Fatalf("CreateConsoleSession: %v", err)
	}
	if _, err := s.ConsoleSession(ctx, stale.ID, now); sealpost.ErrorCode(err) != sealpost.ENOTFOUND {
		t.Errorf("pruned session read at its own time: %v, want ENOTFOUND", err)
	}

	if err := s.DeleteConsoleSession(ctx, live.ID); err != nil {
		t.Fatalf("DeleteConsoleSession: %v", err)
	}
	if _, err := s.ConsoleSession(ctx, live.ID, now); sealpost.ErrorCode(err) != sealpost.ENOTFOUND {
		t.Errorf("deleted session: %v, want ENOTFOUND", err)
	}
	if err := s.DeleteConsoleSession(ctx, live.ID); err != nil {
		t.Errorf("deleting a deleted session: %v", err)
	}
}
