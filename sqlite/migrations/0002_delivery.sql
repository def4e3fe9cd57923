-- An account's Event Webhook. The row is created by the first change; an
-- account without one has the default (everything off, no URL, no key).
CREATE TABLE event_webhooks (
    account_id        INTEGER PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    enabled           INTEGER NOT NULL DEFAULT 0 CHECK (enabled IN (0, 1)),
    url               TEXT NOT NULL DEFAULT '',
    group_resubscribe INTEGER NOT NULL DEFAULT 0 CHECK (group_resubscribe IN (0, 1)),
    delivered         INTEGER NOT NULL DEFAULT 0 CHECK (delivered IN (0, 1)),
    group_unsubscribe INTEGER NOT NULL DEFAULT 0 CHECK (group_unsubscribe IN (0, 1)),
    spam_report       INTEGER NOT NULL DEFAULT 0 CHECK (spam_report IN (0, 1)),
    bounce            INTEGER NOT NULL DEFAULT 0 CHECK (bounce IN (0, 1)),
    deferred          INTEGER NOT NULL DEFAULT 0 CHECK (deferred IN (0, 1)),
    unsubscribe       INTEGER NOT NULL DEFAULT 0 CHECK (unsubscribe IN (0, 1)),
    processed         INTEGER NOT NULL DEFAULT 0 CHECK (processed IN (0, 1)),
    open              INTEGER NOT NULL DEFAULT 0 CHECK (open IN (0, 1)),
    click             INTEGER NOT NULL DEFAULT 0 CHECK (click IN (0, 1)),
    dropped           INTEGER NOT NULL DEFAULT 0 CHECK (dropped IN (0, 1)),
    signing_key       BLOB -- PKCS#8 DER; NULL when signing is off
) STRICT;

-- One accepted personalization. data is set to NULL once every delivery of
-- the message is done: the rows stay for RecipientStates, the body goes.
CREATE TABLE messages (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id   INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    x_message_id TEXT NOT NULL,
    smtp_id      TEXT NOT NULL,
    mail_from    TEXT NOT NULL,
    data         BLOB,
    categories   TEXT NOT NULL, -- JSON array
    custom_args  TEXT NOT NULL, -- JSON object
    created_at   INTEGER NOT NULL
) STRICT;

CREATE INDEX messages_account_x_message_id ON messages (account_id, x_message_id);

-- The recipients of one message at one domain, tried together. lease_owner
-- is NULL and lease_until 0 when nobody holds it; a lease is live while
-- lease_until > now.
CREATE TABLE deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id      INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    domain          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_owner     TEXT,
    lease_until     INTEGER NOT NULL DEFAULT 0,
    done            INTEGER NOT NULL DEFAULT 0 CHECK (done IN (0, 1)),
    created_at      INTEGER NOT NULL,
    UNIQUE (message_id, domain)
) STRICT;

-- Claiming walks the due end of this index.
CREATE INDEX deliveries_due ON deliveries (done, next_attempt_at);

CREATE TABLE recipients (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id    INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    delivery_id   INTEGER NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    ordinal       INTEGER NOT NULL, -- position in the message's recipient list
    email         TEXT NOT NULL,
    domain        TEXT NOT NULL,
    sg_message_id TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('queued', 'delivered', 'bounced', 'blocked'))
) STRICT;

CREATE INDEX recipients_message ON recipients (message_id, ordinal);
CREATE INDEX recipients_delivery ON recipients (delivery_id, ordinal);

-- Events waiting to be posted; id is the order they are posted in.
CREATE TABLE events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id  INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    sg_event_id TEXT NOT NULL,
    payload     BLOB NOT NULL, -- the JSON object, byte for byte
    created_at  INTEGER NOT NULL
) STRICT;

CREATE INDEX events_account ON events (account_id, id);

-- Per account: who is posting its events, and the failures of the head
-- batch. Created with the account's first event; 0 means unset.
CREATE TABLE outbox_state (
    account_id      INTEGER PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    lease_owner     TEXT,
    lease_until     INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    attempts        INTEGER NOT NULL DEFAULT 0,
    failing_since   INTEGER NOT NULL DEFAULT 0
) STRICT;
