package webhook

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sendgrid/sendgrid-go/helpers/eventwebhook"

	"github.com/sealpost/sealpost"
)

// verify checks a post the way SendGrid's official Go helper does.
func verify(t *testing.T, publicKey string, p receivedPost) bool {
	t.Helper()
	pub, err := eventwebhook.ConvertPublicKeyBase64ToECDSA(publicKey)
	if err != nil {
		t.Fatalf("ConvertPublicKeyBase64ToECDSA: %v", err)
	}
	sig := p.Header.Get(eventwebhook.VerificationHTTPHeader)
	ts := p.Header.Get(eventwebhook.TimestampHTTPHeader)
	if sig == "" || ts == "" {
		t.Errorf("post lacks signature headers: %q %q", sig, ts)
		return false
	}
	ok, err := eventwebhook.VerifySignature(pub, p.Body, sig, ts)
	if err != nil {
		t.Errorf("VerifySignature: %v", err)
	}
	return ok
}

func TestGenerateKeyAndPublicKeyAgree(t *testing.T) {
	t.Parallel()
	priv, pub, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	again, err := PublicKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	if again != pub {
		t.Errorf("PublicKey = %q, GenerateKey said %q", again, pub)
	}
	if _, err := eventwebhook.ConvertPublicKeyBase64ToECDSA(pub); err != nil {
		t.Errorf("SendGrid's helper cannot read the public key: %v", err)
	}
	_, pub2, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if pub2 == pub {
		t.Error("two generated keys are the same")
	}
}

func TestPublicKeyRejectsOtherKeys(t *testing.T) {
	t.Parallel()
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der384, err := x509.MarshalPKCS8PrivateKey(p384)
	if err != nil {
		t.Fatal(err)
	}
	for name, key := range map[string][]byte{
		"P-384": der384, "garbage": []byte("not a key"), "empty": nil,
	} {
		if _, err := PublicKey(key); err == nil {
			t.Errorf("%s: PublicKey accepted it", name)
		}
	}
}

func TestSignVerifiesWithSendGridHelper(t *testing.T) {
	t.Parallel()
	priv, pub, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	key, err := parseKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Unix(1_700_000_000, 0)
	bodies := []string{
		`[]`,
		`[{"email":"example@test.com","event":"processed"}]`,
		`[{"email":"ü@exämple.com","note":"😀 中文 \u2028 grüße"}]`,
		strings.Repeat(`{"a":"ß"},`, 1000),
	}
	for _, body := range bodies {
		sig, stamp, err := Sign(key, []byte(body), ts)
		if err != nil {
			t.Fatal(err)
		}
		if stamp != "1700000000" {
			t.Errorf("timestamp %q, want 1700000000", stamp)
		}
		p := receivedPost{Body: []byte(body), Header: http.Header{}}
		p.Header.Set(SignatureHeader, sig)
		p.Header.Set(TimestampHeader, stamp)
		if !verify(t, pub, p) {
			t.Errorf("signature of %.40q does not verify", body)
		}
		// A signature must not verify another body or timestamp.
		tampered := p
		tampered.Body = append([]byte(body), ' ')
		if verify(t, pub, tampered) {
			t.Errorf("signature of %.40q verifies a changed body", body)
		}
		tampered = p
		tampered.Header = p.Header.Clone()
		tampered.Header.Set(TimestampHeader, "1700000001")
		if verify(t, pub, tampered) {
			t.Errorf("signature of %.40q verifies another timestamp", body)
		}
	}
}

func TestSignedPostsVerify(t *testing.T) {
	t.Parallel()
	c := newClock()
	store := newFakeStore(c)
	rcv := newReceiver(t, nil)
	priv, pub, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	store.setWebhook(1, allKinds(rcv.URL), priv)
	const events = 300
	for n := range events {
		store.add(1, sealpost.EventDelivered, payload(sealpost.EventDelivered, n))
		if n%7 == 0 {
			// A kind left out between posted ones changes nothing.
			store.add(1, sealpost.EventKind("open"), `{"event":"open"}`)
		}
	}
	p := newPoster(t, store, c)
	p.MaxBatch = 6 // 50+ posts
	flush(t, p)

	posts := rcv.received()
	if len(posts) < events/6 {
		t.Fatalf("%d posts, want at least %d", len(posts), events/6)
	}
	for i, post := range posts {
		if !verify(t, pub, post) {
			t.Errorf("post %d does not verify: %.80s", i, post.Body)
		}
		if got, want := post.Header.Get(TimestampHeader), fmt.Sprint(c.Now().Unix()); got != want {
			t.Errorf("post %d timestamp %q, want %q", i, got, want)
		}
	}
	if got := len(rcv.accepted(t)); got != events {
		t.Errorf("%d events posted, want %d", got, events)
	}
}

func TestSendTest(t *testing.T) {
	t.Parallel()
	priv, pub, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_750_000_000, 0)

	t.Run("signed", func(t *testing.T) {
		t.Parallel()
		rcv := newReceiver(t, nil)
		if _, err := SendTest(t.Context(), NewClient(loopback()), rcv.URL+"/test", priv, now); err != nil {
			t.Fatalf("SendTest: %v", err)
		}
		posts := rcv.received()
		if len(posts) != 1 {
			t.Fatalf("%d posts, want 1", len(posts))
		}
		if !verify(t, pub, posts[0]) {
			t.Error("test post does not verify")
		}
		var events []map[string]any
		if err := json.Unmarshal(posts[0].Body, &events); err != nil || len(events) != 1 {
			t.Fatalf("test body %s: want an array of one event (%v)", posts[0].Body, err)
		}
		e := events[0]
		if e["email"] != "example@test.com" || e["event"] != "processed" || e["timestamp"] != float64(now.Unix()) {
			t.Errorf("test event %v", e)
		}
		if id, _ := e["sg_event_id"].(string); id == "" {
			t.Errorf("test event has no sg_event_id: %v", e)
		}
		if got := posts[0].Header.Get("Content-Type"); got != "application/json" {
			t.Errorf("Content-Type %q", got)
		}
	})
	t.Run("unsigned", func(t *testing.T) {
		t.Parallel()
		rcv := newReceiver(t, nil)
		if _, err := SendTest(t.Context(), NewClient(loopback()), rcv.URL, nil, now); err != nil {
			t.Fatalf("SendTest: %v", err)
		}
		if h := rcv.received()[0].Header.Get(SignatureHeader); h != "" {
			t.Errorf("unsigned test post carries a signature %q", h)
		}
	})
	failures := map[string]func(n int) int{
		"500":      func(int) int { return http.StatusInternalServerError },
		"redirect": func(int) int { return http.StatusFound },
	}
	for name, status := range failures {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rcv := newReceiver(t, status)
			if _, err := SendTest(t.Context(), &http.Client{}, rcv.URL, priv, now); err == nil {
				t.Error("SendTest succeeded against a failing receiver")
			}
		})
	}
	t.Run("unreachable", func(t *testing.T) {
		t.Parallel()
		rcv := newReceiver(t, nil)
		url := rcv.URL
		rcv.Close()
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		if _, err := SendTest(ctx, NewClient(loopback()), url, priv, now); err == nil {
			t.Error("SendTest succeeded against a closed server")
		}
	})
}
