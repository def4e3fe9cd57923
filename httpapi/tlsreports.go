package httpapi

import (
	"cmp"
	"context"
	"fmt"
	"net/http"

	"github.com/sealpost/sealpost"
)

// listTLSReports answers GET /v3/tls/reports?date=YYYY-MM-DD: the acting
// account's own sessions of that UTC day, as the RFC 8460 reports
// sealpost would send each recipient policy domain, one per domain. The
// account sees only its own deliveries, never other accounts' share of a
// domain's report.
func (s *Server) listTLSReports(ctx context.Context, r *http.Request, c *call) (int, []byte, error) {
	date := r.URL.Query().Get("date")
	day, err := sealpost.ParseReportDay(date)
	if err != nil {
		return 0, nil, sealpost.Invalid(sealpost.FieldError{Field: "date", Message: "date must be a UTC date, YYYY-MM-DD"})
	}
	counts, err := s.store.TLSRPTCounts(ctx, day, c.acting.ID)
	if err != nil {
		return 0, nil, fmt.Errorf("reading TLS report counts of account %d: %w", c.acting.ID, err)
	}
	reports := sealpost.BuildTLSReports(day, counts, sealpost.TLSReportMeta{
		OrganizationName: "sealpost",
		ContactInfo:      cmp.Or(c.acting.Email, c.acting.Username),
	})
	out := struct {
		Date    string               `json:"date"`
		Reports []sealpost.TLSReport `json:"reports"`
	}{Date: date, Reports: reports}
	if out.Reports == nil {
		out.Reports = []sealpost.TLSReport{}
	}
	return jsonResponse(http.StatusOK, out)
}
