// Command fakemx is a small, self-contained mail world for trying sealpost's
// delivery and Enforced TLS on one machine, without touching real DNS or
// real mail servers.
//
// In one process and on loopback only, it runs an authoritative DNS server
// and four SMTP servers, each standing for a recipient domain that a given
// Enforced TLS policy accepts or blocks:
//
//	tls13.example      mx.tls13.example -> 127.0.0.2  STARTTLS up to TLS 1.3, valid certificate
//	tls12.example      mx.tls12.example -> 127.0.0.3  STARTTLS up to TLS 1.2, valid certificate
//	plain.example      mx.plain.example -> 127.0.0.4  no STARTTLS
//	wrongname.example  mx.wrongname.example -> 127.0.0.5  STARTTLS, certificate for other.example
//
// The certificates come from a CA generated at the first start and kept in
// -dir (ca.pem, ca-key.pem), so that sealpost can be told to trust it with
// --tls-ca-file and keeps trusting it when fakemx is restarted. An Event Webhook receiver prints every event sealpost
// posts and checks its signature with SendGrid's own helper.
//
// Usage:
//
//	go run ./examples/fakemx [-dns 127.0.0.1:5300] [-smtp-port 2525] [-webhook 127.0.0.1:8099] [-webhook-public-key BASE64] [-dir DIR]
//
// It prints the command that runs sealpost against it, then one line per
// message received and per event posted, until SIGINT.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// shutdownTimeout bounds waiting for SMTP sessions and webhook posts in
// flight once the tool is told to stop.
const shutdownTimeout = 5 * time.Second

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var cfg config
	fs := flag.NewFlagSet("fakemx", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.DNSAddr, "dns", "127.0.0.1:5300", "host:port of the DNS server (UDP and TCP)")
	fs.IntVar(&cfg.SMTPPort, "smtp-port", 2525, "TCP port every SMTP server listens on (0: a free one)")
	fs.StringVar(&cfg.WebhookAddr, "webhook", "127.0.0.1:8099", "host:port of the Event Webhook receiver")
	fs.StringVar(&cfg.WebhookPublicKey, "webhook-public-key", "", "base64 public key to verify signed Event Webhook posts with")
	fs.StringVar(&cfg.Dir, "dir", "", "directory to keep the CA in, ca.pem and ca-key.pem, across restarts (empty: a new temporary directory, removed on exit)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "fakemx: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))

	removeDir := false
	if cfg.Dir == "" {
		dir, err := os.MkdirTemp("", "fakemx-")
		if err != nil {
			log.Error("creating a directory for ca.pem", slog.Any("err", err))
			return 1
		}
		cfg.Dir, removeDir = dir, true
	} else if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		log.Error("creating the directory for ca.pem", slog.Any("err", err))
		return 1
	}
	defer func() {
		if removeDir {
			os.RemoveAll(cfg.Dir)
		}
	}()

	out := &syncWriter{w: stdout}
	w, err := startWorld(ctx, cfg, out, log)
	if err != nil {
		log.Error("starting", slog.Any("err", err))
		return 1
	}
	printBanner(out, w)

	<-ctx.Done()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := w.Close(shutdownCtx); err != nil {
		log.Error("stopping", slog.Any("err", err))
		return 1
	}
	fmt.Fprintln(out, "fakemx: stopped")
	return 0
}

func printBanner(out io.Writer, w *world) {
	fmt.Fprintf(out, "fakemx: DNS on %s (UDP and TCP)\n", w.DNSAddr)
	for _, d := range w.Domains {
		fmt.Fprintf(out, "fakemx: %-17s MX %-20s -> %s  %s\n", d.Name, d.MXHost, d.Addr, d.Describe())
	}
	fmt.Fprintf(out, "fakemx: CA certificate in %s\n", w.CAFile)
	fmt.Fprintf(out, "fakemx: Event Webhook receiver at %s\n", w.WebhookURL)
	fmt.Fprintf(out, "fakemx: run sealpost against this world with:\n")
	fmt.Fprintf(out, "  go run ./cmd/sealpost serve --database sqlite:demo.db --dns-server %s --smtp-port %d --tls-ca-file %s --allow-destinations 127.0.0.0/8\n", w.DNSAddr, w.SMTPPort, w.CAFile)
}
