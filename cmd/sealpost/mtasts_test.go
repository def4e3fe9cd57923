package main

import (
	"bytes"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/sealpost/sealpost/delivery"
	"github.com/sealpost/sealpost/mtasts"
	"github.com/sealpost/sealpost/sqlite"
)

// TestMTASTSFlag: MTA-STS is on unless --mta-sts=false (or
// SEALPOST_MTA_STS=false) turns it off; on, its source finds policies with
// the delivery client and caches them in the store.
func TestMTASTSFlag(t *testing.T) {
	t.Parallel()
	store, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "sealpost.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	client := &delivery.Client{}
	tests := []struct {
		args []string
		env  map[string]string
		on   bool
	}{
		{on: true},
		{args: []string{"--mta-sts"}, on: true},
		{args: []string{"--mta-sts=false"}},
		{env: map[string]string{"SEALPOST_MTA_STS": "false"}},
		{args: []string{"--mta-sts=true"}, env: map[string]string{"SEALPOST_MTA_STS": "false"}, on: true},
	}
	for _, tt := range tests {
		cfg := DefaultConfig()
		fs := newFlagSet("sealpost serve", func(k string) string { return tt.env[k] }, new(bytes.Buffer))
		cfg.register(fs)
		if err := fs.parse(tt.args); err != nil {
			t.Fatalf("%v %v: %v", tt.args, tt.env, err)
		}
		m := &Main{Config: cfg, Logger: slog.New(slog.DiscardHandler)}
		source := m.mtastsSource(client, store)
		if !tt.on {
			if source != nil {
				t.Errorf("%v %v: MTA-STS source %#v, want none", tt.args, tt.env, source)
			}
			continue
		}
		s, ok := source.(*mtasts.Source)
		if !ok || s.Resolver != client || s.Fetcher != client || s.Cache != store {
			t.Errorf("%v %v: MTA-STS source %#v, want one on the delivery client and the store", tt.args, tt.env, source)
		}
	}
}
