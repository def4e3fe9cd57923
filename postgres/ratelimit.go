package postgres

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/sealpost/sealpost"
)

var _ sealpost.RateCounter = (*DB)(nil)

// AddRequestCounts adds every node's local counts into one row per key and
// window and returns the sums. Keys are upserted in sorted order so that two
// nodes reporting the same keys cannot deadlock on each other's row locks.
func (db *DB) AddRequestCounts(ctx context.Context, windowStart time.Time, deltas map[string]int64) (map[string]int64, error) {
	if len(deltas) == 0 {
		return map[string]int64{}, nil
	}
	keys := make([]string, 0, len(deltas))
	counts := make([]int64, 0, len(deltas))
	for k := range deltas {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		counts = append(counts, deltas[k])
	}
	start := windowStart.UnixNano()
	totals := make(map[string]int64, len(deltas))
	// Two statements, no transaction: the upsert and the clean-up touch
	// disjoint rows, and holding the new rows' locks while deleting old ones
	// would only make nodes wait for each other.
	err := func() error {
		rows, err := db.pool.Query(ctx, `
			INSERT INTO rate_limit_counts (key_id, window_start, count)
			SELECT k, $3, c FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS d(k, c, n) ORDER BY n
			ON CONFLICT (key_id, window_start) DO UPDATE SET count = rate_limit_counts.count + excluded.count
			RETURNING key_id, count`, keys, counts, start)
		if err != nil {
			return err
		}
		for rows.Next() {
			var k string
			var n int64
			if err := rows.Scan(&k, &n); err != nil {
				rows.Close()
				return err
			}
			totals[k] = n
		}
		if err := rows.Err(); err != nil {
			return err
		}
		_, err = db.pool.Exec(ctx, `DELETE FROM rate_limit_counts WHERE window_start < $1`, start)
		return err
	}()
	if err != nil {
		return nil, storeErr(err, fmt.Sprintf("rate limit counts of %d keys", len(keys)))
	}
	return totals, nil
}
