package sealpost

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"strconv"
)

// TLSVersion is the minimum TLS protocol version an account demands of a
// recipient's server. Its values are crypto/tls's constants so that delivery
// can use it as tls.Config.MinVersion directly; on the wire it is the JSON
// number SendGrid uses (1.1, 1.2 or 1.3).
type TLSVersion uint16

const (
	TLS11 TLSVersion = tls.VersionTLS11
	TLS12 TLSVersion = tls.VersionTLS12
	TLS13 TLSVersion = tls.VersionTLS13
)

// DefaultTLSVersion is SendGrid's documented default.
const DefaultTLSVersion = TLS11

// String returns the SendGrid spelling: "1.1", "1.2" or "1.3".
func (v TLSVersion) String() string {
	switch v {
	case TLS11:
		return "1.1"
	case TLS12:
		return "1.2"
	case TLS13:
		return "1.3"
	}
	return fmt.Sprintf("TLSVersion(%#04x)", uint16(v))
}

// Valid reports whether v is one of the versions SendGrid accepts.
func (v TLSVersion) Valid() bool { return v == TLS11 || v == TLS12 || v == TLS13 }

// ParseTLSVersion parses the SendGrid spelling of a version. It accepts any
// JSON number literal equal to 1.1, 1.2 or 1.3 ("1.10" included).
func ParseTLSVersion(s string) (TLSVersion, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err == nil {
		switch f {
		case 1.1:
			return TLS11, nil
		case 1.2:
			return TLS12, nil
		case 1.3:
			return TLS13, nil
		}
	}
	return 0, fmt.Errorf("invalid TLS version %q: must be one of 1.1, 1.2, 1.3", s)
}

// MarshalJSON writes the version as a bare JSON number, as SendGrid does.
func (v TLSVersion) MarshalJSON() ([]byte, error) {
	if !v.Valid() {
		return nil, fmt.Errorf("cannot marshal %v", v)
	}
	return []byte(v.String()), nil
}

// UnmarshalJSON accepts only a JSON number equal to 1.1, 1.2 or 1.3.
func (v *TLSVersion) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || (b[0] != '-' && (b[0] < '0' || b[0] > '9')) {
		return fmt.Errorf("TLS version must be a JSON number")
	}
	parsed, err := ParseTLSVersion(string(b))
	if err != nil {
		return err
	}
	*v = parsed
	return nil
}

// EnforcedTLS is an account's Enforced TLS setting, exactly the object that
// GET /v3/user/settings/enforced_tls returns.
type EnforcedTLS struct {
	RequireTLS       bool       `json:"require_tls"`
	RequireValidCert bool       `json:"require_valid_cert"`
	Version          TLSVersion `json:"version"`
}

// DefaultEnforcedTLS is the setting of every new account: opportunistic TLS.
func DefaultEnforcedTLS() EnforcedTLS {
	return EnforcedTLS{Version: DefaultTLSVersion}
}

// Mandatory reports whether a recipient that cannot meet the policy must get
// nothing: either flag being set makes TLS mandatory.
func (s EnforcedTLS) Mandatory() bool { return s.RequireTLS || s.RequireValidCert }

// EnforcedTLSPatch is a merge update: nil fields keep their stored value.
type EnforcedTLSPatch struct {
	RequireTLS       *bool
	RequireValidCert *bool
	Version          *TLSVersion
}

// Apply returns s with the patch's present fields replaced.
func (p EnforcedTLSPatch) Apply(s EnforcedTLS) EnforcedTLS {
	if p.RequireTLS != nil {
		s.RequireTLS = *p.RequireTLS
	}
	if p.RequireValidCert != nil {
		s.RequireValidCert = *p.RequireValidCert
	}
	if p.Version != nil {
		s.Version = *p.Version
	}
	return s
}

// EnforcedTLSService reads and changes accounts' Enforced TLS settings.
// A change is visible to every reader, on every node, once the call returns.
type EnforcedTLSService interface {
	EnforcedTLS(ctx context.Context, accountID int64) (EnforcedTLS, error)
	// UpdateEnforcedTLS applies patch atomically and returns the new setting.
	UpdateEnforcedTLS(ctx context.Context, accountID int64, patch EnforcedTLSPatch) (EnforcedTLS, error)
}
