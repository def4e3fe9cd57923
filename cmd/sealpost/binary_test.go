package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestBinaryServeAndGracefulShutdown builds the real binary without cgo,
// starts "sealpost serve" configured through the environment, uses the key
// it prints, and stops it with SIGTERM.
func TestBinaryServeAndGracefulShutdown(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	t.Parallel()
	dir := t.TempDir()
	bin := filepath.Join(dir, "sealpost")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(build.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	cmd := exec.Command(bin, "serve")
	cmd.Dir = dir
	cmd.Env = append(cmd.Environ(), "SEALPOST_HTTP_ADDR=127.0.0.1:0", "SEALPOST_LOG_LEVEL=debug")
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

	// The key is the only thing on stdout; logs are JSON lines on stderr.
	keyLine := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		keyLine <- strings.TrimSpace(line)
		io.Copy(io.Discard, stdout)
	}()
	addr := make(chan string, 1)
	var logLines []string
	logsDone := make(chan struct{})
	go func() {
		defer close(logsDone)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logLines = append(logLines, sc.Text())
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

	var key, base string
	select {
	case key = <-keyLine:
	case <-time.After(30 * time.Second):
		t.Fatal("no key on stdout")
	}
	select {
	case a := <-addr:
		base = "http://" + a
	case <-time.After(30 * time.Second):
		t.Fatal("no 'sealpost serving' log line")
	}
	req, _ := http.NewRequest("GET", base+settings, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != defaultBody {
		t.Fatalf("GET with the printed key: %d %s", resp.StatusCode, body)
	}
	if got := resp.Header.Get("Content-Type"); got != "application/json" {
		t.Fatalf("Content-Type %q", got)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { <-logsDone; done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve did not exit cleanly on SIGTERM: %v\n%s", err, strings.Join(logLines, "\n"))
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop within 20s of SIGTERM")
	}
	secret := key[strings.LastIndexByte(key, '.')+1:]
	for _, l := range logLines {
		if strings.Contains(l, secret) {
			t.Fatalf("a log line contains the API key: %q", l)
		}
	}
}
