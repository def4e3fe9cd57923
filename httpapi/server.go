package httpapi

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"path"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sealpost/sealpost"
)

// Config is what a Server needs.
type Config struct {
	Store       sealpost.Store
	RateLimiter sealpost.RateLimiter // nil: no rate limiting
	Logger      *slog.Logger         // nil: discard
	Registry    *prometheus.Registry // nil: a new one; /metrics serves it
	Now         func() time.Time     // nil: time.Now
	// Webhooks generates Event Webhook signing keys and sends test posts;
	// nil makes the signed-webhook and test endpoints answer 500.
	Webhooks WebhookSigner
	// Destinations are the addresses an Event Webhook URL may point at; a
	// URL whose host is an address (or localhost) outside them is refused
	// when set or tested. The zero value allows public addresses only. It
	// must be the rule Webhooks and the poster dial with.
	Destinations sealpost.Destinations
	// Hostname is the domain part of the Message-ID of sent mail; "" is
	// "localhost".
	Hostname string
	// MaxMailBytes bounds a mail send body; 0 is SendGrid's 30 MB.
	MaxMailBytes int64
	// MaxSubusers caps the subusers of one top-level account, and
	// separately its customer accounts; 0 is DefaultMaxSubusers.
	MaxSubusers int

	// MailSendLimiter counts mail sends per sending account (a parent and
	// each of its subusers apart), keyed by MailSendLimitKey; nil: none.
	MailSendLimiter sealpost.RateLimiter

	// RegistryRetention is how long the registry of recipient domains
	// keeps what it learnt; the readiness preview looks back at most this
	// far. 0 is DefaultRegistryRetention.
	RegistryRetention time.Duration
	// Outage logs the database's unavailability (503s) as changes of
	// state rather than a line per request; nil: one of the server's own.
	Outage *sealpost.OutageLog
	// Prober answers POST /v3/tls/probe; nil makes it answer 500.
	Prober sealpost.TLSProber
	// DNS looks up the records POST /v3/whitelabel/domains/{id}/validate
	// checks; nil makes it answer 500.
	DNS DNSResolver
	// RequireAuthenticatedSender refuses mail sends whose From domain the
	// account has not authenticated (--require-authenticated-sender).
	RequireAuthenticatedSender bool
	// ProbeLimiter counts probes per acting account, keyed by
	// TLSProbeLimitKey: each one opens several connections to a domain
	// the tenant names, so it is limited tighter than other calls.
	ProbeLimiter sealpost.RateLimiter
	// Observations receives what probes learn, for the registry of
	// recipient domains; nil: not recorded.
	Observations ObservationRecorder
	// ActivityRetention is how long the Email Activity API lists a message
	// after its last event; 0 is sealpost.DefaultActivityRetention.
	ActivityRetention time.Duration
	// Enqueued is called after mail sends are committed, so that this
	// node's delivery starts on them without waiting for its next poll;
	// it must not block. nil: nothing is called.
	Enqueued func()
}

// ObservationRecorder is what the probe endpoint needs of the registry of
// recipient domains.
type ObservationRecorder interface {
	RecordObservations(ctx context.Context, obs []sealpost.HostObservation) error
}

// DefaultRegistryRetention is the registry's retention when none is
// configured: 30 days.
const DefaultRegistryRetention = 30 * 24 * time.Hour

// DefaultMaxSubusers is the subuser cap when none is configured.
const DefaultMaxSubusers = 100

// WebhookSigner is what the Event Webhook endpoints need from the code that
// signs and posts events.
type WebhookSigner interface {
	// GenerateKey returns a new ECDSA P-256 key as PKCS#8 DER and its
	// public key as base64 DER SubjectPublicKeyInfo.
	GenerateKey() (privatePKCS8 []byte, publicKeyBase64 string, err error)
	// PublicKey returns the base64 DER SubjectPublicKeyInfo of a stored key.
	PublicKey(privatePKCS8 []byte) (string, error)
	// SendTest posts a sample event to url, signed with key unless key is
	// nil, and fails unless the receiver answers 2xx. It returns the
	// receiver's HTTP status, 0 when it did not answer.
	SendTest(ctx context.Context, url string, key []byte) (int, error)
}

// maxBodyBytes bounds every request body but mail send's: the largest
// legitimate one (a key with every scope) is well under 2 KiB.
const maxBodyBytes = 64 << 10

// defaultMaxMailBytes is SendGrid's limit on a mail send body.
const defaultMaxMailBytes = 30 << 20

// readyTimeout bounds /readyz so a hung database fails the probe instead of
// hanging it.
const readyTimeout = 2 * time.Second

// Server is the HTTP API. It is safe for concurrent use.
type Server struct {
	store    sealpost.Store
	limiter  sealpost.RateLimiter
	webhooks WebhookSigner
	dests    sealpost.Destinations
	hostname string
	enqueue  *groupCommit
	log      *slog.Logger
	outage   *sealpost.OutageLog
	now      func() time.Time
	metrics  *metrics
	mux      *http.ServeMux

	// mailLimiter counts mail sends per account.
	mailLimiter sealpost.RateLimiter
	// prober, probeLimiter and observations serve POST /v3/tls/probe.
	prober sealpost.TLSProber
	dns    DNSResolver
	// requireAuthenticatedSender: see Config.
	requireAuthenticatedSender bool
	probeLimiter               sealpost.RateLimiter
	observations               ObservationRecorder
	// maxChildren caps each kind of child account per parent.
	maxChildren int
	// registryRetention bounds the preview's window.
	registryRetention time.Duration
	// activityRetention bounds what the Email Activity API lists.
	activityRetention time.Duration

	// unmatched answers every path no route serves.
	unmatched *route

	// jsonCT is shared by every response's Content-Type header so that
	// setting it costs no allocation; net/http never modifies header values.
	jsonCT []string
}

// handler serves one endpoint once routing, authentication, rate limiting,
// scope, on-behalf-of and body reading are done. It returns the status and
// JSON body to send (nil body: none), or an error for writeError to map.
type handler func(ctx context.Context, r *http.Request, c *call) (int, []byte, error)

// call is what the pipeline learned about a request before its handler runs.
type call struct {
	principal *sealpost.Principal // nil on unauthenticated endpoints
	acting    *sealpost.Account   // the caller's account or the on-behalf-of one
	body      []byte
	// header is the response's, for handlers that answer with headers of
	// their own (X-Message-Id); set only once nothing can fail.
	header http.Header
}

// endpoint is one method of one route.
type endpoint struct {
	method string
	scope  string // "" needs no scope
	public bool   // no authentication, rate limiting or on-behalf-of
	body   bool   // read the request body before calling fn
	// maxBody bounds the body; 0 is maxBodyBytes.
	maxBody int64
	// unlimited endpoints are not rate limited per key and carry no
	// X-RateLimit-* headers: SendGrid sends none on mail send.
	unlimited bool
	// accountLimiter, when set, counts the endpoint's calls per acting
	// account under accountLimitKey, once the scope is checked.
	accountLimiter  sealpost.RateLimiter
	accountLimitKey func(accountID int64) string
	// userOnly endpoints manage child accounts, which only a top-level
	// account may own.
	userOnly bool
	// ignoresOnBehalfOf endpoints always act as the key's own account:
	// SendGrid ignores the header on mail send.
	ignoresOnBehalfOf bool
	fn                handler
	// raw serves endpoints whose body another package writes (/metrics).
	raw http.Handler
}

// route is one registered path pattern with its endpoints.
type route struct {
	s         *Server
	pattern   string
	allow     string
	endpoints []endpoint
	metrics   *routeMetrics
	errors    errorForm
}

// New returns a Server for cfg.
func New(cfg Config) *Server {
	s := &Server{
		store:    cfg.Store,
		limiter:  cfg.RateLimiter,
		webhooks: cfg.Webhooks,
		dests:    cfg.Destinations,
		hostname: cfg.Hostname,
		log:      cfg.Logger,
		now:      cfg.Now,
		mux:      http.NewServeMux(),
		jsonCT:   []string{"application/json"},

		mailLimiter: cfg.MailSendLimiter,
		prober:      cfg.Prober,
		dns:         cfg.DNS,

		requireAuthenticatedSender: cfg.RequireAuthenticatedSender,
		probeLimiter:               cfg.ProbeLimiter,
		observations:               cfg.Observations,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.outage = cfg.Outage
	if s.outage == nil {
		s.outage = sealpost.NewOutageLog(s.log, "database")
	}
	s.enqueue = &groupCommit{store: cfg.Store, enqueued: cfg.Enqueued}
	if s.hostname == "" {
		s.hostname = "localhost"
	}
	s.maxChildren = cfg.MaxSubusers
	if s.maxChildren <= 0 {
		s.maxChildren = DefaultMaxSubusers
	}
	s.registryRetention = cfg.RegistryRetention
	if s.registryRetention <= 0 {
		s.registryRetention = DefaultRegistryRetention
	}
	s.activityRetention = cfg.ActivityRetention
	if s.activityRetention <= 0 {
		s.activityRetention = sealpost.DefaultActivityRetention
	}
	maxMail := cfg.MaxMailBytes
	if maxMail <= 0 {
		maxMail = defaultMaxMailBytes
	}
	reg := cfg.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	s.metrics = newMetrics(reg)

	s.handle("/v3/user/settings/enforced_tls",
		endpoint{method: http.MethodGet, scope: sealpost.ScopeEnforcedTLSRead, fn: s.getEnforcedTLS},
		endpoint{method: http.MethodPatch, scope: sealpost.ScopeEnforcedTLSUpdate, body: true, fn: s.patchEnforcedTLS},
	)
	s.handle("/v3/user/settings/enforced_tls/preview",
		endpoint{method: http.MethodGet, scope: sealpost.ScopeEnforcedTLSRead, fn: s.previewEnforcedTLS},
	)
	s.handle("/v3/user/settings/enforced_tls/domains",
		endpoint{method: http.MethodGet, scope: sealpost.ScopeEnforcedTLSRead, fn: s.listDomainPolicies},
	)
	s.handle("/v3/user/settings/enforced_tls/domains/{domain}",
		endpoint{method: http.MethodGet, scope: sealpost.ScopeEnforcedTLSRead, fn: s.getDomainPolicy},
		endpoint{method: http.MethodPut, scope: sealpost.ScopeEnforcedTLSUpdate, body: true, fn: s.putDomainPolicy},
		endpoint{method: http.MethodDelete, scope: sealpost.ScopeEnforcedTLSUpdate, fn: s.deleteDomainPolicy},
	)
	s.handle("/v3/whitelabel/domains",
		endpoint{method: http.MethodGet, scope: sealpost.ScopeWhitelabelRead, fn: s.listAuthDomains},
		endpoint{method: http.MethodPost, scope: sealpost.ScopeWhitelabelCreate, body: true, fn: s.createAuthDomain},
	)
	s.handle("/v3/whitelabel/domains/{id}",
		endpoint{method: http.MethodGet, scope: sealpost.ScopeWhitelabelRead, fn: s.getAuthDomain},
		endpoint{method: http.MethodPatch, scope: sealpost.ScopeWhitelabelUpdate, body: true, fn: s.patchAuthDomain},
		endpoint{method: http.MethodDelete, scope: sealpost.ScopeWhitelabelDelete, fn: s.deleteAuthDomain},
	)
	s.handle("/v3/whitelabel/domains/{id}/validate",
		endpoint{method: http.MethodPost, scope: sealpost.ScopeWhitelabelUpdate, fn: s.validateAuthDomain},
	)
	// Assigning a domain to a subuser is the parent's: userOnly.
	s.handle("/v3/whitelabel/domains/{id}/subuser",
		endpoint{method: http.MethodPost, scope: sealpost.ScopeWhitelabelUpdate, userOnly: true, body: true, fn: s.associateAuthDomain},
	)
	s.handle("/v3/whitelabel/domains/subuser",
		endpoint{method: http.MethodGet, scope: sealpost.ScopeWhitelabelRead, userOnly: true, fn: s.getAssignedAuthDomain},
		endpoint{method: http.MethodDelete, scope: sealpost.ScopeWhitelabelUpdate, userOnly: true, fn: s.disassociateAuthDomain},
	)
	s.handle("/v3/scopes",
		endpoint{method: http.MethodGet, fn: s.getScopes},
	)
	s.handle("/v3/api_keys",
		endpoint{method: http.MethodGet, scope: sealpost.ScopeAPIKeysRead, fn: s.listAPIKeys},
		endpoint{method: http.MethodPost, scope: sealpost.ScopeAPIKeysCreate, body: true, fn: s.createAPIKey},
	)
	s.handle("/v3/api_keys/{api_key_id}",
		endpoint{method: http.MethodGet, scope: sealpost.ScopeAPIKeysRead, fn: s.getAPIKey},
		endpoint{method: http.MethodPut, scope: sealpost.ScopeAPIKeysUpdate, body: true, fn: s.putAPIKey},
		endpoint{method: http.MethodPatch, scope: sealpost.ScopeAPIKeysUpdate, body: true, fn: s.patchAPIKey},
		endpoint{method: http.MethodDelete, scope: sealpost.ScopeAPIKeysDelete, fn: s.deleteAPIKey},
	)
	s.handle("/v3/subusers",
		endpoint{method: http.MethodGet, scope: sealpost.ScopeSubusersRead, userOnly: true, fn: s.listSubusers},
		endpoint{method: http.MethodPost, scope: sealpost.ScopeSubusersCreate, userOnly: true, body: true, fn: s.createSubuser},
	)
	s.handle("/v3/subusers/{subuser_name}",
		endpoint{method: http.MethodPatch, scope: sealpost.ScopeSubusersUpdate, userOnly: true, body: true, fn: s.patchSubuser},
		endpoint{method: http.MethodDelete, scope: sealpost.ScopeSubusersDelete, userOnly: true, fn: s.deleteSubuser},
	)
	s.handle("/v3/partners/accounts",
		endpoint{method: http.MethodGet, scope: sealpost.ScopePartnerAccountsRead, userOnly: true, fn: s.listPartnerAccounts},
		endpoint{method: http.MethodPost, scope: sealpost.ScopePartnerAccountsCreate, userOnly: true, body: true, fn: s.createPartnerAccount},
	).errors = provisioningErrors
	s.handle("/v3/mail/send",
		endpoint{method: http.MethodPost, scope: sealpost.ScopeMailSend, body: true, maxBody: maxMail, unlimited: true, ignoresOnBehalfOf: true, fn: s.sendMail,
			accountLimiter: s.mailLimiter, accountLimitKey: MailSendLimitKey},
	)
	s.handle("/v3/mail/batch",
		endpoint{method: http.MethodPost, scope: sealpost.ScopeMailBatchCreate, fn: s.createBatch},
	)
	s.handle("/v3/mail/batch/{batch_id}",
		endpoint{method: http.MethodGet, scope: sealpost.ScopeMailBatchRead, fn: s.getBatch},
	)
	s.handle("/v3/user/scheduled_sends",
		endpoint{method: http.MethodGet, scope: sealpost.ScopeScheduledSendsRead, fn: s.listScheduledSends},
		endpoint{method: http.MethodPost, scope: sealpost.ScopeScheduledSendsCreate, body: true, fn: s.createScheduledSend},
	)
	s.handle("/v3/user/scheduled_sends/{batch_id}",
		endpoint{method: http.MethodGet, scope: sealpost.ScopeScheduledSendsRead, fn: s.getScheduledSend},
		endpoint{method: http.MethodPatch, scope: sealpost.ScopeScheduledSendsUpdate, body: true, fn: s.patchScheduledSend},
		endpoint{method: http.MethodDelete, scope: sealpost.ScopeScheduledSendsDelete, fn: s.deleteScheduledSend},
	)
	s.handle("/v3/user/webhooks/event/settings",
		endpoint{method: http.MethodGet, scope: sealpost.ScopeEventWebhookRead, fn: s.getEventWebhook},
		endpoint{method: http.MethodPatch, scope: sealpost.ScopeEventWebhookUpdate, body: true, fn: s.patchEventWebhook},
	)
	s.handle("/v3/user/webhooks/event/settings/signed",
		endpoint{method: http.MethodGet, scope: sealpost.ScopeEventWebhookRead, fn: s.getSignedWebhook},
		endpoint{method: http.MethodPatch, scope: sealpost.ScopeEventWebhookUpdate, body: true, fn: s.patchSignedWebhook},
	)
	s.handle("/v3/user/webhooks/event/backlog",
		endpoint{method: http.MethodGet, scope: sealpost.ScopeEventWebhookRead, fn: s.getWebhookBacklog},
	)
	s.handle("/v3/user/webhooks/event/posts",
		endpoint{method: http.MethodGet, scope: sealpost.ScopeEventWebhookRead, fn: s.listWebhookPosts},
	)
	s.handle("/v3/user/webhooks/event/test",
		endpoint{method: http.MethodPost, scope: sealpost.ScopeEventWebhookTest, body: true, fn: s.testEventWebhook},
	)
	s.handle("/v3/tls/probe",
		endpoint{method: http.MethodPost, scope: sealpost.ScopeTLSProbe, body: true, fn: s.probeTLS,
			accountLimiter: s.probeLimiter, accountLimitKey: TLSProbeLimitKey},
	)
	s.handle("/v3/tls/domains",
		endpoint{method: http.MethodGet, scope: sealpost.ScopeEnforcedTLSRead, fn: s.listTLSDomains},
	)
	s.handle("/v3/tls/reports",
		endpoint{method: http.MethodGet, scope: sealpost.ScopeEnforcedTLSRead, fn: s.listTLSReports},
	)
	s.handle("/v3/messages",
		endpoint{method: http.MethodGet, scope: sealpost.ScopeMessagesRead, fn: s.listMessages},
	)
	s.handle("/v3/messages/{msg_id}",
		endpoint{method: http.MethodGet, scope: sealpost.ScopeMessagesRead, fn: s.getMessage},
	)
	s.handle("/healthz", endpoint{method: http.MethodGet, public: true, fn: s.healthz})
	s.handle("/readyz", endpoint{method: http.MethodGet, public: true, fn: s.readyz})
	s.handle("/metrics", endpoint{method: http.MethodGet, public: true, raw: metricsHandler(reg, s.log)})

	// Patterns carry no method so that ServeMux never answers 405 itself
	// (its bodies are plain text); routes answer 405 in SendGrid's form.
	// "/" catches every other path for the same reason.
	s.unmatched = &route{s: s, pattern: unmatchedRoute, metrics: s.metrics.route(unmatchedRoute)}
	s.mux.Handle("/", s.unmatched)
	return s
}

func (s *Server) handle(pattern string, eps ...endpoint) *route {
	rt := &route{s: s, pattern: pattern, endpoints: eps, metrics: s.metrics.route(pattern)}
	for i, ep := range eps {
		if i > 0 {
			rt.allow += ", "
		}
		rt.allow += ep.method
	}
	s.mux.Handle(pattern, rt)
	return rt
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// ServeMux answers paths like /v3//scopes with an HTML redirect; no
	// SendGrid client sends them, and a JSON API should not redirect, so
	// they are unknown routes like any other.
	if p := r.URL.Path; p == "" || p[0] != '/' || (path.Clean(p) != p && path.Clean(p)+"/" != p) {
		s.unmatched.ServeHTTP(w, r)
		return
	}
	s.mux.ServeHTTP(w, r)
}

func (rt *route) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	var ep *endpoint
	for i := range rt.endpoints {
		if rt.endpoints[i].method == r.Method {
			ep = &rt.endpoints[i]
			break
		}
	}
	var c call
	status := rt.s.serve(w, r, rt, ep, &c)
	elapsed := time.Since(start)
	rt.metrics.observe(r.Method, status, elapsed)
	if c.principal != nil && status < 500 {
		// Authenticating read the database (or its cache, which is kept
		// only while the database answers writes).
		rt.s.outage.Succeeded(r.Context())
	}
	if rt.s.log.Enabled(r.Context(), slog.LevelDebug) {
		rt.s.logRequest(r, rt.pattern, status, elapsed, &c)
	}
}

// serve runs the pipeline in the order the contract fixes: route, method,
// authentication, rate limit, the caller key's scope, on-behalf-of, body.
// It returns the status written.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, rt *route, ep *endpoint, c *call) (status int) {
	if rt.pattern == unmatchedRoute {
		return s.write(w, http.StatusNotFound, bodyNotFound)
	}
	if ep == nil {
		w.Header().Set("Allow", rt.allow)
		return s.write(w, http.StatusMethodNotAllowed, inForm(rt.errors, http.StatusMethodNotAllowed, bodyMethodNotAllowed))
	}
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			status = s.writeError(w, r, rt, c, fmt.Errorf("panic serving %s %s: %v", r.Method, rt.pattern, v))
		}
	}()
	if ep.raw != nil {
		sw := statusWriter{ResponseWriter: w, status: http.StatusOK}
		ep.raw.ServeHTTP(&sw, r)
		return sw.status
	}
	ctx := r.Context()
	if !ep.public {
		p, err := sealpost.Authenticate(ctx, s.store, r.Header.Get("Authorization"))
		if err != nil {
			return s.writeError(w, r, rt, c, err)
		}
		c.principal = p
		c.acting = p.Account
		if s.limiter != nil && !ep.unlimited {
			rl := s.limiter.Take(p.Key.ID, s.now())
			setRateLimitHeaders(w.Header(), rl)
			if !rl.Allowed {
				return s.writeError(w, r, rt, c, errRateLimited)
			}
		}
		if ep.scope != "" && !p.Key.HasScope(ep.scope) {
			return s.writeError(w, r, rt, c, errForbidden)
		}
		if !ep.ignoresOnBehalfOf {
			acting, err := s.resolveOnBehalfOf(ctx, r, p)
			if err != nil {
				return s.writeError(w, r, rt, c, err)
			}
			c.acting = acting
		}
		if ep.userOnly && c.acting.Kind != sealpost.KindUser {
			return s.writeError(w, r, rt, c, errForbidden)
		}
		// Counted before the body is read, so that a refused send costs
		// no more than its headers. Only a refusal carries the headers:
		// SendGrid's accepted mail sends have none, and clients check that.
		if ep.accountLimiter != nil {
			rl := ep.accountLimiter.Take(ep.accountLimitKey(c.acting.ID), s.now())
			if !rl.Allowed {
				setRateLimitHeaders(w.Header(), rl)
				return s.writeError(w, r, rt, c, errRateLimited)
			}
		}
	}
	if ep.body {
		limit := ep.maxBody
		if limit == 0 {
			limit = maxBodyBytes
		}
		body, err := readBody(w, r, limit)
		if err != nil {
			return s.writeError(w, r, rt, c, err)
		}
		c.body = body
	}
	c.header = w.Header()
	code, body, err := ep.fn(ctx, r, c)
	if err != nil {
		return s.writeError(w, r, rt, c, err)
	}
	return s.write(w, code, body)
}

// MailSendLimitKey is the limiter key of an account's mail sends. The
// prefix keeps it apart from API key ids (base64url, no colon) in the
// counts that nodes share.
func MailSendLimitKey(accountID int64) string {
	return "mail.send:" + strconv.FormatInt(accountID, 10)
}

// TLSProbeLimitKey is the limiter key of an account's probes.
func TLSProbeLimitKey(accountID int64) string {
	return "tls.probe:" + strconv.FormatInt(accountID, 10)
}

// resolveOnBehalfOf returns the account the request acts as.
func (s *Server) resolveOnBehalfOf(ctx context.Context, r *http.Request, p *sealpost.Principal) (*sealpost.Account, error) {
	// Incoming header names are canonicalised, whatever case the client used.
	values := r.Header["On-Behalf-Of"]
	switch len(values) {
	case 0:
		return p.Account, nil
	case 1:
		return sealpost.ResolveOnBehalfOf(ctx, s.store, p, values[0])
	}
	// Two values would make the target ambiguous; a key that may not use
	// the header at all still learns only that.
	if p.Account.Kind != sealpost.KindUser {
		return nil, errForbidden
	}
	return nil, sealpost.Invalid(sealpost.FieldError{Field: "on-behalf-of", Message: "on-behalf-of must be sent once"})
}

// readBody reads the whole body, so that nothing is acted on before the
// request is known to be complete and within its limit.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, errTooLarge
	}
	body, err := readAll(http.MaxBytesReader(w, r.Body, limit), r.ContentLength)
	if err != nil {
		if isMaxBytes(err) {
			return nil, errTooLarge
		}
		return nil, sealpost.Invalid(sealpost.FieldError{Message: "request body could not be read"})
	}
	return body, nil
}

func setRateLimitHeaders(h http.Header, rl sealpost.RateLimit) {
	reset := rl.Reset.Unix()
	// Round up: a client sleeping until a truncated reset would wake inside
	// the exhausted window and be refused again.
	if rl.Reset.Nanosecond() != 0 {
		reset++
	}
	// The three values share one string and one backing array: two
	// allocations on a path every authenticated request takes. The keys
	// are set directly, not through Set, to keep SendGrid's spelling on the
	// wire (Go would write X-Ratelimit-*); HTTP header names are
	// case-insensitive, so readers that canonicalize still find them.
	var buf [3 * 20]byte
	b := strconv.AppendInt(buf[:0], int64(rl.Limit), 10)
	i := len(b)
	b = strconv.AppendInt(b, int64(max(rl.Remaining, 0)), 10)
	j := len(b)
	b = strconv.AppendInt(b, reset, 10)
	all := string(b)
	vals := &[3]string{all[:i], all[i:j], all[j:]}
	h["X-RateLimit-Limit"] = vals[0:1:1]
	h["X-RateLimit-Remaining"] = vals[1:2:2]
	h["X-RateLimit-Reset"] = vals[2:3:3]
}

// write sends status and body; a nil body sends none and no Content-Type.
func (s *Server) write(w http.ResponseWriter, status int, body []byte) int {
	if body != nil {
		w.Header()["Content-Type"] = s.jsonCT
	}
	w.WriteHeader(status)
	if len(body) > 0 {
		_, _ = w.Write(body)
	}
	return status
}

func (s *Server) logRequest(r *http.Request, pattern string, status int, elapsed time.Duration, c *call) {
	attrs := []slog.Attr{
		slog.String("route", pattern),
		slog.String("method", r.Method),
		slog.Int("status", status),
		slog.Duration("duration", elapsed),
	}
	if c.principal != nil {
		attrs = append(attrs,
			slog.Int64("account_id", c.principal.Account.ID),
			slog.String("key_id", c.principal.Key.ID))
		if c.acting != nil && c.acting.ID != c.principal.Account.ID {
			attrs = append(attrs, slog.Int64("acting_account_id", c.acting.ID))
		}
	}
	s.log.LogAttrs(r.Context(), slog.LevelDebug, "request", attrs...)
}

// statusWriter records the status of a response written by another
// package's handler, for metrics and logs.
type statusWriter struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.status = code
		w.wroteHeader = true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wroteHeader = true
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
