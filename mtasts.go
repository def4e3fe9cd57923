package sealpost

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The published TLS policies of a recipient domain: MTA-STS (RFC 8461) and
// TLS reporting (RFC 8460). The parsers are strict and pure, so that the
// probe reports exactly what an enforcing sender would act on.

// MTASTSRecord is a domain's "_mta-sts" TXT record.
type MTASTSRecord struct {
	ID string // changes whenever the policy does
	// Extensions are the other fields, which RFC 8461 says to ignore.
	Extensions map[string]string
}

// MTASTSPolicy is a policy file as served at
// https://mta-sts.<domain>/.well-known/mta-sts.txt.
type MTASTSPolicy struct {
	Mode   string   `json:"mode"`    // enforce, testing or none
	MX     []string `json:"mx"`      // host names, or "*." wildcards of one label
	MaxAge int64    `json:"max_age"` // seconds
	// Lines are the policy file's non-empty lines as fetched, which TLS
	// reports quote (RFC 8460 4.3); nil for a policy cached before they
	// were kept.
	Lines []string `json:"-"`
}

// MTA-STS limits of RFC 8461.
const (
	// MTASTSMaxPolicyBytes bounds a policy file; a sender stops reading
	// beyond it (section 3.3 suggests 64 KiB).
	MTASTSMaxPolicyBytes = 64 << 10
	// mtastsMaxMaxAge is the largest max_age, about a year.
	mtastsMaxMaxAge = 31557600
)

const (
	mtastsVersion = "v=STSv1"
	tlsrptVersion = "v=TLSRPTv1"
)

// FindMTASTSRecord returns the MTA-STS record among a name's TXT records:
// those not starting with "v=STSv1" are ignored, and more than one is the
// same as none (RFC 8461 3.1). Each element is one record, its strings
// already joined.
func FindMTASTSRecord(txts []string) (MTASTSRecord, error) {
	rec, err := findRecord(txts, mtastsVersion)
	if err != nil {
		return MTASTSRecord{}, err
	}
	return ParseMTASTSRecord(rec)
}

// FindTLSRPTRecord returns the TLS-RPT record among a name's TXT records,
// with the same rules as FindMTASTSRecord (RFC 8460 3).
func FindTLSRPTRecord(txts []string) (TLSRPTRecord, error) {
	rec, err := findRecord(txts, tlsrptVersion)
	if err != nil {
		return TLSRPTRecord{}, err
	}
	return ParseTLSRPTRecord(rec)
}

// ErrNoRecord is FindMTASTSRecord's and FindTLSRPTRecord's answer when no
// record of the kind is published.
var ErrNoRecord = errors.New("no record published")

func findRecord(txts []string, version string) (string, error) {
	var found []string
	for _, t := range txts {
		// The version must be followed by a delimiter or end the record:
		// "v=STSv10" is another version.
		rest, ok := strings.CutPrefix(t, version)
		if !ok {
			continue
		}
		if rest = strings.TrimLeft(rest, " \t"); rest == "" || rest[0] == ';' {
			found = append(found, t)
		}
	}
	switch len(found) {
	case 0:
		return "", ErrNoRecord
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("%d records start with %q; more than one means none", len(found), version)
}

// recordFields splits a "v=...; k=v; ..." record after its version into
// name/value pairs, in order. Delimiters are ";" with optional spaces or
// tabs around them; a trailing delimiter is allowed.
func recordFields(rec, version string) ([][2]string, error) {
	rest, ok := strings.CutPrefix(rec, version)
	if !ok {
		return nil, fmt.Errorf("record does not start with %q", version)
	}
	var fields [][2]string
	for rest != "" {
		rest = strings.TrimLeft(rest, " \t")
		if rest == "" {
			break
		}
		if rest[0] != ';' {
			return nil, fmt.Errorf("expected %q after a field, found %q", ";", truncate(rest, 20))
		}
		rest = strings.TrimLeft(rest[1:], " \t")
		if rest == "" {
			break // a trailing delimiter
		}
		end := strings.IndexAny(rest, "; \t")
		if end < 0 {
			end = len(rest)
		}
		field := rest[:end]
		rest = rest[end:]
		name, value, ok := strings.Cut(field, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("field %q is not name=value", truncate(field, 40))
		}
		fields = append(fields, [2]string{name, value})
	}
	if len(fields) == 0 {
		return nil, errors.New("record has no fields after its version")
	}
	return fields, nil
}

// ParseMTASTSRecord parses one MTA-STS TXT record (RFC 8461 3.1).
func ParseMTASTSRecord(rec string) (MTASTSRecord, error) {
	fields, err := recordFields(rec, mtastsVersion)
	if err != nil {
		return MTASTSRecord{}, fmt.Errorf("MTA-STS record: %w", err)
	}
	var r MTASTSRecord
	for _, f := range fields {
		name, value := f[0], f[1]
		switch {
		case name == "id":
			if r.ID != "" {
				return MTASTSRecord{}, errors.New("MTA-STS record: id given twice")
			}
			if len(value) < 1 || len(value) > 32 || !isAlnum(value) {
				return MTASTSRecord{}, fmt.Errorf("MTA-STS record: id %q is not 1 to 32 letters and digits", truncate(value, 40))
			}
			r.ID = value
		case validExtension(name, value):
			if r.Extensions == nil {
				r.Extensions = map[string]string{}
			}
			r.Extensions[name] = value
		default:
			return MTASTSRecord{}, fmt.Errorf("MTA-STS record: malformed field %q", truncate(name+"="+value, 40))
		}
	}
	if r.ID == "" {
		return MTASTSRecord{}, errors.New("MTA-STS record: no id")
	}
	return r, nil
}

// validExtension is RFC 8461's sts-extension (and RFC 8460's
// tlsrpt-extension, the same grammar).
func validExtension(name, value string) bool {
	if len(name) < 1 || len(name) > 32 || !isAlnumByte(name[0]) {
		return false
	}
	for i := 1; i < len(name); i++ {
		if c := name[i]; !isAlnumByte(c) && c != '_' && c != '-' && c != '.' {
			return false
		}
	}
	if value == "" {
		return false
	}
	for i := range len(value) {
		if c := value[i]; c < 0x21 || c > 0x7e || c == '=' || c == ';' {
			return false
		}
	}
	return true
}

func isAlnumByte(c byte) bool {
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

func isAlnum(s string) bool {
	for i := range len(s) {
		if !isAlnumByte(s[i]) {
			return false
		}
	}
	return true
}

// ParseMTASTSPolicy parses a policy file (RFC 8461 3.2): "key: value"
// lines ended by CRLF or LF. version, mode and max_age must appear exactly
// once, mx at least once unless mode is none; unknown keys are ignored.
func ParseMTASTSPolicy(body []byte) (MTASTSPolicy, error) {
	if len(body) > MTASTSMaxPolicyBytes {
		return MTASTSPolicy{}, fmt.Errorf("MTA-STS policy: larger than %d bytes", MTASTSMaxPolicyBytes)
	}
	var p MTASTSPolicy
	seen := map[string]bool{}
	text := strings.ReplaceAll(string(body), "\r\n", "\n")
	for i, line := range strings.Split(text, "\n") {
		if line == "" {
			continue
		}
		p.Lines = append(p.Lines, line)
		key, value, ok := strings.Cut(line, ":")
		if !ok || key == "" {
			return MTASTSPolicy{}, fmt.Errorf("MTA-STS policy: line %d is not \"key: value\"", i+1)
		}
		value = strings.Trim(value, " \t")
		for j := range len(key) {
			if c := key[j]; !isAlnumByte(c) && c != '_' && c != '-' && c != '.' {
				return MTASTSPolicy{}, fmt.Errorf("MTA-STS policy: line %d has an invalid key", i+1)
			}
		}
		for j := range len(value) {
			if c := value[j]; c < 0x20 || c == 0x7f {
				return MTASTSPolicy{}, fmt.Errorf("MTA-STS policy: line %d has a control character", i+1)
			}
		}
		if key != "mx" && seen[key] {
			return MTASTSPolicy{}, fmt.Errorf("MTA-STS policy: %s given twice", truncate(key, 20))
		}
		seen[key] = true
		switch key {
		case "version":
			if value != "STSv1" {
				return MTASTSPolicy{}, fmt.Errorf("MTA-STS policy: version %q is not STSv1", truncate(value, 20))
			}
		case "mode":
			switch value {
			case "enforce", "testing", "none":
				p.Mode = value
			default:
				return MTASTSPolicy{}, fmt.Errorf("MTA-STS policy: mode %q is not enforce, testing or none", truncate(value, 20))
			}
		case "max_age":
			if value == "" || len(value) > 10 || strings.TrimLeft(value, "0123456789") != "" {
				return MTASTSPolicy{}, fmt.Errorf("MTA-STS policy: max_age %q is not 1 to 10 digits", truncate(value, 20))
			}
			n, _ := strconv.ParseInt(value, 10, 64)
			if n > mtastsMaxMaxAge {
				return MTASTSPolicy{}, fmt.Errorf("MTA-STS policy: max_age %d exceeds %d", n, mtastsMaxMaxAge)
			}
			p.MaxAge = n
		case "mx":
			if err := checkMXPattern(value); err != nil {
				return MTASTSPolicy{}, fmt.Errorf("MTA-STS policy: %w", err)
			}
			p.MX = append(p.MX, strings.ToLower(value))
		}
	}
	for _, k := range []string{"version", "mode", "max_age"} {
		if !seen[k] {
			return MTASTSPolicy{}, fmt.Errorf("MTA-STS policy: no %s", k)
		}
	}
	if len(p.MX) == 0 && p.Mode != "none" {
		return MTASTSPolicy{}, fmt.Errorf("MTA-STS policy: mode %s without any mx", p.Mode)
	}
	return p, nil
}

// checkMXPattern accepts a host name, or "*." and a host name.
func checkMXPattern(pattern string) error {
	name := strings.TrimPrefix(pattern, "*.")
	if name == "" || len(name) > 253 || strings.HasSuffix(name, ".") {
		return fmt.Errorf("mx %q is not a host name", truncate(pattern, 40))
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("mx %q is not a host name", truncate(pattern, 40))
		}
		for i := range len(label) {
			if c := label[i]; !isAlnumByte(c) && c != '-' && c != '_' {
				return fmt.Errorf("mx %q is not a host name", truncate(pattern, 40))
			}
		}
	}
	return nil
}

// TLSRPTRecord is a domain's "_smtp._tls" TXT record (RFC 8460 3).
type TLSRPTRecord struct {
	// RUA are where reports go: mailto: and https: URIs.
	RUA []string
}

// ParseTLSRPTRecord parses one TLS-RPT TXT record. Its rua field is
// required, its URIs comma-separated, each mailto: or https:.
func ParseTLSRPTRecord(rec string) (TLSRPTRecord, error) {
	// rua's URIs may have spaces around their commas, which recordFields
	// would take for field ends; join them first.
	normalized := rec
	for _, sep := range []string{" ,", "\t,", ", ", ",\t"} {
		for strings.Contains(normalized, sep) {
			normalized = strings.ReplaceAll(normalized, sep, ",")
		}
	}
	fields, err := recordFields(normalized, tlsrptVersion)
	if err != nil {
		return TLSRPTRecord{}, fmt.Errorf("TLS-RPT record: %w", err)
	}
	var r TLSRPTRecord
	seenRUA := false
	for _, f := range fields {
		name, value := f[0], f[1]
		switch {
		case name == "rua":
			if seenRUA {
				return TLSRPTRecord{}, errors.New("TLS-RPT record: rua given twice")
			}
			seenRUA = true
			for uri := range strings.SplitSeq(value, ",") {
				if err := checkReportURI(uri); err != nil {
					return TLSRPTRecord{}, fmt.Errorf("TLS-RPT record: %w", err)
				}
				r.RUA = append(r.RUA, uri)
			}
		case validExtension(name, value):
		default:
			return TLSRPTRecord{}, fmt.Errorf("TLS-RPT record: malformed field %q", truncate(name+"="+value, 40))
		}
	}
	if !seenRUA {
		return TLSRPTRecord{}, errors.New("TLS-RPT record: no rua")
	}
	return r, nil
}

func checkReportURI(uri string) error {
	u, err := url.Parse(uri)
	if err != nil || uri == "" {
		return fmt.Errorf("rua %q is not a URI", truncate(uri, 60))
	}
	switch strings.ToLower(u.Scheme) {
	case "mailto":
		if !strings.Contains(u.Opaque, "@") {
			return fmt.Errorf("rua %q is not a mailto: address", truncate(uri, 60))
		}
	case "https":
		if u.Host == "" {
			return fmt.Errorf("rua %q has no host", truncate(uri, 60))
		}
	default:
		return fmt.Errorf("rua %q is neither a mailto: nor an https: URI", truncate(uri, 60))
	}
	return nil
}

// CachedMTASTSPolicy is a domain's MTA-STS policy as last fetched, kept in
// the database so that every node applies, and refreshes, the same one.
type CachedMTASTSPolicy struct {
	Domain    string // lower-case, no trailing dot
	ID        string // the TXT record's id the policy was fetched under
	Policy    MTASTSPolicy
	FetchedAt time.Time
	// ExpiresAt is FetchedAt plus the policy's max_age: after it, the
	// policy no longer applies (RFC 8461 3.2).
	ExpiresAt time.Time
}

// Expired reports whether p no longer applies at now.
func (p *CachedMTASTSPolicy) Expired(now time.Time) bool { return !now.Before(p.ExpiresAt) }

// MTASTSPolicyCache keeps recipient domains' MTA-STS policies.
type MTASTSPolicyCache interface {
	// CachedMTASTSPolicy returns the policy cached for domain, expired or
	// not, or an ENOTFOUND error when there is none.
	CachedMTASTSPolicy(ctx context.Context, domain string) (*CachedMTASTSPolicy, error)
	// PutMTASTSPolicy stores p as domain's policy, unless the cache already
	// holds one fetched later (by another node): a slow fetch never
	// replaces a newer one.
	PutMTASTSPolicy(ctx context.Context, p CachedMTASTSPolicy) error
}
