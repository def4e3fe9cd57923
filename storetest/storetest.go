// Package storetest is the one test suite every sealpost.Store must pass.
// The SQLite and PostgreSQL stores both run it, so that the HTTP layer can
// rely on one behaviour whichever database is behind it.
package storetest

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
)

// Run runs the whole suite. open must return a new, empty, migrated store for
// each call (each subtest calls it), and register its cleanup with t.Cleanup.
func Run(t *testing.T, open func(t *testing.T) sealpost.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s sealpost.Store)
	}{
		{"Ping", testPing},

		{"CreateAccount", testCreateAccount},
		{"CreateAccountDuplicateUsername", testCreateAccountDuplicateUsername},
		{"CustomerAccounts", testCustomerAccounts},
		{"AccountNotFound", testAccountNotFound},
		{"ChildAccounts", testChildAccounts},
		{"SetAccountDisabled", testSetAccountDisabled},
		{"DeleteAccount", testDeleteAccount},
		{"DeleteSubuser", testDeleteSubuser},
		{"CountAccounts", testCountAccounts},

		{"CreateAPIKey", testCreateAPIKey},
		{"APIKeyScopesRoundTrip", testAPIKeyScopesRoundTrip},
		{"APIKeys", testAPIKeys},
		{"UpdateAPIKey", testUpdateAPIKey},
		{"DeleteAPIKey", testDeleteAPIKey},
		{"APIKeyScopedToAccount", testAPIKeyScopedToAccount},
		{"LookupAPIKey", testLookupAPIKey},
		{"LookupAPIKeyFreshness", testLookupAPIKeyFreshness},
		{"APIKeyGuard", testAPIKeyGuard},
		{"APIKeyCap", testAPIKeyCap},
		{"APIKeyCapConcurrent", testAPIKeyCapConcurrent},
		{"ChildAccountCap", testChildAccountCap},
		{"DisablingMakesPendingDue", testDisablingMakesPendingDue},

		{"EnforcedTLSDefault", testEnforcedTLSDefault},
		{"EnforcedTLSPatch", testEnforcedTLSPatch},
		{"EnforcedTLSVersions", testEnforcedTLSVersions},
		{"EnforcedTLSIsolated", testEnforcedTLSIsolated},
		{"EnforcedTLSNotFound", testEnforcedTLSNotFound},
		{"EnforcedTLSFreshness", testEnforcedTLSFreshness},
		{"EnforcedTLSConcurrentPatches", testEnforcedTLSConcurrentPatches},
		{"EnforcedTLSConcurrentPartialPatches", testEnforcedTLSConcurrentPartialPatches},

		{"AuthenticatedDomains", testAuthenticatedDomains},
		{"AssignedAuthenticatedDomains", testAssignedAuthenticatedDomains},
		{"DomainTLSPolicies", testDomainTLSPolicies},
		{"DomainTLSPolicyRefused", testDomainTLSPolicyRefused},
		{"DomainTLSPoliciesIsolated", testDomainTLSPoliciesIsolated},
		{"DomainTLSPolicyCap", testDomainTLSPolicyCap},

		{"EventWebhookDefault", testEventWebhookDefault},
		{"EventWebhookPatch", testEventWebhookPatch},
		{"EventWebhookIsolated", testEventWebhookIsolated},
		{"EventWebhookNotFound", testEventWebhookNotFound},
		{"EventWebhookSigningKey", testEventWebhookSigningKey},
		{"EventWebhookConcurrentPatches", testEventWebhookConcurrentPatches},

		{"EnqueueRecipientStates", testEnqueueRecipientStates},
		{"EnqueueUnknownAccount", testEnqueueUnknownAccount},
		{"EnqueueSharedBody", testEnqueueSharedBody},
		{"ClaimGroupsByDomain", testClaimGroupsByDomain},
		{"ClaimDueOldestFirst", testClaimDueOldestFirst},
		{"ClaimLease", testClaimLease},
		{"CompleteAfterLeaseExpired", testCompleteAfterLeaseExpired},
		{"CompletePartial", testCompletePartial},
		{"CompleteUnattempted", testCompleteUnattempted},
		{"CompleteKeepsOtherDeliveries", testCompleteKeepsOtherDeliveries},
		{"ClaimConcurrent", testClaimConcurrent},
		{"ScheduledSendAt", testScheduledSendAt},
		{"Batches", testBatches},
		{"ScheduledSendCap", testScheduledSendCap},
		{"ClaimHonoursBatchStatus", testClaimHonoursBatchStatus},

		{"TLSRegistryCounts", testTLSRegistryCounts},
		{"TLSRegistryCompletion", testTLSRegistryCompletion},
		{"TLSRegistryLatest", testTLSRegistryLatest},
		{"TLSRegistryResolution", testTLSRegistryResolution},
		{"TLSRegistryPrune", testTLSRegistryPrune},
		{"TLSRPTCounts", testTLSRPTCounts},
		{"TLSRPTRunClaimedOnce", testTLSRPTRunClaimedOnce},
		{"TLSRPTSends", testTLSRPTSends},
		{"TLSRPTUnclaimedDays", testTLSRPTUnclaimedDays},

		{"MTASTSPolicyRoundTrip", testMTASTSPolicyRoundTrip},
		{"MTASTSPolicyNewerWins", testMTASTSPolicyNewerWins},

		{"OutboxEmpty", testOutboxEmpty},
		{"OutboxOnlyWantedKinds", testOutboxOnlyWantedKinds},
		{"OutboxOrder", testOutboxOrder},
		{"OutboxLease", testOutboxLease},
		{"OutboxAck", testOutboxAck},
		{"OutboxRetry", testOutboxRetry},
		{"OutboxAccounts", testOutboxAccounts},
		{"OutboxLanes", testOutboxLanes},
		{"OutboxBackoffPerAccount", testOutboxBackoffPerAccount},
		{"OutboxNewURLEndsBackoff", testOutboxNewURLEndsBackoff},
		{"OutboxRoundRobin", testOutboxRoundRobin},
		{"OutboxMax", testOutboxMax},
		{"OutboxConcurrentClaims", testOutboxConcurrentClaims},
		{"OutboxEventArgs", testOutboxEventArgs},

		{"ActivityList", testActivityList},
		{"ActivityQuery", testActivityQuery},
		{"ActivityDetail", testActivityDetail},
		{"ActivityPrune", testActivityPrune},

		{"ConsoleSessions", testConsoleSessions},
		{"EventWebhookBacklog", testEventWebhookBacklog},
		{"EventWebhookPosts", testEventWebhookPosts},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open(t))
		})
	}
}

func testPing(t *testing.T, s sealpost.Store) {
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

// --- fixtures ---

func createUser(t *testing.T, s sealpost.Store, username string) *sealpost.Account {
	t.Helper()
	return createAccount(t, s, &sealpost.Account{
		Kind:     sealpost.KindUser,
		Username: username,
		Email:    username + "@example.com",
	})
}

func createSubuser(t *testing.T, s sealpost.Store, parent *sealpost.Account, username string) *sealpost.Account {
	t.Helper()
	return createAccount(t, s, &sealpost.Account{
		Kind:     sealpost.KindSubuser,
		ParentID: parent.ID,
		Username: username,
		Email:    username + "@example.net",
	})
}

func createCustomer(t *testing.T, s sealpost.Store, parent *sealpost.Account, email string) *sealpost.Account {
	t.Helper()
	publicID, err := sealpost.NewPublicAccountID()
	if err != nil {
		t.Fatal(err)
	}
	return createAccount(t, s, &sealpost.Account{
		Kind:     sealpost.KindCustomer,
		PublicID: publicID,
		ParentID: parent.ID,
		Email:    email,
	})
}

func createAccount(t *testing.T, s sealpost.Store, a *sealpost.Account) *sealpost.Account {
	t.Helper()
	if err := s.CreateAccount(t.Context(), a); err != nil {
		t.Fatalf("CreateAccount(%+v): %v", *a, err)
	}
	return a
}

func createKey(t *testing.T, s sealpost.Store, accountID int64, name string, scopes []string) *sealpost.APIKey {
	t.Helper()
	k, _, err := sealpost.NewAPIKey(accountID, name, scopes)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAPIKey(t.Context(), k); err != nil {
		t.Fatalf("CreateAPIKey(%q): %v", name, err)
	}
	return k
}

// --- assertions ---

// wantCode fails t unless err carries the domain error code want.
func wantCode(t *testing.T, err error, want, what string) {
	t.Helper()
	if got := sealpost.ErrorCode(err); got != want {
		t.Errorf("%s: error code %q (err %v), want %q", what, got, err, want)
	}
}

// recent fails t unless ts is set and close to now: stores may take the
// time from the database's clock rather than Go's, so allow some skew.
func recent(t *testing.T, ts time.Time, what string) {
	t.Helper()
	const skew = 5 * time.Second
	if ts.IsZero() {
		t.Errorf("%s: CreatedAt not set", what)
		return
	}
	if d := time.Since(ts); d < -skew || d > time.Minute {
		t.Errorf("%s: CreatedAt %v is %v away from now", what, ts, d)
	}
}

func accountDiff(got, want *sealpost.Account) string {
	if got == nil || want == nil {
		if got == want {
			return ""
		}
		return fmt.Sprintf("got %v, want %v", got, want)
	}
	var d []string
	add := func(field string, g, w any) {
		d = append(d, fmt.Sprintf("%s = %v, want %v", field, g, w))
	}
	if got.ID != want.ID {
		add("ID", got.ID, want.ID)
	}
	if got.PublicID != want.PublicID {
		add("PublicID", got.PublicID, want.PublicID)
	}
	if got.Kind != want.Kind {
		add("Kind", got.Kind, want.Kind)
	}
	if got.ParentID != want.ParentID {
		add("ParentID", got.ParentID, want.ParentID)
	}
	if got.Username != want.Username {
		add("Username", got.Username, want.Username)
	}
	if got.Email != want.Email {
		add("Email", got.Email, want.Email)
	}
	if got.Disabled != want.Disabled {
		add("Disabled", got.Disabled, want.Disabled)
	}
	// The value CreateAccount reports must be the value stored, to the
	// nanosecond: a store that keeps less precision must round before
	// returning, or the API would show two creation times for one account.
	if !got.CreatedAt.Equal(want.CreatedAt) {
		add("CreatedAt", got.CreatedAt, want.CreatedAt)
	}
	return strings.Join(d, "; ")
}

func wantAccount(t *testing.T, got *sealpost.Account, want *sealpost.Account, what string) {
	t.Helper()
	if d := accountDiff(got, want); d != "" {
		t.Errorf("%s: %s", what, d)
	}
}

func keyDiff(got, want *sealpost.APIKey) string {
	if got == nil || want == nil {
		if got == want {
			return ""
		}
		return fmt.Sprintf("got %v, want %v", got, want)
	}
	var d []string
	add := func(field string, g, w any) {
		d = append(d, fmt.Sprintf("%s = %v, want %v", field, g, w))
	}
	if got.ID != want.ID {
		add("ID", got.ID, want.ID)
	}
	if got.AccountID != want.AccountID {
		add("AccountID", got.AccountID, want.AccountID)
	}
	if got.Name != want.Name {
		add("Name", got.Name, want.Name)
	}
	// nil and empty are the same scope list; order is not normalised.
	if !slices.Equal(got.Scopes, want.Scopes) {
		add("Scopes", fmt.Sprintf("%q", got.Scopes), fmt.Sprintf("%q", want.Scopes))
	}
	if !bytes.Equal(got.SecretHash, want.SecretHash) {
		add("SecretHash", fmt.Sprintf("%x", got.SecretHash), fmt.Sprintf("%x", want.SecretHash))
	}
	if !got.CreatedAt.Equal(want.CreatedAt) {
		add("CreatedAt", got.CreatedAt, want.CreatedAt)
	}
	return strings.Join(d, "; ")
}

func wantKey(t *testing.T, got, want *sealpost.APIKey, what string) {
	t.Helper()
	if d := keyDiff(got, want); d != "" {
		t.Errorf("%s: %s", what, d)
	}
}

func ids(accounts []*sealpost.Account) []int64 {
	out := make([]int64, len(accounts))
	for i, a := range accounts {
		out[i] = a.ID
	}
	return out
}

func ptr[T any](v T) *T { return &v }
