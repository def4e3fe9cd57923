package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/sealpost/sealpost"
)

// testPostTimeout bounds the test post, so a receiver that never answers
// does not hold the request open.
const testPostTimeout = 10 * time.Second

// recordTimeout bounds recording a test post, which the answer waits for.
const recordTimeout = 2 * time.Second

// errURLNotAllowed answers a webhook URL whose address the server refuses
// to connect to. It names no address: the tenant gave the name, and what
// it resolves to inside the operator's network is not theirs to learn.
var errURLNotAllowed = sealpost.FieldError{Field: "url", Message: "url points to an address this server does not connect to (only public addresses are allowed)"}

// errNoWebhookSigner is what the signing and test endpoints fail with on a
// server configured without a WebhookSigner.
var errNoWebhookSigner = errors.New("no webhook signer configured")

func (s *Server) getEventWebhook(ctx context.Context, _ *http.Request, c *call) (int, []byte, error) {
	settings, err := s.store.EventWebhookSettings(ctx, c.acting.ID)
	if err != nil {
		return 0, nil, fmt.Errorf("reading event webhook settings of account %d: %w", c.acting.ID, err)
	}
	return eventWebhookResponse(settings)
}

func (s *Server) patchEventWebhook(ctx context.Context, _ *http.Request, c *call) (int, []byte, error) {
	current, err := s.store.EventWebhookSettings(ctx, c.acting.ID)
	if err != nil {
		return 0, nil, fmt.Errorf("reading event webhook settings of account %d: %w", c.acting.ID, err)
	}
	patch, err := parseEventWebhookPatch(c.body, current)
	if err != nil {
		return 0, nil, err
	}
	if patch.URL != nil && *patch.URL != "" && s.dests.CheckURLHost(*patch.URL) != nil {
		return 0, nil, sealpost.Invalid(errURLNotAllowed)
	}
	if err := checkUTF8(c.body); err != nil {
		return 0, nil, err
	}
	if len(patch.Bools) == 0 && patch.URL == nil {
		// A no-op patch ({} or only unknown fields) needs no write.
		return eventWebhookResponse(current)
	}
	updated, err := s.store.UpdateEventWebhookSettings(ctx, c.acting.ID, patch)
	if err != nil {
		return 0, nil, fmt.Errorf("updating event webhook settings of account %d: %w", c.acting.ID, err)
	}
	return eventWebhookResponse(updated)
}

// eventWebhookBoolFields are the settings' boolean members, in SendGrid's order.
var eventWebhookBoolFields = []string{
	"enabled", "group_resubscribe", "delivered", "group_unsubscribe", "spam_report",
	"bounce", "deferred", "unsubscribe", "processed", "open", "click", "dropped",
}

// parseEventWebhookPatch parses a PATCH body, reporting every problem with
// its field. current is the stored setting, needed to check that an enabled
// webhook has a URL. Invalid UTF-8 outside the members it reads is left to
// the handler, which checks the URL's host first.
func parseEventWebhookPatch(body []byte, current sealpost.EventWebhookSettings) (sealpost.EventWebhookPatch, error) {
	o, err := parseObject(body)
	if err != nil {
		return sealpost.EventWebhookPatch{}, err
	}
	p := sealpost.EventWebhookPatch{Bools: map[string]bool{}}
	for _, name := range eventWebhookBoolFields {
		if b, _ := o.boolean(name); b != nil {
			p.Bools[name] = *b
		}
	}
	// null is a wrong type, as it is for the booleans, not a way to clear
	// the URL; an empty string is: a disabled webhook needs none.
	before := len(*o.problems)
	u, present := o.checkedStr("url", false, func(field, u string) *sealpost.FieldError {
		if u == "" {
			return nil
		}
		return sealpost.ValidateWebhookURL(field, u)
	})
	if present && len(*o.problems) == before {
		p.URL = &u
	}
	if len(*o.problems) == 0 {
		o.add(p.Apply(current).Validate())
	}
	if len(*o.problems) > 0 {
		return sealpost.EventWebhookPatch{}, sealpost.Invalid(*o.problems...)
	}
	return p, nil
}

func eventWebhookResponse(settings sealpost.EventWebhookSettings) (int, []byte, error) {
	// SendGrid writes the URL as given; encoding/json would turn its "&"
	// into \u0026.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(settings); err != nil {
		return 0, nil, fmt.Errorf("encoding event webhook settings: %w", err)
	}
	return http.StatusOK, bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

type signedWebhookBody struct {
	PublicKey string `json:"public_key"`
}

func signedWebhookResponse(publicKey string) (int, []byte, error) {
	body, err := json.Marshal(signedWebhookBody{PublicKey: publicKey})
	if err != nil {
		return 0, nil, fmt.Errorf("encoding public key: %w", err)
	}
	return http.StatusOK, body, nil
}

func (s *Server) getSignedWebhook(ctx context.Context, _ *http.Request, c *call) (int, []byte, error) {
	key, err := s.store.EventWebhookSigningKey(ctx, c.acting.ID)
	if err != nil {
		return 0, nil, fmt.Errorf("reading event webhook signing key of account %d: %w", c.acting.ID, err)
	}
	if key == nil {
		return signedWebhookResponse("")
	}
	if s.webhooks == nil {
		return 0, nil, errNoWebhookSigner
	}
	pub, err := s.webhooks.PublicKey(key)
	if err != nil {
		return 0, nil, fmt.Errorf("public key of account %d's event webhook signing key: %w", c.acting.ID, err)
	}
	return signedWebhookResponse(pub)
}

// patchSignedWebhook turns signing on or off. Turning it on keeps a key
// already stored, so receivers configured with its public key keep
// verifying posts.
func (s *Server) patchSignedWebhook(ctx context.Context, _ *http.Request, c *call) (int, []byte, error) {
	o, err := parseObject(c.body)
	if err != nil {
		return 0, nil, err
	}
	enabled, present := o.boolean("enabled")
	if !present {
		o.problem("enabled", "is required")
	}
	if err := o.err(); err != nil {
		return 0, nil, err
	}
	if !*enabled {
		if err := s.store.SetEventWebhookSigningKey(ctx, c.acting.ID, nil); err != nil {
			return 0, nil, fmt.Errorf("turning off event webhook signing of account %d: %w", c.acting.ID, err)
		}
		return signedWebhookResponse("")
	}
	if s.webhooks == nil {
		return 0, nil, errNoWebhookSigner
	}
	key, err := s.store.EventWebhookSigningKey(ctx, c.acting.ID)
	if err != nil {
		return 0, nil, fmt.Errorf("reading event webhook signing key of account %d: %w", c.acting.ID, err)
	}
	if key != nil {
		pub, err := s.webhooks.PublicKey(key)
		if err != nil {
			return 0, nil, fmt.Errorf("public key of account %d's event webhook signing key: %w", c.acting.ID, err)
		}
		return signedWebhookResponse(pub)
	}
	key, pub, err := s.webhooks.GenerateKey()
	if err != nil {
		return 0, nil, fmt.Errorf("generating event webhook signing key: %w", err)
	}
	if err := s.store.SetEventWebhookSigningKey(ctx, c.acting.ID, key); err != nil {
		return 0, nil, fmt.Errorf("storing event webhook signing key of account %d: %w", c.acting.ID, err)
	}
	return signedWebhookResponse(pub)
}

// testEventWebhook posts a sample event to the given URL, signed as the
// account's real posts are.
func (s *Server) testEventWebhook(ctx context.Context, _ *http.Request, c *call) (int, []byte, error) {
	o, err := parseObject(c.body)
	if err != nil {
		return 0, nil, err
	}
	target, _ := o.checkedStr("url", true, sealpost.ValidateWebhookURL)
	if err := o.err(); err != nil {
		return 0, nil, err
	}
	if s.dests.CheckURLHost(target) != nil {
		return 0, nil, sealpost.Invalid(errURLNotAllowed)
	}
	if s.webhooks == nil {
		return 0, nil, errNoWebhookSigner
	}
	key, err := s.store.EventWebhookSigningKey(ctx, c.acting.ID)
	if err != nil {
		return 0, nil, fmt.Errorf("reading event webhook signing key of account %d: %w", c.acting.ID, err)
	}
	postCtx, cancel := context.WithTimeout(ctx, testPostTimeout)
	defer cancel()
	at, start := s.now(), time.Now()
	status, err := s.webhooks.SendTest(postCtx, target, key)
	s.recordTestPost(ctx, c.acting.ID, at, time.Since(start), target, status, err)
	if err != nil {
		// The receiver's answer or network error stays in the log: the
		// server's view of the network is not the client's business.
		// Every failure gets one answer, whatever the network did: a
		// refused connection, a timeout and a 4xx must not tell an open
		// port from a closed one. A refused address is said so: it was
		// refused before any connection was tried.
		s.log.LogAttrs(ctx, slog.LevelInfo, "event webhook test post failed",
			slog.Int64("account_id", c.acting.ID), slog.String("err", err.Error()))
		if errors.Is(err, sealpost.ErrDestinationRefused) {
			return 0, nil, sealpost.Invalid(errURLNotAllowed)
		}
		return 0, nil, sealpost.Invalid(sealpost.FieldError{Field: "url", Message: "the test post to url failed"})
	}
	return http.StatusNoContent, nil, nil
}

// recordTestPost adds a test post to the account's history. A failure
// keeps the one answer the API gives, with no status: the history must not
// tell what the API's answer does not (a 4xx from a closed port). Recording
// never fails the test: its error is logged.
func (s *Server) recordTestPost(ctx context.Context, accountID int64, at time.Time, took time.Duration, target string, status int, postErr error) {
	p := sealpost.EventWebhookPost{AccountID: accountID, At: at, Host: sealpost.WebhookHost(target),
		Events: 1, Status: status, Duration: took, Test: true}
	if postErr != nil {
		p.Status, p.Error = 0, "the test post failed"
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	if err := s.store.RecordEventWebhookPost(rctx, p); err != nil {
		s.log.LogAttrs(ctx, slog.LevelWarn, "recording an event webhook test post",
			slog.Int64("account_id", accountID), slog.String("err", err.Error()))
	}
}

// maxWebhookPostsLimit is the most posts one GET .../posts returns: all
// that are kept.
const maxWebhookPostsLimit = sealpost.MaxEventWebhookPosts

// webhookPost is one post in GET /v3/user/webhooks/event/posts's answer
// (ours: SendGrid shows no post history).
type webhookPost struct {
	At         time.Time `json:"at"`
	Host       string    `json:"host"`
	Events     int       `json:"events"`
	Status     *int      `json:"status"` // null when there was no HTTP answer to show
	Error      string    `json:"error,omitempty"`
	DurationMS int64     `json:"duration_ms"`
	Test       bool      `json:"test"`
}

// listWebhookPosts is GET /v3/user/webhooks/event/posts?limit=N: the
// account's last posts, newest first; limit defaults to and is capped at
// what is kept.
func (s *Server) listWebhookPosts(ctx context.Context, r *http.Request, c *call) (int, []byte, error) {
	limit := maxWebhookPostsLimit
	if q := r.URL.Query(); q.Has("limit") {
		n, err := strconv.Atoi(q.Get("limit"))
		if err != nil || n < 1 || n > maxWebhookPostsLimit {
			return 0, nil, sealpost.Invalid(sealpost.FieldError{Field: "limit",
				Message: fmt.Sprintf("limit must be an integer from 1 to %d", maxWebhookPostsLimit)})
		}
		limit = n
	}
	posts, err := s.store.EventWebhookPosts(ctx, c.acting.ID, limit)
	if err != nil {
		return 0, nil, fmt.Errorf("reading Event Webhook posts of account %d: %w", c.acting.ID, err)
	}
	out := struct {
		Posts []webhookPost `json:"posts"`
	}{Posts: make([]webhookPost, 0, len(posts))}
	for _, p := range posts {
		wp := webhookPost{At: p.At.UTC(), Host: p.Host, Events: p.Events, Error: p.Error,
			DurationMS: p.Duration.Milliseconds(), Test: p.Test}
		if p.Status != 0 {
			wp.Status = &p.Status
		}
		out.Posts = append(out.Posts, wp)
	}
	return jsonResponse(http.StatusOK, out)
}

// webhookBacklog is GET /v3/user/webhooks/event/backlog's answer (ours:
// SendGrid shows no backlog). Times are null when unset.
type webhookBacklog struct {
	Pending int64 `json:"pending"`
	// PendingCapped: there are more than Pending waiting.
	PendingCapped bool       `json:"pending_capped"`
	OldestEvent   *time.Time `json:"oldest_event"`
	Attempts      int        `json:"attempts"`
	NextAttempt   *time.Time `json:"next_attempt"`
	FailingSince  *time.Time `json:"failing_since"`
}

func (s *Server) getWebhookBacklog(ctx context.Context, r *http.Request, c *call) (int, []byte, error) {
	b, err := s.store.EventWebhookBacklog(ctx, c.acting.ID)
	if err != nil {
		return 0, nil, fmt.Errorf("reading Event Webhook backlog of account %d: %w", c.acting.ID, err)
	}
	orNull := func(t time.Time) *time.Time {
		if t.IsZero() {
			return nil
		}
		t = t.UTC()
		return &t
	}
	return jsonResponse(http.StatusOK, webhookBacklog{
		Pending:       b.Pending,
		PendingCapped: b.Pending >= sealpost.MaxBacklogCount,
		OldestEvent:   orNull(b.Oldest),
		Attempts:      b.Attempts,
		NextAttempt:   orNull(b.NextAttempt),
		FailingSince:  orNull(b.FailingSince),
	})
}
