-- The recent Event Webhook posts of each account (sealpost.EventWebhookPost),
-- at most sealpost.MaxEventWebhookPosts per account: each insert deletes the
-- account's older ones. at and duration are Unix nanoseconds and
-- nanoseconds; status is 0 when there was no HTTP answer to show.
CREATE TABLE event_webhook_posts (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id  BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    at          BIGINT NOT NULL,
    host        TEXT NOT NULL,
    events      BIGINT NOT NULL,
    status      BIGINT NOT NULL,
    error       TEXT NOT NULL,
    duration    BIGINT NOT NULL,
    test        BOOLEAN NOT NULL
);
CREATE INDEX event_webhook_posts_account ON event_webhook_posts (account_id, id);
