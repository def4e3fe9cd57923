package sealpost

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// AccountKind says where an account sits in the tenancy tree.
type AccountKind string

const (
	// KindUser is a top-level account: it has no parent and may own
	// subusers and customer accounts.
	KindUser AccountKind = "user"
	// KindSubuser is a subuser of a top-level account, addressed by
	// username in the on-behalf-of header.
	KindSubuser AccountKind = "subuser"
	// KindCustomer is a customer account of a top-level account (SendGrid's
	// Account Provisioning API), addressed by "account-id <id>".
	KindCustomer AccountKind = "customer"
)

// Account is one tenant. Each account has its own Enforced TLS setting and
// its own API keys; no account can see another's unless it is the other's
// parent acting through on-behalf-of.
type Account struct {
	ID int64
	// PublicID is the account_id of a customer account; empty otherwise.
	PublicID string
	Kind     AccountKind
	// ParentID is the owning top-level account; zero for KindUser.
	ParentID int64
	// Username is unique across all accounts; empty for customer accounts.
	Username  string
	Email     string
	Disabled  bool
	CreatedAt time.Time
}

// IsParentOf reports whether a owns child.
func (a *Account) IsParentOf(child *Account) bool {
	return a.Kind == KindUser && child.ParentID == a.ID && child.Kind != KindUser
}

// NewPublicAccountID returns a fresh account_id for a customer account.
func NewPublicAccountID() (string, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", Errorf(EINTERNAL, "generating account id: %v", err)
	}
	return "sg" + hex.EncodeToString(b[:]), nil
}

// ValidateUsername reports a problem with a username, or nil. SendGrid
// usernames are short printable identifiers; sealpost keeps them to letters,
// digits and ._@+- so they are safe in a header value and in logs.
func ValidateUsername(field, username string) *FieldError {
	if username == "" {
		return &FieldError{Field: field, Message: field + " is required"}
	}
	if len(username) > 64 {
		return &FieldError{Field: field, Message: field + " must be at most 64 characters"}
	}
	for _, r := range username {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._@+-", r)
		if !ok {
			return &FieldError{Field: field, Message: field + " may contain only letters, digits and . _ @ + -"}
		}
	}
	if strings.HasPrefix(strings.ToLower(username), "account-id") {
		return &FieldError{Field: field, Message: field + " must not start with account-id"}
	}
	return nil
}

// AddressDomain is the domain of an address, lower-cased: what follows its
// last "@" (all of it when there is none).
func AddressDomain(addr string) string {
	return strings.ToLower(addr[strings.LastIndexByte(addr, '@')+1:])
}

// ValidateEmail reports a problem with an email address, or nil. The check
// is deliberately loose (one @, something on each side, no spaces or
// control characters): the address is stored, not delivered to.
func ValidateEmail(field, email string) *FieldError {
	at := strings.LastIndexByte(email, '@')
	if email == "" {
		return &FieldError{Field: field, Message: field + " is required"}
	}
	if len(email) > 254 || at <= 0 || at == len(email)-1 || strings.ContainsFunc(email, func(r rune) bool { return r <= ' ' || unicode.IsControl(r) }) || !utf8.ValidString(email) {
		return &FieldError{Field: field, Message: field + " must be a valid email address"}
	}
	return nil
}

// ChildLimit is the ELIMIT error of a parent that owns limit accounts of
// kind already; its message names the limit.
func ChildLimit(kind AccountKind, limit int) *Error {
	what := "subusers"
	if kind == KindCustomer {
		what = "customer accounts"
	}
	return &Error{Code: ELIMIT, Fields: []FieldError{{Message: fmt.Sprintf("There is a limit of %d %s on your account.", limit, what)}}}
}

// SubuserFilter narrows a subuser listing.
type SubuserFilter struct {
	Username string // exact match when set
	Limit    int    // zero means no limit
	Offset   int
}

// AccountService stores accounts. Usernames are unique across all accounts:
// creating a duplicate is ECONFLICT.
type AccountService interface {
	// CreateAccount stores a new account with the default Enforced TLS
	// setting and sets its ID and CreatedAt.
	CreateAccount(ctx context.Context, a *Account) error
	// CreateChildAccount stores a, a child of a.ParentID, as CreateAccount
	// does, unless the parent already owns limit accounts of a.Kind: then
	// ELIMIT. The count and the insert are one atomic step, also across
	// nodes.
	CreateChildAccount(ctx context.Context, a *Account, limit int) error
	Account(ctx context.Context, id int64) (*Account, error)
	AccountByUsername(ctx context.Context, username string) (*Account, error)
	AccountByPublicID(ctx context.Context, publicID string) (*Account, error)
	// ChildAccounts lists parentID's accounts of the given kind, oldest first.
	ChildAccounts(ctx context.Context, parentID int64, kind AccountKind, f SubuserFilter) ([]*Account, error)
	// SetAccountDisabled disables or enables the account. Disabling also
	// makes its pending deliveries due at once, so that delivery workers
	// drop them now rather than at their next retry.
	SetAccountDisabled(ctx context.Context, id int64, disabled bool) error
	// DeleteAccount removes the account with its keys, settings and children.
	DeleteAccount(ctx context.Context, id int64) error
	// CountAccounts counts all accounts; serve uses it to bootstrap an empty database.
	CountAccounts(ctx context.Context) (int, error)
}
