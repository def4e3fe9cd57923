package httpapi

import (
	"context"
	"fmt"
	"net/http"

	"github.com/sealpost/sealpost"
)

// An account's own Enforced TLS policies for recipient domains: sealpost's
// routes, which SendGrid does not have. A policy can only raise the
// account's setting for mail to its domain; the answers say whether it
// does (effective) and what the two together require (effective_policy).

// domainPolicyBody is one policy as the routes answer it.
type domainPolicyBody struct {
	Domain           string              `json:"domain"`
	RequireTLS       bool                `json:"require_tls"`
	RequireValidCert bool                `json:"require_valid_cert"`
	Version          sealpost.TLSVersion `json:"version"`
	// Effective: the policy raises the account's setting in at least one
	// field, so mail to the domain is held to more than the account's
	// setting alone demands. False: it is kept, but changes nothing.
	Effective bool `json:"effective"`
	// EffectivePolicy is what mail to the domain is held to by the
	// account's setting and this policy together, as the setting stands
	// now: the setting itself when the policy is not effective, else the
	// strongest of both. Recipients' published policies (MTA-STS, DANE)
	// can raise it further at delivery.
	EffectivePolicy sealpost.EnforcedTLS `json:"effective_policy"`
	CreatedAt       int64                `json:"created_at"` // Unix seconds
	UpdatedAt       int64                `json:"updated_at"`
}

type domainPolicyList struct {
	Result []domainPolicyBody `json:"result"`
}

func newDomainPolicyBody(p sealpost.DomainTLSPolicy, account sealpost.EnforcedTLS) domainPolicyBody {
	effective := p.Policy.Raises(account)
	applied := account
	if effective {
		applied = sealpost.Strongest(account, p.Policy)
	}
	return domainPolicyBody{
		Domain:           p.Domain,
		RequireTLS:       p.Policy.RequireTLS,
		RequireValidCert: p.Policy.RequireValidCert,
		Version:          p.Policy.Version,
		Effective:        effective,
		EffectivePolicy:  applied,
		CreatedAt:        p.CreatedAt.Unix(),
		UpdatedAt:        p.UpdatedAt.Unix(),
	}
}

// domainPolicyFields are the members a PUT must carry, in the order their
// problems are listed.
var domainPolicyFields = [...]string{"require_tls", "require_valid_cert", "version"}

// parseDomainPolicy reads a PUT body: the account setting's PATCH body with
// every field required. The fields are checked by the setting's own
// parser, so both routes accept and refuse exactly the same values.
func parseDomainPolicy(body []byte) (sealpost.EnforcedTLS, []sealpost.FieldError) {
	patch, err := parseEnforcedTLSPatch(body)
	problems := sealpost.ErrorFields(err)
	if err != nil && (len(problems) == 0 || problems[0].Field == "") {
		// Not a JSON object: nothing to say about its fields.
		return sealpost.EnforcedTLS{}, problems
	}
	o, err := parseObject(body)
	if err != nil {
		return sealpost.EnforcedTLS{}, sealpost.ErrorFields(err)
	}
	var out []sealpost.FieldError
	for _, name := range domainPolicyFields {
		if _, ok := o.fields[name]; !ok {
			out = append(out, sealpost.FieldError{Field: name, Message: name + " is required"})
			continue
		}
		for _, p := range problems {
			if p.Field == name {
				out = append(out, p)
			}
		}
	}
	if len(out) > 0 {
		return sealpost.EnforcedTLS{}, out
	}
	return patch.Apply(sealpost.DefaultEnforcedTLS()), nil
}

// pathDomain returns the normalised domain of the path, or the problem
// with it.
func pathDomain(r *http.Request) (string, *sealpost.FieldError) {
	d, err := sealpost.NormalizeDomain(r.PathValue("domain"))
	if err != nil {
		return "", &sealpost.FieldError{Field: "domain", Message: err.Error()}
	}
	return d, nil
}

func (s *Server) accountSetting(ctx context.Context, c *call) (sealpost.EnforcedTLS, error) {
	setting, err := s.store.EnforcedTLS(ctx, c.acting.ID)
	if err != nil {
		return sealpost.EnforcedTLS{}, fmt.Errorf("reading enforced TLS of account %d: %w", c.acting.ID, err)
	}
	return setting, nil
}

// putDomainPolicy creates (201) or replaces (200) the policy for the
// domain; the same PUT again changes nothing and answers 200.
func (s *Server) putDomainPolicy(ctx context.Context, r *http.Request, c *call) (int, []byte, error) {
	var problems []sealpost.FieldError
	domain, fe := pathDomain(r)
	if fe != nil {
		problems = append(problems, *fe)
	}
	policy, bodyProblems := parseDomainPolicy(c.body)
	problems = append(problems, bodyProblems...)
	if len(problems) > 0 {
		return 0, nil, sealpost.Invalid(problems...)
	}
	if err := checkUTF8(c.body); err != nil {
		return 0, nil, err
	}
	stored, created, err := s.store.PutDomainTLSPolicy(ctx, c.acting.ID, sealpost.DomainTLSPolicy{Domain: domain, Policy: policy})
	if err != nil {
		return 0, nil, fmt.Errorf("storing TLS policy for %s of account %d: %w", domain, c.acting.ID, err)
	}
	setting, err := s.accountSetting(ctx, c)
	if err != nil {
		return 0, nil, err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	return jsonResponse(status, newDomainPolicyBody(stored, setting))
}

func (s *Server) getDomainPolicy(ctx context.Context, r *http.Request, c *call) (int, []byte, error) {
	domain, fe := pathDomain(r)
	if fe != nil {
		return 0, nil, sealpost.Invalid(*fe)
	}
	p, err := s.store.DomainTLSPolicy(ctx, c.acting.ID, domain)
	if sealpost.ErrorCode(err) == sealpost.ENOTFOUND {
		return 0, nil, errNotFound
	}
	if err != nil {
		return 0, nil, fmt.Errorf("reading TLS policy for %s of account %d: %w", domain, c.acting.ID, err)
	}
	setting, err := s.accountSetting(ctx, c)
	if err != nil {
		return 0, nil, err
	}
	return jsonResponse(http.StatusOK, newDomainPolicyBody(*p, setting))
}

func (s *Server) listDomainPolicies(ctx context.Context, _ *http.Request, c *call) (int, []byte, error) {
	list, err := s.store.DomainTLSPolicies(ctx, c.acting.ID)
	if err != nil {
		return 0, nil, fmt.Errorf("listing TLS policies of account %d: %w", c.acting.ID, err)
	}
	setting, err := s.accountSetting(ctx, c)
	if err != nil {
		return 0, nil, err
	}
	out := domainPolicyList{Result: make([]domainPolicyBody, 0, len(list))}
	for _, p := range list {
		out.Result = append(out.Result, newDomainPolicyBody(p, setting))
	}
	return jsonResponse(http.StatusOK, out)
}

func (s *Server) deleteDomainPolicy(ctx context.Context, r *http.Request, c *call) (int, []byte, error) {
	domain, fe := pathDomain(r)
	if fe != nil {
		return 0, nil, sealpost.Invalid(*fe)
	}
	err := s.store.DeleteDomainTLSPolicy(ctx, c.acting.ID, domain)
	if sealpost.ErrorCode(err) == sealpost.ENOTFOUND {
		return 0, nil, errNotFound
	}
	if err != nil {
		return 0, nil, fmt.Errorf("deleting TLS policy for %s of account %d: %w", domain, c.acting.ID, err)
	}
	return http.StatusNoContent, nil, nil
}
