package delivery

import (
	"context"

	"github.com/sealpost/sealpost"
)

// Sources of recipients' TLS requirements beyond the account's setting.
// Each is optional; a nil source is off. Every source can only raise the
// requirement of a delivery, never lower it.

// DomainPolicies gives an account's own policy for a recipient domain.
type DomainPolicies interface {
	// DomainTLSPolicy returns the account's policy for domain, or an error
	// with code ENOTFOUND when it has none. Any other error: the policy
	// cannot be known now, and nothing may be sent (fail closed).
	DomainTLSPolicy(ctx context.Context, accountID int64, domain string) (*sealpost.DomainTLSPolicy, error)
}

// MTASTSSource gives recipient domains' MTA-STS policies (RFC 8461).
type MTASTSSource interface {
	// Policy returns the policy that applies to mail for domain now: nil
	// when the domain publishes none (or mode none), or when no policy was
	// ever fetched and fetching fails (RFC 8461 5: deliver as though the
	// domain had none). A cached, unexpired policy is used while the domain
	// cannot be reached. An error means it cannot be known: defer.
	Policy(ctx context.Context, domain string) (*sealpost.MTASTSPolicy, error)
	// Refresh fetches the policy afresh, past the cache, as RFC 8461 5
	// requires before a failure under enforce becomes permanent.
	Refresh(ctx context.Context, domain string) (*sealpost.MTASTSPolicy, error)
}

// DANESource gives the DANE requirements of MX hosts (RFC 7672), from
// DNSSEC-validated lookups.
type DANESource interface {
	// HostPolicy returns what DANE requires of mxHost, one of domain's MX
	// hosts: nil when DANE does not apply (the MX or address records are
	// not DNSSEC-secure, or there are no TLSA records, or they are not
	// secure); a policy without records when the host's TLSA records are
	// secure but none is usable. An error means the lookup failed or was
	// bogus: the host may not be used now.
	HostPolicy(ctx context.Context, domain, mxHost string) (*DANEPolicy, error)
}

// DANEPolicy is what DANE requires of one MX host.
type DANEPolicy struct {
	// Records are the host's usable TLSA records, which the certificate
	// must match. Empty: the host has a DNSSEC-secure TLSA RRset whose
	// records are all unusable (PKIX-TA/PKIX-EE, an unknown selector or
	// matching type, a digest of the wrong length), and RFC 7672 2.2
	// still requires TLS of it, unauthenticated: STARTTLS at the version
	// floor, with no certificate check of DANE's own.
	Records []sealpost.TLSARecord
	// Names are the reference identifiers a DANE-TA certificate must carry
	// (RFC 7672 3.2.2): the MX host name, as found secure.
	Names []string
}

// MessageSigner adds a DKIM signature to a rendered message when the
// sending account has a domain to sign it with, and returns that domain;
// otherwise it returns the message as it is and nil.
type MessageSigner interface {
	Sign(ctx context.Context, accountID int64, message []byte) ([]byte, *sealpost.AuthenticatedDomain, error)
}
