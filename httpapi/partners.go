package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/sealpost/sealpost"
)

// profileStrings are the string members of an Account Provisioning
// profile. sealpost keeps only the email; the rest are type-checked so a
// client's mistakes still surface.
var profileStrings = [...]string{"first_name", "last_name", "company_name", "company_website", "phone", "timezone"}

func (s *Server) createPartnerAccount(ctx context.Context, _ *http.Request, c *call) (int, []byte, error) {
	o, err := parseObject(c.body)
	if err != nil {
		return 0, nil, err
	}
	var email string
	if profile, ok := o.obj("profile"); ok && profile != nil {
		email, _ = profile.checkedStr("email", false, sealpost.ValidateEmail)
		for _, name := range profileStrings {
			profile.str(name)
		}
	}
	if offerings, ok := o.array("offerings"); ok {
		for i, raw := range offerings {
			checkOffering(o, i, raw)
		}
	}
	if err := o.err(); err != nil {
		return 0, nil, err
	}
	publicID, err := sealpost.NewPublicAccountID()
	if err != nil {
		return 0, nil, err
	}
	a := &sealpost.Account{
		Kind:     sealpost.KindCustomer,
		PublicID: publicID,
		ParentID: c.acting.ID,
		Email:    email,
	}
	if err := s.store.CreateChildAccount(ctx, a, s.maxChildren); err != nil {
		return 0, nil, fmt.Errorf("creating customer account of account %d: %w", c.acting.ID, err)
	}
	return jsonResponse(http.StatusCreated, struct {
		AccountID string `json:"account_id"`
	}{a.PublicID})
}

// checkOffering type-checks offerings[i]: {"name","type","quantity"}.
func checkOffering(o *object, i int, raw json.RawMessage) {
	off := o.nested("offerings["+strconv.Itoa(i)+"]", raw)
	if off == nil {
		return
	}
	off.str("name")
	off.str("type")
	if q, ok := off.fields["quantity"]; ok {
		if n, err := strconv.ParseInt(string(bytes.TrimSpace(q)), 10, 64); err != nil || n < 0 {
			off.problem("quantity", "must be a non-negative integer")
		}
	}
}

// partnerAccount is one item of the Account Provisioning list: the
// account's id and its creation time in RFC 3339.
type partnerAccount struct {
	ID        string `json:"id"`
	CreatedAt string `json:"created_at"`
}

func (s *Server) listPartnerAccounts(ctx context.Context, _ *http.Request, c *call) (int, []byte, error) {
	accounts, err := s.store.ChildAccounts(ctx, c.acting.ID, sealpost.KindCustomer, sealpost.SubuserFilter{})
	if err != nil {
		return 0, nil, fmt.Errorf("listing customer accounts of account %d: %w", c.acting.ID, err)
	}
	out := make([]partnerAccount, 0, len(accounts))
	for _, a := range accounts {
		out = append(out, partnerAccount{ID: a.PublicID, CreatedAt: a.CreatedAt.UTC().Format(time.RFC3339)})
	}
	return jsonResponse(http.StatusOK, struct {
		Accounts []partnerAccount `json:"accounts"`
	}{out})
}
