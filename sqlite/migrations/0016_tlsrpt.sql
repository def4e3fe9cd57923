-- TLS reporting (RFC 8460): delivery sessions counted per account,
-- recipient policy domain, UTC day, policy type, MX host, result type ('':
-- success) and receiving IP; one upsert per session.
CREATE TABLE tlsrpt_counts (
	account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
	policy_domain TEXT NOT NULL,
	day BIGINT NOT NULL,
	policy_type TEXT NOT NULL,
	mx_host TEXT NOT NULL,
	result_type TEXT NOT NULL,
	receiving_ip TEXT NOT NULL,
	sessions BIGINT NOT NULL,
	PRIMARY KEY (day, policy_domain, policy_type, mx_host, result_type, receiving_ip, account_id)
);
CREATE INDEX tlsrpt_counts_account ON tlsrpt_counts (account_id, day);

-- The claim on one day's reports, so that they go once across nodes.
CREATE TABLE tlsrpt_runs (
	day BIGINT PRIMARY KEY,
	node TEXT NOT NULL,
	claimed_at BIGINT NOT NULL
);
