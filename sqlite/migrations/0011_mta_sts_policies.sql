-- Recipient domains' MTA-STS policies (RFC 8461) as last fetched, shared by
-- every node: the TXT record's id they were fetched under, the policy, and
-- when it was fetched and expires (Unix nanoseconds). mx holds the
-- policy's patterns one per line; a pattern cannot contain a line break.
CREATE TABLE mta_sts_policies (
    domain     TEXT PRIMARY KEY,
    policy_id  TEXT NOT NULL,
    mode       TEXT NOT NULL,
    mx         TEXT NOT NULL,
    max_age    INTEGER NOT NULL,
    fetched_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;
