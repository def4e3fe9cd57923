package sealpost

import (
	"context"
	"crypto/x509"
	"errors"
	"time"
)

// Recipients' own TLS policies. The effective requirement for a delivery is
// the strongest of several sources; each can only raise it, never lower it.

// PolicySource names where a TLS requirement on a delivery came from.
type PolicySource string

const (
	PolicySourceAccount PolicySource = "account" // the account's Enforced TLS setting
	PolicySourceDomain  PolicySource = "domain"  // the account's policy for the recipient domain
	PolicySourceMTASTS  PolicySource = "mta-sts" // the recipient domain's MTA-STS policy (RFC 8461)
	PolicySourceDANE    PolicySource = "dane"    // the MX host's DNSSEC-signed TLSA records (RFC 7672)
)

// DomainTLSPolicy is an account's own Enforced TLS rule for mail to one
// recipient domain. It can only raise the account's setting: a weaker one
// is kept but has no effect.
type DomainTLSPolicy struct {
	// Domain is normalised: lower-case ASCII (IDNA A-labels), no trailing dot.
	Domain    string
	Policy    EnforcedTLS
	CreatedAt time.Time
	UpdatedAt time.Time
}

// DomainTLSPolicyService keeps accounts' per-domain policies.
type DomainTLSPolicyService interface {
	// PutDomainTLSPolicy creates or replaces the policy for p.Domain;
	// created reports that there was none.
	PutDomainTLSPolicy(ctx context.Context, accountID int64, p DomainTLSPolicy) (stored DomainTLSPolicy, created bool, err error)
	// DomainTLSPolicy returns the policy for domain, or an ENOTFOUND error.
	DomainTLSPolicy(ctx context.Context, accountID int64, domain string) (*DomainTLSPolicy, error)
	// DomainTLSPolicies lists the account's policies by domain.
	DomainTLSPolicies(ctx context.Context, accountID int64) ([]DomainTLSPolicy, error)
	// DeleteDomainTLSPolicy removes the policy for domain, or answers ENOTFOUND.
	DeleteDomainTLSPolicy(ctx context.Context, accountID int64, domain string) error
}

// TLSARecord is one DNS TLSA record (RFC 6698) as DANE for SMTP uses it.
type TLSARecord struct {
	Usage        uint8 // 2: DANE-TA, 3: DANE-EE; others are unusable for SMTP (RFC 7672 3.1.3)
	Selector     uint8 // 0: full certificate, 1: SubjectPublicKeyInfo
	MatchingType uint8 // 0: exact, 1: SHA-256, 2: SHA-512
	Data         []byte
}

// TLSA record fields that DANE for SMTP uses.
const (
	TLSAUsageDANETA    = 2
	TLSAUsageDANEEE    = 3
	TLSASelectorCert   = 0
	TLSASelectorSPKI   = 1
	TLSAMatchingFull   = 0
	TLSAMatchingSHA256 = 1
	TLSAMatchingSHA512 = 2
)

// ErrDANENotImplemented is what VerifyDANE answers until certificate
// matching exists; it fails closed.
var ErrDANENotImplemented = errors.New("DANE certificate matching is not implemented")

// VerifyDANE checks the server's certificate chain (leaf first, as
// presented) against usable TLSA records per RFC 7672: DANE-EE(3) matches
// the leaf with no name or expiry check; DANE-TA(2) matches a certificate
// of the chain as trust anchor, then the leaf must chain to it, be valid at
// now and carry one of names. nil means the server is authenticated.
func VerifyDANE(chain []*x509.Certificate, records []TLSARecord, names []string, now time.Time) error {
	return ErrDANENotImplemented
}
