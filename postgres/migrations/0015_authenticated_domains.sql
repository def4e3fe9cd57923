-- Accounts' authenticated sending domains (sealpost.AuthenticatedDomain).
-- private_key is the DKIM key as PKCS#8 DER, kept like the Event Webhook
-- signing keys.
CREATE TABLE authenticated_domains (
	id            BIGSERIAL PRIMARY KEY,
	account_id    BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	domain        TEXT NOT NULL CHECK (length(domain) BETWEEN 1 AND 253),
	subdomain     TEXT NOT NULL,
	is_default    BOOLEAN NOT NULL,
	valid         BOOLEAN NOT NULL,
	selector      TEXT NOT NULL,
	key_algorithm TEXT NOT NULL CHECK (key_algorithm IN ('rsa', 'ed25519')),
	private_key   BYTEA NOT NULL,
	created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
	UNIQUE (account_id, domain)
);
