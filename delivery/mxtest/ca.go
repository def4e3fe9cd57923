package mxtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CA is a throwaway certificate authority. Its root is in no system trust
// store, so a certificate it issues verifies only for a client that was given
// CertPool (in process) or WriteFile's PEM (sealpost serve --tls-ca-file).
type CA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	der  []byte
}

// Options describe a leaf certificate. Zero times mean "valid from an hour
// ago for a day", so that clock skew between test processes never matters.
type Options struct {
	DNSNames  []string
	NotBefore time.Time
	NotAfter  time.Time
}

// NewCA creates a CA with an ECDSA P-256 root.
func NewCA(t testing.TB) *CA {
	t.Helper()
	key := newKey(t)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          newSerial(t),
		Subject:               pkix.Name{CommonName: "sealpost test CA", Organization: []string{"sealpost tests"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("mxtest: creating CA certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("mxtest: parsing CA certificate: %v", err)
	}
	return &CA{cert: cert, key: key, der: der}
}

// CertPool returns a fresh pool holding only the CA's root.
func (ca *CA) CertPool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	return pool
}

// Certificate returns the root certificate, for tests that pin it (a DANE-TA
// TLSA record) or present it in a chain.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// PEM returns the root certificate PEM-encoded.
func (ca *CA) PEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.der})
}

// WriteFile writes the root as PEM into t.TempDir() and returns the path.
func (ca *CA) WriteFile(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mxtest-ca.pem")
	if err := os.WriteFile(path, ca.PEM(), 0o600); err != nil {
		t.Fatalf("mxtest: writing CA file: %v", err)
	}
	return path
}

// Issue returns a server certificate signed by the CA, with the chain
// (leaf only; the root is what clients trust) and parsed Leaf filled in.
func (ca *CA) Issue(t testing.TB, opts Options) tls.Certificate {
	t.Helper()
	return issue(t, opts, ca.cert, ca.key)
}

// SelfSigned returns a certificate for name signed by its own key: a
// well-formed certificate no trust store vouches for.
func SelfSigned(t testing.TB, name string) tls.Certificate {
	t.Helper()
	return issue(t, Options{DNSNames: []string{name}}, nil, nil)
}

func issue(t testing.TB, opts Options, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) tls.Certificate {
	t.Helper()
	key := newKey(t)
	now := time.Now()
	notBefore, notAfter := opts.NotBefore, opts.NotAfter
	if notBefore.IsZero() {
		notBefore = now.Add(-time.Hour)
	}
	if notAfter.IsZero() {
		notAfter = now.Add(24 * time.Hour)
	}
	cn := "mxtest leaf"
	if len(opts.DNSNames) > 0 {
		cn = opts.DNSNames[0]
	}
	tmpl := &x509.Certificate{
		SerialNumber: newSerial(t),
		Subject:      pkix.Name{CommonName: cn},
		DNSNames:     opts.DNSNames,
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	signer, signerKey := parent, parentKey
	if signer == nil {
		signer, signerKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatalf("mxtest: issuing certificate for %v: %v", opts.DNSNames, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("mxtest: parsing certificate: %v", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("mxtest: generating key: %v", err)
	}
	return key
}

func newSerial(t testing.TB) *big.Int {
	t.Helper()
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatalf("mxtest: generating serial: %v", err)
	}
	return serial
}
