package main

import (
	"context"
	"database/sql"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sealpost/sealpost/postgres/pgtest"
)

// amplificationBody is a mail send of personalizations copies, each to one
// recipient, of contentBytes of content that does not compress (PostgreSQL
// would otherwise shrink the copies and hide them); with attach, the same
// bytes come as an attachment beside a short text.
func amplificationBody(personalizations, contentBytes int, seed uint64, attach bool) string {
	rng := rand.New(rand.NewPCG(seed, seed))
	raw := make([]byte, contentBytes*3/4)
	for i := range raw {
		raw[i] = byte(rng.Uint32())
	}
	content := base64.StdEncoding.EncodeToString(raw)
	var b strings.Builder
	b.WriteString(`{"personalizations":[`)
	for i := range personalizations {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"to":[{"email":"r%d@amplified.test"}]}`, i)
	}
	b.WriteString(`],"from":{"email":"sender@example.com"},"subject":"amplified","content":[{"type":"text/plain","value":"`)
	if attach {
		b.WriteString(`see the attachment"}],"attachments":[{"filename":"random.bin","content":"`)
	}
	b.WriteString(content)
	b.WriteString(`"}]}`)
	return b.String()
}

// customArgsBody is a mail send of personalizations copies, each to one
// recipient with a custom arg of its own, of 1 KB of content, with ten
// categories of 200 characters and top-level custom_args of nearly the
// 10,000 bytes SendGrid allows (what a personalization adds counts
// against the same limit).
func customArgsBody(personalizations int, seed uint64) string {
	rng := rand.New(rand.NewPCG(seed, seed))
	random := func(n int) string {
		const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
		b := make([]byte, n)
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return string(b)
	}
	var b strings.Builder
	b.WriteString(`{"personalizations":[`)
	for i := range personalizations {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"to":[{"email":"r%d@amplified.test"}],"custom_args":{"n":"%d"}}`, i, i)
	}
	b.WriteString(`],"from":{"email":"sender@example.com"},"subject":"amplified","categories":[`)
	for i := range 10 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"c%d-%s"`, i, random(200))
	}
	b.WriteString(`],"custom_args":{`)
	for i := range 20 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"k%02d":"%s"`, i, random(480))
	}
	b.WriteString(`},"content":[{"type":"text/plain","value":"`)
	b.WriteString(random(1024))
	b.WriteString(`"}]}`)
	return b.String()
}

// heapPeak samples the Go heap in use until stop is called, and returns
// the highest value seen.
func heapPeak() (stop func() uint64) {
	var peak atomic.Uint64
	sample := func() {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		if ms.HeapInuse > peak.Load() {
			peak.Store(ms.HeapInuse)
		}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				sample()
			}
		}
	})
	return func() uint64 {
		close(done)
		wg.Wait()
		sample()
		return peak.Load()
	}
}

// TestMailSendAmplification sends the amplifying request, 1,000
// personalizations of 100 KB content (about 140 KB), through the real
// server, alone and then eight at once, and reports how much the
// database grew and how far the heap rose. Before the content was stored
// once per send, one such request stored about 104 MB, and eight held about
// 800 MB of heap. Now what is stored is a small multiple of the request:
// the shared content once, and per recipient a message, a delivery, a
// recipient and a processed event of a few hundred bytes each.
func TestMailSendAmplification(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 9 large mail sends")
	}
	amplificationStores(t, "1,000 personalizations × 100 KB content", func(seed uint64) string {
		return amplificationBody(1000, 100<<10, seed, false)
	})
}

// TestMailSendAttachmentAmplification is TestMailSendAmplification with
// the 100 KB as an attachment: attachments are part of the send's shared
// body, stored once however many personalizations there are.
func TestMailSendAttachmentAmplification(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 9 large mail sends")
	}
	amplificationStores(t, "1,000 personalizations × 100 KB attachment", func(seed uint64) string {
		return amplificationBody(1000, 100<<10, seed, true)
	})
}

// TestMailSendCustomArgsAmplification sends 1,000 personalizations with
// the most custom_args SendGrid allows at the top level, ten long
// categories and a custom arg of each personalization's own, a request of
// about 80 KB, and holds it to the same bound as
// TestMailSendAmplification. Every event carries all of them when it is
// posted; when each message row and each processed event stored its own
// copy, the request stored about 25 MB on SQLite (28 MB on PostgreSQL),
// and eight at once raised the heap by 945 MB on PostgreSQL. Now the
// request's are
// stored once with the send's body, each message keeps its own, and each
// event refers to its message.
func TestMailSendCustomArgsAmplification(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 9 mail sends of 1,000 personalizations")
	}
	amplificationStores(t, "1,000 personalizations with 10 KB of custom_args and 2 KB of categories", func(seed uint64) string {
		return customArgsBody(1000, seed)
	})
}

// amplificationStores runs amplificationRun on both stores.
func amplificationStores(t *testing.T, what string, body func(seed uint64) string) {
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "sealpost.db")
		m, key := amplificationServer(t, "sqlite:"+path)
		raw, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		amplificationRun(t, m, key, what, body, func() int64 {
			var pages, free, size int64
			for q, dst := range map[string]*int64{"page_count": &pages, "freelist_count": &free, "page_size": &size} {
				if err := raw.QueryRow("PRAGMA " + q).Scan(dst); err != nil {
					t.Fatal(err)
				}
			}
			return (pages - free) * size
		})
	})
	t.Run("postgres", func(t *testing.T) {
		pgtest.SkipIfUnset(t)
		url := pgtest.URL(t)
		m, key := amplificationServer(t, url)
		conn, err := pgx.Connect(t.Context(), url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		amplificationRun(t, m, key, what, body, func() int64 {
			// Tables with their indexes and TOAST, vacuumed first so that
			// the free space map and visibility map exist before and after.
			if _, err := conn.Exec(t.Context(), "VACUUM"); err != nil {
				t.Fatal(err)
			}
			var n int64
			if err := conn.QueryRow(t.Context(), `SELECT COALESCE(sum(pg_total_relation_size(c.oid)), 0)::bigint
				FROM pg_class c JOIN pg_namespace ns ON ns.oid = c.relnamespace
				WHERE ns.nspname = current_schema() AND c.relkind = 'r'`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		})
	})
}

func amplificationServer(t *testing.T, database string) (*Main, string) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.RateLimit = 100000
	cfg.DeliveryWorkers = 0
	cfg.WebhookWorkers = 0
	// The test measures what is stored and held, not how fast: on a
	// loaded machine under -race, eight such sends queued behind SQLite's
	// one writer can take longer than the default minute to answer, and
	// the server would close their connections unanswered.
	cfg.HTTPReadTimeout = 10 * time.Minute
	cfg.HTTPWriteTimeout = 10 * time.Minute
	m, key, _ := startMainWith(t, database, cfg)
	return m, key
}

func amplificationRun(t *testing.T, m *Main, key, what string, body func(seed uint64) string, stored func() int64) {
	send := func(body string) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, m.URL()+"/v3/mail/send", strings.NewReader(body))
		if err != nil {
			t.Error(err)
			return
		}
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Errorf("mail send: %d, want 202", resp.StatusCode)
		}
	}
	for _, parallel := range []int{1, 8} {
		bodies := make([]string, parallel)
		requestBytes := 0
		for i := range bodies {
			bodies[i] = body(uint64(parallel*100 + i))
			requestBytes += len(bodies[i])
		}
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		storedBefore := stored()
		stop := heapPeak()
		var wg sync.WaitGroup
		for _, body := range bodies {
			wg.Go(func() { send(body) })
		}
		wg.Wait()
		peak := stop()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		grew := stored() - storedBefore
		heapRise := int64(peak) - int64(before.HeapInuse)
		t.Logf("%d × (%s): requests %d bytes; database +%d bytes (%.1f× the requests); heap in use rose by at most %d bytes (%.1f× the requests); %d bytes allocated",
			parallel, what, requestBytes, grew, float64(grew)/float64(requestBytes), heapRise, float64(heapRise)/float64(requestBytes), after.TotalAlloc-before.TotalAlloc)
		// The content, categories and custom args once, and per
		// recipient a message, a delivery, a recipient and a processed
		// event, with their indexes (the Email Activity API's three on
		// recipients among them: about 2.4 KiB a recipient on PostgreSQL);
		// a copy of the content per personalization would be 700× the
		// request.
		const recipients = 1000
		if limit := int64(2*requestBytes + parallel*recipients*3072); grew > limit {
			t.Errorf("%d sends stored %d bytes for %d bytes of requests: want under %d (twice the requests and 3 KiB per recipient)",
				parallel, grew, requestBytes, limit)
		}
		// The request, its parsed and encoded content and the rows being
		// written; a copy per personalization would be 100 MB per send.
		if limit := int64(parallel) * 24 << 20; heapRise > limit {
			t.Errorf("%d sends raised the heap by %d bytes, want under %d", parallel, heapRise, limit)
		}
	}
}
