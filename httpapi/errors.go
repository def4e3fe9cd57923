package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"

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
	// bodySenderIdentity is SendGrid's answer to a mail send from an
	// address no verified Sender Identity covers.
	bodySenderIdentity = []byte(`{"errors":[{"message":"The from address does not match a verified Sender Identity. Mail cannot be sent until this error is resolved. Visit https://sendgrid.com/docs/for-developers/sending-email/sender-identity/ to see the Sender Identity requirements","field":"from"}]}`)
	bodyUnavailable    = []byte(`{"errors":[{"field":null,"message":"service unavailable"}]}`)
)

// Errors the pipeline itself raises. Being values, they cost nothing to return.
var (
	errForbidden   error = sealpost.Errorf(sealpost.EFORBIDDEN, "access forbidden")
	errNotFound    error = sealpost.Errorf(sealpost.ENOTFOUND, "resource not found")
	errTooLarge    error = sealpost.Errorf(sealpost.ETOOLARGE, "content too large")
	errRateLimited error = sealpost.Errorf(sealpost.ERATELIMIT, "too many requests")
)

// errorForm is the shape of a route's error bodies.
type errorForm int

const (
	// sendGridErrors is the body most of SendGrid's APIs answer:
	// {"errors":[{"field":<string or null>,"message":...}]}.
	sendGridErrors errorForm = iota
	// provisioningErrors is the Account Provisioning API's: every entry
	// has a string field and an error_id.
	provisioningErrors
)

// errorResponse is the one mapping from a sealpost error to an HTTP status
// and body. Nothing else chooses a response from an error code.
func errorResponse(err error, form errorForm) (status int, body []byte) {
	status, body = sendGridError(err)
	return status, inForm(form, status, body)
}

// inForm returns body, one of SendGrid's error bodies for status, in form.
func inForm(form errorForm, status int, body []byte) []byte {
	// A bad key is refused before the request reaches the API behind it:
	// every 401 SendGrid is seen to answer is the generic body, whatever
	// the Account Provisioning document says (README, "The API").
	if form == sendGridErrors || status == http.StatusUnauthorized {
		return body
	}
	return provisioningErrorsBody(status, body)
}

func sendGridError(err error) (status int, body []byte) {
	switch sealpost.ErrorCode(err) {
	case sealpost.EINVALID:
		return http.StatusBadRequest, fieldErrorsBody(err)
	case sealpost.ELIMIT:
		// SendGrid refuses a key past its cap with a 400.
		return http.StatusBadRequest, fieldErrorsBody(err)
	case sealpost.ECONFLICT:
		// SendGrid reports duplicates (an existing username, say) as
		// validation failures, not 409.
		return http.StatusBadRequest, fieldErrorsBody(err)
	case sealpost.EUNAUTHORIZED:
		return http.StatusUnauthorized, bodyUnauthorized
	case sealpost.EFORBIDDEN:
		return http.StatusForbidden, bodyForbidden
	case sealpost.ESENDER:
		return http.StatusForbidden, bodySenderIdentity
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
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, rt *route, c *call, err error) int {
	pattern := rt.pattern
	status, body := errorResponse(err, rt.errors)
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
		slog.String("err", err.Error()),
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

// provisioningError is one entry of an Account Provisioning error body.
type provisioningError struct {
	Message string `json:"message"`
	Field   string `json:"field"`
	ErrorID string `json:"error_id"`
}

// provisioningErrorsBody rewrites one of SendGrid's error bodies for status
// in the Account Provisioning form: the field is "" when the problem is
// about no field, and error_id is "10-" and the status followed by "00"
// (the document's 10-40300, 10-40400, 10-50000 ...), but for the one
// problem the document gives a code of its own.
func provisioningErrorsBody(status int, body []byte) []byte {
	var in errorsBody
	if err := json.Unmarshal(body, &in); err != nil {
		// The bodies are this package's own.
		panic(err)
	}
	out := struct {
		Errors []provisioningError `json:"errors"`
	}{make([]provisioningError, 0, len(in.Errors))}
	statusID := "10-" + strconv.Itoa(status) + "00"
	for _, e := range in.Errors {
		pe := provisioningError{Message: e.Message, ErrorID: statusID}
		if e.Field != nil {
			pe.Field = *e.Field
		}
		if status == http.StatusBadRequest && pe.Field == "profile.email" {
			// "Field must be a valid email".
			pe.ErrorID = "10-40002"
		}
		out.Errors = append(out.Errors, pe)
	}
	b, err := json.Marshal(out)
	if err != nil {
		panic(err)
	}
	return b
}
