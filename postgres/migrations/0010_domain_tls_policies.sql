-- An account's own Enforced TLS policies for recipient domains. domain is
-- normalised (lower-case ASCII, A-labels, no trailing dot); version is the
-- crypto/tls constant, as in enforced_tls.
CREATE TABLE domain_tls_policies (
	account_id         BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	domain             TEXT NOT NULL CHECK (length(domain) BETWEEN 1 AND 253),
	require_tls        BOOLEAN NOT NULL,
	require_valid_cert BOOLEAN NOT NULL,
	version            INTEGER NOT NULL CHECK (version IN (770, 771, 772)),
	created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
	updated_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
	PRIMARY KEY (account_id, domain)
);
