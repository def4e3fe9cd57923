package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sealpost/sealpost"
)

// Ordering of one message's events in the outbox. Outbox ids come from a
// sequence, and sequence values are not handed out in commit order: a
// transaction holding a smaller id can commit after one holding a larger id,
// and a poster that claimed in between posts the larger one first. That
// cannot put two events of one recipient out of order, because every event
// about a recipient is written by a transaction that could only start after
// the one that wrote its previous event had committed: the processed event
// by EnqueueMessages, whose commit is what makes the delivery claimable, and
// each later event by CompleteDelivery under the delivery's lease, which a
// node gets only from a claim that sees the previous completion committed
// (the delivery row lock orders them). Events of recipients at different
// domains are written by independent leases and may interleave either way,
// as the attempts themselves do. This relies on a message's events being
// stored only by EnqueueMessages and by its deliveries' lease holders.

// queueEvents adds to b the statements that store events in the outbox, in
// the order given, and give each of their accounts an outbox state row. An
// event about a message refers to it by its ID: msgIDs has those of the
// messages being stored in the same batch, the others already have theirs.
func queueEvents(b *pgx.Batch, events []sealpost.Event, msgIDs map[*sealpost.Message]int64) error {
	if len(events) == 0 {
		return nil
	}
	about := make([]*int64, len(events))
	accounts := make([]int64, len(events))
	kinds := make([]string, len(events))
	ids := make([]string, len(events))
	payloads := make([][]byte, len(events))
	for i, e := range events {
		accounts[i] = e.AccountID
		kinds[i] = string(e.Kind)
		ids[i] = e.SGEventID
		payloads[i] = []byte(e.Payload)
		if payloads[i] == nil {
			payloads[i] = []byte{}
		}
		if e.Message != nil {
			id, ok := msgIDs[e.Message]
			if !ok {
				id = e.Message.ID
			}
			if id == 0 {
				return sealpost.Errorf(sealpost.EINVALID, "event %s is about a message that is not stored", e.SGEventID)
			}
			about[i] = &id
		}
	}
	// Only the events the account's webhook wants now are queued (the same
	// test as sealpost.EventWebhookSettings.Wants): as at SendGrid, an event
	// that happens while the webhook is off, or not subscribed to its kind,
	// is never posted, and it is not written, claimed and deleted unposted.
	// The ORDER BY makes the sequence hand out ids in the events' order.
	b.Queue(`
		INSERT INTO outbox_events (account_id, kind, sg_event_id, payload, message_id)
		SELECT a, k, s, p, m
		FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bytea[], $5::bigint[]) WITH ORDINALITY AS e(a, k, s, p, m, n)
		JOIN event_webhooks w ON w.account_id = e.a
		WHERE w.enabled AND w.url <> '' AND CASE e.k
			WHEN 'processed' THEN w.processed WHEN 'delivered' THEN w.delivered WHEN 'deferred' THEN w.deferred
			WHEN 'bounce' THEN w.bounce WHEN 'dropped' THEN w.dropped ELSE false END
		ORDER BY n`,
		accounts, kinds, ids, payloads, about)
	queueActivityEvents(b, events)
	// DO NOTHING takes no lock on an existing row, so storing events never
	// waits for a poster holding its account's state row.
	b.Queue(`
		INSERT INTO outbox_accounts (account_id)
		SELECT DISTINCT a FROM unnest($1::bigint[]) AS a ORDER BY a
		ON CONFLICT (account_id) DO NOTHING`,
		accounts)
	return nil
}

// sendBatch runs b and reports its first error. The statements of one batch
// go to the server in one round trip and run in one implicit transaction:
// either all of them take effect or none does.
func sendBatch(ctx context.Context, q interface {
	SendBatch(context.Context, *pgx.Batch) pgx.BatchResults
}, b *pgx.Batch) error {
	br := q.SendBatch(ctx, b)
	for range b.Len() {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return err
		}
	}
	return br.Close()
}

// Bounds of the times that int64 Unix nanoseconds can hold.
var (
	minUnixNanos = time.Unix(0, math.MinInt64)
	maxUnixNanos = time.Unix(0, math.MaxInt64)
)

// unixNanos is how the queue and outbox store the callers' times (see the
// migration). The zero time, and anything before 1678, is the smallest
// value: due at any time.
func unixNanos(t time.Time) int64 {
	switch {
	case t.IsZero() || !t.After(minUnixNanos):
		return math.MinInt64
	case !t.Before(maxUnixNanos):
		return math.MaxInt64
	}
	return t.UnixNano()
}

func fromUnixNanos(n int64) time.Time {
	if n == math.MinInt64 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func recipientDomain(email string) string { return sealpost.AddressDomain(email) }

// EnqueueMessages stores everything in two round trips: one takes ids from
// the sequences, so that the rows can refer to each other and the caller
// learns them without relying on the order of RETURNING, and one batch
// writes every row.
func (db *DB) EnqueueMessages(ctx context.Context, msgs []*sealpost.Message, events []sealpost.Event) error {
	if len(msgs) == 0 && len(events) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	var ids enqueueIDs
	var rows sealpost.MessageRows
	if len(msgs) > 0 {
		var err error
		if rows, err = sealpost.SplitMessages(msgs); err != nil {
			return err
		}
		if ids, err = db.queueMessages(ctx, b, msgs, rows); err != nil {
			return err
		}
	}
	if err := queueEvents(b, events, ids.byMessage); err != nil {
		return err
	}
	if err := sendBatch(ctx, db.pool, b); err != nil {
		return storeErr(err, "message")
	}
	// Only stored messages get their ids.
	for i, body := range rows.Bodies {
		body.ID = ids.bodies[i]
	}
	k := 0
	for i, m := range msgs {
		m.ID = ids.messages[i]
		for j := range m.Recipients {
			m.Recipients[j].ID = ids.recipients[k]
			m.Recipients[j].State = sealpost.StateQueued
			k++
		}
	}
	return nil
}

// enqueueIDs are the ids taken for one enqueue, in enqueue order.
type enqueueIDs struct {
	bodies, messages, deliveries, recipients []int64
	byMessage                                map[*sealpost.Message]int64
}

// queueMessages takes ids for msgs, their deliveries and recipients, and
// adds to b the statements that store them: a delivery per message and
// domain, in the order the domains first appear among the recipients.
func (db *DB) queueMessages(ctx context.Context, b *pgx.Batch, msgs []*sealpost.Message, rows sealpost.MessageRows) (enqueueIDs, error) {
	domains := make([][]string, len(msgs))
	var nDeliveries, nRecipients int
	for i, m := range msgs {
		for j := range m.Recipients {
			r := &m.Recipients[j]
			if r.Domain == "" {
				r.Domain = recipientDomain(r.Email)
			}
			if !slices.Contains(domains[i], r.Domain) {
				domains[i] = append(domains[i], r.Domain)
			}
		}
		nDeliveries += len(domains[i])
		nRecipients += len(m.Recipients)
	}
	var ids enqueueIDs
	err := db.pool.QueryRow(ctx, `
		SELECT
			ARRAY(SELECT nextval(pg_get_serial_sequence('messages', 'id')) FROM generate_series(1, $1)),
			ARRAY(SELECT nextval(pg_get_serial_sequence('deliveries', 'id')) FROM generate_series(1, $2)),
			ARRAY(SELECT nextval(pg_get_serial_sequence('recipients', 'id')) FROM generate_series(1, $3)),
			ARRAY(SELECT nextval(pg_get_serial_sequence('message_bodies', 'id')) FROM generate_series(1, $4))`,
		len(msgs), nDeliveries, nRecipients, len(rows.Bodies)).Scan(&ids.messages, &ids.deliveries, &ids.recipients, &ids.bodies)
	if err != nil {
		return enqueueIDs{}, storeErr(err, "message")
	}
	// Ascending, so that ids follow enqueue order.
	slices.Sort(ids.messages)
	slices.Sort(ids.deliveries)
	slices.Sort(ids.recipients)
	slices.Sort(ids.bodies)

	ids.byMessage = make(map[*sealpost.Message]int64, len(msgs))
	for i, m := range msgs {
		ids.byMessage[m] = ids.messages[i]
	}
	bodyData := make([][]byte, len(rows.Bodies))
	bodyCategories := make([]*string, len(rows.Bodies))
	bodyArgs := make([]*string, len(rows.Bodies))
	for i, body := range rows.Bodies {
		var err error
		if bodyCategories[i], bodyArgs[i], err = encodeEventArgs(body); err != nil {
			return enqueueIDs{}, err
		}
		if rows.BodyNeeded[i] { // else NULL: no message will ever read it
			bodyData[i] = body.Data
			if bodyData[i] == nil {
				bodyData[i] = []byte{}
			}
		}
	}
	if len(rows.Bodies) > 0 {
		b.Queue(`
			INSERT INTO message_bodies (id, account_id, data, categories, custom_args)
			SELECT id, a, d, c::jsonb, ca::jsonb FROM unnest($1::bigint[], $2::bigint[], $3::bytea[], $4::text[], $5::text[]) AS b(id, a, d, c, ca)`,
			ids.bodies, rows.BodyAccount, bodyData, bodyCategories, bodyArgs)
	}
	var mr messageRows
	var dr deliveryRows
	var rr recipientRows
	now := time.Now()
	for i, m := range msgs {
		createdAt := m.CreatedAt
		if createdAt.IsZero() {
			createdAt = now
		}
		var bodyID *int64
		if k := rows.Body[i]; k >= 0 {
			bodyID = &ids.bodies[k]
		}
		if err := mr.add(ids.messages[i], m, bodyID, rows.Data[i], createdAt); err != nil {
			return enqueueIDs{}, err
		}
		byDomain := make(map[string]int64, len(domains[i]))
		for _, d := range domains[i] {
			id := ids.deliveries[len(dr.ids)]
			byDomain[d] = id
			// Counted from send_at: the delivery's created_at is when it
			// fell due, which MaxAge counts from.
			due := createdAt
			if m.SendAt.After(due) {
				due = m.SendAt
			}
			dr.add(id, ids.messages[i], d, unixNanos(due), m.BatchID)
		}
		for j := range m.Recipients {
			r := &m.Recipients[j]
			rr.add(ids.recipients[len(rr.ids)], ids.messages[i], byDomain[r.Domain], j, r, m.AccountID, unixNanos(createdAt))
		}
	}
	mr.queue(b)
	dr.queue(b)
	rr.queue(b)
	queueRecipientCounts(b, msgs, now)
	return ids, nil
}

// encodeEventArgs encodes a body's categories and custom args as JSON,
// each NULL when there are none.
func encodeEventArgs(body *sealpost.MessageBody) (categories, customArgs *string, err error) {
	if len(body.Categories) > 0 {
		c, err := json.Marshal(body.Categories)
		if err != nil {
			return nil, nil, fmt.Errorf("postgres: encoding categories: %w", err)
		}
		categories = new(string(c))
	}
	if len(body.CustomArgs) > 0 {
		a, err := json.Marshal(body.CustomArgs)
		if err != nil {
			return nil, nil, fmt.Errorf("postgres: encoding custom args: %w", err)
		}
		customArgs = new(string(a))
	}
	return categories, customArgs, nil
}

// messageRows, deliveryRows and recipientRows collect rows column by column
// for one multi-row INSERT each.
type messageRows struct {
	ids, accounts                        []int64
	bodies                               []*int64
	xids, smtpIDs, froms, cats, argsJSON []string
	subjects                             []string
	data                                 [][]byte
	created                              []int64
}

func (r *messageRows) add(id int64, m *sealpost.Message, bodyID *int64, data []byte, createdAt time.Time) error {
	cats := m.Categories
	if cats == nil {
		cats = []string{}
	}
	c, err := json.Marshal(cats)
	if err != nil {
		return fmt.Errorf("postgres: encoding categories: %w", err)
	}
	args := m.CustomArgs
	if args == nil {
		args = map[string]string{}
	}
	a, err := json.Marshal(args)
	if err != nil {
		return fmt.Errorf("postgres: encoding custom args: %w", err)
	}
	switch {
	case len(m.Recipients) == 0:
		// No delivery will ever send it or drop it when done.
		data = nil
	case data == nil:
		data = []byte{} // NULL would read as already delivered
	}
	r.ids = append(r.ids, id)
	r.accounts = append(r.accounts, m.AccountID)
	r.bodies = append(r.bodies, bodyID)
	r.xids = append(r.xids, m.XMessageID)
	r.smtpIDs = append(r.smtpIDs, m.SMTPID)
	r.froms = append(r.froms, m.From)
	r.subjects = append(r.subjects, m.Subject)
	r.data = append(r.data, data)
	r.cats = append(r.cats, string(c))
	r.argsJSON = append(r.argsJSON, string(a))
	r.created = append(r.created, unixNanos(createdAt))
	return nil
}

func (r *messageRows) queue(b *pgx.Batch) {
	b.Queue(`
		INSERT INTO messages (id, account_id, x_message_id, smtp_id, mail_from, body_id, data, categories, custom_args, created_at, subject)
		SELECT id, a, x, s, f, b, d, c::jsonb, ca::jsonb, t, sub
		FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bytea[], $8::text[], $9::text[], $10::bigint[], $11::text[])
			AS m(id, a, x, s, f, b, d, c, ca, t, sub)`,
		r.ids, r.accounts, r.xids, r.smtpIDs, r.froms, r.bodies, r.data, r.cats, r.argsJSON, r.created, r.subjects)
}

type deliveryRows struct {
	ids, messages []int64
	domains       []string
	due           []int64
	batches       []*string
}

func (r *deliveryRows) add(id, messageID int64, domain string, due int64, batchID string) {
	r.ids = append(r.ids, id)
	r.messages = append(r.messages, messageID)
	r.domains = append(r.domains, domain)
	r.due = append(r.due, due)
	var batch *string
	if batchID != "" {
		batch = &batchID
	}
	r.batches = append(r.batches, batch)
}

func (r *deliveryRows) queue(b *pgx.Batch) {
	if len(r.ids) == 0 {
		return
	}
	b.Queue(`
		INSERT INTO deliveries (id, message_id, domain, next_attempt_at, created_at, batch_id)
		SELECT id, m, dom, t, t, bt
		FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::bigint[], $5::text[]) AS d(id, m, dom, t, bt)`,
		r.ids, r.messages, r.domains, r.due, r.batches)
}

type recipientRows struct {
	ids, messages, deliveries []int64
	accounts, lastEvents      []int64
	ordinals                  []int32
	emails, domains, sgIDs    []string
}

func (r *recipientRows) add(id, messageID, deliveryID int64, ordinal int, rcpt *sealpost.Recipient, accountID, lastEvent int64) {
	r.ids = append(r.ids, id)
	r.accounts = append(r.accounts, accountID)
	r.lastEvents = append(r.lastEvents, lastEvent)
	r.messages = append(r.messages, messageID)
	r.deliveries = append(r.deliveries, deliveryID)
	r.ordinals = append(r.ordinals, int32(ordinal))
	r.emails = append(r.emails, rcpt.Email)
	r.domains = append(r.domains, rcpt.Domain)
	r.sgIDs = append(r.sgIDs, rcpt.SGMessageID)
}

func (r *recipientRows) queue(b *pgx.Batch) {
	if len(r.ids) == 0 {
		return
	}
	b.Queue(`
		INSERT INTO recipients (id, message_id, delivery_id, ordinal, email, domain, sg_message_id, state, account_id, last_event_at)
		SELECT id, m, d, o, e, dom, sg, 'queued', a, t
		FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::int[], $5::text[], $6::text[], $7::text[], $8::bigint[], $9::bigint[])
			AS r(id, m, d, o, e, dom, sg, a, t)`,
		r.ids, r.messages, r.deliveries, r.ordinals, r.emails, r.domains, r.sgIDs, r.accounts, r.lastEvents)
}

// ClaimDeliveries leases due deliveries in one statement. FOR UPDATE SKIP
// LOCKED lets nodes claiming at the same moment pass over each other's rows
// instead of waiting for them, and a row another node leased and committed
// in the meantime is checked again against its new lease, so two live
// leases on one delivery cannot both be granted.
func (db *DB) ClaimDeliveries(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]*sealpost.Delivery, error) {
	if limit <= 0 {
		return []*sealpost.Delivery{}, nil
	}
	until := now.Add(lease)
	rows, err := db.pool.Query(ctx, `
		WITH claimed AS (
			UPDATE deliveries d SET lease_owner = $1, lease_until = $3
			WHERE d.id IN (
				SELECT dd.id FROM deliveries dd
				WHERE NOT dd.done AND dd.next_attempt_at <= $2 AND (dd.lease_until IS NULL OR dd.lease_until <= $2)
					-- A paused batch holds the mail it has not attempted yet.
					AND (dd.batch_id IS NULL OR dd.attempts > 0 OR NOT EXISTS (
						SELECT 1 FROM mail_batches b WHERE b.batch_id = dd.batch_id AND b.status = 'pause'))
				ORDER BY dd.next_attempt_at, dd.id
				LIMIT $4
				FOR UPDATE SKIP LOCKED)
			RETURNING d.id, d.message_id, d.domain, d.attempts, d.created_at, d.lease_until, d.next_attempt_at,
				d.batch_id IS NOT NULL AND d.attempts = 0 AND EXISTS (
					SELECT 1 FROM mail_batches b WHERE b.batch_id = d.batch_id AND b.status = 'cancel') AS cancelled
		)
		SELECT c.id, c.domain, c.attempts, c.created_at, c.lease_until, c.cancelled,
			m.id, m.account_id, m.x_message_id, m.smtp_id, m.mail_from, m.body_id, m.data, b.data, b.categories, b.custom_args,
			m.categories, m.custom_args, m.created_at,
			r.ids, r.emails, r.domains, r.sg_ids
		FROM claimed c
		JOIN messages m ON m.id = c.message_id
		LEFT JOIN message_bodies b ON b.id = m.body_id
		CROSS JOIN LATERAL (
			SELECT COALESCE(array_agg(id ORDER BY ordinal), '{}') AS ids,
				COALESCE(array_agg(email ORDER BY ordinal), '{}') AS emails,
				COALESCE(array_agg(domain ORDER BY ordinal), '{}') AS domains,
				COALESCE(array_agg(sg_message_id ORDER BY ordinal), '{}') AS sg_ids
			FROM recipients WHERE delivery_id = c.id AND state = 'queued'
		) r
		ORDER BY c.next_attempt_at, c.id`,
		owner, unixNanos(now), unixNanos(until), limit)
	if err != nil {
		return nil, storeErr(err, "delivery")
	}
	// The deliveries of one mail send share its body in memory too.
	bodies := make(map[int64]*sealpost.MessageBody)
	deliveries, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*sealpost.Delivery, error) {
		d := &sealpost.Delivery{Message: &sealpost.Message{}, LeaseOwner: owner}
		m := d.Message
		var (
			attempts               int32
			createdAt, leaseUntil  int64
			msgCreatedAt           int64
			ids                    []int64
			emails, domains, sgIDs []string
			categories             []string
			customArgs             map[string]string
			bodyCategories         []string
			bodyArgs               map[string]string
			bodyID                 *int64
			data, body             []byte
		)
		if err := row.Scan(&d.ID, &d.Domain, &attempts, &createdAt, &leaseUntil, &d.Cancelled,
			&m.ID, &m.AccountID, &m.XMessageID, &m.SMTPID, &m.From, &bodyID, &data, &body, &bodyCategories, &bodyArgs,
			&categories, &customArgs, &msgCreatedAt,
			&ids, &emails, &domains, &sgIDs); err != nil {
			return nil, err
		}
		switch {
		case bodyID == nil:
			// Stored whole, as before message bodies were shared.
			m.Body = &sealpost.MessageBody{Data: data}
		case bodies[*bodyID] != nil:
			m.Body, m.Layout = bodies[*bodyID], data
		default:
			m.Body, m.Layout = &sealpost.MessageBody{ID: *bodyID, Data: body, Categories: bodyCategories, CustomArgs: bodyArgs}, data
			bodies[*bodyID] = m.Body
		}
		d.Attempts = int(attempts)
		d.CreatedAt = fromUnixNanos(createdAt)
		d.LeaseUntil = fromUnixNanos(leaseUntil)
		m.CreatedAt = fromUnixNanos(msgCreatedAt)
		if len(categories) > 0 {
			m.Categories = categories
		}
		if len(customArgs) > 0 {
			m.CustomArgs = customArgs
		}
		m.Recipients = make([]sealpost.Recipient, len(ids))
		for i := range ids {
			m.Recipients[i] = sealpost.Recipient{ID: ids[i], Email: emails[i], Domain: domains[i], SGMessageID: sgIDs[i], State: sealpost.StateQueued}
		}
		return d, nil
	})
	if err != nil {
		return nil, storeErr(err, "delivery")
	}
	return deliveries, nil
}

func errLeaseLost() error {
	return sealpost.Errorf(sealpost.ECONFLICT, "delivery is not leased to this owner")
}

// CompleteDelivery records an attempt in one transaction. The message row
// is locked first: it makes completions of one message's deliveries (one
// per domain, possibly on different nodes) take turns, so that the last one
// to finish sees the others done and drops the message's data, and it
// takes locks in the same order as deleting the account does (message,
// then deliveries). The shared body is locked last, and only by a
// completion that finishes its message.
func (db *DB) CompleteDelivery(ctx context.Context, owner string, c sealpost.DeliveryCompletion) error {
	obs, err := sealpost.CleanObservations(c.Observations)
	if err != nil {
		return err
	}
	ids := make([]int64, len(c.Recipients))
	states := make([]string, len(c.Recipients))
	for i, u := range c.Recipients {
		switch u.State {
		case sealpost.StateQueued, sealpost.StateDelivered, sealpost.StateBounced, sealpost.StateBlocked, sealpost.StateDropped:
		default:
			return sealpost.Invalid(sealpost.FieldError{Field: "state", Message: "unknown recipient state " + string(u.State)})
		}
		ids[i] = u.RecipientID
		states[i] = string(u.State)
	}
	err = pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var messageID int64
		var bodyID *int64
		err := tx.QueryRow(ctx, `
			SELECT m.id, m.body_id FROM messages m
			WHERE m.id = (SELECT message_id FROM deliveries WHERE id = $1)
			FOR UPDATE`, c.DeliveryID).Scan(&messageID, &bodyID)
		if errors.Is(err, pgx.ErrNoRows) {
			// Gone with its account, or never there: not owner's either way.
			return errLeaseLost()
		}
		if err != nil {
			return err
		}
		var leaseOwner *string
		err = tx.QueryRow(ctx, `SELECT lease_owner FROM deliveries WHERE id = $1 FOR UPDATE`, c.DeliveryID).Scan(&leaseOwner)
		if errors.Is(err, pgx.ErrNoRows) {
			return errLeaseLost()
		}
		if err != nil {
			return err
		}
		// An expired lease still counts as owner's as long as nobody else
		// has claimed the delivery since: the attempt happened, and nobody
		// else made one.
		if leaseOwner == nil || *leaseOwner != owner {
			return errLeaseLost()
		}
		b := &pgx.Batch{}
		if len(ids) > 0 {
			var last *int64 // NULL: no event, the last one stays
			if t, ok := sealpost.LastEventTime(c.Events, time.Now()); ok {
				last = new(unixNanos(t))
			}
			b.Queue(`
				UPDATE recipients r SET state = u.state, last_event_at = coalesce($4, r.last_event_at)
				FROM unnest($2::bigint[], $3::text[]) AS u(id, state)
				WHERE r.id = u.id AND r.delivery_id = $1`,
				c.DeliveryID, ids, states, last)
		}
		if err := queueEvents(b, c.Events, nil); err != nil {
			return err
		}
		b.Queue(`
			UPDATE deliveries SET
				attempts = attempts + $3,
				lease_owner = NULL,
				lease_until = NULL,
				done = NOT q.waiting,
				next_attempt_at = CASE WHEN q.waiting THEN $2 ELSE next_attempt_at END
			FROM (SELECT EXISTS (SELECT 1 FROM recipients WHERE delivery_id = $1 AND state = 'queued') AS waiting) q
			WHERE id = $1`,
			c.DeliveryID, unixNanos(c.NextAttemptAt), attemptCount(c))
		if bodyID != nil {
			// The last messages of a send to finish, on different nodes,
			// must not each see the other still pending and both keep the
			// body: a message about to be done locks the body first, and
			// the check below, a statement of its own, sees every other
			// message finished before it took the lock.
			b.Queue(`
				SELECT 1 FROM message_bodies
				WHERE id = $2 AND NOT EXISTS (SELECT 1 FROM deliveries WHERE message_id = $1 AND NOT done)
				FOR UPDATE`,
				messageID, *bodyID)
		}
		b.Queue(`
			UPDATE messages SET data = NULL
			WHERE id = $1 AND data IS NOT NULL
				AND NOT EXISTS (SELECT 1 FROM deliveries WHERE message_id = $1 AND NOT done)`,
			messageID)
		if bodyID != nil {
			b.Queue(`
				UPDATE message_bodies SET data = NULL
				WHERE id = $1 AND data IS NOT NULL
					AND NOT EXISTS (SELECT 1 FROM messages WHERE body_id = $1 AND data IS NOT NULL)`,
				*bodyID)
		}
		queueObservations(b, obs)
		return sendBatch(ctx, tx, b)
	})
	return storeErr(err, "delivery")
}

func (db *DB) RecipientStates(ctx context.Context, accountID int64, xMessageID string) ([]sealpost.Recipient, error) {
	rows, err := db.pool.Query(ctx, `
		SELECT r.id, r.email, r.domain, r.sg_message_id, r.state
		FROM messages m JOIN recipients r ON r.message_id = m.id
		WHERE m.account_id = $1 AND m.x_message_id = $2
		ORDER BY m.id, r.ordinal`, accountID, xMessageID)
	if err != nil {
		return nil, storeErr(err, "message")
	}
	recipients := []sealpost.Recipient{}
	for rows.Next() {
		var r sealpost.Recipient
		var state string
		if err := rows.Scan(&r.ID, &r.Email, &r.Domain, &r.SGMessageID, &state); err != nil {
			rows.Close()
			return nil, storeErr(err, "message")
		}
		r.State = sealpost.RecipientState(state)
		recipients = append(recipients, r)
	}
	if err := rows.Err(); err != nil {
		return nil, storeErr(err, "message")
	}
	return recipients, nil
}

// attemptCount is how much c adds to a delivery's attempts.
func attemptCount(c sealpost.DeliveryCompletion) int {
	if c.Unattempted {
		return 0
	}
	return 1
}
