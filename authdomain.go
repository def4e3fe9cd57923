package sealpost

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	mathrand "math/rand/v2"
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

// DKIMSelector is the selector of the keys sealpost makes unless the owner
// gives a custom_dkim_selector. One key per authenticated domain; the
// selector names sealpost so that it does not collide with another
// sender's record for the same domain.
const DKIMSelector = "sealpost"

// AuthenticatedDomain is one domain an account may sign mail for.
type AuthenticatedDomain struct {
	ID        int64
	AccountID int64
	// Domain is normalised like a recipient domain (NormalizeDomain).
	Domain string
	// Subdomain is SendGrid's return-path subdomain: signed mail's
	// envelope sender is at Subdomain.Domain (ReturnPathHost).
	Subdomain string
	// Default: the account's fallback for mail whose From no authenticated
	// domain covers (SigningDomainFor). One per account at most.
	Default bool
	// CustomSPF: the owner keeps the root domain's SPF record, so sealpost
	// shows one for it too, including the return path's (SendGrid's
	// domain_spf), and a strict (-all) one for the return path.
	CustomSPF bool
	// AutomaticSecurity is always false: sealpost runs no DNS of its own
	// for CNAMEs to point at, so the records are published by the owner.
	AutomaticSecurity bool
	// Valid: the published record was last found matching the key.
	Valid bool
	// ReturnPathValid: the return path's MX and SPF records were last found
	// as shown; only then is the envelope sender moved there, since
	// receivers refuse a sender domain that does not resolve.
	ReturnPathValid bool
	// Selector is DKIMSelector or the owner's custom_dkim_selector.
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

// ReturnPathHost is the domain of signed mail's envelope sender: the
// subdomain's name, "" for a domain without one (none is stored so).
func (d AuthenticatedDomain) ReturnPathHost() string {
	if d.Subdomain == "" {
		return ""
	}
	return d.Subdomain + "." + d.Domain
}

// ReturnPathSPF is the SPF record to publish at ReturnPathHost: it
// authorises the addresses of sealpost's host name (--helo-hostname),
// from which it delivers. A custom SPF is strict, as SendGrid's is.
func (d AuthenticatedDomain) ReturnPathSPF(hostname string) string {
	all := "~all"
	if d.CustomSPF {
		all = "-all"
	}
	return "v=spf1 a:" + hostname + " " + all
}

// DomainSPF is the root domain's SPF record a CustomSPF owner publishes:
// its own mechanisms, plus the return path's.
func (d AuthenticatedDomain) DomainSPF() string {
	return "v=spf1 include:" + d.ReturnPathHost() + " -all"
}

// SPFRecordMatches reports whether a published TXT record is the SPF
// record want, spacing and case aside.
func SPFRecordMatches(published, want string) bool {
	return strings.EqualFold(strings.Join(strings.Fields(published), " "), want)
}

// EnvelopeSender is the MAIL FROM of a message signed for d: a bounce
// address at the return path in SendGrid's form
// (bounces+...@em1234.example.com), the account and message ids naming
// what a bounce is about; "" while the return path's records are not
// validated, and the mail send's sender is kept.
func (d AuthenticatedDomain) EnvelopeSender(accountID, messageID int64) string {
	if d.ReturnPathHost() == "" || !d.ReturnPathValid {
		return ""
	}
	return fmt.Sprintf("bounces+%d-%d@%s", accountID, messageID, d.ReturnPathHost())
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
	// SetReturnPathValid records whether the return path's MX and SPF
	// records were found as shown.
	SetReturnPathValid(ctx context.Context, accountID, id int64, valid bool) error
	// UpdateAuthenticatedDomain applies u to one of the account's domains,
	// or fails with ENOTFOUND. Making it the default takes the default
	// from the account's others in the same transaction.
	UpdateAuthenticatedDomain(ctx context.Context, accountID, id int64, u AuthenticatedDomainUpdate) (*AuthenticatedDomain, error)

	// AssociateAuthenticatedDomain assigns parentID's domain domainID to
	// parentID's subuser subuserID, in place of the one it had. ENOTFOUND
	// when the domain is not parentID's or subuserID not its child.
	AssociateAuthenticatedDomain(ctx context.Context, parentID, domainID, subuserID int64) (*AuthenticatedDomain, error)
	// AssociatedAuthenticatedDomain is the domain assigned to subuserID,
	// or ENOTFOUND.
	AssociatedAuthenticatedDomain(ctx context.Context, subuserID int64) (*AuthenticatedDomain, error)
	// DisassociateAuthenticatedDomain takes subuserID's assigned domain
	// away, or fails with ENOTFOUND when it has none.
	DisassociateAuthenticatedDomain(ctx context.Context, subuserID int64) error
}

// AuthenticatedDomainUpdate is a PATCH: nil members are left as they are.
type AuthenticatedDomainUpdate struct {
	Default   *bool
	CustomSPF *bool
}

// AuthenticatedDomainRequest is what an account asks to authenticate.
type AuthenticatedDomainRequest struct {
	Domain string
	// Subdomain is the return path's label; "" makes one as SendGrid
	// does (em and four digits).
	Subdomain string
	Default   bool
	CustomSPF bool
	// Selector is SendGrid's custom_dkim_selector: three letters or
	// digits; "" is DKIMSelector.
	Selector string
	// KeyAlgorithm "" is RSA-2048.
	KeyAlgorithm string
}

// Make checks the request and makes the key.
func (n AuthenticatedDomainRequest) Make() (AuthenticatedDomain, error) {
	var fields []FieldError
	norm, err := NormalizeDomain(n.Domain)
	if err != nil {
		fields = append(fields, FieldError{Field: "domain", Message: err.Error()})
	}
	subdomain := strings.ToLower(n.Subdomain)
	if subdomain == "" {
		subdomain = fmt.Sprintf("em%04d", mathrand.N(10000))
	} else if _, err := NormalizeDomain(subdomain + ".example"); err != nil || strings.Contains(subdomain, ".") {
		fields = append(fields, FieldError{Field: "subdomain", Message: "subdomain must be one DNS label"})
	}
	selector := strings.ToLower(n.Selector)
	if selector == "" {
		selector = DKIMSelector
	} else if !validCustomSelector(selector) {
		fields = append(fields, FieldError{Field: "custom_dkim_selector", Message: "custom_dkim_selector must be three letters or numbers"})
	}
	algorithm := n.KeyAlgorithm
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
		Domain: norm, Subdomain: subdomain, Default: n.Default, CustomSPF: n.CustomSPF,
		Selector: selector, KeyAlgorithm: algorithm, PrivateKey: key,
	}, nil
}

// validCustomSelector: SendGrid takes exactly three ASCII letters or
// digits.
func validCustomSelector(s string) bool {
	if len(s) != 3 {
		return false
	}
	for _, c := range s {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
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

// SigningDomainFor picks the domain mail from fromDomain is signed with,
// in SendGrid's order: the account's own validated domain covering
// fromDomain, else its own validated default; then the domain its parent
// assigned it (assigned, nil for none), if validated: first when it
// covers fromDomain, then as the subuser's default. Else nil. Signed with
// a default, the signature's d= is not From's domain: such mail passes
// DKIM but not DMARC alignment, as on SendGrid.
func SigningDomainFor(own []AuthenticatedDomain, assigned *AuthenticatedDomain, fromDomain string) *AuthenticatedDomain {
	if d := SigningDomain(own, fromDomain); d != nil {
		return d
	}
	for i := range own {
		if own[i].Default && own[i].Valid {
			return &own[i]
		}
	}
	if assigned != nil && assigned.Valid {
		return assigned
	}
	return nil
}

// SendingDomainsReader is the part of AuthenticatedDomainService that
// SendingDomains reads.
type SendingDomainsReader interface {
	AuthenticatedDomains(ctx context.Context, accountID int64) ([]AuthenticatedDomain, error)
	AssociatedAuthenticatedDomain(ctx context.Context, subuserID int64) (*AuthenticatedDomain, error)
}

// SendingDomains reads the domains accountID's mail may be signed with:
// its own, and the one its parent assigned it (nil for none).
func SendingDomains(ctx context.Context, r SendingDomainsReader, accountID int64) (own []AuthenticatedDomain, assigned *AuthenticatedDomain, err error) {
	own, err = r.AuthenticatedDomains(ctx, accountID)
	if err != nil {
		return nil, nil, fmt.Errorf("reading authenticated domains: %w", err)
	}
	assigned, err = r.AssociatedAuthenticatedDomain(ctx, accountID)
	if ErrorCode(err) == ENOTFOUND {
		return own, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("reading the assigned authenticated domain: %w", err)
	}
	return own, assigned, nil
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
