package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
	"github.com/sealpost/sealpost/delivery"
	"github.com/sendgrid/sendgrid-go/helpers/eventwebhook"
)

// lockedBuffer collects the tool's output while its servers write to it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startTestWorld starts the world on free ports and stops it at cleanup.
func startTestWorld(t *testing.T, webhookKey string) (*world, *lockedBuffer) {
	t.Helper()
	out := &lockedBuffer{}
	cfg := config{DNSAddr: "127.0.0.1:0", SMTPPort: 0, WebhookAddr: "127.0.0.1:0", WebhookPublicKey: webhookKey, Dir: t.TempDir()}
	w, err := startWorld(t.Context(), cfg, out, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if err := w.Close(ctx); err != nil {
			t.Errorf("closing: %v", err)
		}
	})
	return w, out
}

func TestDeliveryThroughTheWorld(t *testing.T) {
	w, out := startTestWorld(t, "")
	caPEM, err := os.ReadFile(w.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatalf("%s holds no PEM certificate", w.CAFile)
	}
	client := delivery.Client{Resolver: delivery.NewResolver(w.DNSAddr), Port: w.SMTPPort, RootCAs: roots, Timeout: 10 * time.Second,
		Destinations: sealpost.AllowDestinations(netip.MustParsePrefix("127.0.0.0/8"))}

	validTLS13 := sealpost.EnforcedTLS{RequireValidCert: true, Version: sealpost.TLS13}
	tests := []struct {
		domain     string
		policy     sealpost.EnforcedTLS
		want       delivery.Status
		wantTLS    string // TLSFacts.Version when delivered
		wantResult string // TLSFacts.ResultType when blocked
		wantLine   string // in the tool's output when delivered
	}{
		{domain: "tls13.example", policy: validTLS13, want: delivery.Delivered, wantTLS: "1.3",
			wantLine: `smtp: tls13.example from=a@b.example to=x@tls13.example tls="TLS 1.3 `},
		{domain: "plain.example", policy: validTLS13, want: delivery.Blocked, wantResult: sealpost.ResultSTARTTLSNotSupported},
		{domain: "tls12.example", policy: validTLS13, want: delivery.Blocked},
		{domain: "tls12.example", policy: sealpost.EnforcedTLS{RequireValidCert: true, Version: sealpost.TLS12}, want: delivery.Delivered, wantTLS: "1.2",
			wantLine: `smtp: tls12.example from=a@b.example to=x@tls12.example tls="TLS 1.2 `},
		{domain: "wrongname.example", policy: validTLS13, want: delivery.Blocked, wantResult: sealpost.ResultCertificateHostMismatch},
		{domain: "wrongname.example", policy: sealpost.EnforcedTLS{RequireTLS: true, Version: sealpost.TLS12}, want: delivery.Delivered, wantTLS: "1.3",
			wantLine: `smtp: wrongname.example from=a@b.example to=x@wrongname.example tls="TLS 1.3 `},
		{domain: "plain.example", policy: sealpost.DefaultEnforcedTLS(), want: delivery.Delivered,
			wantLine: `smtp: plain.example from=a@b.example to=x@plain.example tls="none" subject="hi"`},
		{domain: "unknown.example", policy: validTLS13, want: delivery.Bounced},
	}
	for _, tt := range tests {
		t.Run(tt.domain+" mandatory="+strconv.FormatBool(tt.policy.Mandatory())+" min="+tt.policy.Version.String(), func(t *testing.T) {
			res := client.Deliver(t.Context(), tt.policy, delivery.Envelope{
				From:       "a@b.example",
				Domain:     tt.domain,
				Recipients: []string{"x@" + tt.domain},
				Data:       []byte("Subject: hi\r\n\r\nbody\r\n"),
			})
			got := res.Recipients[0]
			if got.Status != tt.want {
				t.Fatalf("status = %v (%s), want %v; TLS facts %+v", got.Status, got.Response, tt.want, res.TLS)
			}
			if tt.wantTLS != "" && (!res.TLS.TLS || res.TLS.Version != tt.wantTLS) {
				t.Errorf("TLS facts = %+v, want TLS %s", res.TLS, tt.wantTLS)
			}
			if tt.wantResult != "" && res.TLS.ResultType != tt.wantResult {
				t.Errorf("result type = %q, want %q", res.TLS.ResultType, tt.wantResult)
			}
			if tt.wantLine != "" && !strings.Contains(out.String(), tt.wantLine) {
				t.Errorf("output lacks %q:\n%s", tt.wantLine, out)
			}
		})
	}
	if n := strings.Count(out.String(), "smtp: "); n != 4 {
		t.Errorf("%d messages printed, want one per delivery (4):\n%s", n, out)
	}
}

func TestWebhookReceiver(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(ts string, body []byte) string {
		digest := sha256.Sum256(append([]byte(ts), body...))
		sig, err := ecdsa.SignASN1(rand.Reader, key, digest[:])
		if err != nil {
			t.Fatal(err)
		}
		return base64.StdEncoding.EncodeToString(sig)
	}
	const body = `[{"email":"x@plain.example","event":"bounce","type":"blocked","reason":"TLS required","tls":0,"sealpost":{"tls":false,"cert_verified":false,"result_type":"starttls-not-supported"}}]`
	const event = `webhook: bounce x@plain.example type=blocked reason="TLS required" tls=0 result_type=starttls-not-supported`

	tests := []struct {
		name    string
		key     string
		sign    bool
		tamper  bool
		wantSig string
	}{
		{name: "unsigned", wantSig: "[unsigned]"},
		{name: "signed, no key", sign: true, wantSig: "[signed (no key given to check)]"},
		{name: "signed, verified", key: base64.StdEncoding.EncodeToString(der), sign: true, wantSig: "[signature verified]"},
		{name: "signed, tampered", key: base64.StdEncoding.EncodeToString(der), sign: true, tamper: true, wantSig: "[signature INVALID]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w, out := startTestWorld(t, tt.key)
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, w.WebhookURL, strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			if tt.sign {
				ts := strconv.FormatInt(time.Now().Unix(), 10)
				req.Header.Set(eventwebhook.TimestampHTTPHeader, ts)
				signed := body
				if tt.tamper {
					signed = strings.Replace(body, "bounce", "delivered", 1)
				}
				req.Header.Set(eventwebhook.VerificationHTTPHeader, sign(ts, []byte(signed)))
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("status = %d, want 200", resp.StatusCode)
			}
			if want := event + " " + tt.wantSig + "\n"; !strings.Contains(out.String(), want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		})
	}
}

func TestRejectsMalformedWebhookKey(t *testing.T) {
	cfg := config{DNSAddr: "127.0.0.1:0", WebhookAddr: "127.0.0.1:0", WebhookPublicKey: "bm90IGEga2V5", Dir: t.TempDir()}
	if _, err := startWorld(t.Context(), cfg, io.Discard, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil {
		t.Fatal("started with a public key that is no key")
	}
}

func TestRunPrintsTheSealpostCommandAndStopsOnCancel(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out, errOut := &lockedBuffer{}, &lockedBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"-dns", "127.0.0.1:0", "-smtp-port", "0", "-webhook", "127.0.0.1:0", "-dir", dir}, out, errOut)
	}()

	want := "--tls-ca-file " + dir + "/ca.pem --allow-destinations 127.0.0.0/8\n"
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no sealpost command with %q after 10s:\n%s%s", want, out, errOut)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := os.Stat(dir + "/ca.pem"); err != nil {
		t.Errorf("ca.pem: %v", err)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit code %d, want 0; stderr:\n%s", code, errOut)
		}
	case <-time.After(2 * shutdownTimeout):
		t.Fatal("run did not return after cancel")
	}
	if !strings.HasSuffix(out.String(), "fakemx: stopped\n") {
		t.Errorf("output does not end with the stop line:\n%s", out)
	}
}
