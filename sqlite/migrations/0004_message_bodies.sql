-- What the messages of one mail send share (the header fields no
-- personalization overrides, and the MIME body), stored once per send
-- rather than once per personalization. data is set to NULL once no message
-- referring to it has data left, that is, a delivery pending.
CREATE TABLE message_bodies (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    data       BLOB
) STRICT;

-- A message with a body_id keeps only its layout in data: its own bytes
-- and where the body's go (sealpost.Message.Layout). A message stored
-- before this migration has no body_id and its whole message in data, and
-- is delivered as it is.
ALTER TABLE messages ADD COLUMN body_id INTEGER REFERENCES message_bodies (id) ON DELETE CASCADE;

-- Finds whether a body is still needed, and only over the messages still
-- to be delivered.
CREATE INDEX messages_body_pending ON messages (body_id) WHERE data IS NOT NULL;
