package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/sealpost/sealpost"
)

// drainLimit bounds how much of an answer is read so that the connection
// can be reused; receivers answer with little or nothing.
const drainLimit = 64 << 10

// post sends body to rawURL, signed when key is not nil. Errors never
// carry the URL: its userinfo or query may hold the receiver's secrets.
func (r *run) post(ctx context.Context, rawURL string, key, body []byte) (status int, err error) {
	ctx, cancel := context.WithTimeout(ctx, r.lease/2)
	defer cancel()
	return postJSON(ctx, r.client, rawURL, key, body, r.now)
}

// postJSON returns the receiver's HTTP status, 0 when it did not answer.
func postJSON(ctx context.Context, client *http.Client, rawURL string, key, body []byte, now func() time.Time) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL, bytes.NewReader(body))
	if err != nil {
		return 0, errors.New("invalid webhook url")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	if key != nil {
		pk, err := parseKey(key)
		if err != nil {
			return 0, err
		}
		sig, ts, err := Sign(pk, body, now())
		if err != nil {
			return 0, err
		}
		req.Header.Set(SignatureHeader, sig)
		req.Header.Set(TimestampHeader, ts)
	}
	resp, err := client.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return 0, fmt.Errorf("posting: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, drainLimit))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, &StatusError{Code: resp.StatusCode}
	}
	return resp.StatusCode, nil
}

// StatusError is the answer of a receiver that did not take a post.
type StatusError struct{ Code int }

func (e *StatusError) Error() string {
	return fmt.Sprintf("webhook answered %d %s", e.Code, http.StatusText(e.Code))
}

// hostOf is the part of a webhook URL that is safe to log.
func hostOf(rawURL string) string { return sealpost.WebhookHost(rawURL) }
