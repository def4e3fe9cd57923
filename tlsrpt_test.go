package sealpost_test

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
)

func TestTLSRPTSession(t *testing.T) {
	for _, tc := range []struct {
		name        string
		obs         sealpost.HostObservation
		policy, res string
		counted     bool
	}{
		{"probe", sealpost.HostObservation{MXHost: "mx", Facts: sealpost.TLSFacts{TLS: true}}, "", "", false},
		{"in clear without a policy", sealpost.HostObservation{MXHost: "mx", Recipients: 1}, "no-policy-found", sealpost.ResultSTARTTLSNotSupported, true},
		{"report delivery", sealpost.HostObservation{MXHost: "mx", Recipients: 1, TLSReport: true}, "", "", false},
		{"plain success", sealpost.HostObservation{MXHost: "mx", Recipients: 1, Facts: sealpost.TLSFacts{TLS: true}}, "no-policy-found", "", true},
		{"blocked", sealpost.HostObservation{MXHost: "mx", Recipients: 1, Facts: sealpost.TLSFacts{ResultType: sealpost.ResultSTARTTLSNotSupported}}, "no-policy-found", sealpost.ResultSTARTTLSNotSupported, true},
		{"sts testing failure", sealpost.HostObservation{MXHost: "mx", Recipients: 1, Facts: sealpost.TLSFacts{TLS: true, MTASTS: "testing", MTASTSTestingResult: sealpost.ResultCertificateExpired}}, "sts", sealpost.ResultCertificateExpired, true},
		{"sts enforced", sealpost.HostObservation{MXHost: "mx", Recipients: 1, Facts: sealpost.TLSFacts{TLS: true, Verified: true, MTASTS: "enforce"}}, "sts", "", true},
		{"sts fetch error", sealpost.HostObservation{MXHost: "mx", Recipients: 1, Facts: sealpost.TLSFacts{ResultType: sealpost.ResultSTSPolicyFetchError}}, "sts", sealpost.ResultSTSPolicyFetchError, true},
		{"dane verified", sealpost.HostObservation{MXHost: "mx", Recipients: 1, Facts: sealpost.TLSFacts{TLS: true, DANEVerified: true}}, "tlsa", "", true},
		{"dane failure", sealpost.HostObservation{MXHost: "mx", Recipients: 1, Facts: sealpost.TLSFacts{PolicySource: "dane", ResultType: sealpost.ResultTLSAInvalid}}, "tlsa", sealpost.ResultTLSAInvalid, true},
	} {
		p, r, ok := tc.obs.TLSRPTSession()
		if p != tc.policy || r != tc.res || ok != tc.counted {
			t.Errorf("%s: TLSRPTSession = %q, %q, %v; want %q, %q, %v", tc.name, p, r, ok, tc.policy, tc.res, tc.counted)
		}
	}
}

func TestTLSRPTCountOfCarriesPolicy(t *testing.T) {
	sts := &sealpost.MTASTSPolicy{Mode: "enforce", MX: []string{"mx1.example", "*.mx.example"}, MaxAge: 604800}
	tlsa := []sealpost.TLSARecord{{Usage: 3, Selector: 1, MatchingType: 1, Data: []byte{0xab, 0xcd}}, {Usage: 2, Selector: 0, MatchingType: 2, Data: []byte{0x01}}}
	for _, tc := range []struct {
		name       string
		obs        sealpost.HostObservation
		str, mx    []string
		policyType string
	}{
		{"sts", sealpost.HostObservation{MXHost: "a.mx.example", Recipients: 1, Facts: sealpost.TLSFacts{TLS: true, Verified: true, MTASTS: "enforce"}, MTASTSPolicy: sts},
			[]string{"version: STSv1", "mode: enforce", "mx: mx1.example", "mx: *.mx.example", "max_age: 604800"}, []string{"mx1.example", "*.mx.example"}, "sts"},
		{"tlsa", sealpost.HostObservation{MXHost: "mx1.example", Recipients: 1, Facts: sealpost.TLSFacts{TLS: true, DANEVerified: true}, MTASTSPolicy: sts, TLSARecords: tlsa},
			[]string{"3 1 1 ABCD", "2 0 2 01"}, []string{"mx1.example"}, "tlsa"},
		{"sts as fetched", sealpost.HostObservation{MXHost: "a.mx.example", Recipients: 1, Facts: sealpost.TLSFacts{TLS: true, MTASTS: "testing"},
			MTASTSPolicy: &sealpost.MTASTSPolicy{Mode: "testing", MX: []string{"*.mx.example"}, MaxAge: 60, Lines: []string{"version: STSv1", "mx: *.mx.example", "mode:testing", "max_age: 60", "ext: 1"}}},
			[]string{"version: STSv1", "mx: *.mx.example", "mode:testing", "max_age: 60", "ext: 1"}, []string{"*.mx.example"}, "sts"},
		{"none", sealpost.HostObservation{MXHost: "mx1.example", Recipients: 1, Facts: sealpost.TLSFacts{TLS: true}}, nil, nil, "no-policy-found"},
	} {
		tc.obs.SendingIP = "127.0.0.9"
		c, ok := sealpost.TLSRPTCountOf(tc.obs)
		if !ok || c.PolicyType != tc.policyType || !reflect.DeepEqual(c.PolicyString, tc.str) || !reflect.DeepEqual(c.PolicyMX, tc.mx) || c.SendingIP != "127.0.0.9" {
			t.Errorf("%s: count = %+v, want policy %q %q mx %q from 127.0.0.9", tc.name, c, tc.policyType, tc.str, tc.mx)
		}
	}
}

func TestBuildTLSReports(t *testing.T) {
	day := sealpost.RegistryDay(time.Date(2026, 12, 6, 13, 0, 0, 0, time.UTC))
	stsLines := []string{"version: STSv1", "mode: testing", "mx: mx.b.example", "max_age: 86400"}
	newLines := []string{"version: STSv1", "mode: enforce", "mx: mx.b.example", "max_age: 86400"}
	stsMX := []string{"mx.b.example"}
	counts := []sealpost.TLSRPTCount{
		{AccountID: 2, PolicyDomain: "b.example", Day: day, PolicyType: "sts", PolicyString: stsLines, PolicyMX: stsMX, MXHost: "mx.b.example", ResultType: "", ReceivingIP: "127.0.0.2", SendingIP: "127.0.0.9", Sessions: 3},
		{AccountID: 1, PolicyDomain: "b.example", Day: day, PolicyType: "sts", PolicyString: stsLines, PolicyMX: stsMX, MXHost: "mx.b.example", ResultType: "", ReceivingIP: "127.0.0.2", SendingIP: "127.0.0.9", Sessions: 4},
		{AccountID: 1, PolicyDomain: "b.example", Day: day, PolicyType: "sts", PolicyString: stsLines, PolicyMX: stsMX, MXHost: "mx.b.example", ResultType: "certificate-expired", ReceivingIP: "127.0.0.2", SendingIP: "127.0.0.9", Sessions: 2},
		{AccountID: 2, PolicyDomain: "b.example", Day: day, PolicyType: "sts", PolicyString: stsLines, PolicyMX: stsMX, MXHost: "mx.b.example", ResultType: "certificate-expired", ReceivingIP: "127.0.0.2", SendingIP: "127.0.0.9", Sessions: 1},
		// The domain changed its policy during the day: a policy object of its own.
		{AccountID: 1, PolicyDomain: "b.example", Day: day, PolicyType: "sts", PolicyString: newLines, PolicyMX: stsMX, MXHost: "mx.b.example", ResultType: "", ReceivingIP: "127.0.0.2", SendingIP: "127.0.0.9", Sessions: 6},
		{AccountID: 1, PolicyDomain: "b.example", Day: day, PolicyType: "no-policy-found", MXHost: "mx2.b.example", ResultType: "starttls-not-supported", ReceivingIP: "127.0.0.3", SendingIP: "127.0.0.9", Sessions: 5},
		{AccountID: 1, PolicyDomain: "a.example", Day: day, PolicyType: "tlsa", PolicyString: []string{"3 1 1 ABCD"}, PolicyMX: []string{"mx.a.example"}, MXHost: "mx.a.example", ResultType: "", ReceivingIP: "127.0.0.4", Sessions: 1},
		{AccountID: 1, PolicyDomain: "a.example", Day: day + 1, PolicyType: "tlsa", MXHost: "mx.a.example", ResultType: "", ReceivingIP: "127.0.0.4", Sessions: 9},
	}
	meta := sealpost.TLSReportMeta{OrganizationName: "Example Org", ContactInfo: "tlsrpt@sender.example"}
	reports := sealpost.BuildTLSReports(day, counts, meta)
	if len(reports) != 2 {
		t.Fatalf("%d reports, want one per policy domain (2): %+v", len(reports), reports)
	}
	for _, r := range reports {
		raw, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		CheckTLSReportSchema(t, raw)
	}
	b := reports[1]
	if b.ReportID != "2026-12-06_b.example@sender.example" || b.DateRange.Start != time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC) ||
		b.DateRange.End != time.Date(2026, 12, 6, 23, 59, 59, 0, time.UTC) {
		t.Errorf("b's report id / range = %q %+v", b.ReportID, b.DateRange)
	}
	if len(b.Policies) != 3 {
		t.Fatalf("b's policies = %+v, want no-policy-found and the two sts policies", b.Policies)
	}
	np, enforce, testing := b.Policies[0], b.Policies[1], b.Policies[2]
	if np.Policy.PolicyType != "no-policy-found" || np.Policy.PolicyString != nil || np.Policy.MXHost != nil || np.Summary != (sealpost.TLSReportSummary{Successful: 0, Failed: 5}) ||
		len(np.FailureDetails) != 1 || np.FailureDetails[0] != (sealpost.TLSReportFailure{ResultType: "starttls-not-supported", SendingMTAIP: "127.0.0.9",
		ReceivingMXHostname: "mx2.b.example", ReceivingIP: "127.0.0.3", FailedSessionCount: 5}) {
		t.Errorf("no-policy-found policy = %+v", np)
	}
	if !reflect.DeepEqual(testing.Policy, sealpost.TLSReportPolicyDesc{PolicyType: "sts", PolicyString: stsLines, PolicyDomain: "b.example", MXHost: stsMX}) ||
		testing.Summary != (sealpost.TLSReportSummary{Successful: 7, Failed: 3}) ||
		!reflect.DeepEqual(testing.FailureDetails, []sealpost.TLSReportFailure{{ResultType: "certificate-expired", SendingMTAIP: "127.0.0.9",
			ReceivingMXHostname: "mx.b.example", ReceivingIP: "127.0.0.2", FailedSessionCount: 3}}) {
		t.Errorf("testing sts policy = %+v, want 7 successes and 3 failures of two accounts, in one failure detail", testing)
	}
	if !reflect.DeepEqual(enforce.Policy.PolicyString, newLines) || enforce.Summary.Successful != 6 {
		t.Errorf("enforce sts policy = %+v", enforce)
	}
	if a := reports[0]; a.Policies[0].Summary.Successful != 1 || !reflect.DeepEqual(a.Policies[0].Policy.MXHost, []string{"mx.a.example"}) {
		t.Errorf("a's report = %+v, want one session of the day, mx-host its MX host", a.Policies[0])
	}
}

// CheckTLSReportSchema checks raw against RFC 8460 section 4's fields:
// required members, their JSON types and the allowed policy types.
func CheckTLSReportSchema(t *testing.T, raw []byte) {
	t.Helper()
	var r map[string]any
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("report is not JSON: %v", err)
	}
	for _, k := range []string{"organization-name", "contact-info", "report-id"} {
		if s, ok := r[k].(string); !ok || s == "" {
			t.Errorf("%s = %v, want a non-empty string", k, r[k])
		}
	}
	dr, _ := r["date-range"].(map[string]any)
	for _, k := range []string{"start-datetime", "end-datetime"} {
		s, _ := dr[k].(string)
		if _, err := time.Parse(time.RFC3339, s); err != nil {
			t.Errorf("date-range.%s = %v, want RFC 3339", k, dr[k])
		}
	}
	policies, ok := r["policies"].([]any)
	if !ok || len(policies) == 0 {
		t.Fatalf("policies = %v, want a non-empty array", r["policies"])
	}
	for _, p := range policies {
		p, _ := p.(map[string]any)
		pol, _ := p["policy"].(map[string]any)
		switch pol["policy-type"] {
		case "sts", "tlsa", "no-policy-found":
		default:
			t.Errorf("policy-type = %v", pol["policy-type"])
		}
		if s, ok := pol["policy-domain"].(string); !ok || s == "" {
			t.Errorf("policy-domain = %v", pol["policy-domain"])
		}
		for _, k := range []string{"policy-string", "mx-host"} {
			if v, ok := pol[k]; ok {
				if l, ok := v.([]any); !ok || len(l) == 0 {
					t.Errorf("%s = %v, want an array of strings", k, v)
				}
			}
		}
		sum, _ := p["summary"].(map[string]any)
		for _, k := range []string{"total-successful-session-count", "total-failure-session-count"} {
			if _, ok := sum[k].(float64); !ok {
				t.Errorf("summary.%s = %v, want a number", k, sum[k])
			}
		}
		var failed float64
		fds, _ := p["failure-details"].([]any)
		for _, fd := range fds {
			fd, _ := fd.(map[string]any)
			if s, ok := fd["result-type"].(string); !ok || s == "" {
				t.Errorf("result-type = %v", fd["result-type"])
			}
			n, ok := fd["failed-session-count"].(float64)
			if !ok {
				t.Errorf("failed-session-count = %v", fd["failed-session-count"])
			}
			failed += n
		}
		if failed != sum["total-failure-session-count"] {
			t.Errorf("failure details add up to %v, summary says %v", failed, sum["total-failure-session-count"])
		}
	}
}
