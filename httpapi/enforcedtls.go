package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/sealpost/sealpost"
)

// enforcedTLSBodies holds the response for every possible setting (two
// booleans by three versions), so the hot GET encodes nothing. It is
// filled once and only read after.
var enforcedTLSBodies = func() (t [2][2][3][]byte) {
	for i, tls := range []bool{false, true} {
		for j, cert := range []bool{false, true} {
			for k, v := range []sealpost.TLSVersion{sealpost.TLS11, sealpost.TLS12, sealpost.TLS13} {
				t[i][j][k] = []byte(`{"require_tls":` + strconv.FormatBool(tls) +
					`,"require_valid_cert":` + strconv.FormatBool(cert) +
					`,"version":` + v.String() + `}`)
			}
		}
	}
	return t
}()

func enforcedTLSBody(s sealpost.EnforcedTLS) ([]byte, error) {
	var i, j, k int
	if s.RequireTLS {
		i = 1
	}
	if s.RequireValidCert {
		j = 1
	}
	switch s.Version {
	case sealpost.TLS11:
		k = 0
	case sealpost.TLS12:
		k = 1
	case sealpost.TLS13:
		k = 2
	default:
		return nil, fmt.Errorf("stored enforced TLS setting has invalid version %v", s.Version)
	}
	return enforcedTLSBodies[i][j][k], nil
}

func (s *Server) getEnforcedTLS(ctx context.Context, _ *http.Request, c *call) (int, []byte, error) {
	setting, err := s.store.EnforcedTLS(ctx, c.acting.ID)
	if err != nil {
		return 0, nil, fmt.Errorf("reading enforced TLS of account %d: %w", c.acting.ID, err)
	}
	body, err := enforcedTLSBody(setting)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, body, nil
}

func (s *Server) patchEnforcedTLS(ctx context.Context, _ *http.Request, c *call) (int, []byte, error) {
	patch, err := parseEnforcedTLSPatch(c.body)
	if err != nil {
		return 0, nil, err
	}
	var setting sealpost.EnforcedTLS
	if patch.RequireTLS == nil && patch.RequireValidCert == nil && patch.Version == nil {
		// A no-op patch ({} or only unknown fields) needs no write.
		setting, err = s.store.EnforcedTLS(ctx, c.acting.ID)
	} else {
		setting, err = s.store.UpdateEnforcedTLS(ctx, c.acting.ID, patch)
	}
	if err != nil {
		return 0, nil, fmt.Errorf("updating enforced TLS of account %d: %w", c.acting.ID, err)
	}
	body, err := enforcedTLSBody(setting)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, body, nil
}

// parseEnforcedTLSPatch parses a PATCH body. It reports every problem it
// finds, each naming its field, and ignores fields it does not know. A body
// that is not a JSON object is one problem with no field; one that is not
// valid UTF-8 (in a key, or in a member it ignores) is refused too.
func parseEnforcedTLSPatch(body []byte) (sealpost.EnforcedTLSPatch, error) {
	o, err := parseObject(body)
	if err != nil {
		return sealpost.EnforcedTLSPatch{}, err
	}
	var p sealpost.EnforcedTLSPatch
	p.RequireTLS, _ = o.boolean("require_tls")
	p.RequireValidCert, _ = o.boolean("require_valid_cert")
	if raw, ok := o.fields["version"]; ok {
		var v sealpost.TLSVersion
		if err := v.UnmarshalJSON(raw); err != nil {
			o.problem("version", "must be one of 1.1, 1.2, 1.3")
		} else {
			p.Version = &v
		}
	}
	if err := o.err(); err != nil {
		return sealpost.EnforcedTLSPatch{}, err
	}
	return p, nil
}

// Bounds of the preview's pagination.
const (
	defaultPreviewLimit = 100
	maxPreviewLimit     = 500
)

// previewEnforcedTLS answers what a policy (by default the account's own)
// would have blocked of the account's mail over the last days.
func (s *Server) previewEnforcedTLS(ctx context.Context, r *http.Request, c *call) (int, []byte, error) {
	policy, err := s.store.EnforcedTLS(ctx, c.acting.ID)
	if err != nil {
		return 0, nil, fmt.Errorf("reading enforced TLS of account %d: %w", c.acting.ID, err)
	}
	q := r.URL.Query()
	var problems []sealpost.FieldError
	boolParam := func(name string, dst *bool) {
		if !q.Has(name) {
			return
		}
		switch q.Get(name) {
		case "true":
			*dst = true
		case "false":
			*dst = false
		default:
			problems = append(problems, sealpost.FieldError{Field: name, Message: name + " must be true or false"})
		}
	}
	intParam := func(name string, def, lo, hi int) int {
		if !q.Has(name) {
			return def
		}
		n, err := strconv.Atoi(q.Get(name))
		if err != nil || n < lo || n > hi {
			problems = append(problems, sealpost.FieldError{Field: name, Message: fmt.Sprintf("%s must be an integer from %d to %d", name, lo, hi)})
			return def
		}
		return n
	}
	boolParam("require_tls", &policy.RequireTLS)
	boolParam("require_valid_cert", &policy.RequireValidCert)
	if q.Has("version") {
		if v, err := sealpost.ParseTLSVersion(q.Get("version")); err != nil {
			problems = append(problems, sealpost.FieldError{Field: "version", Message: "version must be one of 1.1, 1.2, 1.3"})
		} else {
			policy.Version = v
		}
	}
	maxDays := s.maxPreviewDays()
	days := intParam("days", min(30, maxDays), 1, maxDays)
	limit := intParam("limit", defaultPreviewLimit, 1, maxPreviewLimit)
	offset := intParam("offset", 0, 0, math.MaxInt32)
	if len(problems) > 0 {
		return 0, nil, sealpost.Invalid(problems...)
	}
	now := s.now()
	domains, err := s.store.TLSRegistry(ctx, c.acting.ID, sealpost.RegistryDay(now)-int64(days)+1)
	if err != nil {
		return 0, nil, fmt.Errorf("reading the TLS registry of account %d: %w", c.acting.ID, err)
	}
	p := sealpost.PreviewPolicy(policy, days, domains)
	p.Domains = p.Domains[min(offset, len(p.Domains)):]
	p.Domains = p.Domains[:min(limit, len(p.Domains))]
	body, err := json.Marshal(p)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, body, nil
}

// maxPreviewDays is the longest window the registry still holds: whole
// days of the retention, at least one.
func (s *Server) maxPreviewDays() int {
	return max(1, int(s.registryRetention/(24*time.Hour)))
}
