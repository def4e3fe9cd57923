package delivery_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
	"github.com/sealpost/sealpost/delivery"
	"github.com/sealpost/sealpost/delivery/mxtest"
)

// The matrix again, with recipients' policy sources as a dimension: each
// source alone and with the account's setting. A source raises the
// requirement, so each case's outcomes are a column of the account-only
// matrix (the decision table under the raised requirement), with DANE's
// own differences spelt out; everything is checked at the servers, and
// nothing may be seen in clear wherever any source requires TLS.

const (
	colDefault = iota
	colRequireTLS
	colValidCert
	colValidCert12
	colValidCert13
	colRequireTLS12
	colRequireTLS13
)

type sourceCase struct {
	name    string
	account sealpost.EnforcedTLS
	domain  *sealpost.EnforcedTLS
	mtasts  func() *fakeMTASTS
	dane    bool
	// daneUnusable: every host has secure TLSA records, none usable.
	daneUnusable bool
	// column is the account-only column whose outcomes apply; adjust
	// changes a row's cell where DANE's authentication differs.
	column int
	adjust func(row string, c cell) cell
	// mandatory: the effective requirement makes TLS mandatory.
	mandatory bool
	// delivered and blockedBy are the policy_source of a delivered and of
	// a blocked recipient ("" = not checked).
	delivered, blockedBy sealpost.PolicySource
	// testing: the MTA-STS testing result each row records is that of the
	// require_valid_cert 1.2 column (MTA-STS's own requirement).
	testing bool
}

// daneCells: DANE-EE records match the certificate whatever its names and
// dates, and a self-signed certificate is not among those published.
func daneCells(row string, c cell) cell {
	switch row {
	case "STARTTLS self-signed":
		return blocked(sealpost.ResultTLSAInvalid)
	}
	return c
}

var sourceCases = []sourceCase{
	{name: "domain require_valid_cert alone", account: sealpost.DefaultEnforcedTLS(),
		domain: ptr(sealpost.EnforcedTLS{RequireValidCert: true, Version: sealpost.TLS11}),
		column: colValidCert, mandatory: true, delivered: sealpost.PolicySourceDomain, blockedBy: sealpost.PolicySourceDomain},
	{name: "domain require_tls 1.3 over account require_valid_cert", account: sealpost.EnforcedTLS{RequireValidCert: true, Version: sealpost.TLS11},
		domain: ptr(sealpost.EnforcedTLS{RequireTLS: true, Version: sealpost.TLS13}),
		column: colValidCert13, mandatory: true, delivered: sealpost.PolicySourceDomain},
	{name: "domain weaker than the account has no effect", account: sealpost.EnforcedTLS{RequireTLS: true, Version: sealpost.TLS13},
		domain: ptr(sealpost.DefaultEnforcedTLS()),
		column: colRequireTLS13, mandatory: true, delivered: sealpost.PolicySourceAccount, blockedBy: sealpost.PolicySourceAccount},
	{name: "MTA-STS enforce alone", account: sealpost.DefaultEnforcedTLS(),
		mtasts: func() *fakeMTASTS { return enforceMTASTS("*." + matrixDomain) },
		column: colValidCert12, mandatory: true, delivered: sealpost.PolicySourceMTASTS, blockedBy: sealpost.PolicySourceMTASTS},
	{name: "MTA-STS enforce with account require_tls 1.3", account: sealpost.EnforcedTLS{RequireTLS: true, Version: sealpost.TLS13},
		mtasts: func() *fakeMTASTS { return enforceMTASTS("mx1."+matrixDomain, "mx2."+matrixDomain) },
		column: colValidCert13, mandatory: true, delivered: sealpost.PolicySourceMTASTS},
	{name: "MTA-STS testing", account: sealpost.DefaultEnforcedTLS(),
		mtasts: func() *fakeMTASTS { return testingMTASTS("*." + matrixDomain) },
		column: colDefault, delivered: sealpost.PolicySourceAccount, testing: true},
	{name: "DANE alone", account: sealpost.DefaultEnforcedTLS(), dane: true,
		column: colRequireTLS, adjust: daneCells, mandatory: true, delivered: sealpost.PolicySourceDANE, blockedBy: sealpost.PolicySourceDANE},
	{name: "DANE with account require_valid_cert", account: sealpost.EnforcedTLS{RequireValidCert: true, Version: sealpost.TLS11}, dane: true,
		column: colValidCert, mandatory: true, delivered: sealpost.PolicySourceDANE, blockedBy: sealpost.PolicySourceAccount},
	{name: "DANE replaces MTA-STS enforce", account: sealpost.DefaultEnforcedTLS(), dane: true,
		mtasts: func() *fakeMTASTS { return enforceMTASTS("*." + matrixDomain) },
		column: colRequireTLS, adjust: daneCells, mandatory: true, delivered: sealpost.PolicySourceDANE, blockedBy: sealpost.PolicySourceDANE},
	// TLSA records that are all unusable still require TLS (RFC 7672 2.2),
	// authenticating nothing: require_tls's column, self-signed included.
	{name: "DANE unusable records alone", account: sealpost.DefaultEnforcedTLS(), daneUnusable: true,
		column: colRequireTLS, mandatory: true, delivered: sealpost.PolicySourceDANE, blockedBy: sealpost.PolicySourceDANE},
	// The TLS they require the account's certificate check already does:
	// they raise nothing, so the account is named.
	{name: "DANE unusable records with account require_valid_cert", account: sealpost.EnforcedTLS{RequireValidCert: true, Version: sealpost.TLS11}, daneUnusable: true,
		column: colValidCert, mandatory: true, delivered: sealpost.PolicySourceAccount, blockedBy: sealpost.PolicySourceAccount},
	// They replace nothing either: MTA-STS still asks for a valid
	// certificate at TLS 1.2.
	{name: "DANE unusable records keep MTA-STS enforce", account: sealpost.DefaultEnforcedTLS(), daneUnusable: true,
		mtasts: func() *fakeMTASTS { return enforceMTASTS("*." + matrixDomain) },
		column: colValidCert12, mandatory: true, delivered: sealpost.PolicySourceMTASTS, blockedBy: sealpost.PolicySourceMTASTS},
}

func TestRecipientPolicyMatrix(t *testing.T) {
	t.Parallel()
	for _, sc := range sourceCases {
		for _, row := range matrixRows {
			want := row.cells[sc.column]
			if sc.adjust != nil {
				want = sc.adjust(row.name, want)
			}
			t.Run(sc.name+"/"+row.name, func(t *testing.T) {
				t.Parallel()
				h := mxtest.New(t)
				w := row.setup(h)
				marker := fmt.Sprintf("sources-body-%d-%d", time.Now().UnixNano(), len(row.name))
				env := delivery.Envelope{
					From:         "sender@sealpost.test",
					Domain:       matrixDomain,
					Recipients:   []string{rcpt},
					Data:         []byte("From: sender@sealpost.test\r\nTo: " + rcpt + "\r\nSubject: sources\r\n\r\n" + marker + "\r\n"),
					DomainPolicy: sc.domain,
				}
				c := sourcesClient(h)
				var sts *fakeMTASTS
				if sc.mtasts != nil {
					sts = sc.mtasts()
					c.MTASTS = sts
				}
				if sc.dane {
					c.DANE = fakeDANE{}
					c.VerifyDANE = daneMatchesIssuedBy(t, h.CA())
				}
				if sc.daneUnusable {
					c.DANE = fakeDANE{unusable: true}
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()

				res := c.Deliver(ctx, sc.account, env)
				if want.deferredFirst {
					checkDeferred(t, res)
					env.Attempt++
					res = c.Deliver(ctx, sc.account, env)
				}
				// A failure only MTA-STS causes is deferred on the first
				// attempt, and blocked on a later one (RFC 8461 5).
				mtastsDeferred := false
				if want.status == delivery.Blocked && res.Recipients[0].Status == delivery.Deferred && res.TLS.PolicySource == string(sealpost.PolicySourceMTASTS) {
					mtastsDeferred = true
					env.Attempt++
					res = c.Deliver(ctx, sc.account, env)
				}
				// The certificate check the outcome must show is the one
				// the raised requirement makes.
				checkResult(t, want, res, w, matrixPolicies[sc.column].policy, row.badCert && !sc.dane)
				checkServers(t, want, w, marker)
				if sc.mandatory || want.status == delivery.Blocked {
					checkNothingInClear(t, w, marker)
				}
				switch {
				case want.status == delivery.Delivered && sc.delivered != "":
					if res.TLS.PolicySource != string(sc.delivered) {
						t.Errorf("delivered with policy_source %q, want %q", res.TLS.PolicySource, sc.delivered)
					}
				case want.status == delivery.Blocked && sc.blockedBy != "":
					if res.TLS.PolicySource != string(sc.blockedBy) {
						t.Errorf("blocked with policy_source %q, want %q", res.TLS.PolicySource, sc.blockedBy)
					}
				}
				if sc.daneUnusable && (res.TLS.DANEVerified || res.TLS.Policy != nil && res.TLS.Policy.DANE) {
					t.Errorf("dane_verified %v, policy %+v: unusable records authenticate nothing", res.TLS.DANEVerified, res.TLS.Policy)
				}
				if res.TLS.Policy == nil || res.TLS.Policy.Mandatory() != sc.mandatory {
					t.Errorf("effective policy %+v, want mandatory=%v", res.TLS.Policy, sc.mandatory)
				}
				if want.status == delivery.Blocked && res.TLS.PolicySource == string(sealpost.PolicySourceMTASTS) && (sts.Refreshes() != 2 || !mtastsDeferred) {
					t.Errorf("blocked for the MTA-STS policy after %d refreshes, deferred first %v; want 2 refreshes and a deferral", sts.Refreshes(), mtastsDeferred)
				}
				if sc.testing {
					wantTesting := ""
					if enforced := row.cells[colValidCert12]; enforced.status == delivery.Blocked {
						wantTesting = enforced.resultType
					}
					if want.via == "mx1" && row.cells[colValidCert12].via == "mx2" {
						// The result is the delivering host's: enforced,
						// the policy would have skipped it for the next.
						wantTesting = sealpost.ResultSTARTTLSNotSupported
					}
					if res.TLS.MTASTSTestingResult != wantTesting {
						t.Errorf("mta_sts_testing_result %q, want %q", res.TLS.MTASTSTestingResult, wantTesting)
					}
					if res.TLS.MTASTS != "testing" {
						t.Errorf("mta_sts %q, want testing", res.TLS.MTASTS)
					}
				}
				if t.Failed() {
					t.Logf("result: %+v facts %+v", res.Recipients, res.TLS)
				}
			})
		}
	}
}
