-- The request's categories and custom_args (JSON), which every event about
-- the messages of a mail send carries, kept once per send with its body
-- rather than once per message and event. They stay when data is set to
-- NULL: events waiting in the outbox still need them. NULL on bodies stored
-- before this migration, whose messages kept them whole.
ALTER TABLE message_bodies ADD COLUMN categories TEXT;
ALTER TABLE message_bodies ADD COLUMN custom_args TEXT;

-- The message an event is about. An event that has one holds only its own
-- fields in payload, and is completed with the message's categories and
-- custom args (its own and its body's) when it is claimed for posting; one
-- without (stored before this migration, or about no message) is posted
-- as it is. No foreign key: messages rows are never deleted while their
-- account exists (only their data is forgotten), and deleting the account
-- deletes its events too; a key would need an index on every event only
-- for that deletion.
ALTER TABLE events ADD COLUMN message_id INTEGER;
