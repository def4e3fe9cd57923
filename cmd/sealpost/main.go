// Command sealpost runs the sealpost service and administers its database.
//
//	sealpost serve            run the HTTP API
//	sealpost account create   create a top-level account and print its first API key
//	sealpost apikey create    give an account a new full-access API key
//	sealpost version          print the version
//	sealpost tls probe        ask recipient domains' mail servers about their TLS
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

const usage = `usage:
  sealpost serve [flags]                                  run the HTTP API
  sealpost account create --username NAME [--email E]     create an account, print its API key
  sealpost apikey create --username NAME [--name N]       give an account a new full-access key, print it
  sealpost tls probe DOMAIN... [--json] [flags]           ask domains' mail servers about their TLS
  sealpost tlsrpt send --date YYYY-MM-DD [--dry-run]    send (or print) a day's SMTP TLS reports
  sealpost version                                        print the version and the commit it was built from
  sealpost help

Every flag has a SEALPOST_* environment equivalent (--http-addr -> SEALPOST_HTTP_ADDR).
Run "sealpost serve --help", "sealpost account create --help",
"sealpost apikey create --help" or "sealpost tls probe --help" for the flags.
`

// run is main without the process: tests call it with their own arguments,
// environment and output streams. It returns the exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:], getenv, stdout, stderr)
	case "account":
		if len(args) < 2 || args[1] != "create" {
			fmt.Fprint(stderr, "usage: sealpost account create --username NAME [--email E] [--database DSN]\n")
			return 2
		}
		return runAccountCreate(ctx, args[2:], getenv, stdout, stderr)
	case "apikey":
		if len(args) < 2 || args[1] != "create" {
			fmt.Fprint(stderr, "usage: sealpost apikey create --username NAME [--name N] [--database DSN]\n")
			return 2
		}
		return runAPIKeyCreate(ctx, args[2:], getenv, stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, version())
		return 0
	case "tls":
		if len(args) < 2 || args[1] != "probe" {
			fmt.Fprint(stderr, tlsUsage)
			return 2
		}
		return runTLSProbe(ctx, args[2:], getenv, stdout, stderr)
	case "tlsrpt":
		if len(args) < 2 || args[1] != "send" {
			fmt.Fprint(stderr, tlsrptUsage)
			return 2
		}
		return runTLSRPTSend(ctx, args[2:], getenv, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "sealpost: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}

// version describes the build: the module version ("(devel)" when built
// from a clone), the commit and its time, whether the tree had uncommitted
// changes, and the Go release.
func version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "sealpost (no build information) " + runtime.Version()
	}
	parts := []string{"sealpost", info.Main.Version}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	if rev := settings["vcs.revision"]; rev != "" {
		parts = append(parts, "commit "+rev)
	}
	if t := settings["vcs.time"]; t != "" {
		parts = append(parts, "("+t+")")
	}
	if settings["vcs.modified"] == "true" {
		parts = append(parts, "with uncommitted changes")
	}
	return strings.Join(append(parts, info.GoVersion), " ")
}
