package webhook

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"strconv"
	"time"
)

// The header names SendGrid's receivers and official helpers look for.
const (
	SignatureHeader = "X-Twilio-Email-Event-Webhook-Signature"
	TimestampHeader = "X-Twilio-Email-Event-Webhook-Timestamp"
)

// Sign returns the values of SignatureHeader and TimestampHeader for body
// signed with key at ts: the signature is base64 of the ASN.1 DER ECDSA
// signature over SHA-256 of the decimal Unix seconds followed by body, which
// is what SendGrid's verification helpers recompute.
func Sign(key *ecdsa.PrivateKey, body []byte, ts time.Time) (signature, timestamp string, err error) {
	if key == nil {
		return "", "", fmt.Errorf("signing event webhook post: no key")
	}
	timestamp = strconv.FormatInt(ts.Unix(), 10)
	h := sha256.New()
	h.Write([]byte(timestamp))
	h.Write(body)
	sig, err := ecdsa.SignASN1(rand.Reader, key, h.Sum(nil))
	if err != nil {
		return "", "", fmt.Errorf("signing event webhook post: %w", err)
	}
	return base64.StdEncoding.EncodeToString(sig), timestamp, nil
}

// GenerateKey makes a fresh P-256 key: the PKCS#8 DER private key the store
// keeps, and the base64 DER SubjectPublicKeyInfo SendGrid shows as
// public_key.
func GenerateKey() (privatePKCS8 []byte, publicKeyBase64 string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, "", fmt.Errorf("generating event webhook signing key: %w", err)
	}
	privatePKCS8, err = x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, "", fmt.Errorf("encoding event webhook signing key: %w", err)
	}
	publicKeyBase64, err = encodePublicKey(&key.PublicKey)
	if err != nil {
		return nil, "", err
	}
	return privatePKCS8, publicKeyBase64, nil
}

// PublicKey returns the base64 DER SubjectPublicKeyInfo of a stored PKCS#8
// private key.
func PublicKey(privatePKCS8 []byte) (string, error) {
	key, err := parseKey(privatePKCS8)
	if err != nil {
		return "", err
	}
	return encodePublicKey(&key.PublicKey)
}

func encodePublicKey(pub *ecdsa.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("encoding event webhook public key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(der), nil
}

// parseKey accepts only P-256 keys: SendGrid's receivers verify with P-256
// and would reject anything else on every post.
func parseKey(privatePKCS8 []byte) (*ecdsa.PrivateKey, error) {
	k, err := x509.ParsePKCS8PrivateKey(privatePKCS8)
	if err != nil {
		return nil, fmt.Errorf("parsing event webhook signing key: %w", err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok || key.Curve != elliptic.P256() {
		return nil, fmt.Errorf("parsing event webhook signing key: not an ECDSA P-256 key")
	}
	return key, nil
}
