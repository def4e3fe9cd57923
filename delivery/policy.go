package delivery

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/sealpost/sealpost"
)

// certCheck is what verifying the server's certificate found. crypto/tls
// fills it during the handshake through VerifyConnection.
type certCheck struct {
	done bool
	err  error
	// daneDone: the certificate was matched against the host's TLSA
	// records; daneErr is why it did not match.
	daneDone bool
	daneErr  error
}

// tlsConfig returns the STARTTLS client configuration for serverName (the MX
// host as found in DNS) under the host's effective policy.
//
// crypto/tls's own verification is always off: ours runs in
// VerifyConnection instead, so that an opportunistic or require_tls session
// still learns whether the certificate was valid and why not (for the
// event's facts), while only a required check (require_valid_cert, DANE)
// makes a failure end the handshake. The Web PKI check is the one
// crypto/tls would make: the peer's chain to RootCAs at now, for
// serverName.
func tlsConfig(pol hostPolicy, serverName string, roots *x509.CertPool, now func() time.Time, verifyDANE daneVerifier, check *certCheck) *tls.Config {
	req := pol.req
	cfg := &tls.Config{
		ServerName:         serverName,
		RootCAs:            roots,
		InsecureSkipVerify: true, // verification is ours: see VerifyConnection
		Time:               now,
	}
	if req.Mandatory() {
		cfg.MinVersion = uint16(req.Version)
		if cfg.MinVersion < tls.VersionTLS12 {
			// Go enables TLS 1.0 and 1.1 only when asked; the suites it
			// considers secure all work at TLS 1.1 (ECDHE with AES-CBC-SHA),
			// so a 1.1-only server can be reached without any GODEBUG.
			cfg.CipherSuites = secureSuites()
		}
	} else {
		// Opportunistic: any TLS beats the plaintext we would fall back to,
		// so offer every version and every suite Go implements except RC4.
		cfg.MinVersion = tls.VersionTLS10
		cfg.CipherSuites = opportunisticSuites()
	}
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		check.done = true
		check.err = verifyPeer(cs, serverName, roots, now())
		if pol.dane != nil {
			check.daneDone = true
			check.daneErr = verifyDANE(cs.PeerCertificates, pol.dane.Records, pol.dane.Names, now())
		}
		if check.err != nil && req.RequireValidCert {
			return check.err
		}
		if req.DANE {
			if !check.daneDone {
				return errors.New("DANE required but no TLSA records to match the certificate against")
			}
			if check.daneErr != nil {
				return fmt.Errorf("certificate matches no TLSA record: %w", check.daneErr)
			}
		}
		return nil
	}
	return cfg
}

// daneVerifier matches a server's chain against TLSA records;
// sealpost.VerifyDANE is the one delivery uses.
type daneVerifier func(chain []*x509.Certificate, records []sealpost.TLSARecord, names []string, now time.Time) error

// verifyPeer is crypto/tls's server certificate verification.
func verifyPeer(cs tls.ConnectionState, serverName string, roots *x509.CertPool, now time.Time) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("server presented no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
		DNSName:       serverName,
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	return err
}

// certResultType maps a verification error to its RFC 8460 result type.
func certResultType(err error) string {
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	var unknown x509.UnknownAuthorityError
	switch {
	case errors.As(err, &host):
		return sealpost.ResultCertificateHostMismatch
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return sealpost.ResultCertificateExpired
	case errors.As(err, &unknown):
		return sealpost.ResultCertificateNotTrusted
	}
	return sealpost.ResultValidationFailure
}

func secureSuites() []uint16 {
	var ids []uint16
	for _, s := range tls.CipherSuites() {
		ids = append(ids, s.ID)
	}
	return ids
}

func opportunisticSuites() []uint16 {
	ids := secureSuites()
	for _, s := range tls.InsecureCipherSuites() {
		switch s.ID {
		case tls.TLS_RSA_WITH_RC4_128_SHA, tls.TLS_ECDHE_ECDSA_WITH_RC4_128_SHA, tls.TLS_ECDHE_RSA_WITH_RC4_128_SHA:
			continue
		}
		ids = append(ids, s.ID)
	}
	return ids
}

// versionName is the spelling of TLSFacts.Version: "1.0" ... "1.3".
func versionName(v uint16) string {
	switch v {
	case tls.VersionTLS10:
		return "1.0"
	case tls.VersionTLS11:
		return "1.1"
	case tls.VersionTLS12:
		return "1.2"
	case tls.VersionTLS13:
		return "1.3"
	}
	return tls.VersionName(v)
}

// seenOf is what a session showed of its TLS, in the terms of the
// decision table.
func seenOf(step sealpost.TLSStep, cs *tls.ConnectionState, check certCheck, interrupted bool) sealpost.TLSSeen {
	v := sealpost.TLSSeen{Step: step, CertChecked: check.done, DANEChecked: check.daneDone, Interrupted: interrupted}
	if check.err != nil {
		v.CertResult = certResultType(check.err)
	}
	if check.daneErr != nil {
		v.DANEResult = sealpost.ResultTLSAInvalid
	}
	if cs != nil && cs.HandshakeComplete {
		v.Version = sealpost.TLSVersion(cs.Version)
	}
	return v
}
