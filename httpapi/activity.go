package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/sealpost/sealpost"
)

// activityMessage is one entry of GET /v3/messages, SendGrid's
// "Abbv. Message". sealpost tracks neither opens nor clicks: both are 0.
type activityMessage struct {
	FromEmail     string `json:"from_email"`
	MsgID         string `json:"msg_id"`
	Subject       string `json:"subject"`
	ToEmail       string `json:"to_email"`
	Status        string `json:"status"`
	OpensCount    int    `json:"opens_count"`
	ClicksCount   int    `json:"clicks_count"`
	LastEventTime string `json:"last_event_time"`
}

type activityList struct {
	Messages []activityMessage `json:"messages"`
}

// activityDetail is GET /v3/messages/{msg_id}'s body: SendGrid's Message,
// without what sealpost has no notion of (templates, unsubscribe groups,
// teammates, IP addresses).
type activityDetail struct {
	FromEmail  string          `json:"from_email"`
	MsgID      string          `json:"msg_id"`
	Subject    string          `json:"subject"`
	ToEmail    string          `json:"to_email"`
	Status     string          `json:"status"`
	Categories []string        `json:"categories"`
	UniqueArgs string          `json:"unique_args"` // a JSON object, as a string
	Events     []activityEvent `json:"events"`
}

// activityEvent is one of the detail's events; Sealpost is the event's TLS
// facts as it was built, passed through whatever they hold.
type activityEvent struct {
	EventName  string          `json:"event_name"`
	Processed  string          `json:"processed"`
	Reason     string          `json:"reason,omitempty"`
	AttemptNum int             `json:"attempt_num,omitempty"`
	BounceType string          `json:"bounce_type,omitempty"`
	MXServer   string          `json:"mx_server,omitempty"`
	Sealpost   json.RawMessage `json:"sealpost,omitempty"`
}

// maxActivityReason is SendGrid's bound on an event's reason, in
// characters.
const maxActivityReason = 1024

// activityTime is how the Email Activity API writes times: RFC 3339, UTC,
// whole seconds.
func activityTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func (s *Server) activitySince() time.Time { return s.now().Add(-s.activityRetention) }

func (s *Server) listMessages(ctx context.Context, r *http.Request, c *call) (int, []byte, error) {
	q := r.URL.Query()
	limit := sealpost.DefaultActivityLimit
	var problems []sealpost.FieldError
	if q.Has("limit") {
		n, err := strconv.Atoi(q.Get("limit"))
		if err != nil || n < 1 || n > sealpost.MaxActivityLimit {
			problems = append(problems, sealpost.FieldError{Field: "limit",
				Message: fmt.Sprintf("limit must be an integer from 1 to %d", sealpost.MaxActivityLimit)})
		}
		limit = n
	}
	query, err := sealpost.ParseActivityQuery(q.Get("query"))
	if err != nil {
		problems = append(problems, sealpost.ErrorFields(err)...)
	}
	if len(problems) > 0 {
		return 0, nil, sealpost.Invalid(problems...)
	}
	msgs, err := s.store.ListActivity(ctx, c.acting.ID, query, s.activitySince(), limit)
	if err != nil {
		return 0, nil, fmt.Errorf("listing the activity of account %d: %w", c.acting.ID, err)
	}
	out := activityList{Messages: make([]activityMessage, len(msgs))}
	for i, m := range msgs {
		out.Messages[i] = activityMessage{
			FromEmail: m.FromEmail, MsgID: m.MsgID, Subject: m.Subject, ToEmail: m.ToEmail,
			Status: sealpost.ActivityStatus(m.State), LastEventTime: activityTime(m.LastEventTime),
		}
	}
	return jsonResponse(http.StatusOK, out)
}

// errMessageNotFound is SendGrid's 404 for a message id it does not know.
var errMessageNotFound error = &sealpost.Error{Code: sealpost.ENOTFOUND, Message: "not found",
	Fields: []sealpost.FieldError{{Field: "message_id", Message: "not found"}}}

func (s *Server) getMessage(ctx context.Context, r *http.Request, c *call) (int, []byte, error) {
	id := r.PathValue("msg_id")
	if len(id) > 256 || !utf8.ValidString(id) {
		return 0, nil, errMessageNotFound
	}
	d, err := s.store.ActivityDetail(ctx, c.acting.ID, id, s.activitySince())
	if sealpost.ErrorCode(err) == sealpost.ENOTFOUND {
		return 0, nil, errMessageNotFound
	}
	if err != nil {
		return 0, nil, fmt.Errorf("reading the activity of account %d: %w", c.acting.ID, err)
	}
	args := d.CustomArgs
	if args == nil {
		args = map[string]string{}
	}
	uniqueArgs, err := json.Marshal(args)
	if err != nil {
		return 0, nil, fmt.Errorf("encoding custom args: %w", err)
	}
	out := activityDetail{
		FromEmail: d.FromEmail, MsgID: d.MsgID, Subject: d.Subject, ToEmail: d.ToEmail,
		Status: sealpost.ActivityStatus(d.State), Categories: d.Categories, UniqueArgs: string(uniqueArgs),
		Events: make([]activityEvent, 0, len(d.Events)),
	}
	if out.Categories == nil {
		out.Categories = []string{}
	}
	for _, e := range d.Events {
		ev, err := activityEventOf(e)
		if err != nil {
			return 0, nil, fmt.Errorf("event of %s: %w", d.MsgID, err)
		}
		out.Events = append(out.Events, ev)
	}
	return jsonResponse(http.StatusOK, out)
}

// activityEventOf maps a kept event to SendGrid's: its name (a bounce is
// "bounced", hard; a blocked one, refused for the recipient's TLS rather
// than its address, soft), the server's words as reason, the MX host from
// the TLS facts.
func activityEventOf(e sealpost.ActivityEvent) (activityEvent, error) {
	var p struct {
		Response string          `json:"response"`
		Reason   string          `json:"reason"`
		Attempt  string          `json:"attempt"`
		Type     string          `json:"type"`
		Sealpost json.RawMessage `json:"sealpost"`
	}
	if err := json.Unmarshal(e.Payload, &p); err != nil {
		return activityEvent{}, err
	}
	ev := activityEvent{EventName: string(e.Kind), Processed: activityTime(e.At), Sealpost: p.Sealpost}
	switch e.Kind {
	case sealpost.EventBounce:
		ev.EventName, ev.Reason, ev.BounceType = "bounced", p.Reason, "hard"
		if p.Type == "blocked" {
			ev.BounceType = "soft"
		}
	case sealpost.EventDropped:
		ev.Reason = p.Reason
	case sealpost.EventDeferred:
		ev.Reason = p.Response
		ev.AttemptNum, _ = strconv.Atoi(p.Attempt)
	}
	if r := []rune(ev.Reason); len(r) > maxActivityReason {
		ev.Reason = string(r[:maxActivityReason])
	}
	if len(p.Sealpost) > 0 {
		var facts struct {
			MXHost string `json:"mx_host"`
		}
		if json.Unmarshal(p.Sealpost, &facts) == nil {
			ev.MXServer = facts.MXHost
		}
	}
	return ev, nil
}
