package webhook

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/sealpost/sealpost"
)

// PostRecorder keeps the outcome of each post, for the account to see on
// GET /v3/user/webhooks/event/posts.
type PostRecorder interface {
	RecordEventWebhookPost(ctx context.Context, p sealpost.EventWebhookPost) error
}

// recordTimeout bounds recording a post: the record is a courtesy to the
// account, and a slow database must not hold a post's slot for long.
const recordTimeout = 2 * time.Second

// record keeps p when the poster has a recorder. It runs after the batch
// is settled, so a post is never held up or failed by its record; a
// failure is logged and forgotten.
func (r *run) record(ctx context.Context, p sealpost.EventWebhookPost) {
	if r.p.Recorder == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	if err := r.p.Recorder.RecordEventWebhookPost(ctx, p); err != nil {
		r.log.WarnContext(ctx, "event webhook: recording a post", "account_id", p.AccountID, "err", err)
	}
}

// PostFailure says in words why a post failed, for the account's history;
// "" when it did not. Network failures are told apart only as far as the
// account can act on them: the details of the server's view of the network
// stay in its log.
func PostFailure(status int, err error) string {
	switch {
	case err == nil:
		return ""
	case status >= 300 && status <= 399:
		return "answered with a redirect, which is not followed"
	case status != 0:
		return "answered with a status other than 2xx"
	case errors.Is(err, sealpost.ErrDestinationRefused):
		return "destination address not allowed"
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		return "no answer in time"
	}
	return "no HTTP answer (connection or TLS failed)"
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
