package batch

import (
	"errors"
	"fmt"
)

// Error codes: the only vocabulary of failure the rest of batchy speaks. The API maps each to one
// HTTP status; stores and loaders return them so callers never inspect driver errors.
const (
	EINVALID      = "invalid"           // the request or configuration is malformed
	ENOTFOUND     = "not_found"         // the workflow, job or batch does not exist
	ECONFLICT     = "conflict"          // the request is valid but the current state forbids it
	ETOOLARGE     = "too_large"         // the request or file exceeds a limit
	ETOOMANY      = "too_many_requests" // the client holds too much at once (waits)
	EUNAVAILABLE  = "unavailable"       // the store cannot be reached
	EUNAUTHORIZED = "unauthorized"      // no valid token
	EFORBIDDEN    = "forbidden"         // the token's role does not allow it
	EINTERNAL     = "internal"          // a bug or an unexpected failure; details are logged, not shown
)

// Error is a failure with a code and a message meant for the user.
type Error struct {
	Code    string
	Message string
	// Cause is the underlying error, for logs only: it never reaches a user.
	Cause error
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return e.Code + ": " + e.Message + ": " + e.Cause.Error()
	}
	return e.Code + ": " + e.Message
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Cause }

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL for any other error and
// "" for nil.
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

// ErrorMessage returns the user-facing message of err, "" for nil; internal errors get a generic
// message so that driver details and addresses never reach a user.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}
