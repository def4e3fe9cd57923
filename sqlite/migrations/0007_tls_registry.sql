-- The registry of recipient domains: per account and domain, the latest
-- TLS facts per MX host, a summary of every observation kept, and the
-- recipients asked for per day (whole UTC days since the epoch). Times
-- are Unix nanoseconds. Rows older than the retention are pruned.
CREATE TABLE tls_registry_hosts (
    account_id    INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    domain        TEXT NOT NULL,
    mx_host       TEXT NOT NULL,
    observed_at   INTEGER NOT NULL,
    mx_ip         TEXT NOT NULL,
    tls           INTEGER NOT NULL,
    tls_version   TEXT NOT NULL,
    tls_cipher    TEXT NOT NULL,
    cert_verified INTEGER NOT NULL,
    cert_error    TEXT NOT NULL,
    cert_result   TEXT NOT NULL,
    result_type   TEXT NOT NULL,
    -- The latest observation was partial (HostObservation.Partial): the
    -- facts above it left as they were are older.
    partial       INTEGER NOT NULL,
    PRIMARY KEY (account_id, domain, mx_host)
) STRICT;
CREATE INDEX tls_registry_hosts_observed ON tls_registry_hosts (observed_at);

CREATE TABLE tls_registry_domains (
    account_id      INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    domain          TEXT NOT NULL,
    highest_version TEXT NOT NULL,
    valid_cert_seen INTEGER NOT NULL,
    last_attempt    INTEGER NOT NULL,
    PRIMARY KEY (account_id, domain)
) STRICT;
CREATE INDEX tls_registry_domains_last ON tls_registry_domains (last_attempt);

CREATE TABLE tls_registry_days (
    account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    domain     TEXT NOT NULL,
    day        INTEGER NOT NULL,
    recipients INTEGER NOT NULL,
    PRIMARY KEY (account_id, domain, day)
) STRICT;
CREATE INDEX tls_registry_days_day ON tls_registry_days (day);
