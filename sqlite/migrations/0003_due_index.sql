-- Only pending deliveries are ever looked up by due time: an index of just
-- them stays small, and marking a delivery done drops its entry instead of
-- moving it to the other end of the index, one page less to write per
-- completion.
DROP INDEX deliveries_due;
CREATE INDEX deliveries_due ON deliveries (next_attempt_at, id) WHERE done = 0;
