package main

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestConnectionCapKeepsHealthChecksServed: with the cap at 50, 200
// connections that send half a request and stall hold at most 50
// descriptors between them, the server goes on accepting, and a health
// check on a fresh connection is served, each time closing the oldest
// stalled connection to make room.
func TestConnectionCapKeepsHealthChecksServed(t *testing.T) {
	t.Parallel()
	const capacity, slow = 50, 200
	cfg := DefaultConfig()
	cfg.HTTPMaxConnections = capacity
	// Long timeouts: the stalled connections must not be dropped by them.
	cfg.HTTPReadHeaderTimeout = time.Minute
	cfg.HTTPReadTimeout = time.Minute
	m, _, logs := startMainWith(t, "sqlite:"+t.TempDir()+"/sealpost.db", cfg)
	ln := m.listener.(*limitListener)

	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range slow {
		c, err := net.Dial("tcp", m.Addr())
		if err != nil {
			t.Fatalf("slow connection %d: %v", i, err)
		}
		conns = append(conns, c)
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: sealpost\r\nX-Pad: "); err != nil {
			// Closed to make room already: that is the cap at work.
			continue
		}
	}
	waitFor(t, "the server to take every slow connection in", 20*time.Second, func() bool {
		return strings.Contains(logs.String(), "HTTP connection limit reached") && ln.open() <= capacity
	})

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for i := range 5 {
		start := time.Now()
		resp, err := client.Get(m.URL() + "/healthz")
		if err != nil {
			t.Fatalf("health check %d with %d stalled connections: %v", i, slow, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("health check %d: %d %s", i, resp.StatusCode, b)
		}
		t.Logf("health check %d served in %v with %d stalled connections made", i, time.Since(start), slow)
	}
	if n := ln.open(); n > capacity {
		t.Errorf("%d connections open, cap %d", n, capacity)
	}
	// Of the stalled connections, the newest are still open: the cap
	// closed the oldest.
	last := conns[len(conns)-1]
	last.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := last.Read(make([]byte, 1)); !hostileIsTimeout(err) {
		t.Errorf("the newest stalled connection was closed: %v", err)
	}
	first := conns[0]
	first.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := first.Read(make([]byte, 1)); err == nil || hostileIsTimeout(err) {
		t.Errorf("the oldest stalled connection is still open: %v", err)
	}
	if strings.Contains(logs.String(), "Accept error") {
		t.Error("the server failed to accept")
	}
}

// TestConnectionCapRefusesWhenAllAreServed: when every connection under the
// cap is in a handler, a new connection is closed at once rather than left
// waiting, and served again once a slot is free.
func TestConnectionCapRefusesWhenAllAreServed(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	entered := make(chan struct{}, 2)
	blocking := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			entered <- struct{}{}
			<-release
		}
		w.WriteHeader(http.StatusNoContent)
	})
	ln, err := listen("127.0.0.1:0", 2, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: serving(blocking), ConnContext: connContext}
	go srv.Serve(ln)
	defer srv.Close()
	base := "http://" + ln.Addr().String()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	done := make(chan error, 2)
	for range 2 {
		go func() {
			resp, err := client.Get(base + "/block")
			if err == nil {
				resp.Body.Close()
			}
			done <- err
		}()
	}
	<-entered
	<-entered
	start := time.Now()
	resp, err := client.Get(base + "/healthz")
	if err == nil {
		resp.Body.Close()
		t.Fatalf("a third connection was served with both slots in handlers: %d", resp.StatusCode)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the refusal took %v; it should be immediate", d)
	}
	close(release)
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the slots to be given back", 10*time.Second, func() bool { return ln.open() == 0 })
	resp, err = client.Get(base + "/healthz")
	if err != nil {
		t.Fatalf("after the handlers finished: %v", err)
	}
	resp.Body.Close()
}
