package sealpost

import "context"

// Store is everything sealpost keeps. The SQLite and PostgreSQL packages
// implement it and pass one shared test suite (package storetest).
type Store interface {
	AccountService
	APIKeyService
	EnforcedTLSService
	DomainTLSPolicyService
	EventWebhookService
	QueueService
	BatchService
	OutboxService
	TLSRegistryStore
	TLSRPTService
	MTASTSPolicyCache
	ActivityService
	ConsoleSessionService
	EventWebhookBacklogService
	EventWebhookPostService
	AuthenticatedDomainService
	// Ping reports whether the database answers, for /readyz.
	Ping(ctx context.Context) error
	Close() error
}
