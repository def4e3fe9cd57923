package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/sealpost/sealpost"
)

// Domain authentication, SendGrid's /v3/whitelabel/domains. sealpost runs
// no DNS of its own for CNAMEs to point at, so every domain is answered as
// SendGrid answers one with automatic_security false: the owner publishes
// the DKIM key's TXT record itself.

// DNSResolver looks up records through the resolver delivery uses
// (--dns-server): TXT records with each record's strings joined, a name
// without any answering (nil, nil); MX records, a name without any
// answering an empty list or a not-found error.
type DNSResolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
}

type dnsRecordBody struct {
	Valid bool   `json:"valid"`
	Type  string `json:"type"`
	Host  string `json:"host"`
	Data  string `json:"data"`
}

// authDomainDNS carries the records in both of SendGrid's forms. Its
// manual-security form (automatic_security false: mail_server,
// subdomain_spf, dkim, and domain_spf with custom_spf) is what the owner
// publishes. SendGrid's document requires mail_cname, dkim1 and dkim2
// too; they repeat the same records (mail_cname the MX, as SendGrid's own
// validation reports it) for clients that read those.
type authDomainDNS struct {
	MailCNAME    dnsRecordBody  `json:"mail_cname"`
	DKIM1        dnsRecordBody  `json:"dkim1"`
	DKIM2        dnsRecordBody  `json:"dkim2"`
	MailServer   *dnsRecordBody `json:"mail_server,omitempty"`
	SubdomainSPF *dnsRecordBody `json:"subdomain_spf,omitempty"`
	DomainSPF    *dnsRecordBody `json:"domain_spf,omitempty"`
	DKIM         dnsRecordBody  `json:"dkim"`
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
	body := authDomainBody{
		ID: d.ID, UserID: d.AccountID, Subdomain: d.Subdomain, Domain: d.Domain, Username: username,
		IPs: []string{}, CustomSPF: d.CustomSPF, Default: d.Default, Valid: d.Valid, KeyAlgorithm: d.KeyAlgorithm,
		// sealpost keeps one key per domain; SendGrid's automatic form
		// has two slots, so both carry the same record.
		DNS: authDomainDNS{DKIM1: dkim, DKIM2: dkim, DKIM: dkim},
	}
	// Bounces to the return path reach --helo-hostname, and SPF authorises
	// its addresses to send for it.
	rp := d.ReturnPathHost()
	mx := dnsRecordBody{Valid: d.ReturnPathValid, Type: "mx", Host: rp, Data: s.hostname}
	spf := dnsRecordBody{Valid: d.ReturnPathValid, Type: "txt", Host: rp, Data: d.ReturnPathSPF(s.hostname)}
	body.DNS.MailCNAME, body.DNS.MailServer, body.DNS.SubdomainSPF = mx, &mx, &spf
	if d.CustomSPF {
		// Not checked: the root domain's SPF does not govern the mail
		// sealpost sends, whose envelope is at the return path.
		body.DNS.DomainSPF = &dnsRecordBody{Type: "txt", Host: d.Domain, Data: d.DomainSPF()}
	}
	return body, nil
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
	customSPF, _ := o.boolean("custom_spf")
	if auto, _ := o.boolean("automatic_security"); auto != nil && *auto {
		o.problem("automatic_security", "automatic_security is not supported: sealpost has no DNS of its own; publish the TXT records")
	}
	selector, _ := o.str("custom_dkim_selector")
	algorithm, _ := o.str("key_algorithm")
	if err := o.err(); err != nil {
		return 0, nil, err
	}
	if err := checkUTF8(c.body); err != nil {
		return 0, nil, err
	}
	d, err := sealpost.AuthenticatedDomainRequest{
		Domain: domain, Subdomain: subdomain, Default: isDefault != nil && *isDefault, CustomSPF: customSPF != nil && *customSPF,
		Selector: selector, KeyAlgorithm: algorithm,
	}.Make()
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

// patchAuthDomain changes default and custom_spf, SendGrid's two
// settings an authenticated domain may change, and answers the domain.
func (s *Server) patchAuthDomain(ctx context.Context, r *http.Request, c *call) (int, []byte, error) {
	d, err := s.pathAuthDomain(ctx, r, c)
	if err != nil {
		return 0, nil, err
	}
	o, err := parseObject(c.body)
	if err != nil {
		return 0, nil, err
	}
	var u sealpost.AuthenticatedDomainUpdate
	u.Default, _ = o.boolean("default")
	u.CustomSPF, _ = o.boolean("custom_spf")
	if err := o.err(); err != nil {
		return 0, nil, err
	}
	updated, err := s.store.UpdateAuthenticatedDomain(ctx, c.acting.ID, d.ID, u)
	if sealpost.ErrorCode(err) == sealpost.ENOTFOUND {
		return 0, nil, errNotFound
	}
	if err != nil {
		return 0, nil, fmt.Errorf("updating authenticated domain %d of account %d: %w", d.ID, c.acting.ID, err)
	}
	body, err := s.newAuthDomainBody(*updated, c.acting.Username)
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

// validateAuthDomain looks the records up and records what it found: the
// DKIM key's (valid; only a valid domain's mail is signed) and the return
// path's MX and SPF (signed mail's envelope sender moves there only once
// both are found). SendGrid reports the return path's MX as mail_cname.
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
	dkim, err := s.checkTXT(ctx, d.DKIMHost(), want, sealpost.DKIMRecordMatches)
	if err != nil {
		return lookupFailed(ctx, s, "TXT", d.DKIMHost(), err)
	}
	rp := d.ReturnPathHost()
	spf, err := s.checkTXT(ctx, rp, d.ReturnPathSPF(s.hostname), sealpost.SPFRecordMatches)
	if err != nil {
		return lookupFailed(ctx, s, "TXT", rp, err)
	}
	mx, err := s.checkMX(ctx, rp)
	if err != nil {
		return lookupFailed(ctx, s, "MX", rp, err)
	}
	if err := s.store.SetAuthenticatedDomainValid(ctx, c.acting.ID, d.ID, dkim.Valid); err != nil {
		return 0, nil, fmt.Errorf("recording validation of authenticated domain %d: %w", d.ID, err)
	}
	if err := s.store.SetReturnPathValid(ctx, c.acting.ID, d.ID, mx.Valid && spf.Valid); err != nil {
		return 0, nil, fmt.Errorf("recording validation of authenticated domain %d: %w", d.ID, err)
	}
	return jsonResponse(http.StatusOK, validationBody{ID: d.ID, Valid: dkim.Valid,
		ValidationResults: map[string]validationResult{"mail_cname": mx, "dkim1": dkim, "dkim2": dkim, "spf": spf}})
}

// lookupFailed answers SendGrid's documented 500 for a failed lookup.
func lookupFailed(ctx context.Context, s *Server, kind, host string, err error) (int, []byte, error) {
	s.log.WarnContext(ctx, "looking up "+kind+" records", "host", host, "err", err)
	return jsonResponse(http.StatusInternalServerError, map[string]any{"errors": []map[string]string{{"message": "internal error getting " + kind}}})
}

// checkTXT reports whether one of host's TXT records matches want.
func (s *Server) checkTXT(ctx context.Context, host, want string, matches func(published, want string) bool) (validationResult, error) {
	txts, err := s.dns.LookupTXT(ctx, host)
	if err != nil {
		return validationResult{}, err
	}
	for _, t := range txts {
		if matches(t, want) {
			return validationResult{Valid: true}, nil
		}
	}
	return invalid(fmt.Sprintf("Expected TXT record at %s to be %q but found %s.", host, want, found(txts))), nil
}

// checkMX reports whether host's MX records include sealpost's host name.
func (s *Server) checkMX(ctx context.Context, host string) (validationResult, error) {
	mxs, err := s.dns.LookupMX(ctx, host)
	if sealpost.IsDNSNotFound(err) {
		mxs, err = nil, nil
	}
	if err != nil {
		return validationResult{}, err
	}
	var hosts []string
	for _, mx := range mxs {
		h := strings.TrimSuffix(mx.Host, ".")
		if strings.EqualFold(h, s.hostname) {
			return validationResult{Valid: true}, nil
		}
		hosts = append(hosts, h)
	}
	return invalid(fmt.Sprintf("Expected your MX record at %s to be %q but found %s.", host, s.hostname, found(hosts))), nil
}

func invalid(reason string) validationResult { return validationResult{Reason: &reason} }

func found(records []string) string {
	if len(records) == 0 {
		return "none"
	}
	return `"` + strings.Join(records, `", "`) + `"`
}

// Assigning a parent's domain to a subuser (SendGrid's association): the
// subuser's mail is then signed with it, and it may send as it, while the
// domain stays the parent's (the subuser does not see it among its own).
// SendGrid answers these with the subuser as the domain's user.

func (s *Server) assignedAuthDomainBody(d sealpost.AuthenticatedDomain, sub *sealpost.Account) (authDomainBody, error) {
	body, err := s.newAuthDomainBody(d, sub.Username)
	body.UserID = sub.ID
	return body, err
}

// associateAuthDomain assigns the path's domain, which must be validated
// first as SendGrid requires, to the subuser the body names.
func (s *Server) associateAuthDomain(ctx context.Context, r *http.Request, c *call) (int, []byte, error) {
	d, err := s.pathAuthDomain(ctx, r, c)
	if err != nil {
		return 0, nil, err
	}
	o, err := parseObject(c.body)
	if err != nil {
		return 0, nil, err
	}
	username, _ := o.checkedStr("username", true, sealpost.ValidateUsername)
	if err := o.err(); err != nil {
		return 0, nil, err
	}
	sub, err := s.namedSubuser(ctx, c, username)
	if err != nil {
		return 0, nil, err
	}
	if !d.Valid {
		return 0, nil, sealpost.Invalid(sealpost.FieldError{Message: "the authenticated domain must be validated before it is associated with a subuser"})
	}
	assigned, err := s.store.AssociateAuthenticatedDomain(ctx, c.acting.ID, d.ID, sub.ID)
	if sealpost.ErrorCode(err) == sealpost.ENOTFOUND {
		return 0, nil, errNotFound
	}
	if err != nil {
		return 0, nil, fmt.Errorf("associating authenticated domain %d with subuser %d: %w", d.ID, sub.ID, err)
	}
	body, err := s.assignedAuthDomainBody(*assigned, sub)
	if err != nil {
		return 0, nil, err
	}
	return jsonResponse(http.StatusCreated, body)
}

// namedSubuser is the acting account's subuser username names: a 400 on
// username when it names none, as for any bad member of a request.
func (s *Server) namedSubuser(ctx context.Context, c *call, username string) (*sealpost.Account, error) {
	sub, err := s.ownSubuser(ctx, c, username)
	if errors.Is(err, errNotFound) {
		return nil, sealpost.Invalid(sealpost.FieldError{Field: "username", Message: "username does not name one of your subusers"})
	}
	return sub, err
}

// querySubuser reads ?username= of the subuser association routes.
func (s *Server) querySubuser(ctx context.Context, r *http.Request, c *call) (*sealpost.Account, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, sealpost.Invalid(sealpost.FieldError{Message: "query string is malformed"})
	}
	username := q.Get("username")
	if username == "" {
		return nil, sealpost.Invalid(sealpost.FieldError{Field: "username", Message: "username is required"})
	}
	return s.namedSubuser(ctx, c, username)
}

func (s *Server) getAssignedAuthDomain(ctx context.Context, r *http.Request, c *call) (int, []byte, error) {
	sub, err := s.querySubuser(ctx, r, c)
	if err != nil {
		return 0, nil, err
	}
	d, err := s.store.AssociatedAuthenticatedDomain(ctx, sub.ID)
	if sealpost.ErrorCode(err) == sealpost.ENOTFOUND {
		return 0, nil, errNotFound
	}
	if err != nil {
		return 0, nil, fmt.Errorf("reading the authenticated domain of subuser %d: %w", sub.ID, err)
	}
	body, err := s.assignedAuthDomainBody(*d, sub)
	if err != nil {
		return 0, nil, err
	}
	return jsonResponse(http.StatusOK, body)
}

func (s *Server) disassociateAuthDomain(ctx context.Context, r *http.Request, c *call) (int, []byte, error) {
	sub, err := s.querySubuser(ctx, r, c)
	if err != nil {
		return 0, nil, err
	}
	err = s.store.DisassociateAuthenticatedDomain(ctx, sub.ID)
	if sealpost.ErrorCode(err) == sealpost.ENOTFOUND {
		return 0, nil, errNotFound
	}
	if err != nil {
		return 0, nil, fmt.Errorf("disassociating the authenticated domain of subuser %d: %w", sub.ID, err)
	}
	return http.StatusNoContent, nil, nil
}
