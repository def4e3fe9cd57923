package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/sealpost/sealpost"
)

// writeStmts are prepared once on the write connection because they run on
// the mail send path, several per accepted message; a transaction reuses
// them through Tx.StmtContext without preparing again.
type writeStmts struct {
	insertBody      *sql.Stmt
	insertMessage   *sql.Stmt
	insertDelivery  *sql.Stmt
	insertRecipient *sql.Stmt
	insertEvent     *sql.Stmt
	insertActivity  *sql.Stmt
	ensureOutbox    *sql.Stmt

	// The delivery path: a claim, and every completion.
	claim           *sql.Stmt
	loadMessage     *sql.Stmt
	loadBody        *sql.Stmt
	loadRecipients  *sql.Stmt
	updateRecipient *sql.Stmt
	finishDelivery  *sql.Stmt
	dropBody        *sql.Stmt
	dropSharedBody  *sql.Stmt
	leaseOwner      *sql.Stmt
	// A caller's part of a shared write transaction (writer.go).
	savepoint  *sql.Stmt
	rollbackTo *sql.Stmt
	release    *sql.Stmt

	// The registry of recipient domains, written with the above.
	upsertHost      *sql.Stmt
	upsertDomain    *sql.Stmt
	countRecipients *sql.Stmt
	countTLSRPT     *sql.Stmt
}

func prepareWriteStmts(ctx context.Context, w *sql.DB) (*writeStmts, error) {
	s := &writeStmts{}
	for _, p := range []struct {
		dst **sql.Stmt
		sql string
	}{
		{&s.insertBody, `INSERT INTO message_bodies (account_id, data, categories, custom_args) VALUES (?, ?, ?, ?) RETURNING id`},
		{&s.insertMessage, `INSERT INTO messages (account_id, x_message_id, smtp_id, mail_from, subject, body_id, data, categories, custom_args, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`},
		{&s.insertDelivery, `INSERT INTO deliveries (message_id, domain, next_attempt_at, created_at, batch_id)
			VALUES (?, ?, ?, ?, ?) RETURNING id`},
		{&s.insertRecipient, `INSERT INTO recipients (message_id, delivery_id, ordinal, email, domain, sg_message_id, state, account_id, last_event_at)
			VALUES (?, ?, ?, ?, ?, ?, 'queued', ?, ?) RETURNING id`},
		{&s.insertEvent, insertWantedEventSQL},
		{&s.insertActivity, `INSERT INTO activity_events (account_id, sg_message_id, kind, at, payload) VALUES (?, ?, ?, ?, ?)`},
		{&s.ensureOutbox, `INSERT INTO outbox_state (account_id) VALUES (?) ON CONFLICT (account_id) DO NOTHING`},
		{&s.claim, claimSQL},
		{&s.loadMessage, `SELECT account_id, x_message_id, smtp_id, mail_from, body_id, data, categories, custom_args, created_at
			FROM messages WHERE id = ?`},
		{&s.loadBody, `SELECT data, categories, custom_args FROM message_bodies WHERE id = ?`},
		{&s.loadRecipients, `SELECT id, email, domain, sg_message_id, state FROM recipients
			WHERE delivery_id = ? AND state = 'queued' ORDER BY ordinal`},
		{&s.updateRecipient, `UPDATE recipients SET state = ?, last_event_at = coalesce(?, last_event_at) WHERE id = ? AND delivery_id = ?`},
		{&s.finishDelivery, finishDeliverySQL},
		{&s.dropBody, dropBodySQL},
		{&s.dropSharedBody, dropSharedBodySQL},
		{&s.leaseOwner, `SELECT lease_owner FROM deliveries WHERE id = ? AND done = 0`},
		{&s.savepoint, `SAVEPOINT caller`},
		{&s.rollbackTo, `ROLLBACK TO caller`},
		{&s.release, `RELEASE caller`},
		{&s.upsertHost, upsertHostSQL},
		{&s.upsertDomain, upsertDomainSQL},
		{&s.countRecipients, countRecipientsSQL},
		{&s.countTLSRPT, countTLSRPTSQL},
	} {
		st, err := w.PrepareContext(ctx, p.sql)
		if err != nil {
			s.close()
			return nil, err
		}
		*p.dst = st
	}
	return s, nil
}

func (s *writeStmts) close() error {
	if s == nil {
		return nil
	}
	var errs []error
	for _, st := range []*sql.Stmt{s.insertBody, s.insertMessage, s.insertDelivery, s.insertRecipient, s.insertEvent, s.insertActivity, s.ensureOutbox,
		s.claim, s.loadMessage, s.loadBody, s.loadRecipients, s.updateRecipient, s.finishDelivery, s.dropBody, s.dropSharedBody, s.leaseOwner,
		s.savepoint, s.rollbackTo, s.release, s.upsertHost, s.upsertDomain, s.countRecipients, s.countTLSRPT} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(errs...)
}

// EnqueueMessages stores everything in one transaction. A message whose
// CreatedAt is zero is stamped with the current time. Recipients are stored
// queued whatever State they carry.
func (db *DB) EnqueueMessages(ctx context.Context, msgs []*sealpost.Message, events []sealpost.Event) error {
	if len(msgs) == 0 && len(events) == 0 {
		return nil
	}
	stamp := now()
	type assigned struct {
		msgID   int64
		rcptIDs []int64
	}
	ids := make([]assigned, len(msgs))
	rows, err := sealpost.SplitMessages(msgs)
	if err != nil {
		return err
	}
	bodyIDs := make([]int64, len(rows.Bodies))
	msgIDs := make(map[*sealpost.Message]int64, len(msgs))
	err = db.writeTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		insBody := tx.StmtContext(ctx, db.stmts.insertBody)
		for i, b := range rows.Bodies {
			var data []byte // NULL: no message will ever read it
			if rows.BodyNeeded[i] {
				data = blob(b.Data)
			}
			categories, custom, err := encodeEventArgs(b.Categories, b.CustomArgs)
			if err != nil {
				return err
			}
			if err := insBody.QueryRowContext(ctx, rows.BodyAccount[i], data, categories, custom).Scan(&bodyIDs[i]); err != nil {
				return err
			}
		}
		insMsg := tx.StmtContext(ctx, db.stmts.insertMessage)
		insDelivery := tx.StmtContext(ctx, db.stmts.insertDelivery)
		insRcpt := tx.StmtContext(ctx, db.stmts.insertRecipient)
		type domainDelivery struct {
			domain string
			id     int64
		}
		var byDomain []domainDelivery // few domains per message: a scan beats a map
		for i, m := range msgs {
			created := m.CreatedAt
			if created.IsZero() {
				created = stamp
			}
			categories, custom, err := encodeMessageMeta(m)
			if err != nil {
				return err
			}
			var bodyID sql.NullInt64
			if k := rows.Body[i]; k >= 0 {
				bodyID = sql.NullInt64{Int64: bodyIDs[k], Valid: true}
			}
			var data []byte // NULL: nothing left to deliver
			if len(m.Recipients) > 0 {
				data = blob(rows.Data[i])
			}
			var msgID int64
			if err := insMsg.QueryRowContext(ctx, m.AccountID, m.XMessageID, m.SMTPID, m.From, m.Subject, bodyID, data,
				categories, custom, created.UnixNano()).Scan(&msgID); err != nil {
				return err
			}
			// Counted from send_at: the delivery's created_at is when it
			// fell due, which MaxAge counts from.
			due := created
			if m.SendAt.After(due) {
				due = m.SendAt
			}
			batch := sql.NullString{String: m.BatchID, Valid: m.BatchID != ""}
			byDomain = byDomain[:0]
			rcptIDs := make([]int64, len(m.Recipients))
			for j, r := range m.Recipients {
				domain := recipientDomain(r)
				k := slices.IndexFunc(byDomain, func(d domainDelivery) bool { return d.domain == domain })
				if k < 0 {
					var id int64
					if err := insDelivery.QueryRowContext(ctx, msgID, domain, due.UnixNano(), due.UnixNano(), batch).Scan(&id); err != nil {
						return err
					}
					byDomain = append(byDomain, domainDelivery{domain, id})
					k = len(byDomain) - 1
				}
				if err := insRcpt.QueryRowContext(ctx, msgID, byDomain[k].id, j, r.Email, domain, r.SGMessageID,
					m.AccountID, created.UnixNano()).Scan(&rcptIDs[j]); err != nil {
					return err
				}
			}
			ids[i] = assigned{msgID, rcptIDs}
			msgIDs[m] = msgID
		}
		if err := db.countRecipients(ctx, tx, msgs, stamp); err != nil {
			return err
		}
		return db.insertEvents(ctx, tx, events, msgIDs, stamp)
	})
	if sealpost.ErrorCode(err) == sealpost.EINVALID {
		return err
	}
	if err != nil {
		return mapError("enqueueing messages", err, "account not found", "")
	}
	// Only once durable: a failed call leaves the caller's values as given.
	for i, b := range rows.Bodies {
		b.ID = bodyIDs[i]
	}
	for i, m := range msgs {
		m.ID = ids[i].msgID
		if m.CreatedAt.IsZero() {
			m.CreatedAt = stamp
		}
		for j := range m.Recipients {
			m.Recipients[j].ID = ids[i].rcptIDs[j]
			m.Recipients[j].Domain = recipientDomain(m.Recipients[j])
			m.Recipients[j].State = sealpost.StateQueued
		}
	}
	return nil
}

// insertWantedEventSQL queues an event for the Event Webhook only if the
// account's webhook, as it is now, wants its kind (the same test as
// sealpost.EventWebhookSettings.Wants): as at SendGrid, an event that
// happens while the webhook is off, or not subscribed to its kind, is never
// posted, and it costs nothing but this lookup, instead of being written,
// claimed and deleted unposted.
const insertWantedEventSQL = `INSERT INTO events (account_id, kind, sg_event_id, payload, message_id, created_at)
	SELECT ?1, ?2, ?3, ?4, ?5, ?6 FROM event_webhooks w
	WHERE w.account_id = ?1 AND w.enabled = 1 AND w.url <> '' AND 1 = CASE ?2
		WHEN 'processed' THEN w.processed WHEN 'delivered' THEN w.delivered WHEN 'deferred' THEN w.deferred
		WHEN 'bounce' THEN w.bounce WHEN 'dropped' THEN w.dropped ELSE 0 END`

// insertEvents appends the events the accounts' webhooks want to their
// outboxes, and keeps the rest for Email Activity. An event about
// a message refers to it by its ID: msgIDs has those of the messages being
// stored in tx, the others already have theirs.
func (db *DB) insertEvents(ctx context.Context, tx *sql.Tx, events []sealpost.Event, msgIDs map[*sealpost.Message]int64, created time.Time) error {
	if len(events) == 0 {
		return nil
	}
	insEvent := tx.StmtContext(ctx, db.stmts.insertEvent)
	insActivity := tx.StmtContext(ctx, db.stmts.insertActivity)
	ensure := tx.StmtContext(ctx, db.stmts.ensureOutbox)
	// Events come grouped by account: skip repeat upserts. Account ids
	// start at 1, so 0 is none yet.
	var last int64
	for _, e := range events {
		about, err := eventMessageID(e, msgIDs)
		if err != nil {
			return err
		}
		res, err := insEvent.ExecContext(ctx, e.AccountID, string(e.Kind), e.SGEventID, blob(e.Payload), about, created.UnixNano())
		if err != nil {
			return err
		}
		if sealpost.KeptForActivity(e) {
			if _, err := insActivity.ExecContext(ctx, e.AccountID, e.SGMessageID, string(e.Kind), sealpost.ActivityEventTime(e, created).UnixNano(), blob(e.Payload)); err != nil {
				return err
			}
		}
		// Only an account with events waiting needs an outbox state.
		if queued, err := res.RowsAffected(); err != nil {
			return err
		} else if queued == 0 || e.AccountID == last {
			continue
		}
		if _, err := ensure.ExecContext(ctx, e.AccountID); err != nil {
			return err
		}
		last = e.AccountID
	}
	return nil
}

// blob keeps an empty or nil byte slice from binding as NULL into a NOT
// NULL column, or as text.
func blob(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// eventMessageID is the ID of the message e is about, NULL for none.
func eventMessageID(e sealpost.Event, msgIDs map[*sealpost.Message]int64) (sql.NullInt64, error) {
	if e.Message == nil {
		return sql.NullInt64{}, nil
	}
	id, ok := msgIDs[e.Message]
	if !ok {
		id = e.Message.ID
	}
	if id == 0 {
		return sql.NullInt64{}, sealpost.Errorf(sealpost.EINVALID, "event %s is about a message that is not stored", e.SGEventID)
	}
	return sql.NullInt64{Int64: id, Valid: true}, nil
}

// encodeEventArgs encodes a body's categories and custom args, each NULL
// when there are none.
func encodeEventArgs(categories []string, customArgs map[string]string) (c, a sql.NullString, err error) {
	if len(categories) > 0 {
		b, err := json.Marshal(categories)
		if err != nil {
			return c, a, sealpost.Errorf(sealpost.EINTERNAL, "encoding categories: %v", err)
		}
		c = sql.NullString{String: string(b), Valid: true}
	}
	if len(customArgs) > 0 {
		b, err := json.Marshal(customArgs)
		if err != nil {
			return c, a, sealpost.Errorf(sealpost.EINTERNAL, "encoding custom args: %v", err)
		}
		a = sql.NullString{String: string(b), Valid: true}
	}
	return c, a, nil
}

// decodeEventArgs is the inverse of encodeEventArgs.
func decodeEventArgs(c, a sql.NullString) (categories []string, customArgs map[string]string, err error) {
	if c.Valid {
		if err := json.Unmarshal([]byte(c.String), &categories); err != nil {
			return nil, nil, fmt.Errorf("decoding categories: %w", err)
		}
	}
	if a.Valid {
		if err := json.Unmarshal([]byte(a.String), &customArgs); err != nil {
			return nil, nil, fmt.Errorf("decoding custom args: %w", err)
		}
	}
	return categories, customArgs, nil
}

// encodeMessageMeta encodes a message's own categories and custom args,
// besides its body's.
func encodeMessageMeta(m *sealpost.Message) (categories, customArgs string, err error) {
	cats := m.Categories
	if cats == nil {
		cats = []string{}
	}
	args := m.CustomArgs
	if args == nil {
		args = map[string]string{}
	}
	c, err := json.Marshal(cats)
	if err != nil {
		return "", "", sealpost.Errorf(sealpost.EINTERNAL, "encoding categories: %v", err)
	}
	a, err := json.Marshal(args)
	if err != nil {
		return "", "", sealpost.Errorf(sealpost.EINTERNAL, "encoding custom args: %v", err)
	}
	return string(c), string(a), nil
}

// recipientDomain is r.Domain, or the lower-cased part after the last @
// when the caller left it empty.
func recipientDomain(r sealpost.Recipient) string {
	if r.Domain != "" {
		return r.Domain
	}
	return sealpost.AddressDomain(r.Email)
}

// claimSQL passes over the never-attempted deliveries of a paused batch,
// and reports those of a cancelled one.
const claimSQL = `UPDATE deliveries SET lease_owner = ?, lease_until = ?
	WHERE id IN (
		SELECT d.id FROM deliveries d
		WHERE d.done = 0 AND d.next_attempt_at <= ? AND d.lease_until <= ?
			AND (d.batch_id IS NULL OR d.attempts > 0 OR NOT EXISTS (
				SELECT 1 FROM mail_batches b WHERE b.batch_id = d.batch_id AND b.status = 'pause'))
		ORDER BY d.next_attempt_at, d.id LIMIT ?)
	RETURNING id, message_id, domain, attempts, next_attempt_at, created_at,
		batch_id IS NOT NULL AND attempts = 0 AND EXISTS (
			SELECT 1 FROM mail_batches b WHERE b.batch_id = deliveries.batch_id AND b.status = 'cancel')`

// ClaimDeliveries leases and loads in one write transaction: the single
// writer is what keeps two claimers from taking the same delivery.
func (db *DB) ClaimDeliveries(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]*sealpost.Delivery, error) {
	if limit <= 0 {
		return nil, nil
	}
	leaseUntil := now.Add(lease)
	var out []*sealpost.Delivery
	err := db.writeTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		out = out[:0]
		rows, err := tx.StmtContext(ctx, db.stmts.claim).QueryContext(ctx, owner, leaseUntil.UnixNano(), now.UnixNano(), now.UnixNano(), limit)
		if err != nil {
			return err
		}
		type claimed struct {
			d         *sealpost.Delivery
			messageID int64
			due       int64
		}
		var cs []claimed
		for rows.Next() {
			var c claimed
			var created int64
			c.d = &sealpost.Delivery{LeaseOwner: owner, LeaseUntil: fromUnixNano(leaseUntil.UnixNano())}
			if err := rows.Scan(&c.d.ID, &c.messageID, &c.d.Domain, &c.d.Attempts, &c.due, &created, &c.d.Cancelled); err != nil {
				rows.Close()
				return err
			}
			c.d.CreatedAt = fromUnixNano(created)
			cs = append(cs, c)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if len(cs) == 0 {
			return nil
		}
		// RETURNING comes in no promised order.
		slices.SortFunc(cs, func(a, b claimed) int {
			if a.due != b.due {
				return cmp.Compare(a.due, b.due)
			}
			return cmp.Compare(a.d.ID, b.d.ID)
		})
		msgStmt := tx.StmtContext(ctx, db.stmts.loadMessage)
		bodyStmt := tx.StmtContext(ctx, db.stmts.loadBody)
		rcptStmt := tx.StmtContext(ctx, db.stmts.loadRecipients)
		// The deliveries of one mail send share its body in memory too.
		bodies := make(map[int64]*sealpost.MessageBody)
		for _, c := range cs {
			m, err := loadMessage(ctx, msgStmt, bodyStmt, bodies, c.messageID)
			if err != nil {
				return err
			}
			if m.Recipients, err = loadRecipients(ctx, rcptStmt, c.d.ID); err != nil {
				return err
			}
			c.d.Message = m
			out = append(out, c.d)
		}
		return nil
	})
	if err != nil {
		return nil, mapError("claiming deliveries", err, "delivery not found", "")
	}
	return out, nil
}

// loadMessage loads a message and its body, which it looks up in bodies
// first and adds there.
func loadMessage(ctx context.Context, st, bodyStmt *sql.Stmt, bodies map[int64]*sealpost.MessageBody, id int64) (*sealpost.Message, error) {
	m := &sealpost.Message{ID: id}
	var categories, customArgs string
	var created int64
	var bodyID sql.NullInt64
	var data []byte
	if err := st.QueryRowContext(ctx, id).Scan(&m.AccountID, &m.XMessageID, &m.SMTPID, &m.From, &bodyID, &data,
		&categories, &customArgs, &created); err != nil {
		return nil, fmt.Errorf("loading message %d: %w", id, err)
	}
	if !bodyID.Valid {
		// Stored whole, as before message bodies were shared.
		m.Body = &sealpost.MessageBody{Data: data}
	} else {
		m.Layout = data
		if m.Body = bodies[bodyID.Int64]; m.Body == nil {
			m.Body = &sealpost.MessageBody{ID: bodyID.Int64}
			var c, a sql.NullString
			if err := bodyStmt.QueryRowContext(ctx, bodyID.Int64).Scan(&m.Body.Data, &c, &a); err != nil {
				return nil, fmt.Errorf("loading body %d of message %d: %w", bodyID.Int64, id, err)
			}
			var err error
			if m.Body.Categories, m.Body.CustomArgs, err = decodeEventArgs(c, a); err != nil {
				return nil, fmt.Errorf("body %d: %w", bodyID.Int64, err)
			}
			bodies[bodyID.Int64] = m.Body
		}
	}
	if err := json.Unmarshal([]byte(categories), &m.Categories); err != nil {
		return nil, fmt.Errorf("decoding categories of message %d: %w", id, err)
	}
	if err := json.Unmarshal([]byte(customArgs), &m.CustomArgs); err != nil {
		return nil, fmt.Errorf("decoding custom args of message %d: %w", id, err)
	}
	m.CreatedAt = fromUnixNano(created)
	return m, nil
}

func loadRecipients(ctx context.Context, st *sql.Stmt, args ...any) ([]sealpost.Recipient, error) {
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return nil, err
	}
	return scanRecipients(rows)
}

// scanRecipients reads id, email, domain, sg_message_id, state rows; none
// is an empty slice, not nil.
func scanRecipients(rows *sql.Rows) ([]sealpost.Recipient, error) {
	defer rows.Close()
	out := []sealpost.Recipient{}
	for rows.Next() {
		var r sealpost.Recipient
		var state string
		if err := rows.Scan(&r.ID, &r.Email, &r.Domain, &r.SGMessageID, &state); err != nil {
			return nil, err
		}
		r.State = sealpost.RecipientState(state)
		out = append(out, r)
	}
	return out, rows.Err()
}

func (db *DB) RecipientStates(ctx context.Context, accountID int64, xMessageID string) ([]sealpost.Recipient, error) {
	rows, err := db.read.QueryContext(ctx,
		`SELECT r.id, r.email, r.domain, r.sg_message_id, r.state
		 FROM messages m JOIN recipients r ON r.message_id = m.id
		 WHERE m.account_id = ? AND m.x_message_id = ?
		 ORDER BY r.id`, accountID, xMessageID)
	if err != nil {
		return nil, internal("reading recipient states", err)
	}
	out, err := scanRecipients(rows)
	if err != nil {
		return nil, internal("reading recipient states", err)
	}
	return out, nil
}
