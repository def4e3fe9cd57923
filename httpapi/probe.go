package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/sealpost/sealpost"
)

// errNoProber is what POST /v3/tls/probe fails with when the server was
// built without a prober: a wiring mistake, hence a 500.
var errNoProber = errors.New("no TLS prober configured")

// probeTLS asks a domain's mail servers about their TLS now. A domain the
// probe finds not to exist is a finding (200, error set), not a bad
// request: the name was well formed, and the answer is the DNS's.
func (s *Server) probeTLS(ctx context.Context, _ *http.Request, c *call) (int, []byte, error) {
	o, err := parseObject(c.body)
	if err != nil {
		return 0, nil, err
	}
	domain, _ := o.checkedStr("domain", true, sealpost.ValidateProbeDomain)
	if err := o.err(); err != nil {
		return 0, nil, err
	}
	if s.prober == nil {
		return 0, nil, errNoProber
	}
	// Recipient domains are lower case everywhere else (the registry's
	// key among them).
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	rep, err := s.prober.Probe(ctx, domain)
	if err != nil {
		return 0, nil, fmt.Errorf("probing %s for account %d: %w", domain, c.acting.ID, err)
	}
	// Probes reach out on a tenant's behalf: worth a line each.
	s.log.LogAttrs(ctx, slog.LevelInfo, "tls probe", slog.Int64("account_id", c.acting.ID),
		slog.String("domain", rep.Domain), slog.Int("mx_hosts", len(rep.MXHosts)), slog.String("probe_error", rep.Error))
	if obs := rep.Observations(c.acting.ID); s.observations != nil && len(obs) > 0 {
		// The answer stands without the registry: it is what the servers
		// said, and the next delivery records the same facts anyway.
		if err := s.observations.RecordObservations(ctx, obs); err != nil {
			s.log.LogAttrs(ctx, slog.LevelWarn, "recording probe observations failed",
				slog.Int64("account_id", c.acting.ID), slog.String("domain", rep.Domain), slog.Any("err", err))
		}
	}
	body, err := json.Marshal(rep)
	if err != nil {
		return 0, nil, fmt.Errorf("encoding the probe of %s: %w", domain, err)
	}
	return http.StatusOK, body, nil
}
