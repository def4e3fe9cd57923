// Package sealpost holds the domain of sealpost, a self-hosted,
// SendGrid-compatible outbound mail service built around SendGrid's Enforced
// TLS setting. Types and small service interfaces live here; each dependency
// (SQLite, PostgreSQL, HTTP) has its own package that implements or uses them.
package sealpost

import (
	"errors"
	"fmt"
)

// Error codes. The HTTP layer maps each to a SendGrid status and body in one
// place; nothing else looks at them to choose a response.
const (
	EINVALID      = "invalid"      // the request is malformed or fails validation
	EUNAUTHORIZED = "unauthorized" // no usable credentials
	EFORBIDDEN    = "forbidden"    // credentials lack the needed scope
	ENOTFOUND     = "not_found"    // the thing does not exist for this caller
	ECONFLICT     = "conflict"     // the thing already exists
	ETOOLARGE     = "too_large"    // the request body is over its limit
	ERATELIMIT    = "rate_limited" // too many requests in this window
	ELIMIT        = "limit"        // creating one more would pass a fixed cap (keys, subusers)
	EUNAVAILABLE  = "unavailable"  // a dependency (the database) is down
	// ESENDER: the From domain is not one the account has authenticated
	// (--require-authenticated-sender).
	ESENDER   = "sender_identity"
	EINTERNAL = "internal" // anything unexpected
)

// FieldError names one problem with one input field. Field is empty when the
// problem is not about a single field.
type FieldError struct {
	Field   string
	Message string
}

// Error is sealpost's one domain error type.
type Error struct {
	Code    string
	Message string
	// Fields lists every problem found, for EINVALID and for ENOTFOUND errors
	// that are about a named input such as the on-behalf-of header.
	Fields []FieldError
	// Err is the underlying cause, logged but never shown to a client.
	Err error
}

func (e *Error) Error() string {
	msg := e.Message
	if msg == "" && len(e.Fields) > 0 {
		msg = e.Fields[0].Message
		if e.Fields[0].Field != "" {
			msg = e.Fields[0].Field + ": " + msg
		}
	}
	if e.Err != nil {
		return fmt.Sprintf("sealpost %s: %s: %v", e.Code, msg, e.Err)
	}
	return fmt.Sprintf("sealpost %s: %s", e.Code, msg)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalid returns an EINVALID error listing every problem in fields.
func Invalid(fields ...FieldError) *Error {
	return &Error{Code: EINVALID, Fields: fields}
}

// ErrorCode returns the code of err, or EINTERNAL when err is not an *Error.
// It returns "" for a nil error.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorFields returns the field problems carried by err, if any.
func ErrorFields(err error) []FieldError {
	var e *Error
	if errors.As(err, &e) {
		return e.Fields
	}
	return nil
}
