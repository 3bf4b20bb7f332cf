package event

import (
	"net/url"
	"strings"
)

// redactURLText removes u's password from text in the forms a driver may quote it: as is and
// percent-encoded (as it appears in a connection string). RedactText covers the first.
func redactURLText(text string, u *url.URL) string {
	if u == nil || u.User == nil {
		return text
	}
	p, ok := u.User.Password()
	if !ok || p == "" {
		return text
	}
	for _, form := range []string{p, url.QueryEscape(p), url.PathEscape(p), strings.TrimPrefix(url.UserPassword("", p).String(), ":")} {
		if form != "" {
			text = strings.ReplaceAll(text, form, "xxxxx")
		}
	}
	return text
}

// redactedError is an error whose text has had a password removed. It deliberately does not
// unwrap: the wrapped error's own text would bring the password back.
type redactedError struct{ msg string }

func (e *redactedError) Error() string { return e.msg }

// redactErr returns err with u's password removed from its text, prefixed by op; nil stays nil.
func redactErr(op string, err error, u *url.URL) error {
	if err == nil {
		return nil
	}
	return &redactedError{msg: op + ": " + redactURLText(err.Error(), u)}
}
