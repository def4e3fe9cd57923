package sealpost_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
)

// testCert is a certificate with its key, for issuing others.
type testCert struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

type certSpec struct {
	cn        string
	dnsNames  []string
	ca        bool
	notBefore time.Time
	notAfter  time.Time
}

// makeCert issues a certificate from spec, signed by parent or, when parent
// is nil, by its own key.
func makeCert(t *testing.T, spec certSpec, parent *testCert) *testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if spec.notBefore.IsZero() {
		spec.notBefore = time.Now().Add(-time.Hour)
	}
	if spec.notAfter.IsZero() {
		spec.notAfter = time.Now().Add(24 * time.Hour)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: spec.cn},
		DNSNames:     spec.dnsNames,
		NotBefore:    spec.notBefore,
		NotAfter:     spec.notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if spec.ca {
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = nil
		tmpl.BasicConstraintsValid = true
		tmpl.IsCA = true
	}
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCert{cert: cert, key: key}
}

// tlsa makes the record of usage, selector and matching type for cert.
func tlsa(usage, selector, matching uint8, cert *x509.Certificate) sealpost.TLSARecord {
	data := cert.Raw
	if selector == sealpost.TLSASelectorSPKI {
		data = cert.RawSubjectPublicKeyInfo
	}
	switch matching {
	case sealpost.TLSAMatchingSHA256:
		sum := sha256.Sum256(data)
		data = sum[:]
	case sealpost.TLSAMatchingSHA512:
		sum := sha512.Sum512(data)
		data = sum[:]
	}
	return sealpost.TLSARecord{Usage: usage, Selector: selector, MatchingType: matching, Data: data}
}

func chainOf(certs ...*testCert) []*x509.Certificate {
	chain := make([]*x509.Certificate, len(certs))
	for i, c := range certs {
		chain[i] = c.cert
	}
	return chain
}

func TestVerifyDANE(t *testing.T) {
	now := time.Now()
	root := makeCert(t, certSpec{cn: "DANE test root", ca: true}, nil)
	inter := makeCert(t, certSpec{cn: "DANE test intermediate", ca: true}, root)
	otherCA := makeCert(t, certSpec{cn: "unrelated CA", ca: true}, nil)
	leaf := makeCert(t, certSpec{cn: "mx.example.test", dnsNames: []string{"mx.example.test"}}, inter)
	expired := makeCert(t, certSpec{cn: "mx.example.test", dnsNames: []string{"mx.example.test"},
		notBefore: now.Add(-48 * time.Hour), notAfter: now.Add(-24 * time.Hour)}, inter)
	wildcard := makeCert(t, certSpec{cn: "wildcard", dnsNames: []string{"*.example.test"}}, inter)
	cnOnly := makeCert(t, certSpec{cn: "mx.example.test"}, inter)
	// A self-signed, expired certificate for another name: DANE-EE
	// authenticates it all the same, as it looks at nothing but the key.
	selfSigned := makeCert(t, certSpec{cn: "elsewhere.test", dnsNames: []string{"elsewhere.test"},
		notBefore: now.Add(-48 * time.Hour), notAfter: now.Add(-24 * time.Hour)}, nil)
	impostor := makeCert(t, certSpec{cn: "mx.example.test", dnsNames: []string{"mx.example.test"}}, otherCA)

	names := []string{"mx.example.test", "example.test"}
	tests := []struct {
		name    string
		chain   []*x509.Certificate
		records []sealpost.TLSARecord
		names   []string
		now     time.Time
		wantErr string // "" for success; otherwise a part of the error
	}{
		{"DANE-EE SPKI SHA-256", chainOf(selfSigned), []sealpost.TLSARecord{tlsa(3, 1, 1, selfSigned.cert)}, nil, now, ""},
		{"DANE-EE full cert SHA-256", chainOf(selfSigned), []sealpost.TLSARecord{tlsa(3, 0, 1, selfSigned.cert)}, nil, now, ""},
		{"DANE-EE SPKI SHA-512", chainOf(leaf, inter), []sealpost.TLSARecord{tlsa(3, 1, 2, leaf.cert)}, names, now, ""},
		{"DANE-EE full cert exact", chainOf(leaf), []sealpost.TLSARecord{tlsa(3, 0, 0, leaf.cert)}, names, now, ""},
		{"DANE-EE SPKI exact", chainOf(leaf), []sealpost.TLSARecord{tlsa(3, 1, 0, leaf.cert)}, names, now, ""},
		{"DANE-EE ignores expiry and names", chainOf(expired), []sealpost.TLSARecord{tlsa(3, 1, 1, expired.cert)}, []string{"nothing.test"}, now, ""},
		{"DANE-EE another key", chainOf(leaf), []sealpost.TLSARecord{tlsa(3, 1, 1, impostor.cert)}, names, now, "no usable TLSA record matches"},
		{"DANE-EE matching only a CA of the chain", chainOf(leaf, inter), []sealpost.TLSARecord{tlsa(3, 1, 1, inter.cert)}, names, now, "no usable TLSA record matches"},
		{"DANE-EE one of several records", chainOf(leaf), []sealpost.TLSARecord{tlsa(3, 1, 1, impostor.cert), tlsa(3, 1, 1, leaf.cert)}, names, now, ""},

		{"DANE-TA intermediate full cert SHA-256", chainOf(leaf, inter), []sealpost.TLSARecord{tlsa(2, 0, 1, inter.cert)}, names, now, ""},
		{"DANE-TA intermediate SPKI SHA-256", chainOf(leaf, inter), []sealpost.TLSARecord{tlsa(2, 1, 1, inter.cert)}, names, now, ""},
		{"DANE-TA root presented, SPKI SHA-512", chainOf(leaf, inter, root), []sealpost.TLSARecord{tlsa(2, 1, 2, root.cert)}, names, now, ""},
		{"DANE-TA root full cert exact", chainOf(leaf, inter, root), []sealpost.TLSARecord{tlsa(2, 0, 0, root.cert)}, names, now, ""},
		{"DANE-TA anchor not presented", chainOf(leaf, inter), []sealpost.TLSARecord{tlsa(2, 0, 1, root.cert)}, names, now, "no usable TLSA record matches"},
		{"DANE-TA second name", chainOf(leaf, inter), []sealpost.TLSARecord{tlsa(2, 0, 1, inter.cert)}, []string{"example.test", "mx.example.test."}, now, ""},
		{"DANE-TA wrong name", chainOf(leaf, inter), []sealpost.TLSARecord{tlsa(2, 0, 1, inter.cert)}, []string{"mx.other.test", "other.test"}, now, "not for any of mx.other.test, other.test"},
		{"DANE-TA no names", chainOf(leaf, inter), []sealpost.TLSARecord{tlsa(2, 0, 1, inter.cert)}, nil, now, "not for any of"},
		{"DANE-TA expired leaf", chainOf(expired, inter), []sealpost.TLSARecord{tlsa(2, 0, 1, inter.cert)}, names, now, "expired"},
		{"DANE-TA checks validity at now", chainOf(leaf, inter), []sealpost.TLSARecord{tlsa(2, 0, 1, inter.cert)}, names, now.Add(72 * time.Hour), "expired"},
		{"DANE-TA wildcard", chainOf(wildcard, inter), []sealpost.TLSARecord{tlsa(2, 0, 1, inter.cert)}, []string{"mx.example.test"}, now, ""},
		{"DANE-TA wildcard covers one label only", chainOf(wildcard, inter), []sealpost.TLSARecord{tlsa(2, 0, 1, inter.cert)}, []string{"a.mx.example.test"}, now, "not for any of"},
		{"DANE-TA common name without DNS names", chainOf(cnOnly, inter), []sealpost.TLSARecord{tlsa(2, 0, 1, inter.cert)}, names, now, ""},
		// An attacker can present the domain's CA certificate, but a leaf
		// it issued itself does not chain to it.
		{"DANE-TA anchor presented beside a foreign leaf", chainOf(impostor, inter), []sealpost.TLSARecord{tlsa(2, 0, 1, inter.cert)}, names, now, "DANE-TA"},
		{"DANE-TA of another CA", chainOf(leaf, inter), []sealpost.TLSARecord{tlsa(2, 1, 1, otherCA.cert)}, names, now, "no usable TLSA record matches"},

		{"PKIX-EE only", chainOf(leaf, inter), []sealpost.TLSARecord{tlsa(1, 1, 1, leaf.cert)}, names, now, "no usable TLSA records"},
		{"PKIX-TA only", chainOf(leaf, inter), []sealpost.TLSARecord{tlsa(0, 0, 1, inter.cert)}, names, now, "no usable TLSA records"},
		{"unusable ones beside a usable one", chainOf(leaf), []sealpost.TLSARecord{tlsa(1, 1, 1, leaf.cert), tlsa(3, 1, 1, leaf.cert)}, names, now, ""},
		{"no records", chainOf(leaf), nil, names, now, "no usable TLSA records"},
		{"no certificate", nil, []sealpost.TLSARecord{tlsa(3, 1, 1, leaf.cert)}, names, now, "presented no certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := sealpost.VerifyDANE(tt.chain, tt.records, tt.names, tt.now)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("VerifyDANE: %v, want success", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("VerifyDANE succeeded, want an error containing %q", tt.wantErr)
			}
			if !errors.Is(err, sealpost.ErrDANENoMatch) {
				t.Errorf("VerifyDANE: %v, want it to wrap ErrDANENoMatch", err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("VerifyDANE: %v, want %q in it", err, tt.wantErr)
			}
		})
	}
}

func TestUsableTLSA(t *testing.T) {
	digest256 := make([]byte, sha256.Size)
	digest512 := make([]byte, sha512.Size)
	tests := []struct {
		name   string
		record sealpost.TLSARecord
		usable bool
	}{
		{"DANE-EE SPKI SHA-256", sealpost.TLSARecord{Usage: 3, Selector: 1, MatchingType: 1, Data: digest256}, true},
		{"DANE-TA cert SHA-512", sealpost.TLSARecord{Usage: 2, Selector: 0, MatchingType: 2, Data: digest512}, true},
		{"DANE-EE full", sealpost.TLSARecord{Usage: 3, Selector: 1, MatchingType: 0, Data: []byte{0x30}}, true},
		{"PKIX-TA", sealpost.TLSARecord{Usage: 0, Selector: 0, MatchingType: 1, Data: digest256}, false},
		{"PKIX-EE", sealpost.TLSARecord{Usage: 1, Selector: 1, MatchingType: 1, Data: digest256}, false},
		{"unknown usage", sealpost.TLSARecord{Usage: 4, Selector: 1, MatchingType: 1, Data: digest256}, false},
		{"unknown selector", sealpost.TLSARecord{Usage: 3, Selector: 2, MatchingType: 1, Data: digest256}, false},
		{"unknown matching type", sealpost.TLSARecord{Usage: 3, Selector: 1, MatchingType: 3, Data: digest256}, false},
		{"SHA-256 of the wrong length", sealpost.TLSARecord{Usage: 3, Selector: 1, MatchingType: 1, Data: digest512}, false},
		{"SHA-512 of the wrong length", sealpost.TLSARecord{Usage: 3, Selector: 1, MatchingType: 2, Data: digest256}, false},
		{"full without data", sealpost.TLSARecord{Usage: 3, Selector: 1, MatchingType: 0}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := sealpost.UsableTLSA([]sealpost.TLSARecord{tt.record})
			if (len(got) == 1) != tt.usable {
				t.Errorf("UsableTLSA(%+v) = %v, want usable %v", tt.record, got, tt.usable)
			}
		})
	}
}
