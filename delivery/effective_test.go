package delivery

import (
	"testing"

	"github.com/sealpost/sealpost"
)

// TestHostPolicyBlamesTheSourceTheHostFailed: a failure is the first
// source's whose own requirement the host fails with that result, not the
// first whose requirement is merely not met. A handshake our own check of
// the certificate ended does not fail a source that never asked for it.
func TestHostPolicyBlamesTheSourceTheHostFailed(t *testing.T) {
	t.Parallel()
	requireTLS := accountPolicy(sealpost.EnforcedTLS{RequireTLS: true, Version: sealpost.TLS11})
	withSTS := requireTLS.with(sealpost.PolicySourceMTASTS, mtastsRequirement)
	withDANE := requireTLS.with(sealpost.PolicySourceDANE, daneRequirement)
	tests := []struct {
		name   string
		pol    hostPolicy
		seen   sealpost.TLSSeen
		result string
		cause  sealpost.PolicySource
	}{
		{"no STARTTLS fails the account first", withSTS, sealpost.TLSSeen{Step: sealpost.TLSNotOffered},
			sealpost.ResultSTARTTLSNotSupported, sealpost.PolicySourceAccount},
		{"handshake ended by the certificate check only MTA-STS requires", withSTS,
			sealpost.TLSSeen{Step: sealpost.TLSFailed, CertChecked: true, CertResult: sealpost.ResultCertificateHostMismatch},
			sealpost.ResultCertificateHostMismatch, sealpost.PolicySourceMTASTS},
		{"handshake failing for TLS itself fails the account", withSTS,
			sealpost.TLSSeen{Step: sealpost.TLSFailed},
			sealpost.ResultValidationFailure, sealpost.PolicySourceAccount},
		{"established with a certificate for another name", withSTS,
			sealpost.TLSSeen{Step: sealpost.TLSEstablished, Version: sealpost.TLS13, CertChecked: true, CertResult: sealpost.ResultCertificateHostMismatch},
			sealpost.ResultCertificateHostMismatch, sealpost.PolicySourceMTASTS},
		{"below MTA-STS's floor only", withSTS,
			sealpost.TLSSeen{Step: sealpost.TLSEstablished, Version: sealpost.TLS11, CertChecked: true},
			sealpost.ResultValidationFailure, sealpost.PolicySourceMTASTS},
		{"handshake ended by the TLSA check only DANE requires", withDANE,
			sealpost.TLSSeen{Step: sealpost.TLSFailed, DANEChecked: true, DANEResult: sealpost.ResultTLSAInvalid},
			sealpost.ResultTLSAInvalid, sealpost.PolicySourceDANE},
	}
	for _, tt := range tests {
		v, cause := tt.pol.decide(tt.seen)
		if v.Action != sealpost.TLSNextMX || v.ResultType != tt.result || cause != tt.cause {
			t.Errorf("%s: %v %q from %s, want next-mx %q from %s", tt.name, v.Action, v.ResultType, cause, tt.result, tt.cause)
		}
	}
}
