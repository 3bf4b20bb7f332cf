package batch_test

import (
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the zone tests must not depend on the host's zoneinfo

	"github.com/batchy/batchy/internal/batch"
)

// utc is a shorthand for a UTC time in the tables.
func utc(y int, mo time.Month, d, h, mi, s, ns int) time.Time {
	return time.Date(y, mo, d, h, mi, s, ns, time.UTC)
}

func TestParseTime(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want time.Time
	}{
		{"RFC 3339 Z", "2026-11-22T13:49:30Z", utc(2026, 11, 22, 13, 49, 30, 0)},
		{"RFC 3339 positive offset", "2026-11-22T14:49:30+01:00", utc(2026, 11, 22, 13, 49, 30, 0)},
		{"RFC 3339 negative offset crossing a day", "2026-11-21T22:00:00-05:00", utc(2026, 11, 22, 3, 0, 0, 0)},
		{"RFC 3339 microseconds", "2026-11-22T13:49:30.840061Z", utc(2026, 11, 22, 13, 49, 30, 840061000)},
		{"fraction truncated to microseconds", "2026-11-22T13:49:30.8400619Z", utc(2026, 11, 22, 13, 49, 30, 840061000)},
		{"nanoseconds truncated, not rounded", "2026-11-22T13:49:30.999999999Z", utc(2026, 11, 22, 13, 49, 30, 999999000)},
		{"naive minutes", "2016-01-01T23:59", utc(2016, 1, 1, 23, 59, 0, 0)},
		{"naive seconds", "2016-01-01T23:59:00", utc(2016, 1, 1, 23, 59, 0, 0)},
		{"naive milliseconds", "2016-01-01T23:59:00.000", utc(2016, 1, 1, 23, 59, 0, 0)},
		{"naive fraction truncated", "2016-01-01T23:59:00.1234567", utc(2016, 1, 1, 23, 59, 0, 123456000)},
		{"naive with a space", "2016-01-01 23:59", utc(2016, 1, 1, 23, 59, 0, 0)},
		{"naive with a space and seconds", "2016-01-01 23:59:30", utc(2016, 1, 1, 23, 59, 30, 0)},
		{"date only", "2016-01-01", utc(2016, 1, 1, 0, 0, 0, 0)},
		{"surrounding spaces", "  2016-01-01T23:59  ", utc(2016, 1, 1, 23, 59, 0, 0)},
		{"the sentinel", "1776-07-04T23:59:00Z", batch.DefaultInitialFromDate},
		{"first year", "0001-01-01T00:00:00Z", utc(1, 1, 1, 0, 0, 0, 0)},
		{"last year", "9999-12-31T23:59:59Z", utc(9999, 12, 31, 23, 59, 59, 0)},
		{"fraction in 1700", "1700-01-01T00:00:00.000001Z", utc(1700, 1, 1, 0, 0, 0, 1000)},
		{"fraction in 2199", "2199-12-31T23:59:59.999999Z", utc(2199, 12, 31, 23, 59, 59, 999999000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := batch.ParseTime(tt.in)
			if err != nil {
				t.Fatalf("ParseTime(%q): %v", tt.in, err)
			}
			if !got.Equal(tt.want) || got.Location() != time.UTC {
				t.Errorf("ParseTime(%q) = %v, want %v (UTC)", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseTimeInvalid(t *testing.T) {
	tests := []struct {
		name string
		in   string
		// quoted is what the message must quote; "" means the input itself.
		quoted string
	}{
		{"empty", "", ""},
		{"words", "yesterday", ""},
		{"US order", "01/02/2016", ""},
		{"no leading zeros", "2016-1-1", ""},
		{"month 13", "2016-13-01", ""},
		{"February 30", "2016-02-30", ""},
		{"hour 24", "2016-01-01T24:00", ""},
		{"zone name", "2016-01-01T23:59:00 CET", ""},
		{"trailing text", "2016-01-01T23:59:00Zjunk", ""},
		{"unix seconds", "1479822570", ""},
		{"year 0 naive", "0000-12-31T23:59", ""},
		{"year 0 after conversion to UTC", "0001-01-01T00:30:00+01:00", ""},
		{"year 10000 after conversion to UTC", "9999-12-31T23:00:00-02:00", ""},
		{"five-digit year", "10000-01-01T00:00:00Z", ""},
		{"offset of 24 hours", "2026-01-01T00:00:00+24:00", ""},
		{"offset of -24 hours", "2026-01-01T00:00:00-24:00", ""},
		{"fraction after 2199 (the store would round it to year 10000)", "9999-12-31T23:59:59.999999Z", ""},
		{"fraction before 1700", "1699-12-31T23:59:59.5Z", ""},
		{"long input is clipped", strings.Repeat("9", 100), strings.Repeat("9", 64) + "..."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := batch.ParseTime(tt.in)
			if err == nil {
				t.Fatalf("ParseTime(%q) = %v, want an error", tt.in, got)
			}
			if code := batch.ErrorCode(err); code != batch.EINVALID {
				t.Errorf("code = %q, want %q (%v)", code, batch.EINVALID, err)
			}
			quoted := tt.quoted
			if quoted == "" {
				quoted = tt.in
			}
			if msg := batch.ErrorMessage(err); !strings.Contains(msg, `"`+quoted+`"`) {
				t.Errorf("message %q does not quote the input %q", msg, quoted)
			}
		})
	}
}

func TestFormatTime(t *testing.T) {
	berlin := mustLoadLocation(t, "Europe/Berlin")
	tests := []struct {
		name string
		in   time.Time
		want string
	}{
		{"microseconds", utc(2026, 11, 22, 13, 49, 30, 840061000), "2026-11-22T13:49:30.840061Z"},
		{"whole seconds keep six digits", utc(2026, 11, 22, 13, 49, 30, 0), "2026-11-22T13:49:30.000000Z"},
		{"nanoseconds dropped", utc(2026, 11, 22, 13, 49, 30, 840061999), "2026-11-22T13:49:30.840061Z"},
		{"other zone converted to UTC", time.Date(2026, 11, 22, 14, 49, 30, 0, berlin), "2026-11-22T13:49:30.000000Z"},
		{"sentinel", batch.DefaultInitialFromDate, "1776-07-04T23:59:00.000000Z"},
		{"first year", utc(1, 1, 1, 0, 0, 0, 0), "0001-01-01T00:00:00.000000Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := batch.FormatTime(tt.in); got != tt.want {
				t.Errorf("FormatTime(%v) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestFormatParseRoundTrip(t *testing.T) {
	for _, in := range []string{
		"2026-11-22T13:49:30.840061Z",
		"1776-07-04T23:59:00.000000Z",
		"0001-01-01T00:00:00.000000Z",
		"9999-12-31T23:59:59.000000Z",
	} {
		t.Run(in, func(t *testing.T) {
			tm, err := batch.ParseTime(in)
			if err != nil {
				t.Fatal(err)
			}
			if got := batch.FormatTime(tm); got != in {
				t.Errorf("FormatTime(ParseTime(%q)) = %q", in, got)
			}
		})
	}
}

func mustLoadLocation(tb testing.TB, name string) *time.Location {
	tb.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		tb.Fatalf("LoadLocation(%q): %v", name, err)
	}
	return loc
}

// TestAppendTimeAsLayout checks the hand-written formatting against time's own, over years in
// and out of 1-9999, zones, and nanoseconds that the layout drops.
func TestAppendTimeAsLayout(t *testing.T) {
	zone := time.FixedZone("x", -(5*3600 + 30*60))
	times := []time.Time{
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(1776, 7, 4, 23, 59, 0, 0, time.UTC),
		time.Date(2026, 11, 22, 13, 49, 30, 123456789, zone),
		time.Date(0, 12, 31, 23, 0, 0, 0, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-42, 3, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1, 1, 1, 1, 0, 0, 0, zone), // year 1 here, year 1 in UTC too
		{},
	}
	for s := int64(-70000000000); s < 260000000000; s += 987654321 {
		times = append(times, time.Unix(s, s%1000000000).In(zone))
	}
	for _, tm := range times {
		want := tm.UTC().Format(batch.TimeLayout)
		if got := string(batch.AppendTime([]byte("x"), tm)); got != "x"+want {
			t.Errorf("AppendTime(%v) = %q, want %q", tm, got, "x"+want)
		}
		if got := batch.FormatTime(tm); got != want {
			t.Errorf("FormatTime(%v) = %q, want %q", tm, got, want)
		}
	}
}
