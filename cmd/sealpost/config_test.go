package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// badFlagValues holds a bad value for every flag of serve. A flag missing
// here fails TestEveryFlagIsValidated: a new flag comes with its check.
var badFlagValues = map[string]string{
	"tlsrpt":                       "maybe",
	"tlsrpt-organization":          "bad\x01name",
	"tlsrpt-contact":               "bad\x01contact",
	"tlsrpt-from":                  "not-an-address",
	"tlsrpt-account":               "bad name!",
	"smtp-max-per-domain":          "-1",
	"smtp-session-max-messages":    "0",
	"smtp-session-idle":            "10m",
	"http-addr":                    "nohostport",
	"database":                     "mysql://db.example/sealpost",
	"rate-limit":                   "0",
	"rate-limit-window":            "0s",
	"rate-limit-sync":              "1ms",
	"log-level":                    "loud",
	"log-format":                   "xml",
	"bootstrap-username":           "two words",
	"shutdown-timeout":             "-1s",
	"sqlite-synchronous":           "off",
	"http-max-connections":         "0",
	"http-read-header-timeout":     "0s",
	"http-read-timeout":            "-1s",
	"http-write-timeout":           "0s",
	"http-idle-timeout":            "0s",
	"node-id":                      "two words",
	"dns-server":                   "notahostport",
	"dnssec-resolver":              "127.0.0.1",
	"smtp-port":                    "70000",
	"tls-ca-file":                  "/nonexistent/sealpost-ca.pem",
	"helo-hostname":                "two words",
	"delivery-workers":             "-1",
	"delivery-lease":               "1s",
	"smtp-timeout":                 "0s",
	"retry-initial":                "0s",
	"retry-max":                    "1s",
	"max-delivery-age":             "0s",
	"webhook-workers":              "-1",
	"webhook-interval":             "0s",
	"webhook-lease":                "1s",
	"webhook-retry":                "-5s",
	"allow-destinations":           "10.0.0.0/33",
	"mail-send-rate-limit":         "0",
	"max-subusers":                 "0",
	"tls-registry-retention":       "0s",
	"activity-retention":           "0s",
	"console":                      "maybe",
	"webhook-max-posts":            "0",
	"tls-probe-rate-limit":         "0",
	"mta-sts":                      "maybe",
	"require-authenticated-sender": "maybe",
}

// TestEveryFlagIsValidated: a bad value of any flag, given as a flag or as
// its environment variable, stops serve before it opens anything: exit code
// 2, exactly one line on stderr naming the flag, nothing on stdout, and no
// database (so no bootstrap account whose key would be lost).
func TestEveryFlagIsValidated(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	fs := newFlagSet("sealpost serve", func(string) string { return "" }, new(bytes.Buffer))
	cfg.register(fs)
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	for _, name := range names {
		bad, ok := badFlagValues[name]
		if !ok {
			t.Errorf("--%s has no bad value in badFlagValues: add one, and its check to Config.validate", name)
			continue
		}
		for _, viaEnv := range []bool{false, true} {
			dir := t.TempDir()
			dbPath := filepath.Join(dir, "sealpost.db")
			args := []string{"serve", "--database", "sqlite:" + dbPath, "--http-addr", "127.0.0.1:0"}
			env := map[string]string{}
			if viaEnv {
				env[envName(name)] = bad
				if name == "database" || name == "http-addr" {
					args = []string{"serve"} // a flag would override the variable
					if name == "database" {
						args = append(args, "--http-addr", "127.0.0.1:0")
					} else {
						args = append(args, "--database", "sqlite:"+dbPath)
					}
				}
			} else if isBoolFlag(fs, name) {
				args = append(args, "--"+name+"="+bad) // a bool flag takes no separate value
			} else {
				// One argument: a boolean flag takes no separate value.
				args = append(args, "--"+name+"="+bad)
			}
			// Already cancelled: if the bad value were accepted, serve
			// would stop at once instead of serving.
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			var stdout, stderr bytes.Buffer
			code := run(ctx, args, func(k string) string { return env[k] }, &stdout, &stderr)
			lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
			how := "--" + name + " " + bad
			if viaEnv {
				how = envName(name) + "=" + bad
			}
			if code != 2 {
				t.Errorf("%s: exit %d, want 2; stderr %q", how, code, stderr.String())
			}
			if len(lines) != 1 || !(strings.Contains(lines[0], "-"+name) || strings.Contains(lines[0], envName(name))) {
				t.Errorf("%s: stderr %q, want one line naming the flag", how, stderr.String())
			}
			if !strings.Contains(lines[0], "--help") {
				t.Errorf("%s: stderr %q does not point to --help", how, lines[0])
			}
			if stdout.Len() != 0 {
				t.Errorf("%s: stdout %q, want nothing", how, stdout.String())
			}
			if _, err := os.Stat(dbPath); err == nil {
				t.Errorf("%s: the database was created", how)
			}
		}
	}
}

func isBoolFlag(fs *envFlagSet, name string) bool {
	b, ok := fs.Lookup(name).Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

func TestBadFlagMessages(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--log-level", "loud"}, "debug, info, warn or error"},
		{[]string{"--dns-server", "notahostport"}, `--dns-server: "notahostport" is not host:port`},
		{[]string{"--dns-server", "127.0.0.1:0"}, "port must be a number from 1 to 65535"},
		{[]string{"--dnssec-resolver", "127.0.0.1"}, `--dnssec-resolver: "127.0.0.1" is not host:port`},
		{[]string{"--shutdown-timeout", "-1s"}, "--shutdown-timeout must be positive"},
		{[]string{"--sqlite-synchronous", "off"}, `"off" is not full or normal`},
		{[]string{"--no-such-flag"}, "no-such-flag"},
	}
	for _, tt := range tests {
		var stderr bytes.Buffer
		code := run(context.Background(), append([]string{"serve"}, tt.args...), func(string) string { return "" }, new(bytes.Buffer), &stderr)
		if code != 2 || !strings.Contains(stderr.String(), tt.want) || strings.Count(stderr.String(), "\n") != 1 {
			t.Errorf("serve %v: exit %d, stderr %q; want 2 and one line with %q", tt.args, code, stderr.String(), tt.want)
		}
	}
}

func TestHelpPrintsTheFlagsOnce(t *testing.T) {
	t.Parallel()
	var stderr bytes.Buffer
	if code := run(context.Background(), []string{"serve", "--help"}, func(string) string { return "" }, new(bytes.Buffer), &stderr); code != 0 {
		t.Fatalf("serve --help: exit %d", code)
	}
	if n := strings.Count(stderr.String(), "-dns-server"); n != 1 {
		t.Errorf("serve --help lists --dns-server %d times:\n%s", n, stderr.String())
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	for _, arg := range []string{"version", "--version"} {
		var stdout bytes.Buffer
		code := run(context.Background(), []string{arg}, func(string) string { return "" }, &stdout, new(bytes.Buffer))
		out := stdout.String()
		if code != 0 || !strings.HasPrefix(out, "sealpost ") || !strings.Contains(out, "go1.") || strings.Count(out, "\n") != 1 {
			t.Errorf("sealpost %s: exit %d, stdout %q; want one line with the version and the Go release", arg, code, out)
		}
	}
}

// TestFailedStartKeepsTheBootstrap: a start that fails on a file (here a
// --tls-ca-file not there yet) creates no account, so the next start still
// prints the first key. Main.Open is called directly, past the flag checks,
// as an embedding program would.
func TestFailedStartKeepsTheBootstrap(t *testing.T) {
	t.Parallel()
	database := "sqlite:" + filepath.Join(t.TempDir(), "sealpost.db")
	cfg := DefaultConfig()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.Database = database
	cfg.TLSCAFile = filepath.Join(t.TempDir(), "ca.pem")
	var stdout bytes.Buffer
	m := &Main{Config: cfg, Stdout: &stdout}
	if err := m.Open(context.Background()); err == nil {
		m.Close()
		t.Fatal("serve started with a missing --tls-ca-file")
	}
	if stdout.Len() != 0 {
		t.Fatalf("the failed start printed %q", stdout.String())
	}
	_, key, _ := startMain(t, database)
	if !strings.HasPrefix(key, "SG.") {
		t.Fatalf("the next start printed %q, want the first key", key)
	}
}

// TestAPIKeyCreateCommand: an operator who lost the bootstrap key gets a new
// full-access one from the database.
func TestAPIKeyCreateCommand(t *testing.T) {
	t.Parallel()
	db := "sqlite:" + filepath.Join(t.TempDir(), "sealpost.db")
	ctx := context.Background()
	env := func(string) string { return "" }
	if code := run(ctx, []string{"account", "create", "--username", "acme", "--database", db}, env, new(bytes.Buffer), new(bytes.Buffer)); code != 0 {
		t.Fatalf("account create: exit %d", code)
	}
	tests := []struct {
		args     []string
		code     int
		errMatch string
	}{
		{[]string{"--username", "acme", "--database", db}, 0, "created API key"},
		{[]string{"--username", "acme", "--name", "ops laptop", "--database", db}, 0, `"ops laptop"`},
		{[]string{"--username", "nobody", "--database", db}, 1, `no account named "nobody"`},
		{[]string{"--database", db}, 2, "--username is required"},
		{[]string{"--username", "acme", "--name", " ", "--database", db}, 2, "--name is required"},
		{[]string{"--username", "acme", "--database", "mysql://h/db"}, 2, "unsupported scheme"},
	}
	var keys []string
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		code := run(ctx, append([]string{"apikey", "create"}, tt.args...), env, &stdout, &stderr)
		if code != tt.code || !strings.Contains(stderr.String(), tt.errMatch) || strings.Count(stderr.String(), "\n") != 1 {
			t.Errorf("apikey create %v: exit %d stderr %q; want exit %d and one line with %q", tt.args, code, stderr.String(), tt.code, tt.errMatch)
		}
		if tt.code == 0 {
			key := strings.TrimSuffix(stdout.String(), "\n")
			if !strings.HasPrefix(key, "SG.") || strings.Contains(key, "\n") {
				t.Errorf("apikey create %v: stdout %q, want one key", tt.args, stdout.String())
			}
			keys = append(keys, key)
		} else if stdout.Len() != 0 {
			t.Errorf("apikey create %v: stdout %q, want nothing", tt.args, stdout.String())
		}
	}
	// The keys have full access: they can create a subuser and read the
	// account's own keys.
	m, _, _ := startMain(t, db)
	for _, key := range keys {
		expect(t, call(t, m, key, "GET", settings, "", ""), 200, defaultBody)
		if resp := call(t, m, key, "GET", "/v3/api_keys", "", ""); resp.StatusCode != 200 {
			t.Errorf("GET /v3/api_keys with the new key: %d %s", resp.StatusCode, resp.Body)
		}
	}
}
