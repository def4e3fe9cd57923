package sealpost

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"strings"
	"time"
)

// Domain authentication (SendGrid's "whitelabel" domains): an account proves
// it controls a sending domain by publishing the DKIM key sealpost made for
// it, and mail whose From is in that domain is then DKIM-signed.

// DKIM key algorithms (RFC 6376 k= tag; ed25519 is RFC 8463).
const (
	DKIMKeyRSA     = "rsa"
	DKIMKeyEd25519 = "ed25519"
)

// DKIMSelector is the selector of every key sealpost makes. One key per
// authenticated domain; the selector names sealpost so that it does not
// collide with another sender's record for the same domain.
const DKIMSelector = "sealpost"

// AuthenticatedDomain is one domain an account may sign mail for.
type AuthenticatedDomain struct {
	ID        int64
	AccountID int64
	// Domain is normalised like a recipient domain (NormalizeDomain).
	Domain string
	// Subdomain is SendGrid's return-path subdomain; sealpost stores and
	// shows it but signs with Domain.
	Subdomain string
	Default   bool
	// AutomaticSecurity is always false: sealpost runs no DNS of its own
	// for CNAMEs to point at, so the records are published by the owner.
	AutomaticSecurity bool
	// Valid: the published record was last found matching the key.
	Valid        bool
	Selector     string
	KeyAlgorithm string // DKIMKeyRSA or DKIMKeyEd25519
	// PrivateKey is PKCS#8 DER, kept like the webhook signing keys.
	PrivateKey []byte
	CreatedAt  time.Time
}

// DKIMHost is the DNS name the key's TXT record is published at.
func (d AuthenticatedDomain) DKIMHost() string {
	return d.Selector + "._domainkey." + d.Domain
}

// DKIMRecord is the TXT record to publish at DKIMHost.
func (d AuthenticatedDomain) DKIMRecord() (string, error) {
	return DKIMRecord(d.KeyAlgorithm, d.PrivateKey)
}

// AuthenticatedDomainService keeps accounts' authenticated domains.
type AuthenticatedDomainService interface {
	// CreateAuthenticatedDomain stores d for the account; a domain the
	// account has already authenticated is an ECONFLICT error. A default
	// domain takes the default from the account's others.
	CreateAuthenticatedDomain(ctx context.Context, accountID int64, d AuthenticatedDomain) (AuthenticatedDomain, error)
	// AuthenticatedDomain returns one of the account's domains, or ENOTFOUND.
	AuthenticatedDomain(ctx context.Context, accountID, id int64) (*AuthenticatedDomain, error)
	// AuthenticatedDomains lists the account's domains by id.
	AuthenticatedDomains(ctx context.Context, accountID int64) ([]AuthenticatedDomain, error)
	DeleteAuthenticatedDomain(ctx context.Context, accountID, id int64) error
	// SetAuthenticatedDomainValid records the result of a validation.
	SetAuthenticatedDomainValid(ctx context.Context, accountID, id int64, valid bool) error
}

// NewAuthenticatedDomain checks a request and makes the key: algorithm ""
// means RSA-2048.
func NewAuthenticatedDomain(domain, subdomain string, isDefault bool, algorithm string) (AuthenticatedDomain, error) {
	var fields []FieldError
	norm, err := NormalizeDomain(domain)
	if err != nil {
		fields = append(fields, FieldError{Field: "domain", Message: err.Error()})
	}
	if subdomain != "" {
		if _, err := NormalizeDomain(subdomain + ".example"); err != nil || strings.Contains(subdomain, ".") {
			fields = append(fields, FieldError{Field: "subdomain", Message: "subdomain must be one DNS label"})
		}
	}
	if algorithm == "" {
		algorithm = DKIMKeyRSA
	}
	if algorithm != DKIMKeyRSA && algorithm != DKIMKeyEd25519 {
		fields = append(fields, FieldError{Field: "key_algorithm", Message: "key_algorithm must be rsa or ed25519"})
	}
	if len(fields) > 0 {
		return AuthenticatedDomain{}, Invalid(fields...)
	}
	key, err := GenerateDKIMKey(algorithm)
	if err != nil {
		return AuthenticatedDomain{}, err
	}
	return AuthenticatedDomain{
		Domain: norm, Subdomain: strings.ToLower(subdomain), Default: isDefault,
		Selector: DKIMSelector, KeyAlgorithm: algorithm, PrivateKey: key,
	}, nil
}

// GenerateDKIMKey makes a private key, PKCS#8 DER: RSA-2048, the size
// receivers expect (RFC 8301 requires at least 1024), or Ed25519.
func GenerateDKIMKey(algorithm string) ([]byte, error) {
	var key any
	var err error
	switch algorithm {
	case DKIMKeyRSA:
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	case DKIMKeyEd25519:
		_, key, err = ed25519.GenerateKey(rand.Reader)
	default:
		return nil, fmt.Errorf("unknown DKIM key algorithm %q", algorithm)
	}
	if err != nil {
		return nil, fmt.Errorf("generating DKIM key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encoding DKIM key: %w", err)
	}
	return der, nil
}

// DKIMRecord is the TXT record that publishes the public half of a PKCS#8
// private key: for RSA the SubjectPublicKeyInfo (RFC 6376 3.6.1), for
// Ed25519 the raw 32-byte key (RFC 8463 4.2).
func DKIMRecord(algorithm string, privatePKCS8 []byte) (string, error) {
	key, err := x509.ParsePKCS8PrivateKey(privatePKCS8)
	if err != nil {
		return "", fmt.Errorf("reading DKIM key: %w", err)
	}
	var pub []byte
	switch k := key.(type) {
	case *rsa.PrivateKey:
		pub, err = x509.MarshalPKIXPublicKey(&k.PublicKey)
		if err != nil {
			return "", fmt.Errorf("encoding DKIM public key: %w", err)
		}
	case ed25519.PrivateKey:
		pub = k.Public().(ed25519.PublicKey)
	default:
		return "", fmt.Errorf("unsupported DKIM key type %T", key)
	}
	return "v=DKIM1; k=" + algorithm + "; p=" + base64.StdEncoding.EncodeToString(pub), nil
}

// SigningDomain picks the domain to sign mail from fromDomain with: the
// validated one that is fromDomain or its closest parent, or nil.
func SigningDomain(domains []AuthenticatedDomain, fromDomain string) *AuthenticatedDomain {
	fromDomain = strings.ToLower(strings.TrimSuffix(fromDomain, "."))
	var best *AuthenticatedDomain
	for i := range domains {
		d := &domains[i]
		if !d.Valid || !domainWithin(fromDomain, d.Domain) {
			continue
		}
		if best == nil || len(d.Domain) > len(best.Domain) {
			best = d
		}
	}
	return best
}

// AuthenticatedFor reports whether fromDomain is one of the validated
// domains or within one. An unvalidated domain proves nothing: anyone can
// create one for any name.
func AuthenticatedFor(domains []AuthenticatedDomain, fromDomain string) bool {
	return SigningDomain(domains, fromDomain) != nil
}

func domainWithin(name, parent string) bool {
	return name == parent || strings.HasSuffix(name, "."+parent)
}

// DKIMRecordMatches reports whether a published TXT record carries the
// same key as want: tags compared, whitespace ignored (RFC 6376 3.2), k=
// defaulting to rsa.
func DKIMRecordMatches(published, want string) bool {
	p, w := dkimTags(published), dkimTags(want)
	if p["v"] != "" && p["v"] != "DKIM1" {
		return false
	}
	if p["k"] == "" {
		p["k"] = DKIMKeyRSA
	}
	return p["p"] != "" && p["p"] == w["p"] && p["k"] == w["k"]
}

func dkimTags(record string) map[string]string {
	tags := map[string]string{}
	for _, part := range strings.Split(record, ";") {
		name, value, ok := strings.Cut(part, "=")
		if !ok {
			continue
		}
		tags[strings.TrimSpace(name)] = strings.Join(strings.Fields(value), "")
	}
	return tags
}
