package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/sealpost/sealpost"
)

// SendGrid's fixed error bodies, encoded once. They are never modified.
var (
	bodyUnauthorized     = []byte(`{"errors":[{"field":null,"message":"authorization required"}]}`)
	bodyForbidden        = []byte(`{"errors":[{"field":null,"message":"access forbidden"}]}`)
	bodyNotFound         = []byte(`{"errors":[{"field":null,"message":"resource not found"}]}`)
	bodyMethodNotAllowed = []byte(`{"errors":[{"field":null,"message":"method not allowed"}]}`)
	bodyTooLarge         = []byte(`{"errors":[{"field":null,"message":"content too large"}]}`)
	bodyTooManyRequests  = []byte(`{"errors":[{"field":null,"message":"too many requests"}]}`)
	bodyInternal         = []byte(`{"errors":[{"message":"internal server error"}]}`)
	bodyUnavailable      = []byte(`{"errors":[{"field":null,"message":"service unavailable"}]}`)
)

// Errors the pipeline itself raises. Being values, they cost nothing to return.
var (
	errForbidden   error = sealpost.Errorf(sealpost.EFORBIDDEN, "access forbidden")
	errNotFound    error = sealpost.Errorf(sealpost.ENOTFOUND, "resource not found")
	errTooLarge    error = sealpost.Errorf(sealpost.ETOOLARGE, "content too large")
	errRateLimited error = sealpost.Errorf(sealpost.ERATELIMIT, "too many requests")
)

// errorResponse is the one mapping from a sealpost error to an HTTP status
// and body. Nothing else chooses a response from an error code.
func errorResponse(err error) (status int, body []byte) {
	switch sealpost.ErrorCode(err) {
	case sealpost.EINVALID:
		return http.StatusBadRequest, fieldErrorsBody(err)
	case sealpost.ECONFLICT:
		// SendGrid reports duplicates (an existing username, say) as
		// validation failures, not 409.
		return http.StatusBadRequest, fieldErrorsBody(err)
	case sealpost.EUNAUTHORIZED:
		return http.StatusUnauthorized, bodyUnauthorized
	case sealpost.EFORBIDDEN:
		return http.StatusForbidden, bodyForbidden
	case sealpost.ENOTFOUND:
		// A not-found about a named input (the on-behalf-of header) says
		// which input; a missing resource gets SendGrid's fixed body.
		if len(sealpost.ErrorFields(err)) > 0 {
			return http.StatusNotFound, fieldErrorsBody(err)
		}
		return http.StatusNotFound, bodyNotFound
	case sealpost.ETOOLARGE:
		return http.StatusRequestEntityTooLarge, bodyTooLarge
	case sealpost.ERATELIMIT:
		return http.StatusTooManyRequests, bodyTooManyRequests
	case sealpost.EUNAVAILABLE:
		return http.StatusServiceUnavailable, bodyUnavailable
	default:
		return http.StatusInternalServerError, bodyInternal
	}
}

// writeError sends err's response, logging what a client must not see.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, pattern string, c *call, err error) int {
	status, body := errorResponse(err)
	switch status {
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "1")
		s.outage.Failed(r.Context(), err, slog.String("route", pattern), slog.String("method", r.Method))
	case http.StatusInternalServerError:
		level := slog.LevelError
		// A client that hung up makes store calls fail; that is not a
		// server fault worth an alert.
		if errors.Is(r.Context().Err(), context.Canceled) {
			level = slog.LevelDebug
		}
		s.log.LogAttrs(r.Context(), level, "internal error", s.errorAttrs(r, pattern, status, c, err)...)
	}
	return s.write(w, status, body)
}

func (s *Server) errorAttrs(r *http.Request, pattern string, status int, c *call, err error) []slog.Attr {
	attrs := []slog.Attr{
		slog.String("route", pattern),
		slog.String("method", r.Method),
		slog.Int("status", status),
		slog.String("error", err.Error()),
	}
	if c != nil && c.principal != nil {
		attrs = append(attrs,
			slog.Int64("account_id", c.principal.Account.ID),
			slog.String("key_id", c.principal.Key.ID))
	}
	return attrs
}

type errorEntry struct {
	Field   *string `json:"field"`
	Message string  `json:"message"`
}

type errorsBody struct {
	Errors []errorEntry `json:"errors"`
}

// fieldErrorsBody lists every problem err carries, one entry each, with a
// null field for problems not about one field.
func fieldErrorsBody(err error) []byte {
	fields := sealpost.ErrorFields(err)
	entries := make([]errorEntry, 0, max(len(fields), 1))
	for _, f := range fields {
		e := errorEntry{Message: f.Message}
		if f.Field != "" {
			e.Field = &f.Field
		}
		entries = append(entries, e)
	}
	if len(entries) == 0 {
		msg := "invalid request"
		var se *sealpost.Error
		if errors.As(err, &se) && se.Message != "" {
			msg = se.Message
		}
		entries = append(entries, errorEntry{Message: msg})
	}
	b, mErr := json.Marshal(errorsBody{Errors: entries})
	if mErr != nil {
		// Strings and pointers to strings always marshal.
		panic(mErr)
	}
	return b
}
