package webhook

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/sealpost/sealpost"
)

// SendTest posts the sample SendGrid's "Test Your Integration" posts — a
// JSON array with one processed event for example@test.com — to rawURL,
// signed when key (PKCS#8 DER) is not nil. It fails unless the receiver
// answers 2xx; redirects are not followed. client nil: NewClient with the
// default rule, public addresses only; a refused address fails with an
// error that is sealpost.ErrDestinationRefused. It returns the receiver's
// HTTP status, 0 when it did not answer.
func SendTest(ctx context.Context, client *http.Client, rawURL string, key []byte, now time.Time) (int, error) {
	body, err := sampleBody(now)
	if err != nil {
		return 0, err
	}
	if client == nil || client.Timeout == 0 {
		// A test is answered while the API request waits for it.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultTimeout)
		defer cancel()
	}
	if client == nil {
		client = NewClient(sealpost.Destinations{})
		defer client.CloseIdleConnections()
	}
	return postJSON(ctx, noRedirects(client, sealpost.Destinations{}), rawURL, key, body, func() time.Time { return now })
}

func sampleBody(now time.Time) ([]byte, error) {
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return nil, fmt.Errorf("making a test event id: %w", err)
	}
	event := map[string]any{
		"email":         "example@test.com",
		"timestamp":     now.Unix(),
		"smtp-id":       "<14c5d75ce93.dfd.64b469@ismtpd-555>",
		"event":         "processed",
		"category":      "cat facts",
		"sg_event_id":   base64.RawURLEncoding.EncodeToString(id),
		"sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
	}
	body, err := json.Marshal([]any{event})
	if err != nil {
		return nil, fmt.Errorf("encoding the test event: %w", err)
	}
	return body, nil
}
