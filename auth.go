package sealpost

import (
	"context"
	"strings"
)

// Authenticate turns an Authorization header into a principal. Every way of
// failing (missing header, wrong scheme, malformed or unknown key, wrong
// secret, disabled account) is the same EUNAUTHORIZED, so a caller learns
// nothing about which keys exist.
func Authenticate(ctx context.Context, keys APIKeyService, authorization string) (*Principal, error) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(authorization), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return nil, Errorf(EUNAUTHORIZED, "authorization required")
	}
	id, secret, ok := ParseToken(strings.TrimSpace(token))
	if !ok {
		return nil, Errorf(EUNAUTHORIZED, "authorization required")
	}
	p, err := keys.LookupAPIKey(ctx, id)
	if ErrorCode(err) == ENOTFOUND {
		return nil, Errorf(EUNAUTHORIZED, "authorization required")
	} else if err != nil {
		return nil, err
	}
	if !p.Key.Matches(secret) || p.Account.Disabled {
		return nil, Errorf(EUNAUTHORIZED, "authorization required")
	}
	return p, nil
}

// OnBehalfOf is a parsed on-behalf-of header: either a subuser's username
// or a customer account's id.
type OnBehalfOf struct {
	Username  string
	AccountID string
}

// ParseOnBehalfOf parses the header value. "account-id <id>" names a
// customer account; anything else is a subuser's username.
func ParseOnBehalfOf(value string) (OnBehalfOf, error) {
	v := strings.TrimSpace(value)
	if v == "" {
		return OnBehalfOf{}, Invalid(FieldError{Field: "on-behalf-of", Message: "on-behalf-of must name a subuser or an account-id"})
	}
	if len(v) > 256 {
		return OnBehalfOf{}, Invalid(FieldError{Field: "on-behalf-of", Message: "on-behalf-of is too long"})
	}
	const prefix = "account-id"
	if len(v) >= len(prefix) && strings.EqualFold(v[:len(prefix)], prefix) {
		rest := v[len(prefix):]
		id := strings.TrimSpace(rest)
		if id == "" || (rest[0] != ' ' && rest[0] != '\t') {
			return OnBehalfOf{}, Invalid(FieldError{Field: "on-behalf-of", Message: "on-behalf-of must be account-id followed by a space and the account id"})
		}
		return OnBehalfOf{AccountID: id}, nil
	}
	return OnBehalfOf{Username: v}, nil
}

// ResolveOnBehalfOf returns the account a request acts as. Without the
// header it is the caller's own. With it, the caller must be a top-level
// account's key (EFORBIDDEN otherwise) and the named account must be the
// caller's own subuser or customer account; any other name, existing or not,
// is the same ENOTFOUND so that no tenant can probe another's.
func ResolveOnBehalfOf(ctx context.Context, accounts AccountService, caller *Principal, header string) (*Account, error) {
	if header == "" {
		return caller.Account, nil
	}
	if caller.Account.Kind != KindUser {
		return nil, Errorf(EFORBIDDEN, "access forbidden")
	}
	obo, err := ParseOnBehalfOf(header)
	if err != nil {
		return nil, err
	}
	// A name no account can have is not looked up: it is simply not found,
	// and a store never sees bytes (NUL, invalid UTF-8) it may refuse.
	if obo.AccountID != "" && !isIdentifier(obo.AccountID, 64) || obo.Username != "" && ValidateUsername("on-behalf-of", obo.Username) != nil {
		return nil, oboNotFound()
	}
	var target *Account
	var want AccountKind
	if obo.AccountID != "" {
		target, err = accounts.AccountByPublicID(ctx, obo.AccountID)
		want = KindCustomer
	} else {
		target, err = accounts.AccountByUsername(ctx, obo.Username)
		want = KindSubuser
	}
	if err != nil && ErrorCode(err) != ENOTFOUND {
		return nil, err
	}
	if err != nil || target.Kind != want || !caller.Account.IsParentOf(target) {
		return nil, oboNotFound()
	}
	return target, nil
}

func oboNotFound() *Error {
	return &Error{Code: ENOTFOUND, Fields: []FieldError{{Field: "on-behalf-of", Message: "on-behalf-of names no account of yours"}}}
}
