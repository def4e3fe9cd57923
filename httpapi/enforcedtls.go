package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

	"github.com/sealpost/sealpost"
)

// enforcedTLSBodies holds the response for every possible setting (two
// booleans by three versions), so the hot GET encodes nothing. It is
// filled once and only read after.
var enforcedTLSBodies = func() (t [2][2][3][]byte) {
	for i, tls := range []bool{false, true} {
		for j, cert := range []bool{false, true} {
			for k, v := range []sealpost.TLSVersion{sealpost.TLS11, sealpost.TLS12, sealpost.TLS13} {
				t[i][j][k] = []byte(`{"require_tls":` + strconv.FormatBool(tls) +
					`,"require_valid_cert":` + strconv.FormatBool(cert) +
					`,"version":` + v.String() + `}`)
			}
		}
	}
	return t
}()

func enforcedTLSBody(s sealpost.EnforcedTLS) ([]byte, error) {
	var i, j, k int
	if s.RequireTLS {
		i = 1
	}
	if s.RequireValidCert {
		j = 1
	}
	switch s.Version {
	case sealpost.TLS11:
		k = 0
	case sealpost.TLS12:
		k = 1
	case sealpost.TLS13:
		k = 2
	default:
		return nil, fmt.Errorf("stored enforced TLS setting has invalid version %v", s.Version)
	}
	return enforcedTLSBodies[i][j][k], nil
}

func (s *Server) getEnforcedTLS(ctx context.Context, _ *http.Request, c *call) (int, []byte, error) {
	setting, err := s.store.EnforcedTLS(ctx, c.acting.ID)
	if err != nil {
		return 0, nil, fmt.Errorf("reading enforced TLS of account %d: %w", c.acting.ID, err)
	}
	body, err := enforcedTLSBody(setting)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, body, nil
}

func (s *Server) patchEnforcedTLS(ctx context.Context, _ *http.Request, c *call) (int, []byte, error) {
	patch, err := sealpost.ParseEnforcedTLSPatch(c.body)
	if err != nil {
		return 0, nil, err
	}
	if err := checkUTF8(c.body); err != nil {
		return 0, nil, err
	}
	var setting sealpost.EnforcedTLS
	if patch.RequireTLS == nil && patch.RequireValidCert == nil && patch.Version == nil {
		// A no-op patch ({} or only unknown fields) needs no write.
		setting, err = s.store.EnforcedTLS(ctx, c.acting.ID)
	} else {
		setting, err = s.store.UpdateEnforcedTLS(ctx, c.acting.ID, patch)
	}
	if err != nil {
		return 0, nil, fmt.Errorf("updating enforced TLS of account %d: %w", c.acting.ID, err)
	}
	body, err := enforcedTLSBody(setting)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, body, nil
}
