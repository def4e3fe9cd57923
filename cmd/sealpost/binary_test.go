package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sealpost/sealpost/internal/conformance"
	"github.com/sealpost/sealpost/postgres/pgtest"
)

// buildBinary builds the real binary without cgo, once per test.
func buildBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "sealpost")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(build.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// process is a running "sealpost serve".
type process struct {
	cmd  *exec.Cmd
	base string // http://host:port
	key  string // what it printed on stdout; empty if it bootstrapped nothing

	mu       sync.Mutex
	logLines []string
	logsDone chan struct{}
}

func (p *process) logs() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.logLines...)
}

// allowLoopback lets sealpost reach the tests' fake MX servers and webhook
// receivers, which listen on loopback: by default it connects to public
// addresses only.
const allowLoopback = "SEALPOST_ALLOW_DESTINATIONS=127.0.0.0/8"

// startServe starts "sealpost serve" configured only through the
// environment, and waits for its "sealpost serving" log line.
func startServe(t *testing.T, bin string, env ...string) *process {
	t.Helper()
	return startServeNotify(t, bin, nil, env...)
}

// startServeNotify is startServe calling started with the process id as
// soon as the process exists, before it serves.
func startServeNotify(t *testing.T, bin string, started func(pid int), env ...string) *process {
	t.Helper()
	cmd := exec.Command(bin, "serve")
	cmd.Dir = filepath.Dir(bin)
	cmd.Env = append(cmd.Environ(), append([]string{"SEALPOST_HTTP_ADDR=127.0.0.1:0", "SEALPOST_LOG_LEVEL=debug"}, env...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	if started != nil {
		started(cmd.Process.Pid)
	}
	p := &process{cmd: cmd, logsDone: make(chan struct{})}

	// The key is the only thing on stdout; logs are JSON lines on stderr.
	keyLine := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		keyLine <- strings.TrimSpace(line)
		io.Copy(io.Discard, stdout)
	}()
	addr := make(chan string, 1)
	go func() {
		defer close(p.logsDone)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.logLines = append(p.logLines, sc.Text())
			p.mu.Unlock()
			var rec struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
				t.Errorf("a log line is not JSON: %q", sc.Text())
			}
			if rec.Msg == "sealpost serving" {
				addr <- rec.Addr
			}
		}
	}()
	select {
	case a := <-addr:
		p.base = "http://" + a
	case <-time.After(30 * time.Second):
		t.Fatalf("no 'sealpost serving' log line:\n%s", strings.Join(p.logs(), "\n"))
	}
	// A bootstrap key is printed before serving starts; a node that
	// bootstrapped nothing prints nothing, so don't wait for it.
	select {
	case p.key = <-keyLine:
	case <-time.After(200 * time.Millisecond):
	}
	return p
}

// stop sends SIGTERM and requires a clean exit.
func (p *process) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { <-p.logsDone; done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve did not exit cleanly on SIGTERM: %v\n%s", err, strings.Join(p.logs(), "\n"))
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop within 20s of SIGTERM")
	}
}

// do makes one request and returns the status and body.
func (p *process) do(t *testing.T, method, path, key, body string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, p.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	client := &http.Client{Transport: conformance.Transport(t, nil)}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b), resp.Header
}

// TestBinaryServeAndGracefulShutdown starts the real binary on its default
// database (a SQLite file in the working directory), uses the key it prints,
// and stops it with SIGTERM.
func TestBinaryServeAndGracefulShutdown(t *testing.T) {
	t.Parallel()
	p := startServe(t, buildBinary(t))
	if !strings.HasPrefix(p.key, "SG.") {
		t.Fatalf("stdout %q, want the bootstrap key", p.key)
	}
	status, body, header := p.do(t, "GET", settings, p.key, "")
	if status != 200 || body != defaultBody {
		t.Fatalf("GET with the printed key: %d %s", status, body)
	}
	if got := header.Get("Content-Type"); got != "application/json" {
		t.Fatalf("Content-Type %q", got)
	}
	p.stop(t)
	secret := p.key[strings.LastIndexByte(p.key, '.')+1:]
	for _, l := range p.logs() {
		if strings.Contains(l, secret) {
			t.Fatalf("a log line contains the API key: %q", l)
		}
	}
}

// TestBinaryTwoProcessesOnePostgres: two serve processes on one PostgreSQL
// database are one service: what one changes, the other serves on its very
// next request.
func TestBinaryTwoProcessesOnePostgres(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	bin := buildBinary(t)
	a := startServe(t, bin, "SEALPOST_DATABASE="+url)
	b := startServe(t, bin, "SEALPOST_DATABASE="+url)
	if a.key == "" || b.key != "" {
		t.Fatalf("exactly the first node must bootstrap: a %q, b %q", a.key, b.key)
	}
	key := a.key

	want := `{"require_tls":true,"require_valid_cert":true,"version":1.3}`
	if status, body, _ := a.do(t, "PATCH", settings, key, `{"require_tls":true,"require_valid_cert":true,"version":1.3}`); status != 200 || body != want {
		t.Fatalf("PATCH on a: %d %s", status, body)
	}
	if status, body, _ := b.do(t, "GET", settings, key, ""); status != 200 || body != want {
		t.Fatalf("GET on b after a PATCH on a: %d %s, want %s", status, body, want)
	}

	status, body, _ := b.do(t, "POST", "/v3/api_keys", key, `{"name":"temp"}`)
	var created struct {
		APIKey   string `json:"api_key"`
		APIKeyID string `json:"api_key_id"`
	}
	if err := json.Unmarshal([]byte(body), &created); err != nil || status != 201 {
		t.Fatalf("creating a key on b: %d %s", status, body)
	}
	if status, _, _ := a.do(t, "GET", settings, created.APIKey, ""); status != 200 {
		t.Fatalf("a does not accept the key b created: %d", status)
	}
	if status, _, _ := b.do(t, "DELETE", "/v3/api_keys/"+created.APIKeyID, key, ""); status != 204 {
		t.Fatalf("deleting the key on b: %d", status)
	}
	if status, body, _ := a.do(t, "GET", settings, created.APIKey, ""); status != 401 || body != unauthorized {
		t.Fatalf("a still accepts a key deleted on b: %d %s", status, body)
	}
	a.stop(t)
	b.stop(t)
}
