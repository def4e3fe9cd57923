package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/sealpost/sealpost"
)

// Domain authentication, SendGrid's /v3/whitelabel/domains. sealpost runs
// no DNS of its own for CNAMEs to point at, so every domain is answered as
// SendGrid answers one with automatic_security false: the owner publishes
// the DKIM key's TXT record itself.

// TXTResolver looks up TXT records through the resolver delivery uses
// (--dns-server), each record's strings joined; a name without any
// answers (nil, nil).
type TXTResolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
}

type dnsRecordBody struct {
	Valid bool   `json:"valid"`
	Type  string `json:"type"`
	Host  string `json:"host"`
	Data  string `json:"data"`
}

type authDomainDNS struct {
	MailCNAME dnsRecordBody `json:"mail_cname"`
	DKIM1     dnsRecordBody `json:"dkim1"`
	DKIM2     dnsRecordBody `json:"dkim2"`
}

type authDomainBody struct {
	ID                int64         `json:"id"`
	UserID            int64         `json:"user_id"`
	Subdomain         string        `json:"subdomain"`
	Domain            string        `json:"domain"`
	Username          string        `json:"username"`
	IPs               []string      `json:"ips"`
	CustomSPF         bool          `json:"custom_spf"`
	Default           bool          `json:"default"`
	Legacy            bool          `json:"legacy"`
	AutomaticSecurity bool          `json:"automatic_security"`
	Valid             bool          `json:"valid"`
	DNS               authDomainDNS `json:"dns"`
	// KeyAlgorithm is sealpost's own member: rsa or ed25519.
	KeyAlgorithm string `json:"key_algorithm"`
}

func (s *Server) newAuthDomainBody(d sealpost.AuthenticatedDomain, username string) (authDomainBody, error) {
	record, err := d.DKIMRecord()
	if err != nil {
		return authDomainBody{}, fmt.Errorf("authenticated domain %d: %w", d.ID, err)
	}
	dkim := dnsRecordBody{Valid: d.Valid, Type: "txt", Host: d.DKIMHost(), Data: record}
	returnPath := d.Domain
	if d.Subdomain != "" {
		returnPath = d.Subdomain + "." + d.Domain
	}
	return authDomainBody{
		ID: d.ID, UserID: d.AccountID, Subdomain: d.Subdomain, Domain: d.Domain, Username: username,
		IPs: []string{}, Default: d.Default, Valid: d.Valid, KeyAlgorithm: d.KeyAlgorithm,
		DNS: authDomainDNS{
			// Not checked: a return-path name pointing at this host is
			// optional, for bounces to reach the operator.
			MailCNAME: dnsRecordBody{Type: "cname", Host: returnPath, Data: s.hostname},
			// sealpost keeps one key per domain; SendGrid's shape has two
			// slots, so both carry the same record.
			DKIM1: dkim,
			DKIM2: dkim,
		},
	}, nil
}

func (s *Server) createAuthDomain(ctx context.Context, r *http.Request, c *call) (int, []byte, error) {
	o, err := parseObject(c.body)
	if err != nil {
		return 0, nil, err
	}
	domain, present := o.str("domain")
	if !present {
		o.problem("domain", "domain is required")
	}
	subdomain, _ := o.str("subdomain")
	isDefault, _ := o.boolean("default")
	if auto, _ := o.boolean("automatic_security"); auto != nil && *auto {
		o.problem("automatic_security", "automatic_security is not supported: sealpost has no DNS of its own; publish the TXT records")
	}
	algorithm, _ := o.str("key_algorithm")
	if err := o.err(); err != nil {
		return 0, nil, err
	}
	if err := checkUTF8(c.body); err != nil {
		return 0, nil, err
	}
	d, err := sealpost.NewAuthenticatedDomain(domain, subdomain, isDefault != nil && *isDefault, algorithm)
	if err != nil {
		return 0, nil, err
	}
	stored, err := s.store.CreateAuthenticatedDomain(ctx, c.acting.ID, d)
	if err != nil {
		return 0, nil, fmt.Errorf("storing authenticated domain of account %d: %w", c.acting.ID, err)
	}
	body, err := s.newAuthDomainBody(stored, c.acting.Username)
	if err != nil {
		return 0, nil, err
	}
	return jsonResponse(http.StatusCreated, body)
}

func (s *Server) listAuthDomains(ctx context.Context, _ *http.Request, c *call) (int, []byte, error) {
	list, err := s.store.AuthenticatedDomains(ctx, c.acting.ID)
	if err != nil {
		return 0, nil, fmt.Errorf("listing authenticated domains of account %d: %w", c.acting.ID, err)
	}
	out := []authDomainBody{}
	for _, d := range list {
		b, err := s.newAuthDomainBody(d, c.acting.Username)
		if err != nil {
			return 0, nil, err
		}
		out = append(out, b)
	}
	return jsonResponse(http.StatusOK, out)
}

// pathAuthDomain reads the path's id and the account's domain of that id;
// an id that is not a number is not found, as no domain has it.
func (s *Server) pathAuthDomain(ctx context.Context, r *http.Request, c *call) (*sealpost.AuthenticatedDomain, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return nil, errNotFound
	}
	d, err := s.store.AuthenticatedDomain(ctx, c.acting.ID, id)
	if sealpost.ErrorCode(err) == sealpost.ENOTFOUND {
		return nil, errNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("reading authenticated domain %d of account %d: %w", id, c.acting.ID, err)
	}
	return d, nil
}

func (s *Server) getAuthDomain(ctx context.Context, r *http.Request, c *call) (int, []byte, error) {
	d, err := s.pathAuthDomain(ctx, r, c)
	if err != nil {
		return 0, nil, err
	}
	body, err := s.newAuthDomainBody(*d, c.acting.Username)
	if err != nil {
		return 0, nil, err
	}
	return jsonResponse(http.StatusOK, body)
}

func (s *Server) deleteAuthDomain(ctx context.Context, r *http.Request, c *call) (int, []byte, error) {
	d, err := s.pathAuthDomain(ctx, r, c)
	if err != nil {
		return 0, nil, err
	}
	err = s.store.DeleteAuthenticatedDomain(ctx, c.acting.ID, d.ID)
	if sealpost.ErrorCode(err) == sealpost.ENOTFOUND {
		return 0, nil, errNotFound
	}
	if err != nil {
		return 0, nil, fmt.Errorf("deleting authenticated domain %d of account %d: %w", d.ID, c.acting.ID, err)
	}
	return http.StatusNoContent, nil, nil
}

type validationResult struct {
	Valid  bool    `json:"valid"`
	Reason *string `json:"reason"`
}

type validationBody struct {
	ID                int64                       `json:"id"`
	Valid             bool                        `json:"valid"`
	ValidationResults map[string]validationResult `json:"validation_results"`
}

// validateAuthDomain looks the DKIM record up and records whether it
// publishes this domain's key; only a valid domain's mail is signed.
func (s *Server) validateAuthDomain(ctx context.Context, r *http.Request, c *call) (int, []byte, error) {
	d, err := s.pathAuthDomain(ctx, r, c)
	if err != nil {
		return 0, nil, err
	}
	if s.dns == nil {
		return 0, nil, fmt.Errorf("validating authenticated domain %d: no DNS resolver configured", d.ID)
	}
	want, err := d.DKIMRecord()
	if err != nil {
		return 0, nil, err
	}
	txts, err := s.dns.LookupTXT(ctx, d.DKIMHost())
	if err != nil {
		// SendGrid's documented 500 for a failed lookup.
		s.log.WarnContext(ctx, "looking up DKIM record", "host", d.DKIMHost(), "err", err)
		return jsonResponse(http.StatusInternalServerError, map[string]any{"errors": []map[string]string{{"message": "internal error getting TXT"}}})
	}
	result := validationResult{Valid: false}
	var reason string
	switch {
	case len(txts) == 0:
		reason = fmt.Sprintf("Expected TXT record at %s to be %q but found none.", d.DKIMHost(), want)
	default:
		for _, t := range txts {
			if sealpost.DKIMRecordMatches(t, want) {
				result.Valid = true
				break
			}
		}
		if !result.Valid {
			reason = fmt.Sprintf("Expected TXT record at %s to be %q but found %q.", d.DKIMHost(), want, strings.Join(txts, `", "`))
		}
	}
	if !result.Valid {
		result.Reason = &reason
	}
	if err := s.store.SetAuthenticatedDomainValid(ctx, c.acting.ID, d.ID, result.Valid); err != nil {
		return 0, nil, fmt.Errorf("recording validation of authenticated domain %d: %w", d.ID, err)
	}
	return jsonResponse(http.StatusOK, validationBody{ID: d.ID, Valid: result.Valid,
		ValidationResults: map[string]validationResult{"dkim1": result, "dkim2": result}})
}
