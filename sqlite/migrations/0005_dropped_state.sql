-- A recipient whose account was disabled before it was delivered ends
-- 'dropped'. SQLite cannot change a CHECK constraint in place, so the table
-- is rebuilt; nothing refers to recipients, and its AUTOINCREMENT sequence
-- is carried over so that no id is handed out twice.
CREATE TABLE recipients_new (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id    INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    delivery_id   INTEGER NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    ordinal       INTEGER NOT NULL, -- position in the message's recipient list
    email         TEXT NOT NULL,
    domain        TEXT NOT NULL,
    sg_message_id TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('queued', 'delivered', 'bounced', 'blocked', 'dropped'))
) STRICT;

INSERT INTO recipients_new (id, message_id, delivery_id, ordinal, email, domain, sg_message_id, state)
    SELECT id, message_id, delivery_id, ordinal, email, domain, sg_message_id, state FROM recipients;
DELETE FROM sqlite_sequence WHERE name = 'recipients_new';
INSERT INTO sqlite_sequence (name, seq) SELECT 'recipients_new', seq FROM sqlite_sequence WHERE name = 'recipients';

DROP TABLE recipients;
ALTER TABLE recipients_new RENAME TO recipients;
CREATE INDEX recipients_message ON recipients (message_id, ordinal);
CREATE INDEX recipients_delivery ON recipients (delivery_id, ordinal);
