package delivery

import (
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/sealpost/sealpost"
)

// hostPolicy is the effective TLS requirement on one MX host, and where
// each part of it comes from. Every source can only raise it.
type hostPolicy struct {
	req sealpost.TLSRequirement
	// layers are the sources' own requirements, in the order account,
	// domain, mta-sts, dane; the first is always the account's.
	layers []policyLayer
	// dane holds the host's usable TLSA records when DANE applies; nil
	// when DANE does not, or its TLSA records are all unusable (then the
	// dane layer requires TLS alone, and nothing is matched).
	dane *DANEPolicy
	// mtasts is the mode of the domain's MTA-STS policy ("enforce",
	// "testing"), "" when it has none or DANE replaces it for this host.
	mtasts string
	// testing is what the domain's MTA-STS policy in testing mode would
	// require of the host: judged and recorded, never enforced.
	testing *sealpost.TLSRequirement
	// testingUnlisted: that policy does not list the host among its MX.
	testingUnlisted bool
}

type policyLayer struct {
	source sealpost.PolicySource
	req    sealpost.TLSRequirement
}

// accountPolicy is the policy of a delivery with no source but the
// account's setting.
func accountPolicy(p sealpost.EnforcedTLS) hostPolicy {
	req := sealpost.RequirementOf(p)
	return hostPolicy{req: req, layers: []policyLayer{{sealpost.PolicySourceAccount, req}}}
}

// with raises p by source's requirement.
func (p hostPolicy) with(source sealpost.PolicySource, req sealpost.TLSRequirement) hostPolicy {
	p.layers = append(p.layers[:len(p.layers):len(p.layers)], policyLayer{source, req})
	p.req = p.req.Raise(req)
	return p
}

// decide is the decision table applied to what the host showed, with the
// source that a failure is due to: the first whose requirement, added to
// those before it, the host fails for the same reason. The same reason,
// because a handshake our own check of the certificate ended (a check only
// a later source asks for) fails an earlier requirement of TLS too, though
// that source never asked for the check.
func (p hostPolicy) decide(seen sealpost.TLSSeen) (sealpost.TLSVerdict, sealpost.PolicySource) {
	v := sealpost.DecideTLS(p.req, seen)
	if v.Action != sealpost.TLSNextMX {
		return v, p.source()
	}
	var sum sealpost.TLSRequirement
	for i, l := range p.layers {
		if i == 0 {
			sum = l.req
		} else {
			sum = sum.Raise(l.req)
		}
		if w := sealpost.DecideTLS(sum, seen); w.Action == sealpost.TLSNextMX && w.ResultType == v.ResultType {
			return v, l.source
		}
	}
	return v, p.source()
}

// source names the source that set the effective requirement: the last
// one that raised it above the sources before it; the account when no
// other did.
func (p hostPolicy) source() sealpost.PolicySource {
	src := sealpost.PolicySourceAccount
	var sum sealpost.TLSRequirement
	for i, l := range p.layers {
		if i > 0 && l.req.Mandatory() && l.req.Stricter(sum) {
			src = l.source
		}
		if i == 0 {
			sum = l.req
		} else {
			sum = sum.Raise(l.req)
		}
	}
	return src
}

// key is everything about p a session's fitness for a delivery depends
// on, for the session pool: sessions are reused only under the very same
// policy, sources and records included.
func (p hostPolicy) key() string {
	var b strings.Builder
	for _, l := range p.layers {
		fmt.Fprintf(&b, "%s=%v;", l.source, l.req)
	}
	fmt.Fprintf(&b, "mta-sts=%s;", p.mtasts)
	if p.testing != nil {
		fmt.Fprintf(&b, "testing=%v,%v;", *p.testing, p.testingUnlisted)
	}
	if p.dane != nil {
		for _, r := range p.dane.Records {
			fmt.Fprintf(&b, "tlsa=%d %d %d %s;", r.Usage, r.Selector, r.MatchingType, hex.EncodeToString(r.Data))
		}
		fmt.Fprintf(&b, "names=%s;", strings.Join(p.dane.Names, ","))
	}
	return b.String()
}

// stamp writes the effective policy into facts, for the event's sealpost
// object.
func (p hostPolicy) stamp(f *sealpost.TLSFacts) {
	req := p.req
	f.Policy = &req
	f.PolicySource = string(p.source())
	f.MTASTS = p.mtasts
}
