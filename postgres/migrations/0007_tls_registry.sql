-- The registry of recipient domains: per account and domain, the latest
-- TLS facts per MX host, a summary of every observation kept, and the
-- recipients asked for per day (whole UTC days since the epoch). Times
-- are Unix nanoseconds. Rows older than the retention are pruned.
CREATE TABLE tls_registry_hosts (
    account_id    BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    domain        TEXT NOT NULL,
    mx_host       TEXT NOT NULL,
    observed_at   BIGINT NOT NULL,
    mx_ip         TEXT NOT NULL,
    tls           BOOLEAN NOT NULL,
    tls_version   TEXT NOT NULL,
    tls_cipher    TEXT NOT NULL,
    cert_verified BOOLEAN NOT NULL,
    cert_error    TEXT NOT NULL,
    cert_result   TEXT NOT NULL,
    result_type   TEXT NOT NULL,
    -- The latest observation was partial (HostObservation.Partial): the
    -- facts above it left as they were are older.
    partial       BOOLEAN NOT NULL,
    PRIMARY KEY (account_id, domain, mx_host)
);
CREATE INDEX tls_registry_hosts_observed ON tls_registry_hosts (observed_at);

CREATE TABLE tls_registry_domains (
    account_id      BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    domain          TEXT NOT NULL,
    highest_version TEXT NOT NULL,
    valid_cert_seen BOOLEAN NOT NULL,
    last_attempt    BIGINT NOT NULL,
    PRIMARY KEY (account_id, domain)
);
CREATE INDEX tls_registry_domains_last ON tls_registry_domains (last_attempt);

CREATE TABLE tls_registry_days (
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    domain     TEXT NOT NULL,
    day        BIGINT NOT NULL,
    recipients BIGINT NOT NULL,
    PRIMARY KEY (account_id, domain, day)
);
CREATE INDEX tls_registry_days_day ON tls_registry_days (day);
