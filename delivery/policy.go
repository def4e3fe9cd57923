package delivery

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"time"

	"github.com/sealpost/sealpost"
)

// certCheck is what verifying the server's certificate found. crypto/tls
// fills it during the handshake through VerifyConnection.
type certCheck struct {
	done bool
	err  error
}

// tlsConfig returns the STARTTLS client configuration for serverName (the MX
// host as found in DNS) under policy.
//
// crypto/tls's own verification is always off: ours runs in
// VerifyConnection instead, so that an opportunistic or require_tls session
// still learns whether the certificate was valid and why not (for the
// event's facts), while only require_valid_cert makes a failed verification
// end the handshake. The check is the one crypto/tls would make: the peer's
// chain to RootCAs at now, for serverName.
func tlsConfig(policy sealpost.EnforcedTLS, serverName string, roots *x509.CertPool, now func() time.Time, check *certCheck) *tls.Config {
	cfg := &tls.Config{
		ServerName:         serverName,
		RootCAs:            roots,
		InsecureSkipVerify: true, // verification is ours: see VerifyConnection
		Time:               now,
	}
	if policy.Mandatory() {
		cfg.MinVersion = uint16(policy.Version)
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
		if check.err != nil && policy.RequireValidCert {
			return check.err
		}
		return nil
	}
	return cfg
}

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

// hostTLS is what an MX host showed of its TLS in one session, as far as
// the Enforced TLS decision goes.
type hostTLS struct {
	starttls bool   // EHLO succeeded and offered STARTTLS
	refused  bool   // the server answered STARTTLS with something but 220
	version  uint16 // the negotiated version; 0 when no handshake completed
	// certChecked: the certificate was verified (the handshake got that
	// far); certErr is why it is not valid, nil when it is.
	certChecked bool
	certErr     error
}

// policyFailure is the Enforced TLS decision: the RFC 8460 result type for
// which a host showing h fails policy, or "" when mail may go to it.
// Delivery's sessions and the probe's verdicts both come from it.
func policyFailure(policy sealpost.EnforcedTLS, h hostTLS) string {
	if !policy.Mandatory() {
		return ""
	}
	switch {
	case !h.starttls:
		return sealpost.ResultSTARTTLSNotSupported
	case h.refused:
		return sealpost.ResultValidationFailure
	case h.version == 0:
		// The handshake failed: for the certificate when verifying it is
		// what ended it under require_valid_cert, otherwise for TLS itself.
		if policy.RequireValidCert && h.certChecked && h.certErr != nil {
			return certResultType(h.certErr)
		}
		return sealpost.ResultValidationFailure
	case h.version < uint16(policy.Version):
		return sealpost.ResultValidationFailure
	case policy.RequireValidCert && (!h.certChecked || h.certErr != nil):
		if h.certErr != nil {
			return certResultType(h.certErr)
		}
		return sealpost.ResultValidationFailure
	}
	return ""
}

// meetsPolicy reports whether a TLS session satisfies policy, by the same
// judgement the readiness preview applies to recorded facts.
func meetsPolicy(policy sealpost.EnforcedTLS, cs *tls.ConnectionState, verified bool) bool {
	f := sealpost.TLSFacts{Verified: verified}
	if cs != nil && cs.HandshakeComplete {
		f.TLS, f.Version = true, versionName(cs.Version)
	}
	ok, _ := policy.Permits(f, "")
	return ok
}
