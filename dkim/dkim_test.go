package dkim_test

import (
	"bytes"
	"context"
	"testing"

	msgauth "github.com/emersion/go-msgauth/dkim"

	"github.com/sealpost/sealpost"
	"github.com/sealpost/sealpost/dkim"
)

// accountDomains is one account's domains and the one its parent assigned
// it, as the store gives them.
type accountDomains struct {
	own      []sealpost.AuthenticatedDomain
	assigned *sealpost.AuthenticatedDomain
}

func (a accountDomains) AuthenticatedDomains(context.Context, int64) ([]sealpost.AuthenticatedDomain, error) {
	return a.own, nil
}

func (a accountDomains) AssociatedAuthenticatedDomain(context.Context, int64) (*sealpost.AuthenticatedDomain, error) {
	if a.assigned == nil {
		return nil, sealpost.Errorf(sealpost.ENOTFOUND, "none assigned")
	}
	return a.assigned, nil
}

func validDomain(t *testing.T, name string, isDefault bool) sealpost.AuthenticatedDomain {
	t.Helper()
	d, err := sealpost.AuthenticatedDomainRequest{Domain: name, Default: isDefault, KeyAlgorithm: sealpost.DKIMKeyEd25519}.Make()
	if err != nil {
		t.Fatal(err)
	}
	d.Valid = true
	return d
}

// TestSignerChoosesAsSendGrid: a subuser's mail is signed with its own
// domain covering From, else its own default, else the domain its parent
// assigned it; each signature verifies against that domain's record.
func TestSignerChoosesAsSendGrid(t *testing.T) {
	t.Parallel()
	own := validDomain(t, "sub.example", false)
	ownDefault := validDomain(t, "sub-default.example", true)
	parents := validDomain(t, "parent.example", false)
	records := map[string]string{}
	for _, d := range []sealpost.AuthenticatedDomain{own, ownDefault, parents} {
		r, err := d.DKIMRecord()
		if err != nil {
			t.Fatal(err)
		}
		records[d.DKIMHost()] = r
	}
	for _, tc := range []struct {
		name    string
		domains accountDomains
		from    string
		want    string
	}{
		{"own domain covering From", accountDomains{[]sealpost.AuthenticatedDomain{own, ownDefault}, &parents}, "news@sub.example", "sub.example"},
		{"own default", accountDomains{[]sealpost.AuthenticatedDomain{own, ownDefault}, &parents}, "news@parent.example", "sub-default.example"},
		{"assigned covering From", accountDomains{[]sealpost.AuthenticatedDomain{own}, &parents}, "news@mail.parent.example", "parent.example"},
		{"assigned as the default", accountDomains{[]sealpost.AuthenticatedDomain{own}, &parents}, "news@elsewhere.example", "parent.example"},
		{"nothing to sign with", accountDomains{[]sealpost.AuthenticatedDomain{own}, nil}, "news@elsewhere.example", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			message := []byte("From: <" + tc.from + ">\r\nTo: <rcpt@dest.example>\r\nSubject: s\r\n\r\nbody\r\n")
			signed, d, err := (&dkim.Signer{Domains: tc.domains}).Sign(context.Background(), 2, message)
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == "" {
				if d != nil || !bytes.Equal(signed, message) {
					t.Errorf("signed for %+v, want unsigned", d)
				}
				return
			}
			if d == nil || d.Domain != tc.want {
				t.Fatalf("signed for %+v, want %s", d, tc.want)
			}
			verifs, err := msgauth.VerifyWithOptions(bytes.NewReader(signed), &msgauth.VerifyOptions{
				LookupTXT: func(name string) ([]string, error) { return []string{records[name]}, nil },
			})
			if err != nil || len(verifs) != 1 || verifs[0].Err != nil || verifs[0].Domain != tc.want {
				t.Errorf("verification = %+v, %v; want one valid signature by %s", verifs, err, tc.want)
			}
		})
	}
}
