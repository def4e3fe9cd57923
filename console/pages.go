package console

import (
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sealpost/sealpost"
)

// templateFuncs are the functions the pages' templates call.
func templateFuncs() template.FuncMap {
	return template.FuncMap{
		"when": func(t time.Time) string {
			if t.IsZero() {
				return "never"
			}
			return t.UTC().Format("2006-01-02 15:04:05 UTC")
		},
		"day": func(t time.Time) string {
			if t.IsZero() {
				return "never"
			}
			return t.UTC().Format("2006-01-02")
		},
		"cause":   cause,
		"why":     blockedWhy,
		"version": func(v sealpost.TLSVersion) string { return v.String() },
		"json":    jsonIndent,
	}
}

// cause says in plain words why a policy refused a host, from its RFC 8460
// result type.
func cause(resultType string) string {
	switch resultType {
	case "":
		return ""
	case sealpost.ResultSTARTTLSNotSupported:
		return "the recipient's mail server does not offer TLS (no STARTTLS)"
	case sealpost.ResultCertificateHostMismatch:
		return "the mail server's certificate is for another name"
	case sealpost.ResultCertificateExpired:
		return "the mail server's certificate has expired"
	case sealpost.ResultCertificateNotTrusted:
		return "the mail server's certificate is not signed by a trusted authority"
	case sealpost.ResultValidationFailure:
		return "the mail server's TLS did not meet the setting: a version below the one required, or a certificate that failed validation"
	}
	return resultType
}

// blockedWhy says why a setting would block a domain, from what its best
// host offered.
func blockedWhy(policy sealpost.EnforcedTLS, d sealpost.BlockedDomain) string {
	if d.Best.TLSVersion == nil {
		return "its mail servers offer no TLS"
	}
	best, err := sealpost.ParseTLSVersion(*d.Best.TLSVersion)
	if err == nil && best < policy.Version {
		return "its mail servers offer TLS " + *d.Best.TLSVersion + " at best; " + policy.Version.String() + " is required"
	}
	if policy.RequireValidCert && !d.Best.CertValid {
		return "no valid certificate: " + cause(d.ResultType)
	}
	return cause(d.ResultType)
}

func (c *Console) page(s *session, nav, title string) page {
	return page{Title: title, Nav: nav, CSRF: s.csrf(), Acting: s.acting}
}

// tlsData is the Enforced TLS page: the setting shown in the form, and the
// preview of that setting.
type tlsData struct {
	Setting  sealpost.EnforcedTLS
	Versions []sealpost.TLSVersion
	Preview  *sealpost.TLSPreview
}

// policyFrom reads the form's setting; an unchecked checkbox is sent as
// nothing, which is false.
func policyFrom(v url.Values) (sealpost.EnforcedTLS, bool) {
	p := sealpost.EnforcedTLS{RequireTLS: v.Get("require_tls") == "true", RequireValidCert: v.Get("require_valid_cert") == "true"}
	ver, err := sealpost.ParseTLSVersion(v.Get("version"))
	if err != nil {
		return p, false
	}
	p.Version = ver
	return p, true
}

func previewPath(p sealpost.EnforcedTLS) string {
	q := url.Values{}
	q.Set("require_tls", boolString(p.RequireTLS))
	q.Set("require_valid_cert", boolString(p.RequireValidCert))
	q.Set("version", p.Version.String())
	return "/v3/user/settings/enforced_tls/preview?" + q.Encode()
}

func boolString(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

func (c *Console) tlsPage(w http.ResponseWriter, r *http.Request, s *session) {
	p := c.page(s, "tls", "Enforced TLS")
	d := tlsData{Versions: []sealpost.TLSVersion{sealpost.TLS11, sealpost.TLS12, sealpost.TLS13}}
	status := http.StatusOK
	if err := c.call(r.Context(), r, s, http.MethodGet, "/v3/user/settings/enforced_tls", nil, &d.Setting); err != nil {
		p.Error = errorText(err)
		c.render(w, r, statusOf(err), "tls", p)
		return
	}
	if r.Method == http.MethodPost {
		edited, ok := policyFrom(r.PostForm)
		if !ok {
			p.Error, status = "Choose a TLS version: 1.1, 1.2 or 1.3.", http.StatusBadRequest
		} else if r.PostFormValue("action") == "save" {
			var saved sealpost.EnforcedTLS
			if err := c.call(r.Context(), r, s, http.MethodPatch, "/v3/user/settings/enforced_tls", edited, &saved); err != nil {
				p.Error, status = "Not saved: "+errorText(err), statusOf(err)
				d.Setting = edited
			} else {
				d.Setting, p.Message = saved, "Saved."
			}
		} else {
			d.Setting = edited
		}
	}
	var prev sealpost.TLSPreview
	if err := c.call(r.Context(), r, s, http.MethodGet, previewPath(d.Setting), nil, &prev); err != nil {
		if p.Error == "" {
			p.Error = "No preview: " + errorText(err)
		}
	} else {
		d.Preview = &prev
	}
	p.Data = d
	c.render(w, r, status, "tls", p)
}

// tlsPreviewFragment answers the page's script with the preview of the
// setting being edited, as the HTML the page shows.
func (c *Console) tlsPreviewFragment(w http.ResponseWriter, r *http.Request, s *session) {
	p := c.page(s, "tls", "Preview")
	edited, ok := policyFrom(r.URL.Query())
	if !ok {
		p.Error = "Choose a TLS version: 1.1, 1.2 or 1.3."
		c.render(w, r, http.StatusBadRequest, "preview_fragment", p)
		return
	}
	var prev sealpost.TLSPreview
	if err := c.call(r.Context(), r, s, http.MethodGet, previewPath(edited), nil, &prev); err != nil {
		p.Error = "No preview: " + errorText(err)
		c.render(w, r, statusOf(err), "preview_fragment", p)
		return
	}
	p.Data = tlsData{Preview: &prev}
	c.render(w, r, http.StatusOK, "preview_fragment", p)
}

// activityMessage and activityEvent are the parts of the Email Activity
// API's answers the page shows.
type activityMessage struct {
	MsgID         string          `json:"msg_id"`
	FromEmail     string          `json:"from_email"`
	ToEmail       string          `json:"to_email"`
	Subject       string          `json:"subject"`
	Status        string          `json:"status"`
	LastEventTime string          `json:"last_event_time"`
	Events        []activityEvent `json:"events"`
}

type activityEvent struct {
	EventName  string             `json:"event_name"`
	Processed  string             `json:"processed"`
	Reason     string             `json:"reason"`
	BounceType string             `json:"bounce_type"`
	MXServer   string             `json:"mx_server"`
	Sealpost   *sealpost.TLSFacts `json:"sealpost"`
}

type activityData struct {
	Query    string
	Messages []activityMessage
}

// activityDetailed is how many of the listed messages the page shows with
// their events: each is one more call.
const activityDetailed = 25

func (c *Console) activityPage(w http.ResponseWriter, r *http.Request, s *session) {
	p := c.page(s, "activity", "Activity")
	d := activityData{Query: r.URL.Query().Get("query")}
	q := url.Values{"limit": {"50"}}
	if d.Query != "" {
		q.Set("query", d.Query)
	}
	var list struct {
		Messages []activityMessage `json:"messages"`
	}
	if err := c.call(r.Context(), r, s, http.MethodGet, "/v3/messages?"+q.Encode(), nil, &list); err != nil {
		p.Error = errorText(err)
		p.Data = d
		c.render(w, r, statusOf(err), "activity", p)
		return
	}
	for i := range list.Messages {
		m := &list.Messages[i]
		if i < activityDetailed {
			var detail activityMessage
			if err := c.call(r.Context(), r, s, http.MethodGet, "/v3/messages/"+url.PathEscape(m.MsgID), nil, &detail); err == nil {
				m.Events = detail.Events
			}
		}
	}
	d.Messages = list.Messages
	p.Data = d
	c.render(w, r, http.StatusOK, "activity", p)
}

type recipientsData struct {
	Domains []registryDomain
	Probe   *sealpost.TLSProbe
	Domain  string
}

type registryDomain struct {
	Domain         string     `json:"domain"`
	Recipients     int64      `json:"recipients"`
	HighestVersion *string    `json:"highest_tls_version"`
	ValidCertSeen  bool       `json:"valid_cert_seen"`
	LastAttempt    *time.Time `json:"last_attempt"`
}

func (c *Console) recipientsPage(w http.ResponseWriter, r *http.Request, s *session) {
	p := c.page(s, "recipients", "Recipients")
	d := recipientsData{}
	status := http.StatusOK
	if r.Method == http.MethodPost {
		d.Domain = strings.TrimSpace(r.PostFormValue("domain"))
		var probe sealpost.TLSProbe
		if err := c.call(r.Context(), r, s, http.MethodPost, "/v3/tls/probe", map[string]string{"domain": d.Domain}, &probe); err != nil {
			p.Error, status = "Probe failed: "+errorText(err), statusOf(err)
		} else {
			d.Probe = &probe
		}
	}
	var reg struct {
		Domains []registryDomain `json:"domains"`
	}
	if err := c.call(r.Context(), r, s, http.MethodGet, "/v3/tls/domains", nil, &reg); err != nil {
		if p.Error == "" {
			p.Error, status = errorText(err), statusOf(err)
		}
	}
	d.Domains = reg.Domains
	p.Data = d
	c.render(w, r, status, "recipients", p)
}

type webhookData struct {
	Settings  map[string]any
	URL       string
	Enabled   bool
	PublicKey string
	Signed    bool
	Backlog   *webhookBacklog
	Posts     *webhookPosts
}

// shownWebhookPosts is how many of the kept posts the page lists.
const shownWebhookPosts = 20

// webhookPosts is GET /v3/user/webhooks/event/posts's answer.
type webhookPosts struct {
	Posts []struct {
		At         time.Time `json:"at"`
		Host       string    `json:"host"`
		Events     int       `json:"events"`
		Status     *int      `json:"status"`
		Error      string    `json:"error"`
		DurationMS int64     `json:"duration_ms"`
		Test       bool      `json:"test"`
	} `json:"posts"`
}

type webhookBacklog struct {
	Pending       int64      `json:"pending"`
	PendingCapped bool       `json:"pending_capped"`
	OldestEvent   *time.Time `json:"oldest_event"`
	Attempts      int        `json:"attempts"`
	NextAttempt   *time.Time `json:"next_attempt"`
	FailingSince  *time.Time `json:"failing_since"`
}

func (c *Console) webhookPage(w http.ResponseWriter, r *http.Request, s *session) {
	p := c.page(s, "webhook", "Event Webhook")
	status := http.StatusOK
	var settings map[string]any
	if err := c.call(r.Context(), r, s, http.MethodGet, "/v3/user/webhooks/event/settings", nil, &settings); err != nil {
		p.Error = errorText(err)
		c.render(w, r, statusOf(err), "webhook", p)
		return
	}
	d := webhookData{Settings: settings}
	d.URL, _ = settings["url"].(string)
	d.Enabled, _ = settings["enabled"].(bool)
	var signed struct {
		Enabled   bool   `json:"enabled"`
		PublicKey string `json:"public_key"`
	}
	if err := c.call(r.Context(), r, s, http.MethodGet, "/v3/user/webhooks/event/settings/signed", nil, &signed); err == nil {
		d.Signed, d.PublicKey = signed.Enabled, signed.PublicKey
	}
	var backlog webhookBacklog
	if err := c.call(r.Context(), r, s, http.MethodGet, "/v3/user/webhooks/event/backlog", nil, &backlog); err == nil {
		d.Backlog = &backlog
	}
	if r.Method == http.MethodPost {
		body := map[string]string{"url": d.URL}
		if err := c.call(r.Context(), r, s, http.MethodPost, "/v3/user/webhooks/event/test", body, nil); err != nil {
			p.Error, status = "Test not delivered: "+errorText(err), statusOf(err)
		} else {
			p.Message = "Test event posted; the receiver answered 2xx."
		}
	}
	// Read after a test post, so that the page lists it.
	var posts webhookPosts
	if err := c.call(r.Context(), r, s, http.MethodGet, fmt.Sprintf("/v3/user/webhooks/event/posts?limit=%d", shownWebhookPosts), nil, &posts); err == nil {
		d.Posts = &posts
	}
	p.Data = d
	c.render(w, r, status, "webhook", p)
}

// jsonIndent shows an API answer as the API sent it.
func jsonIndent(v any) string {
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}
