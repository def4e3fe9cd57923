package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/sealpost/sealpost"
)

// tlsDomain is one recipient domain of the registry as GET /v3/tls/domains
// lists it.
type tlsDomain struct {
	Domain            string     `json:"domain"`
	Recipients        int64      `json:"recipients"`
	HighestTLSVersion *string    `json:"highest_tls_version"` // null: no TLS seen
	ValidCertSeen     bool       `json:"valid_cert_seen"`
	LastAttempt       *time.Time `json:"last_attempt"` // null: never attempted
}

// listTLSDomains answers GET /v3/tls/domains: the registry of the acting
// account's recipient domains over the whole retention, as the readiness
// preview judges them. It reads what the preview reads, so it needs the
// same scope.
func (s *Server) listTLSDomains(ctx context.Context, r *http.Request, c *call) (int, []byte, error) {
	days := s.maxPreviewDays()
	domains, err := s.store.TLSRegistry(ctx, c.acting.ID, sealpost.RegistryDay(s.now())-int64(days)+1)
	if err != nil {
		return 0, nil, fmt.Errorf("reading TLS registry of account %d: %w", c.acting.ID, err)
	}
	out := struct {
		Days    int         `json:"days"`
		Domains []tlsDomain `json:"domains"`
	}{Days: days, Domains: make([]tlsDomain, 0, len(domains))}
	for _, d := range domains {
		td := tlsDomain{Domain: d.Domain, Recipients: d.Recipients, ValidCertSeen: d.ValidCertSeen}
		if d.HighestVersion != "" {
			v := d.HighestVersion
			td.HighestTLSVersion = &v
		}
		if !d.LastAttempt.IsZero() {
			t := d.LastAttempt.UTC()
			td.LastAttempt = &t
		}
		out.Domains = append(out.Domains, td)
	}
	return jsonResponse(http.StatusOK, out)
}
