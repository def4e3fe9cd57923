-- Requests per API key per rate-limit window, summed over every node, so
-- that several nodes apply one limit. Rows of ended windows are deleted as
-- nodes report new ones.
CREATE TABLE rate_limit_counts (
    key_id       TEXT   NOT NULL,
    window_start BIGINT NOT NULL, -- Unix nanoseconds
    count        BIGINT NOT NULL,
    PRIMARY KEY (key_id, window_start)
);
CREATE INDEX rate_limit_counts_window_start ON rate_limit_counts (window_start);
