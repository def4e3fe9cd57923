-- The failure a recipient domain's MTA-STS policy in testing mode would
-- have caused on the host's latest session, had it been enforced (an RFC
-- 8460 result type; '' for none), kept for TLS reporting.
ALTER TABLE tls_registry_hosts ADD COLUMN mta_sts_testing_result TEXT NOT NULL DEFAULT '';
