-- Accounts form a two-level tree: users own subusers and customer accounts.
-- Times are Unix nanoseconds (UTC). Deleting an account deletes its children,
-- its keys and its setting through the cascades, so foreign_keys must be on.
CREATE TABLE accounts (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    public_id  TEXT UNIQUE,
    kind       TEXT NOT NULL CHECK (kind IN ('user', 'subuser', 'customer')),
    parent_id  INTEGER REFERENCES accounts (id) ON DELETE CASCADE,
    username   TEXT UNIQUE,
    email      TEXT NOT NULL,
    disabled   INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at INTEGER NOT NULL
) STRICT;

-- Serves the subuser and customer listings, and the cascade from a parent.
CREATE INDEX accounts_parent_kind ON accounts (parent_id, kind, id);

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    account_id  INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    scopes      TEXT NOT NULL, -- space-separated, in the order given
    secret_hash BLOB NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;

CREATE INDEX api_keys_account_id ON api_keys (account_id);

-- version is the crypto/tls constant: 770 (TLS 1.1), 771 (1.2), 772 (1.3).
CREATE TABLE enforced_tls (
    account_id         INTEGER PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    require_tls        INTEGER NOT NULL DEFAULT 0 CHECK (require_tls IN (0, 1)),
    require_valid_cert INTEGER NOT NULL DEFAULT 0 CHECK (require_valid_cert IN (0, 1)),
    version            INTEGER NOT NULL DEFAULT 770 CHECK (version IN (770, 771, 772))
) STRICT;
