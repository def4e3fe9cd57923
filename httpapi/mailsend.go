package httpapi

import (
	"context"
	"fmt"
	"net/http"

	"github.com/sealpost/sealpost"
)

// sendMail accepts a mail send for the acting account. The 202 and its
// X-Message-Id go out only once the messages and their processed events
// are durable; any failure before that leaves nothing stored and no id
// shown.
func (s *Server) sendMail(ctx context.Context, _ *http.Request, c *call) (int, []byte, error) {
	ms, err := sealpost.ParseMailSend(c.body)
	if err != nil {
		return 0, nil, err
	}
	xMessageID, err := sealpost.NewXMessageID()
	if err != nil {
		return 0, nil, err
	}
	now := s.now()
	msgs, err := ms.Messages(c.acting.ID, xMessageID, now, s.hostname)
	if err != nil {
		return 0, nil, err
	}
	n := 0
	for _, m := range msgs {
		n += len(m.Recipients)
	}
	events := make([]sealpost.Event, 0, n)
	for _, m := range msgs {
		for _, rcpt := range m.Recipients {
			ev, err := sealpost.NewEvent(sealpost.EventProcessed, m, rcpt, now, sealpost.EventDetails{})
			if err != nil {
				return 0, nil, err
			}
			events = append(events, ev)
		}
	}
	if err := s.store.EnqueueMessages(ctx, msgs, events); err != nil {
		return 0, nil, fmt.Errorf("enqueueing mail send %s of account %d: %w", xMessageID, c.acting.ID, err)
	}
	c.header["X-Message-Id"] = []string{xMessageID}
	return http.StatusAccepted, nil, nil
}
