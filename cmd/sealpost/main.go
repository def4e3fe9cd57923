// Command sealpost runs the sealpost service and administers its database.
//
//	sealpost serve            run the HTTP API
//	sealpost account create   create a top-level account and print its first API key
//	sealpost tls probe        ask recipient domains' mail servers about their TLS
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
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
  sealpost tls probe DOMAIN... [--json] [flags]           ask domains' mail servers about their TLS
  sealpost help [command]

Every flag has a SEALPOST_* environment equivalent (--http-addr -> SEALPOST_HTTP_ADDR).
Run "sealpost serve -h", "sealpost account create -h" or "sealpost tls probe -h"
for the flags.
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
	case "tls":
		if len(args) < 2 || args[1] != "probe" {
			fmt.Fprint(stderr, tlsUsage)
			return 2
		}
		return runTLSProbe(ctx, args[2:], getenv, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "sealpost: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}
