package httpapi

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// BenchmarkGetEnforcedTLS measures the hot path in-process (no network):
// an authenticated, rate-limited, metered GET on a real SQLite store,
// beside a bare handler returning the same constant JSON, which is the
// floor any handler pays for net/http's request and recorder plumbing.
func BenchmarkGetEnforcedTLS(b *testing.B) {
	e := newEnv(b, openSQLite, func(c *Config) {
		c.RateLimiter = newFixedWindow(1<<30, time.Hour)
	})
	token := e.key(e.user("bench"))

	bare := http.NewServeMux()
	body := []byte(wantDefaultTLS)
	bare.HandleFunc("GET "+pathTLS, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})

	for _, bc := range []struct {
		name string
		h    http.Handler
	}{
		{"sealpost", e.srv},
		{"bare", bare},
	} {
		req := httptest.NewRequest(http.MethodGet, pathTLS, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				rec := httptest.NewRecorder()
				bc.h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
			}
		})
		b.Run(bc.name+"-parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					rec := httptest.NewRecorder()
					bc.h.ServeHTTP(rec, req)
					if rec.Code != http.StatusOK {
						b.Errorf("status %d: %s", rec.Code, rec.Body)
						return
					}
				}
			})
		})
	}
}
