package batch

import (
	"strings"
	"time"
)

// TimeLayout is how batchy stores and returns every timestamp: RFC 3339 in UTC with microseconds.
const TimeLayout = "2006-01-02T15:04:05.000000Z"

// DefaultInitialFromDate is the from_date of a job's first window when it has none: the original
// Batchy's sentinel for "everything".
var DefaultInitialFromDate = time.Date(1776, 7, 4, 23, 59, 0, 0, time.UTC)

// naiveLayouts are the original's zone-less forms, read as UTC.
var naiveLayouts = []string{
	"2006-01-02T15:04:05.999999999",
	"2006-01-02T15:04",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02 15:04",
	"2006-01-02",
}

// FormatTime renders t the way batchy stores it.
func FormatTime(t time.Time) string {
	var buf [len(TimeLayout)]byte
	return string(AppendTime(buf[:0], t))
}

// AppendTime appends t as FormatTime renders it. Every answer and event carries several dates:
// the years batchy stores (1-9999) are written digit by digit, much faster than through
// time.Time.AppendFormat's reading of the layout, which the others still take.
func AppendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 1 || year > 9999 {
		return t.AppendFormat(b, TimeLayout)
	}
	hour, min, sec := t.Clock()
	b = appendDigits(b, year, 4)
	b = appendDigits(append(b, '-'), int(month), 2)
	b = appendDigits(append(b, '-'), day, 2)
	b = appendDigits(append(b, 'T'), hour, 2)
	b = appendDigits(append(b, ':'), min, 2)
	b = appendDigits(append(b, ':'), sec, 2)
	b = appendDigits(append(b, '.'), t.Nanosecond()/1000, 6)
	return append(b, 'Z')
}

// appendDigits appends n's last width decimal digits, with leading zeros.
func appendDigits(b []byte, n, width int) []byte {
	b = append(b, make([]byte, width)...)
	for i := len(b) - 1; i >= len(b)-width; i-- {
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return b
}

// ParseTime reads an RFC 3339 time or one of the original's naive ISO forms (read as UTC), and
// truncates it to microseconds, the stored precision.
func ParseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		// Go accepts an offset of ±24:00; RFC 3339's hours stop at 23.
		if _, off := t.Zone(); off >= 24*3600 || off <= -24*3600 {
			return time.Time{}, Errorf(EINVALID, "date %q has a time zone offset of 24 hours or more", clip(s))
		}
		return check(t.UTC().Truncate(time.Microsecond), s)
	}
	for _, layout := range naiveLayouts {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return check(t.Truncate(time.Microsecond), s)
		}
	}
	return time.Time{}, Errorf(EINVALID, "%q is not a date: use RFC 3339 (2026-11-22T13:49:30Z) or YYYY-MM-DDTHH:MM[:SS]", clip(s))
}

// The store's scripts compute with dates as microseconds held in a Lua double: exact up to 2^53
// microseconds from 1970 (the years 1685 to 2255) and, for whole seconds, far beyond year 9999.
// A date with a fraction of a second outside fractionFrom..fractionTo would be rounded (and
// 9999-12-31T23:59:59.999999Z would become year 10000), so such dates take whole seconds.
var (
	fractionFrom = time.Date(1700, 1, 1, 0, 0, 0, 0, time.UTC)
	fractionTo   = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
)

// check keeps dates within what the stored form and the Lua date arithmetic handle exactly.
func check(t time.Time, s string) (time.Time, error) {
	if t.Year() < 1 || t.Year() > 9999 {
		return time.Time{}, Errorf(EINVALID, "date %q is out of range (years 0001-9999)", clip(s))
	}
	if t.Nanosecond() != 0 && (t.Before(fractionFrom) || !t.Before(fractionTo)) {
		return time.Time{}, Errorf(EINVALID, "date %q has a fraction of a second, which only dates from 1700 to 2199 may have: give whole seconds", clip(s))
	}
	return t, nil
}

// clip shortens user input quoted back in an error message.
func clip(s string) string {
	const max = 64
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
