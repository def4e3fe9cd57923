// Package console is sealpost's web console: server-rendered pages over the
// API. Every action the console takes is an in-process call through the
// API's own handler stack with the signed-in key and the chosen
// on-behalf-of, so what a key may do in the console is exactly what it may
// do through the API: the same route table checks the same scopes.
package console

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/sealpost/sealpost"
)

// Prefix is where the console is served.
const Prefix = "/console/"

// DefaultSessionTTL is how long a sign-in lasts.
const DefaultSessionTTL = 12 * time.Hour

// SessionStore keeps console sessions; every node of a cluster must share it.
type SessionStore interface {
	CreateConsoleSession(ctx context.Context, s sealpost.ConsoleSession, now time.Time) error
	ConsoleSession(ctx context.Context, id []byte, now time.Time) (sealpost.ConsoleSession, error)
	DeleteConsoleSession(ctx context.Context, id []byte) error
}

// Config is what a Console needs.
type Config struct {
	// API is the API's handler, middleware included: the console acts
	// only through it.
	API      http.Handler
	Sessions SessionStore
	Logger   *slog.Logger     // nil: discard
	Now      func() time.Time // nil: time.Now
	// SessionTTL is how long a sign-in lasts; 0 is DefaultSessionTTL.
	SessionTTL time.Duration
}

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// Console serves the pages under Prefix. It is safe for concurrent use.
type Console struct {
	api      http.Handler
	sessions SessionStore
	log      *slog.Logger
	now      func() time.Time
	ttl      time.Duration
	pages    map[string]*template.Template
	mux      *http.ServeMux

	crossOrigin *http.CrossOriginProtection
}

// New returns a Console for cfg.
func New(cfg Config) (*Console, error) {
	c := &Console{api: cfg.API, sessions: cfg.Sessions, log: cfg.Logger, now: cfg.Now, ttl: cfg.SessionTTL,
		pages: map[string]*template.Template{}, mux: http.NewServeMux(), crossOrigin: http.NewCrossOriginProtection()}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.ttl <= 0 {
		c.ttl = DefaultSessionTTL
	}
	names, err := fs.Glob(templateFiles, "templates/*.html")
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(name, "templates/"), ".html")
		if base == "layout" {
			continue
		}
		t, err := template.New(base).Funcs(templateFuncs()).ParseFS(templateFiles, "templates/layout.html", name)
		if err != nil {
			return nil, fmt.Errorf("console template %s: %w", name, err)
		}
		c.pages[base] = t
	}
	static, err := fs.Sub(staticFiles, "static")
	if err != nil {
		return nil, err
	}
	c.mux.Handle("GET /console/static/", http.StripPrefix("/console/static/", http.FileServerFS(static)))
	c.mux.HandleFunc("GET /console/{$}", c.home)
	c.mux.HandleFunc("GET /console/signin", c.signInPage)
	c.mux.HandleFunc("POST /console/signin", c.signIn)
	c.mux.HandleFunc("POST /console/signout", c.signedIn(c.signOut))
	c.mux.HandleFunc("POST /console/account", c.signedIn(c.switchAccount))
	c.mux.HandleFunc("GET /console/tls", c.signedIn(c.tlsPage))
	c.mux.HandleFunc("POST /console/tls", c.signedIn(c.tlsPage))
	c.mux.HandleFunc("GET /console/tls/preview", c.signedIn(c.tlsPreviewFragment))
	c.mux.HandleFunc("GET /console/activity", c.signedIn(c.activityPage))
	c.mux.HandleFunc("GET /console/recipients", c.signedIn(c.recipientsPage))
	c.mux.HandleFunc("POST /console/recipients", c.signedIn(c.recipientsPage))
	c.mux.HandleFunc("GET /console/webhook", c.signedIn(c.webhookPage))
	c.mux.HandleFunc("POST /console/webhook", c.signedIn(c.webhookPage))
	return c, nil
}

// contentSecurityPolicy lets a page load nothing but the console's own
// files: no inline script, no other origin.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// ServeHTTP implements http.Handler.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	if !strings.HasPrefix(r.URL.Path, "/console/static/") {
		h.Set("Cache-Control", "no-store")
	}
	// Browsers say where a request comes from (Sec-Fetch-Site, or Origin
	// against Host); the CSRF token guards whatever says nothing.
	if err := c.crossOrigin.Check(r); err != nil {
		http.Error(w, "cross-origin request refused", http.StatusForbidden)
		return
	}
	c.mux.ServeHTTP(w, r)
}

// page is what every template gets.
type page struct {
	Title   string
	Nav     string
	CSRF    string
	Acting  string // the on-behalf-of in use, "" for the key's own account
	Message string
	Error   string
	Data    any
}

func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	t, ok := c.pages[name]
	if !ok {
		c.log.ErrorContext(r.Context(), "console template missing", "template", name)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	tmpl := "layout"
	if strings.HasSuffix(name, "_fragment") {
		tmpl = name
	}
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, tmpl, p); err != nil {
		c.log.ErrorContext(r.Context(), "rendering console page", "template", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, b.String())
}

func (c *Console) home(w http.ResponseWriter, r *http.Request) {
	if _, err := c.session(r); err != nil {
		http.Redirect(w, r, "/console/signin", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/console/tls", http.StatusSeeOther)
}

// apiError is the API's refusal, in its own words.
type apiError struct {
	Status  int
	Message string
}

func (e *apiError) Error() string { return e.Message }

// recorder collects the API's in-process answer.
type recorder struct {
	header http.Header
	status int
	body   strings.Builder
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}

// call sends one request through the API's handler stack as the session's
// key, acting as onBehalfOf, and decodes a 2xx body into out.
func (c *Console) call(ctx context.Context, from *http.Request, s *session, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequestWithContext(ctx, method, path, rd)
	if err != nil {
		return err
	}
	req.RemoteAddr = from.RemoteAddr
	req.Host = from.Host
	req.Header.Set("Authorization", "Bearer "+s.key)
	if s.acting != "" {
		req.Header.Set("On-Behalf-Of", s.acting)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := &recorder{header: http.Header{}}
	c.api.ServeHTTP(rec, req)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	if rec.status >= 300 {
		return &apiError{Status: rec.status, Message: apiMessage(rec.status, rec.body.String())}
	}
	if out == nil || rec.body.Len() == 0 {
		return nil
	}
	return json.Unmarshal([]byte(rec.body.String()), out)
}

// apiMessage is the messages of a SendGrid error body, joined.
func apiMessage(status int, body string) string {
	var e struct {
		Errors []struct {
			Field   *string `json:"field"`
			Message string  `json:"message"`
		} `json:"errors"`
	}
	if json.Unmarshal([]byte(body), &e) != nil || len(e.Errors) == 0 {
		return http.StatusText(status)
	}
	msgs := make([]string, 0, len(e.Errors))
	for _, x := range e.Errors {
		msgs = append(msgs, x.Message)
	}
	msg := strings.Join(msgs, "; ")
	switch status {
	case http.StatusForbidden:
		msg += " (this API key lacks the scope this needs)"
	case http.StatusUnauthorized:
		msg += " (the API key is no longer valid: sign in again)"
	}
	return msg
}

// errorText is what a page says of a failed call.
func errorText(err error) string {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Message
	}
	return "the request failed"
}

// statusOf is the HTTP status a page answers with for a failed call.
func statusOf(err error) int {
	var ae *apiError
	if errors.As(err, &ae) && ae.Status < 500 {
		return ae.Status
	}
	return http.StatusBadGateway
}
