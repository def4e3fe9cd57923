package sealpost

import (
	"slices"
	"strings"
)

// SendGrid's scope names for the routes sealpost serves.
const (
	ScopeEnforcedTLSRead   = "user.settings.enforced_tls.read"
	ScopeEnforcedTLSUpdate = "user.settings.enforced_tls.update"

	ScopeAPIKeysCreate = "api_keys.create"
	ScopeAPIKeysRead   = "api_keys.read"
	ScopeAPIKeysUpdate = "api_keys.update"
	ScopeAPIKeysDelete = "api_keys.delete"

	ScopeSubusersCreate = "subusers.create"
	ScopeSubusersRead   = "subusers.read"
	ScopeSubusersUpdate = "subusers.update"
	ScopeSubusersDelete = "subusers.delete"

	// The Account Provisioning API has no published scope names; SendGrid
	// lets any reseller key use it. sealpost names them after the route.
	ScopePartnerAccountsCreate = "partners.accounts.create"
	ScopePartnerAccountsRead   = "partners.accounts.read"

	ScopeMailSend = "mail.send"

	// Domain authentication (/v3/whitelabel/domains).
	ScopeWhitelabelCreate = "whitelabel.create"
	ScopeWhitelabelRead   = "whitelabel.read"
	ScopeWhitelabelUpdate = "whitelabel.update"
	ScopeWhitelabelDelete = "whitelabel.delete"

	ScopeMailBatchCreate      = "mail.batch.create"
	ScopeMailBatchRead        = "mail.batch.read"
	ScopeScheduledSendsCreate = "user.scheduled_sends.create"
	ScopeScheduledSendsRead   = "user.scheduled_sends.read"
	ScopeScheduledSendsUpdate = "user.scheduled_sends.update"
	ScopeScheduledSendsDelete = "user.scheduled_sends.delete"

	// ScopeMessagesRead reads the Email Activity feed (GET /v3/messages).
	ScopeMessagesRead = "messages.read"

	ScopeEventWebhookRead   = "user.webhooks.event.settings.read"
	ScopeEventWebhookUpdate = "user.webhooks.event.settings.update"
	ScopeEventWebhookTest   = "user.webhooks.event.test.create"

	// ScopeTLSProbe lets a key ask recipient domains' mail servers about
	// their TLS (POST /v3/tls/probe); sealpost's own, SendGrid has none.
	ScopeTLSProbe = "tls.probe"
)

// tenancyScopes only make sense for a top-level account: subusers and
// customer accounts cannot own accounts of their own.
var tenancyScopes = []string{
	ScopeSubusersCreate, ScopeSubusersRead, ScopeSubusersUpdate, ScopeSubusersDelete,
	ScopePartnerAccountsCreate, ScopePartnerAccountsRead,
}

// FullAccessScopes returns every scope an account of kind may hold, sorted.
// A key created without a scopes list gets exactly these.
func FullAccessScopes(kind AccountKind) []string {
	all := []string{
		ScopeEnforcedTLSRead, ScopeEnforcedTLSUpdate,
		ScopeAPIKeysCreate, ScopeAPIKeysRead, ScopeAPIKeysUpdate, ScopeAPIKeysDelete,
		ScopeMailSend,
		ScopeMailBatchCreate, ScopeMailBatchRead,
		ScopeScheduledSendsCreate, ScopeScheduledSendsRead, ScopeScheduledSendsUpdate, ScopeScheduledSendsDelete,
		ScopeEventWebhookRead, ScopeEventWebhookUpdate, ScopeEventWebhookTest,
		ScopeMessagesRead,
		ScopeTLSProbe,
		ScopeWhitelabelCreate, ScopeWhitelabelRead, ScopeWhitelabelUpdate, ScopeWhitelabelDelete,
	}
	if kind == KindUser {
		all = append(all, tenancyScopes...)
	}
	slices.Sort(all)
	return all
}

// NormalizeScopes validates requested scopes for a key of an account of kind
// and returns them sorted and de-duplicated. Every scope must be one the
// account may hold and one that granter (the creating key's scopes) holds.
func NormalizeScopes(field string, requested []string, kind AccountKind, granter []string) ([]string, error) {
	allowed := FullAccessScopes(kind)
	var problems []FieldError
	out := make([]string, 0, len(requested))
	for _, s := range requested {
		switch {
		case !slices.Contains(allowed, s):
			problems = append(problems, FieldError{Field: field, Message: "unknown scope: " + truncate(s, 100)})
		case !slices.Contains(granter, s):
			problems = append(problems, FieldError{Field: field, Message: "cannot grant a scope the calling key lacks: " + s})
		default:
			out = append(out, s)
		}
	}
	if len(problems) > 0 {
		return nil, Invalid(problems...)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "..."
}
