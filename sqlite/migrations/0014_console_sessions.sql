-- Web console sessions (sealpost.ConsoleSession): the token's SHA-256, the
-- API key sealed under a key only the browser's token derives, and the
-- expiry in Unix nanoseconds.
CREATE TABLE console_sessions (
    id         BLOB PRIMARY KEY,
    sealed_key BLOB NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX console_sessions_expires ON console_sessions (expires_at);
