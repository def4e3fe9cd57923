package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/sealpost/sealpost"
)

func (s *Server) createSubuser(ctx context.Context, _ *http.Request, c *call) (int, []byte, error) {
	o, err := parseObject(c.body)
	if err != nil {
		return 0, nil, err
	}
	username, _ := o.checkedStr("username", true, sealpost.ValidateUsername)
	email, _ := o.checkedStr("email", true, sealpost.ValidateEmail)
	// Accepted for client compatibility; sealpost has no subuser logins or
	// dedicated IPs, so beyond their type they mean nothing here.
	o.str("password")
	o.strs("ips")
	if err := o.err(); err != nil {
		return 0, nil, err
	}
	a := &sealpost.Account{
		Kind:     sealpost.KindSubuser,
		ParentID: c.acting.ID,
		Username: username,
		Email:    email,
	}
	if err := s.store.CreateChildAccount(ctx, a, s.maxChildren); err != nil {
		if sealpost.ErrorCode(err) == sealpost.ECONFLICT {
			return 0, nil, sealpost.Invalid(sealpost.FieldError{Field: "username", Message: "username is already taken"})
		}
		return 0, nil, fmt.Errorf("creating subuser of account %d: %w", c.acting.ID, err)
	}
	type creditAllocation struct {
		Type string `json:"type"`
	}
	return jsonResponse(http.StatusOK, struct {
		Username         string           `json:"username"`
		UserID           int64            `json:"user_id"`
		Email            string           `json:"email"`
		CreditAllocation creditAllocation `json:"credit_allocation"`
	}{a.Username, a.ID, a.Email, creditAllocation{"unlimited"}})
}

type subuserEntry struct {
	Disabled bool   `json:"disabled"`
	ID       int64  `json:"id"`
	Username string `json:"username"`
	Email    string `json:"email"`
}

func (s *Server) listSubusers(ctx context.Context, r *http.Request, c *call) (int, []byte, error) {
	f, err := subuserFilter(r.URL.RawQuery)
	if err != nil {
		return 0, nil, err
	}
	accounts, err := s.store.ChildAccounts(ctx, c.acting.ID, sealpost.KindSubuser, f)
	if err != nil {
		return 0, nil, fmt.Errorf("listing subusers of account %d: %w", c.acting.ID, err)
	}
	out := make([]subuserEntry, 0, len(accounts))
	for _, a := range accounts {
		out = append(out, subuserEntry{Disabled: a.Disabled, ID: a.ID, Username: a.Username, Email: a.Email})
	}
	return jsonResponse(http.StatusOK, out)
}

// subuserFilter parses GET /v3/subusers's query, reporting every bad
// parameter by name.
func subuserFilter(rawQuery string) (sealpost.SubuserFilter, error) {
	var f sealpost.SubuserFilter
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return f, sealpost.Invalid(sealpost.FieldError{Message: "query string is malformed"})
	}
	var problems []sealpost.FieldError
	one := func(name string) (string, bool) {
		vs, ok := q[name]
		if !ok {
			return "", false
		}
		if len(vs) > 1 {
			problems = append(problems, sealpost.FieldError{Field: name, Message: name + " must be given once"})
			return "", false
		}
		return vs[0], true
	}
	if v, ok := one("username"); ok {
		if fe := sealpost.ValidateUsername("username", v); fe != nil {
			problems = append(problems, *fe)
		}
		f.Username = v
	}
	number := func(name string, min, max int) int {
		v, ok := one(name)
		if !ok {
			return 0
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < min || n > max {
			problems = append(problems, sealpost.FieldError{Field: name,
				Message: fmt.Sprintf("%s must be an integer from %d to %d", name, min, max)})
			return 0
		}
		return n
	}
	// Without limit the listing is whole, so an explicit limit of zero
	// would be ambiguous: it is refused rather than guessed at.
	f.Limit = number("limit", 1, 1<<31-1)
	f.Offset = number("offset", 0, 1<<31-1)
	if len(problems) > 0 {
		return sealpost.SubuserFilter{}, sealpost.Invalid(problems...)
	}
	return f, nil
}

// ownSubuser finds the acting account's subuser by name. Another parent's
// subuser, a non-subuser and a missing name are all the same 404, so no
// tenant can probe another's.
func (s *Server) ownSubuser(ctx context.Context, c *call, name string) (*sealpost.Account, error) {
	if sealpost.ValidateUsername("subuser_name", name) != nil {
		return nil, errNotFound
	}
	a, err := s.store.AccountByUsername(ctx, name)
	if sealpost.ErrorCode(err) == sealpost.ENOTFOUND {
		return nil, errNotFound
	} else if err != nil {
		return nil, fmt.Errorf("looking up subuser: %w", err)
	}
	if a.Kind != sealpost.KindSubuser || !c.acting.IsParentOf(a) {
		return nil, errNotFound
	}
	return a, nil
}

func (s *Server) patchSubuser(ctx context.Context, r *http.Request, c *call) (int, []byte, error) {
	o, err := parseObject(c.body)
	if err != nil {
		return 0, nil, err
	}
	disabled, present := o.boolean("disabled")
	if !present {
		o.problem("disabled", "is required")
	}
	if err := o.err(); err != nil {
		return 0, nil, err
	}
	a, err := s.ownSubuser(ctx, c, r.PathValue("subuser_name"))
	if err != nil {
		return 0, nil, err
	}
	if err := s.store.SetAccountDisabled(ctx, a.ID, *disabled); err != nil {
		if sealpost.ErrorCode(err) == sealpost.ENOTFOUND {
			return 0, nil, errNotFound
		}
		return 0, nil, fmt.Errorf("setting subuser %d disabled: %w", a.ID, err)
	}
	return http.StatusNoContent, nil, nil
}

func (s *Server) deleteSubuser(ctx context.Context, r *http.Request, c *call) (int, []byte, error) {
	a, err := s.ownSubuser(ctx, c, r.PathValue("subuser_name"))
	if err != nil {
		return 0, nil, err
	}
	if err := s.store.DeleteAccount(ctx, a.ID); err != nil {
		if sealpost.ErrorCode(err) == sealpost.ENOTFOUND {
			return 0, nil, errNotFound
		}
		return 0, nil, fmt.Errorf("deleting subuser %d: %w", a.ID, err)
	}
	return http.StatusNoContent, nil, nil
}
