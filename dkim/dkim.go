// Package dkim signs outgoing mail with the sending account's authenticated
// domains (RFC 6376; Ed25519 keys per RFC 8463), using go-msgauth.
package dkim

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"net/mail"
	"net/textproto"
	"strings"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/sealpost/sealpost"
)

// Domains gives an account's authenticated domains and the one its parent
// assigned it; the store is one.
type Domains = sealpost.SendingDomainsReader

// Signer signs a message with the sending account's validated domain
// that covers its From domain (or a parent of it), else with its validated
// default, else with the domain its parent assigned it
// (sealpost.SigningDomainFor).
type Signer struct {
	Domains Domains
}

// signedHeaders are the fields RFC 6376 5.4.1 recommends signing, with the
// MIME fields a receiver needs to read the body as it was sent.
var signedHeaders = []string{
	"From", "Reply-To", "Subject", "Date", "To", "Cc",
	"Resent-Date", "Resent-From", "Resent-To", "Resent-Cc",
	"In-Reply-To", "References", "Message-ID",
	"List-Id", "List-Help", "List-Unsubscribe", "List-Subscribe", "List-Post", "List-Owner", "List-Archive",
	"MIME-Version", "Content-Type", "Content-Transfer-Encoding",
}

// Sign returns message with a DKIM-Signature field prepended and the
// domain it signed for, or message itself and nil when the account has no
// validated domain to sign it with.
func (s *Signer) Sign(ctx context.Context, accountID int64, message []byte) ([]byte, *sealpost.AuthenticatedDomain, error) {
	own, assigned, err := sealpost.SendingDomains(ctx, s.Domains, accountID)
	if err != nil {
		return nil, nil, err
	}
	if len(own) == 0 && assigned == nil {
		// Most accounts sign nothing: their messages are not parsed at all.
		return message, nil, nil
	}
	header, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(message))).ReadMIMEHeader()
	if err != nil {
		return nil, nil, fmt.Errorf("reading the message header: %w", err)
	}
	fromDomain := FromDomain(header.Get("From"))
	if fromDomain == "" {
		return message, nil, nil
	}
	d := sealpost.SigningDomainFor(own, assigned, fromDomain)
	if d == nil {
		return message, nil, nil
	}
	key, err := x509.ParsePKCS8PrivateKey(d.PrivateKey)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the DKIM key of %s: %w", d.Domain, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, nil, fmt.Errorf("DKIM key of %s cannot sign (%T)", d.Domain, key)
	}
	var keys []string
	for _, k := range signedHeaders {
		for range header.Values(k) {
			keys = append(keys, k)
		}
	}
	// From once more than it occurs: a From added in transit breaks the
	// signature instead of being shown to the reader (RFC 6376 8.15).
	keys = append(keys, "From")
	var signed bytes.Buffer
	err = dkim.Sign(&signed, bytes.NewReader(message), &dkim.SignOptions{
		Domain:                 d.Domain,
		Selector:               d.Selector,
		Signer:                 signer,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed,
		BodyCanonicalization:   dkim.CanonicalizationRelaxed,
		HeaderKeys:             keys,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("DKIM-signing for %s: %w", d.Domain, err)
	}
	return signed.Bytes(), d, nil
}

// FromDomain is the lower-case domain of the first address of a From
// field, or "" when there is none.
func FromDomain(from string) string {
	if from == "" {
		return ""
	}
	addrs, err := (&mail.AddressParser{WordDecoder: nil}).ParseList(from)
	if err != nil || len(addrs) == 0 {
		return ""
	}
	at := strings.LastIndexByte(addrs[0].Address, '@')
	if at < 0 {
		return ""
	}
	return strings.ToLower(addrs[0].Address[at+1:])
}
