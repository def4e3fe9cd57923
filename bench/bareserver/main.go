// Command bareserver is the baseline of the settings benchmark: a bare
// net/http handler returning the same constant JSON that
// GET /v3/user/settings/enforced_tls returns for a default account, with no
// authentication, storage, rate limiting or metrics.
package main

import (
	"flag"
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
	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.ListenAndServe())
}
