-- When each account's outbox was last claimed (Unix nanoseconds, the
-- claimer's clock; 0: never). Claims take the least recently served account
-- first, so that one with a backlog goes behind the others after each batch
-- instead of keeping the posters to itself because its events are older.
ALTER TABLE outbox_state ADD COLUMN served_at INTEGER NOT NULL DEFAULT 0;
