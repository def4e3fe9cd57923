package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/sealpost/sealpost"
)

// Mail batches and scheduled sends: a batch id groups mail sends so that
// their scheduled mail can be paused or cancelled before it goes. The
// status lives in the store, which every node's claim reads.

type batchIDBody struct {
	BatchID string `json:"batch_id"`
}

type scheduledSendBody struct {
	BatchID string `json:"batch_id"`
	Status  string `json:"status"`
}

var (
	errInvalidBatchID error = sealpost.Invalid(sealpost.FieldError{Field: "batch_id", Message: sealpost.MsgInvalidBatchID})
	// errInvalidBatchPath is SendGrid's answer on GET /v3/mail/batch/{id},
	// whose id is no body member: the field is null.
	errInvalidBatchPath    error = sealpost.Invalid(sealpost.FieldError{Message: sealpost.MsgInvalidBatchID})
	errScheduledSendExists error = sealpost.Invalid(sealpost.FieldError{Field: "batch_id", Message: sealpost.MsgScheduledSendExists})
	errBatchNotFound       error = &sealpost.Error{Code: sealpost.ENOTFOUND, Fields: []sealpost.FieldError{{Message: sealpost.MsgBatchNotFound}}}
)

func (s *Server) createBatch(ctx context.Context, _ *http.Request, c *call) (int, []byte, error) {
	id, err := sealpost.NewBatchID()
	if err != nil {
		return 0, nil, err
	}
	if err := s.store.CreateBatch(ctx, c.acting.ID, id); err != nil {
		return 0, nil, fmt.Errorf("creating mail batch of account %d: %w", c.acting.ID, err)
	}
	return jsonResponse(http.StatusCreated, batchIDBody{BatchID: id})
}

// ownBatch returns the batch id in the path, or errInvalidBatchID when
// the acting account did not create it: another account's batch looks
// exactly like a missing one.
func (s *Server) ownBatch(ctx context.Context, r *http.Request, c *call) (string, error) {
	id := r.PathValue("batch_id")
	if err := s.checkBatch(ctx, c, id); err != nil {
		return "", err
	}
	return id, nil
}

// checkBatch fails with errInvalidBatchID unless the acting account
// created batch id.
func (s *Server) checkBatch(ctx context.Context, c *call, id string) error {
	if !sealpost.ValidBatchID(id) {
		return errInvalidBatchID
	}
	ok, err := s.store.BatchExists(ctx, c.acting.ID, id)
	if err != nil {
		return fmt.Errorf("reading mail batch of account %d: %w", c.acting.ID, err)
	}
	if !ok {
		return errInvalidBatchID
	}
	return nil
}

func (s *Server) getBatch(ctx context.Context, r *http.Request, c *call) (int, []byte, error) {
	id, err := s.ownBatch(ctx, r, c)
	if errors.Is(err, errInvalidBatchID) {
		return 0, nil, errInvalidBatchPath
	}
	if err != nil {
		return 0, nil, err
	}
	return jsonResponse(http.StatusOK, batchIDBody{BatchID: id})
}

// scheduledSendStatus reads the status member of a scheduled-send body.
func scheduledSendStatus(o *object) sealpost.BatchStatus {
	status, present := o.str("status")
	if !present {
		o.problem("status", "is required")
	} else if !sealpost.BatchStatus(status).Valid() {
		o.problem("status", "must be one of cancel, pause")
	}
	return sealpost.BatchStatus(status)
}

func (s *Server) createScheduledSend(ctx context.Context, _ *http.Request, c *call) (int, []byte, error) {
	o, err := parseObject(c.body)
	if err != nil {
		return 0, nil, err
	}
	id, present := o.str("batch_id")
	if !present {
		o.problem("batch_id", "is required")
	}
	status := scheduledSendStatus(o)
	if err := o.err(); err != nil {
		return 0, nil, err
	}
	if err := s.checkBatch(ctx, c, id); err != nil {
		return 0, nil, err
	}
	if err := s.store.SetScheduledSend(ctx, c.acting.ID, id, status, true); err != nil {
		return 0, nil, scheduledSendError(err, c)
	}
	return jsonResponse(http.StatusCreated, scheduledSendBody{BatchID: id, Status: string(status)})
}

func (s *Server) listScheduledSends(ctx context.Context, _ *http.Request, c *call) (int, []byte, error) {
	list, err := s.store.ScheduledSends(ctx, c.acting.ID)
	if err != nil {
		return 0, nil, fmt.Errorf("listing scheduled sends of account %d: %w", c.acting.ID, err)
	}
	return jsonResponse(http.StatusOK, scheduledSendBodies(list))
}

func scheduledSendBodies(list []sealpost.ScheduledSend) []scheduledSendBody {
	out := make([]scheduledSendBody, 0, len(list))
	for _, ss := range list {
		out = append(out, scheduledSendBody{BatchID: ss.BatchID, Status: string(ss.Status)})
	}
	return out
}

// getScheduledSend answers SendGrid's array: the batch's status, or none.
func (s *Server) getScheduledSend(ctx context.Context, r *http.Request, c *call) (int, []byte, error) {
	id, err := s.ownBatch(ctx, r, c)
	if err != nil {
		return 0, nil, err
	}
	list, err := s.store.ScheduledSends(ctx, c.acting.ID)
	if err != nil {
		return 0, nil, fmt.Errorf("listing scheduled sends of account %d: %w", c.acting.ID, err)
	}
	var mine []sealpost.ScheduledSend
	for _, ss := range list {
		if ss.BatchID == id {
			mine = append(mine, ss)
		}
	}
	return jsonResponse(http.StatusOK, scheduledSendBodies(mine))
}

func (s *Server) patchScheduledSend(ctx context.Context, r *http.Request, c *call) (int, []byte, error) {
	o, err := parseObject(c.body)
	if err != nil {
		return 0, nil, err
	}
	status := scheduledSendStatus(o)
	if err := o.err(); err != nil {
		return 0, nil, err
	}
	id, err := s.ownBatch(ctx, r, c)
	if err != nil {
		return 0, nil, err
	}
	if err := s.store.SetScheduledSend(ctx, c.acting.ID, id, status, false); err != nil {
		return 0, nil, scheduledSendError(err, c)
	}
	return http.StatusNoContent, nil, nil
}

func (s *Server) deleteScheduledSend(ctx context.Context, r *http.Request, c *call) (int, []byte, error) {
	id, err := s.ownBatch(ctx, r, c)
	if err != nil {
		return 0, nil, err
	}
	if err := s.store.DeleteScheduledSend(ctx, c.acting.ID, id); err != nil {
		return 0, nil, scheduledSendError(err, c)
	}
	return http.StatusNoContent, nil, nil
}

// scheduledSendError answers as SendGrid's Cancel Scheduled Sends
// reference does: a batch without a status (PATCH, DELETE) is a 404 "batch
// id not found"; a POST for one that has a status, or past the cap of
// statuses, a 400 (the cap's ELIMIT carries its body).
func scheduledSendError(err error, c *call) error {
	switch sealpost.ErrorCode(err) {
	case sealpost.ENOTFOUND:
		return errBatchNotFound
	case sealpost.ECONFLICT:
		return errScheduledSendExists
	case sealpost.ELIMIT:
		return err
	}
	return fmt.Errorf("scheduled send of account %d: %w", c.acting.ID, err)
}
