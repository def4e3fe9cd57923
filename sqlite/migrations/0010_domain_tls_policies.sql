-- An account's own Enforced TLS policies for recipient domains. domain is
-- normalised (lower-case ASCII, A-labels, no trailing dot); version is the
-- crypto/tls constant, as in enforced_tls.
CREATE TABLE domain_tls_policies (
    account_id         INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    domain             TEXT NOT NULL CHECK (length(domain) BETWEEN 1 AND 253),
    require_tls        INTEGER NOT NULL CHECK (require_tls IN (0, 1)),
    require_valid_cert INTEGER NOT NULL CHECK (require_valid_cert IN (0, 1)),
    version            INTEGER NOT NULL CHECK (version IN (770, 771, 772)),
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    PRIMARY KEY (account_id, domain)
) STRICT, WITHOUT ROWID;
