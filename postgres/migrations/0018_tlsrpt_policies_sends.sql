-- TLS report counts also per policy (policy_key: a digest of its type,
-- text and mx-host; the text itself in policy_string and policy_mx, one
-- entry per line) and per sending IP. Counts made before have none.
ALTER TABLE tlsrpt_counts
	ADD COLUMN policy_key TEXT NOT NULL DEFAULT '',
	ADD COLUMN policy_string TEXT NOT NULL DEFAULT '',
	ADD COLUMN policy_mx TEXT NOT NULL DEFAULT '',
	ADD COLUMN sending_ip TEXT NOT NULL DEFAULT '';
ALTER TABLE tlsrpt_counts DROP CONSTRAINT tlsrpt_counts_pkey;
ALTER TABLE tlsrpt_counts ADD PRIMARY KEY (day, policy_domain, policy_type, policy_key, mx_host, result_type, receiving_ip, sending_ip, account_id);

-- A report still to send to one rua: inserted with the day's claim, taken
-- by any node through a lease (lease_until, Unix nanoseconds) when
-- next_attempt_at has come, deleted once sent or at give_up_at. report is
-- the report's JSON.
CREATE TABLE tlsrpt_sends (
	day BIGINT NOT NULL,
	policy_domain TEXT NOT NULL,
	rua TEXT NOT NULL,
	report BYTEA NOT NULL,
	attempts INTEGER NOT NULL,
	next_attempt_at BIGINT NOT NULL,
	give_up_at BIGINT NOT NULL,
	lease_owner TEXT NOT NULL,
	lease_until BIGINT NOT NULL,
	last_error TEXT NOT NULL,
	PRIMARY KEY (day, policy_domain, rua)
);
CREATE INDEX tlsrpt_sends_due ON tlsrpt_sends (next_attempt_at);

-- The MTA-STS policy file's non-empty lines as fetched, one per line, for
-- TLS reports' policy-string; empty for policies cached before.
ALTER TABLE mta_sts_policies ADD COLUMN policy_text TEXT NOT NULL DEFAULT '';
