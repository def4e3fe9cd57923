// Command bareserver is the baseline of the HTTP benchmarks: bare net/http
// handlers with no authentication, storage, rate limiting or metrics. GET
// /v3/user/settings/enforced_tls returns the JSON a default account gets;
// POST /v3/mail/send reads the body and answers 202 with an X-Message-Id,
// storing nothing.
package main

import (
	"crypto/rand"
	"encoding/base64"
	"flag"
	"io"
	"log"
	"net/http"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8081", "listen address")
	flag.Parse()
	body := []byte(`{"require_tls":false,"require_valid_cert":false,"version":1.1}`)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v3/user/settings/enforced_tls", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})
	mux.HandleFunc("POST /v3/mail/send", func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		var id [16]byte
		rand.Read(id[:])
		w.Header().Set("X-Message-Id", base64.RawURLEncoding.EncodeToString(id[:]))
		w.WriteHeader(http.StatusAccepted)
	})
	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.ListenAndServe())
}
