-- Mail batches (POST /v3/mail/batch) and their scheduled-send status: NULL
-- for none, 'pause' holds the batch's mail never attempted yet, 'cancel'
-- discards it when it falls due. Batch ids are random and unique across
-- accounts. The status lives here, so every node's claim sees it.
CREATE TABLE mail_batches (
	batch_id   TEXT PRIMARY KEY,
	account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	status     TEXT CHECK (status IN ('pause', 'cancel')),
	created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX mail_batches_account_idx ON mail_batches (account_id, batch_id);

-- The batch of the delivery's mail send, NULL for none. No foreign key: the
-- batch and the delivery go with the same account.
ALTER TABLE deliveries ADD COLUMN batch_id TEXT;
