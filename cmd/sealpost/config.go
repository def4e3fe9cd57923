package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// DefaultDatabase is a SQLite file in the working directory, so that
// "sealpost serve" works on a fresh machine with no setup.
const DefaultDatabase = "sqlite:sealpost.db"

// Config is everything serve can be told.
type Config struct {
	HTTPAddr          string
	Database          string
	RateLimit         int
	RateLimitWindow   time.Duration
	RateLimitSync     time.Duration
	LogLevel          slog.Level
	LogFormat         string
	BootstrapUsername string
	ShutdownTimeout   time.Duration
}

// DefaultConfig returns serve's defaults.
func DefaultConfig() Config {
	return Config{
		HTTPAddr:          "127.0.0.1:8080",
		Database:          DefaultDatabase,
		RateLimit:         600,
		RateLimitWindow:   time.Minute,
		RateLimitSync:     250 * time.Millisecond,
		LogLevel:          slog.LevelInfo,
		LogFormat:         "json",
		BootstrapUsername: "admin",
		ShutdownTimeout:   10 * time.Second,
	}
}

// envFlagSet is a FlagSet whose flags take their defaults from SEALPOST_*
// environment variables, so every flag has an environment equivalent.
type envFlagSet struct {
	*flag.FlagSet
	getenv func(string) string
	errs   []string
}

func newFlagSet(name string, getenv func(string) string, stderr io.Writer) *envFlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return &envFlagSet{FlagSet: fs, getenv: getenv}
}

func envName(flagName string) string {
	return "SEALPOST_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func (f *envFlagSet) env(name string) (string, bool) {
	v := f.getenv(envName(name))
	return v, v != ""
}

func (f *envFlagSet) String(p *string, name, usage string) {
	if v, ok := f.env(name); ok {
		*p = v
	}
	f.StringVar(p, name, *p, usage+" ("+envName(name)+")")
}

func (f *envFlagSet) Int(p *int, name, usage string) {
	if v, ok := f.env(name); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			f.errs = append(f.errs, fmt.Sprintf("%s=%q: not an integer", envName(name), v))
		}
		*p = n
	}
	f.IntVar(p, name, *p, usage+" ("+envName(name)+")")
}

func (f *envFlagSet) Duration(p *time.Duration, name, usage string) {
	if v, ok := f.env(name); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			f.errs = append(f.errs, fmt.Sprintf("%s=%q: not a duration", envName(name), v))
		}
		*p = d
	}
	f.DurationVar(p, name, *p, usage+" ("+envName(name)+")")
}

func (f *envFlagSet) Level(p *slog.Level, name, usage string) {
	if v, ok := f.env(name); ok {
		if err := p.UnmarshalText([]byte(v)); err != nil {
			f.errs = append(f.errs, fmt.Sprintf("%s=%q: not a log level", envName(name), v))
		}
	}
	f.TextVar(p, name, *p, usage+" ("+envName(name)+")")
}

// parse parses args and reports environment and flag errors together.
func (f *envFlagSet) parse(args []string) error {
	if err := f.Parse(args); err != nil {
		return err
	}
	if f.NArg() > 0 {
		f.errs = append(f.errs, fmt.Sprintf("unexpected argument %q", f.Arg(0)))
	}
	if len(f.errs) > 0 {
		return fmt.Errorf("%s", strings.Join(f.errs, "; "))
	}
	return nil
}

func (c *Config) register(fs *envFlagSet) {
	fs.String(&c.HTTPAddr, "http-addr", "host:port to serve the HTTP API on")
	fs.String(&c.Database, "database", "sqlite:PATH, a file path, or a postgres:// URL")
	fs.Int(&c.RateLimit, "rate-limit", "requests allowed per API key per window on non-mail endpoints")
	fs.Duration(&c.RateLimitWindow, "rate-limit-window", "rate limit window")
	fs.Duration(&c.RateLimitSync, "rate-limit-sync", "on PostgreSQL, how often nodes share their rate limit counts")
	fs.Level(&c.LogLevel, "log-level", "debug, info, warn or error")
	fs.String(&c.LogFormat, "log-format", "json or text")
	fs.String(&c.BootstrapUsername, "bootstrap-username", "on an empty database, create this account and print its key (empty: don't)")
	fs.Duration(&c.ShutdownTimeout, "shutdown-timeout", "how long to wait for requests in flight on SIGINT/SIGTERM")
}

func (c Config) validate() error {
	var problems []string
	if c.RateLimit < 1 {
		problems = append(problems, "--rate-limit must be at least 1")
	}
	if c.RateLimitWindow < time.Second {
		problems = append(problems, "--rate-limit-window must be at least 1s")
	}
	if c.RateLimitSync < 10*time.Millisecond {
		problems = append(problems, "--rate-limit-sync must be at least 10ms")
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		problems = append(problems, "--log-format must be json or text")
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return nil
}

func newLogger(w io.Writer, format string, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
