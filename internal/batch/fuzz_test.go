package batch_test

import (
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/batchy/batchy/internal/batch"
)

// FuzzCheckName: a name is accepted exactly when it is 1 to 128 of A-Z a-z 0-9 _ . - and not "."
// or "..": nothing accepted can traverse a path, act as a glob in a Redis pattern, break a
// Redis key's hash tag or a shell variable's name. A refusal is EINVALID and says what is wrong
// without quoting more than a short, valid part of the input.
func FuzzCheckName(f *testing.F) {
	for _, s := range []string{"wf1", "job-2.x_y", "", ".", "..", "...", "..%2F..%2Fetc%2Fpasswd", "../etc/passwd", "a/b",
		`a\b`, "wf*", "wf?", "wf[a]", "{wf}", "w f", "w\x00f", "w\nf", "wé", strings.Repeat("a", 128), strings.Repeat("a", 129),
		"\xff", strings.Repeat("é", 40), "a" + strings.Repeat("é", 40)} {
		f.Add(s)
	}
	allowed := regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)
	f.Fuzz(func(t *testing.T, s string) {
		err := batch.CheckName("job", s)
		valid := batch.ValidName(s)
		if (err == nil) != valid {
			t.Fatalf("CheckName(%q) = %v but ValidName = %v", s, err, valid)
		}
		want := allowed.MatchString(s) && s != "." && s != ".."
		if valid != want {
			t.Fatalf("ValidName(%q) = %v, want %v", s, valid, want)
		}
		if valid {
			if strings.ContainsAny(s, "/\\*?[]{}:% \t\r\n\x00") || s == "." || s == ".." {
				t.Fatalf("ValidName accepts %q", s)
			}
			return
		}
		if batch.ErrorCode(err) != batch.EINVALID {
			t.Fatalf("CheckName(%q): code %q, want %q", s, batch.ErrorCode(err), batch.EINVALID)
		}
		msg := batch.ErrorMessage(err)
		if !strings.Contains(msg, "job name") || !strings.Contains(msg, "invalid") {
			t.Errorf("message %q does not say the job name is invalid", msg)
		}
		if len(msg) > 400 {
			t.Errorf("message is %d bytes: a long input must be clipped", len(msg))
		}
		if utf8.ValidString(s) && !utf8.ValidString(msg) {
			t.Errorf("message %q is not valid UTF-8 though the name was: clipping cut a character", msg)
		}
	})
}

// storedDate is the one form a date is stored in, which the Lua scripts' parse_time reads.
var storedDate = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$`)

// FuzzParseTime: whatever ParseTime accepts is a UTC time in years 0001-9999 at microsecond
// precision, stored in exactly the form the scripts read, and reads back as itself; whatever it
// refuses is EINVALID.
func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"2026-11-22T13:49:30Z", "2026-11-22T13:49:30.840061Z", "2026-11-22T14:49:30+01:00",
		"2016-01-01T23:59", "2016-01-01T23:59:00.000", "2016-01-01 23:59", "2016-01-01", " 2016-01-01 ",
		"0001-01-01T00:00:00Z", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59.999999999Z", "9999-12-31T23:00:00-05:00",
		"10000-01-01T00:00:00Z", "2026-02-30", "2026-13-01", "yesterday", "", "2026-11-22T24:00:00Z",
		"2026-11-22T13:49:30.1234567891234Z", "2026-11-22T13:49:60Z", "2026-11-22t13:49:30z", "1776-07-04T23:59:00Z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := batch.ParseTime(s)
		if err != nil {
			if batch.ErrorCode(err) != batch.EINVALID {
				t.Fatalf("ParseTime(%q): code %q, want %q", s, batch.ErrorCode(err), batch.EINVALID)
			}
			if len(batch.ErrorMessage(err)) > 400 {
				t.Errorf("message is %d bytes: a long input must be clipped", len(batch.ErrorMessage(err)))
			}
			return
		}
		if got.Location() != time.UTC {
			t.Errorf("ParseTime(%q) is in %v, want UTC", s, got.Location())
		}
		if y := got.Year(); y < 1 || y > 9999 {
			t.Errorf("ParseTime(%q) = %v: year out of 0001-9999", s, got)
		}
		if got.Nanosecond()%1000 != 0 {
			t.Errorf("ParseTime(%q) = %v: finer than a microsecond", s, got)
		}
		if got.Nanosecond() != 0 && (got.Year() < 1700 || got.Year() > 2199) {
			t.Errorf("ParseTime(%q) = %v: a fraction of a second outside 1700-2199, which the scripts would round", s, got)
		}
		stored := batch.FormatTime(got)
		if !storedDate.MatchString(stored) {
			t.Fatalf("ParseTime(%q) is stored as %q, which the scripts cannot read", s, stored)
		}
		back, err := batch.ParseTime(stored)
		if err != nil || !back.Equal(got) {
			t.Fatalf("%q (from %q) reads back as %v, %v", stored, s, back, err)
		}
	})
}
