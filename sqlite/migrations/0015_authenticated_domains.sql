-- Accounts' authenticated sending domains (sealpost.AuthenticatedDomain).
-- private_key is the DKIM key as PKCS#8 DER, kept like the Event Webhook
-- signing keys; created_at is Unix nanoseconds.
CREATE TABLE authenticated_domains (
    id                 INTEGER PRIMARY KEY,
    account_id         INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    domain             TEXT NOT NULL CHECK (length(domain) BETWEEN 1 AND 253),
    subdomain          TEXT NOT NULL,
    is_default         INTEGER NOT NULL CHECK (is_default IN (0, 1)),
    valid              INTEGER NOT NULL CHECK (valid IN (0, 1)),
    selector           TEXT NOT NULL,
    key_algorithm      TEXT NOT NULL CHECK (key_algorithm IN ('rsa', 'ed25519')),
    private_key        BLOB NOT NULL,
    created_at         INTEGER NOT NULL,
    UNIQUE (account_id, domain)
) STRICT;
