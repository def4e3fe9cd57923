-- Web console sessions (sealpost.ConsoleSession): the token's SHA-256, the
-- API key sealed under a key only the browser's token derives, and the
-- expiry in Unix nanoseconds.
CREATE TABLE console_sessions (
    id         BYTEA PRIMARY KEY,
    sealed_key BYTEA NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX console_sessions_expires ON console_sessions (expires_at);
