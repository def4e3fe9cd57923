-- The Email Activity history (GET /v3/messages). Its entries are the
-- recipients: each gets its account, to find an account's without going
-- through messages, and the time of its last event (Unix nanoseconds), by
-- which the feed is ordered and its retention counted. Recipients stored
-- before this migration take their message's account and creation time.
ALTER TABLE recipients ADD COLUMN account_id INTEGER NOT NULL DEFAULT 0;
ALTER TABLE recipients ADD COLUMN last_event_at INTEGER NOT NULL DEFAULT 0;
UPDATE recipients SET (account_id, last_event_at) =
    (SELECT m.account_id, m.created_at FROM messages m WHERE m.id = recipients.message_id);

-- The subject a message was sent with; '' before this migration.
ALTER TABLE messages ADD COLUMN subject TEXT NOT NULL DEFAULT '';

-- The feed, latest first (the rowid ends every index: ties go by id), and
-- the lookups by recipient address and by sg_message_id (msg_id), each
-- walked in last-event order too.
CREATE INDEX recipients_activity ON recipients (account_id, last_event_at);
CREATE INDEX recipients_activity_email ON recipients (account_id, email, last_event_at);
CREATE INDEX recipients_activity_msg_id ON recipients (account_id, sg_message_id, last_event_at);

-- Every event about a recipient, kept for the message detail after the
-- outbox has posted and deleted it: the event's own fields as built (TLS
-- facts under "sealpost"), at the time it happened (Unix nanoseconds).
-- Nothing else reads it, so the retention's cleanup deletes from it
-- freely.
CREATE TABLE activity_events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id    INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    sg_message_id TEXT NOT NULL,
    kind          TEXT NOT NULL,
    at            INTEGER NOT NULL,
    payload       BLOB NOT NULL
) STRICT;

CREATE INDEX activity_events_msg_id ON activity_events (account_id, sg_message_id, id);
CREATE INDEX activity_events_at ON activity_events (at);
