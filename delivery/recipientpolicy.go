package delivery

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/sealpost/sealpost"
)

// What recipients' own policies require of a delivery, on top of the
// account's setting. Each source only raises the requirement; one that
// cannot be read now defers the mail rather than let it go under less.

var (
	// mtastsRequirement is what an MTA-STS policy in enforce mode
	// requires of an MX host that matches it (RFC 8461 4.2, 5): STARTTLS,
	// and a certificate valid for the host under the Web PKI. Section 7.2
	// makes TLS 1.2 the version MTA-STS senders must support and points
	// to RFC 7525's guidance, which is not to negotiate TLS 1.0 or 1.1:
	// 1.2 is its floor.
	mtastsRequirement = sealpost.TLSRequirement{RequireTLS: true, RequireValidCert: true, Version: sealpost.TLS12}
	// daneRequirement is what usable TLSA records require (RFC 7672 2.2):
	// TLS, and a certificate that matches one of them. RFC 7672 sets no
	// version floor of its own; the default of the Enforced TLS setting
	// applies unless another source sets a higher one.
	daneRequirement = sealpost.TLSRequirement{RequireTLS: true, DANE: true, Version: sealpost.DefaultTLSVersion}
	// daneUnusableRequirement is what a DNSSEC-secure TLSA RRset with no
	// usable record requires (RFC 7672 2.2): TLS all the same, with
	// nothing to authenticate the certificate against, at DANE's floor.
	daneUnusableRequirement = sealpost.TLSRequirement{RequireTLS: true, Version: sealpost.DefaultTLSVersion}
)

const (
	mtastsEnforce = "enforce"
	mtastsTesting = "testing"
	mtastsNone    = "none"
)

// basePolicy is the requirement on every MX host of env.Domain before the
// domain's own policies: the account's setting raised by its policy for
// the domain. A domain policy that is not valid fails closed.
func basePolicy(policy sealpost.EnforcedTLS, env Envelope) (hostPolicy, *RecipientResult) {
	base := accountPolicy(policy)
	if env.DomainPolicy == nil {
		return base, nil
	}
	if !env.DomainPolicy.Version.Valid() {
		return base, &RecipientResult{Status: Deferred, EnhancedStatus: statusSystemFailure,
			Response: fmt.Sprintf("the account's TLS policy for %s is not valid (version %#04x)", env.Domain, uint16(env.DomainPolicy.Version))}
	}
	return base.with(sealpost.PolicySourceDomain, sealpost.RequirementOf(*env.DomainPolicy)), nil
}

// domainMTASTS is the MTA-STS policy that applies to mail for domain now:
// nil when there is none (or it is in mode none), or the result that
// defers the mail when it cannot be known or is not valid.
func (c *Client) domainMTASTS(ctx context.Context, domain string) (*sealpost.MTASTSPolicy, *RecipientResult) {
	if c.MTASTS == nil {
		return nil, nil
	}
	p, err := c.MTASTS.Policy(ctx, domain)
	if err != nil {
		return nil, &RecipientResult{Status: Deferred, EnhancedStatus: statusDirectoryFailure,
			Response: fmt.Sprintf("the MTA-STS policy of %s cannot be known now: %v", domain, err)}
	}
	if p == nil || p.Mode == mtastsNone {
		return nil, nil
	}
	if (p.Mode != mtastsEnforce && p.Mode != mtastsTesting) || len(p.MX) == 0 {
		return nil, &RecipientResult{Status: Deferred, EnhancedStatus: statusDirectoryFailure,
			Response: fmt.Sprintf("the MTA-STS policy of %s is not valid (mode %q, %d mx patterns)", domain, p.Mode, len(p.MX))}
	}
	return p, nil
}

// policyForHost raises base by what the domain's MTA-STS policy (sts) and
// DANE require of host. When the host may not be used, it returns the
// outcome instead: a policy failure for a host an enforced MTA-STS policy
// does not list, a transient one when DANE cannot be known for it.
func (c *Client) policyForHost(ctx context.Context, base hostPolicy, sts *sealpost.MTASTSPolicy, domain string, host mxHost) (hostPolicy, *outcome) {
	pol := base
	daneUnusable := false
	if c.DANE != nil {
		dp, err := c.DANE.HostPolicy(ctx, domain, host.name)
		if err != nil {
			facts := sealpost.TLSFacts{MXHost: host.name, ResultType: sealpost.ResultDNSSECInvalid}
			pol.stamp(&facts)
			facts.PolicySource = string(sealpost.PolicySourceDANE)
			return pol, &outcome{kind: outcomeTransient, facts: facts, result: RecipientResult{Status: Deferred, EnhancedStatus: statusDirectoryFailure,
				Response: fmt.Sprintf("DANE TLSA lookup for MX host %s failed: %v", host.name, err)}}
		}
		if dp != nil && len(dp.Records) > 0 {
			// Usable TLSA records replace MTA-STS for this host (RFC 8461
			// 2); the account's and the domain's requirements still hold.
			pol = pol.with(sealpost.PolicySourceDANE, daneRequirement)
			pol.dane = dp
			return pol, nil
		}
		// Records that authenticate nothing replace nothing either: an
		// enforced MTA-STS policy still asks for its valid certificate.
		daneUnusable = dp != nil
	}
	unlisted := false
	if sts != nil {
		pol.mtasts = sts.Mode
		listed := mtastsListed(sts.MX, host.name)
		if sts.Mode == mtastsTesting {
			req := mtastsRequirement
			pol.testing = &req
			pol.testingUnlisted = !listed
		} else {
			pol = pol.with(sealpost.PolicySourceMTASTS, mtastsRequirement)
			unlisted = !listed
		}
	}
	if daneUnusable {
		pol = pol.with(sealpost.PolicySourceDANE, daneUnusableRequirement)
	}
	if unlisted {
		facts := sealpost.TLSFacts{MXHost: host.name}
		pol.stamp(&facts)
		facts.ResultType = sealpost.ResultValidationFailure
		facts.PolicySource = string(sealpost.PolicySourceMTASTS)
		return pol, &outcome{kind: outcomePolicy, cause: sealpost.PolicySourceMTASTS, facts: facts, result: RecipientResult{Status: Blocked,
			EnhancedStatus: sealpost.BlockedStatus, Response: host.name + ": not an MX host the domain's MTA-STS policy lists"}}
	}
	return pol, nil
}

// mtastsListed reports whether host matches one of an MTA-STS policy's mx
// patterns (RFC 8461 4.1): the name itself, or "*." and a parent domain
// matching exactly one more label on the left. Case does not matter.
func mtastsListed(patterns []string, host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, p := range patterns {
		p = strings.ToLower(strings.TrimSuffix(p, "."))
		if parent, ok := strings.CutPrefix(p, "*."); ok {
			label, rest, found := strings.Cut(host, ".")
			if found && label != "" && rest == parent {
				return true
			}
			continue
		}
		if p == host {
			return true
		}
	}
	return false
}

// confirmMTASTS is asked when mail would be blocked for failing domain's
// MTA-STS policy used: RFC 8461 5 forbids failing it permanently before
// checking for a newer policy, and asks that such failures be treated as
// transient. So the policy is fetched afresh every time, and the mail is
// deferred on its first attempt (attempt 0) whatever comes back; on a
// later one it is blocked only when the fresh copy is the policy that
// failed. Otherwise the mail waits for an attempt under the new policy (or
// for the policy to be reachable), and why says so.
func (c *Client) confirmMTASTS(ctx context.Context, domain string, used *sealpost.MTASTSPolicy, attempt int) (block bool, why string) {
	fresh, err := c.MTASTS.Refresh(ctx, domain)
	switch {
	case err != nil:
		return false, fmt.Sprintf("no MX host of %s meets its MTA-STS policy, and refreshing the policy failed: %v", domain, err)
	case !sameMTASTS(fresh, used):
		return false, fmt.Sprintf("no MX host of %s met its MTA-STS policy, which has since changed; the next attempt applies the new one", domain)
	case attempt == 0:
		return false, fmt.Sprintf("no MX host of %s meets its MTA-STS policy (fetched afresh); deferred once before the mail is blocked", domain)
	}
	return true, ""
}

func sameMTASTS(a, b *sealpost.MTASTSPolicy) bool {
	if a == nil || b == nil {
		return a == b
	}
	norm := func(mx []string) []string {
		out := make([]string, len(mx))
		for i, m := range mx {
			out[i] = strings.ToLower(strings.TrimSuffix(m, "."))
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	return a.Mode == b.Mode && slices.Equal(norm(a.MX), norm(b.MX))
}
