package delivery_test

import (
	"testing"

	"github.com/sealpost/sealpost"
)

// The decision table on its own, row by row as the delivery spec states
// it; TestEnforcedTLSMatrix checks the same rows end to end at the servers.
func TestDecisionTable(t *testing.T) {
	t.Parallel()
	var (
		opportunistic = sealpost.TLSRequirement{Version: sealpost.TLS11}
		requireTLS    = sealpost.TLSRequirement{RequireTLS: true, Version: sealpost.TLS11}
		requireTLS13  = sealpost.TLSRequirement{RequireTLS: true, Version: sealpost.TLS13}
		validCert     = sealpost.TLSRequirement{RequireValidCert: true, Version: sealpost.TLS11}
		validCert12   = sealpost.TLSRequirement{RequireValidCert: true, Version: sealpost.TLS12}
		dane          = sealpost.TLSRequirement{RequireTLS: true, DANE: true, Version: sealpost.TLS11}
		daneValidCert = sealpost.TLSRequirement{RequireValidCert: true, DANE: true, Version: sealpost.TLS12}

		notOffered = sealpost.TLSSeen{Step: sealpost.TLSNotOffered}
		refused    = sealpost.TLSSeen{Step: sealpost.TLSRefused}
		broken     = sealpost.TLSSeen{Step: sealpost.TLSFailed}
		timedOut   = sealpost.TLSSeen{Step: sealpost.TLSFailed, Interrupted: true}
		badCertEnd = sealpost.TLSSeen{Step: sealpost.TLSFailed, CertChecked: true, CertResult: sealpost.ResultCertificateExpired}
		noTLSAEnd  = sealpost.TLSSeen{Step: sealpost.TLSFailed, CertChecked: true, DANEChecked: true, DANEResult: sealpost.ResultTLSAInvalid}
		good13     = sealpost.TLSSeen{Step: sealpost.TLSEstablished, Version: sealpost.TLS13, CertChecked: true}
		good11     = sealpost.TLSSeen{Step: sealpost.TLSEstablished, Version: sealpost.TLS11, CertChecked: true}
		mismatch13 = sealpost.TLSSeen{Step: sealpost.TLSEstablished, Version: sealpost.TLS13, CertChecked: true, CertResult: sealpost.ResultCertificateHostMismatch}
		unchecked  = sealpost.TLSSeen{Step: sealpost.TLSEstablished, Version: sealpost.TLS13}
		daneOK     = sealpost.TLSSeen{Step: sealpost.TLSEstablished, Version: sealpost.TLS13, CertChecked: true, CertResult: sealpost.ResultCertificateNotTrusted, DANEChecked: true}
		daneBad    = sealpost.TLSSeen{Step: sealpost.TLSEstablished, Version: sealpost.TLS13, CertChecked: true, DANEChecked: true, DANEResult: sealpost.ResultTLSAInvalid}
		daneNone   = sealpost.TLSSeen{Step: sealpost.TLSEstablished, Version: sealpost.TLS13, CertChecked: true}
		unknown    = sealpost.TLSSeen{}
	)
	proceed := sealpost.TLSVerdict{Action: sealpost.TLSProceed}
	retryPlain := sealpost.TLSVerdict{Action: sealpost.TLSRetryPlain}
	deferIt := sealpost.TLSVerdict{Action: sealpost.TLSDefer}
	next := func(rt string) sealpost.TLSVerdict {
		return sealpost.TLSVerdict{Action: sealpost.TLSNextMX, ResultType: rt}
	}

	tests := []struct {
		name string
		req  sealpost.TLSRequirement
		seen sealpost.TLSSeen
		want sealpost.TLSVerdict
	}{
		{"opportunistic, no STARTTLS: plaintext", opportunistic, notOffered, proceed},
		{"opportunistic, STARTTLS refused: plaintext on the same session", opportunistic, refused, proceed},
		{"opportunistic, handshake failed: reconnect in plaintext", opportunistic, broken, retryPlain},
		{"opportunistic, handshake timed out: reconnect in plaintext", opportunistic, timedOut, retryPlain},
		{"opportunistic, TLS with a bad certificate", opportunistic, mismatch13, proceed},
		{"require_tls, no STARTTLS", requireTLS, notOffered, next(sealpost.ResultSTARTTLSNotSupported)},
		{"require_tls, STARTTLS refused", requireTLS, refused, next(sealpost.ResultValidationFailure)},
		{"require_tls, handshake failed", requireTLS, broken, next(sealpost.ResultValidationFailure)},
		{"require_tls, handshake timed out: transient", requireTLS, timedOut, deferIt},
		{"require_tls, a bad certificate ends nothing", requireTLS, badCertEnd, next(sealpost.ResultValidationFailure)},
		{"require_tls, TLS with any certificate", requireTLS, mismatch13, proceed},
		{"require_tls 1.3, TLS 1.1", requireTLS13, good11, next(sealpost.ResultValidationFailure)},
		{"require_tls 1.3, TLS 1.3", requireTLS13, good13, proceed},
		{"require_valid_cert, no STARTTLS", validCert, notOffered, next(sealpost.ResultSTARTTLSNotSupported)},
		{"require_valid_cert, handshake ended by the certificate", validCert, badCertEnd, next(sealpost.ResultCertificateExpired)},
		{"require_valid_cert, wrong name", validCert, mismatch13, next(sealpost.ResultCertificateHostMismatch)},
		{"require_valid_cert, certificate never checked", validCert, unchecked, next(sealpost.ResultValidationFailure)},
		{"require_valid_cert, valid", validCert, good13, proceed},
		{"require_valid_cert 1.2, the version before the certificate", validCert12, sealpost.TLSSeen{Step: sealpost.TLSEstablished, Version: sealpost.TLS11, CertChecked: true, CertResult: sealpost.ResultCertificateHostMismatch}, next(sealpost.ResultValidationFailure)},
		{"DANE, no STARTTLS", dane, notOffered, next(sealpost.ResultSTARTTLSNotSupported)},
		{"DANE, handshake ended by the TLSA mismatch", dane, noTLSAEnd, next(sealpost.ResultTLSAInvalid)},
		{"DANE, TLSA match without Web PKI trust", dane, daneOK, proceed},
		{"DANE, TLSA mismatch though the certificate is valid", dane, daneBad, next(sealpost.ResultTLSAInvalid)},
		{"DANE, certificate never matched", dane, daneNone, next(sealpost.ResultValidationFailure)},
		{"DANE and require_valid_cert: both must hold", daneValidCert, daneOK, next(sealpost.ResultCertificateNotTrusted)},
		{"DANE and require_valid_cert, both hold", daneValidCert, sealpost.TLSSeen{Step: sealpost.TLSEstablished, Version: sealpost.TLS13, CertChecked: true, DANEChecked: true}, proceed},
		{"mandatory, a step nobody knows: fail closed", requireTLS, unknown, next(sealpost.ResultValidationFailure)},
	}
	for _, tc := range tests {
		if got := sealpost.DecideTLS(tc.req, tc.seen); got != tc.want {
			t.Errorf("%s: DecideTLS(%+v, %+v) = %v %q, want %v %q", tc.name, tc.req, tc.seen, got.Action, got.ResultType, tc.want.Action, tc.want.ResultType)
		}
	}
}

// Every source only raises: the strongest of two requirements keeps every
// flag of either, and a version counts only where TLS is mandatory.
func TestRequirementRaise(t *testing.T) {
	t.Parallel()
	opp13 := sealpost.TLSRequirement{Version: sealpost.TLS13}
	tests := []struct {
		name string
		a, b sealpost.TLSRequirement
		want sealpost.TLSRequirement
	}{
		{"opportunistic both", sealpost.TLSRequirement{Version: sealpost.TLS11}, opp13, opp13},
		{"an opportunistic version raises no floor", opp13, sealpost.TLSRequirement{RequireTLS: true, Version: sealpost.TLS12},
			sealpost.TLSRequirement{RequireTLS: true, Version: sealpost.TLS12}},
		{"flags add up, the higher floor wins",
			sealpost.TLSRequirement{RequireTLS: true, Version: sealpost.TLS13},
			sealpost.TLSRequirement{RequireValidCert: true, RequireTLS: true, Version: sealpost.TLS12},
			sealpost.TLSRequirement{RequireTLS: true, RequireValidCert: true, Version: sealpost.TLS13}},
		{"DANE keeps the account's certificate check",
			sealpost.TLSRequirement{RequireValidCert: true, Version: sealpost.TLS11},
			sealpost.TLSRequirement{RequireTLS: true, DANE: true, Version: sealpost.TLS11},
			sealpost.TLSRequirement{RequireTLS: true, RequireValidCert: true, DANE: true, Version: sealpost.TLS11}},
	}
	for _, tc := range tests {
		if got := tc.a.Raise(tc.b); got != tc.want {
			t.Errorf("%s: %+v.Raise(%+v) = %+v, want %+v", tc.name, tc.a, tc.b, got, tc.want)
		}
		if got := tc.b.Raise(tc.a); got != tc.want {
			t.Errorf("%s (the other way round): %+v", tc.name, got)
		}
	}
}

// A source raises the requirement only by what it makes a host do: the
// same rule decides whether an account's domain policy is effective (the
// API's "effective") and which source an event names.
func TestRequirementStricter(t *testing.T) {
	t.Parallel()
	req := func(tls, cert, dane bool, v sealpost.TLSVersion) sealpost.TLSRequirement {
		return sealpost.TLSRequirement{RequireTLS: tls, RequireValidCert: cert, DANE: dane, Version: v}
	}
	tests := []struct {
		name string
		r, o sealpost.TLSRequirement
		want bool
	}{
		{"equal", req(true, false, false, sealpost.TLS12), req(true, false, false, sealpost.TLS12), false},
		{"a higher floor", req(true, false, false, sealpost.TLS13), req(true, false, false, sealpost.TLS12), true},
		{"a certificate check", req(false, true, false, sealpost.TLS12), req(true, false, false, sealpost.TLS12), true},
		{"DANE", req(true, false, true, sealpost.TLS12), req(true, true, false, sealpost.TLS12), true},
		{"TLS beside a certificate check adds nothing", req(true, false, false, sealpost.TLS12), req(false, true, false, sealpost.TLS12), false},
		{"an opportunistic version binds nothing", req(false, false, false, sealpost.TLS13), req(false, false, false, sealpost.TLS11), false},
		{"mandatory over opportunistic", req(true, false, false, sealpost.TLS11), req(false, false, false, sealpost.TLS13), true},
		{"weaker", req(true, false, false, sealpost.TLS12), req(true, true, false, sealpost.TLS13), false},
	}
	for _, tc := range tests {
		if got := tc.r.Stricter(tc.o); got != tc.want {
			t.Errorf("%s: %+v.Stricter(%+v) = %v, want %v", tc.name, tc.r, tc.o, got, tc.want)
		}
		rs := sealpost.EnforcedTLS{RequireTLS: tc.r.RequireTLS, RequireValidCert: tc.r.RequireValidCert, Version: tc.r.Version}
		os := sealpost.EnforcedTLS{RequireTLS: tc.o.RequireTLS, RequireValidCert: tc.o.RequireValidCert, Version: tc.o.Version}
		if !tc.r.DANE && !tc.o.DANE && rs.Raises(os) != tc.want {
			t.Errorf("%s: EnforcedTLS.Raises disagrees with Stricter", tc.name)
		}
	}
}
