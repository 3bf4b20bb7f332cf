package batch_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/batchy/batchy/internal/batch"
)

// mkFields builds job fields from a JSON object, keeping each value's text as the store does.
func mkFields(tb testing.TB, js string) batch.Fields {
	tb.Helper()
	var f batch.Fields
	if err := json.Unmarshal([]byte(js), &f); err != nil {
		tb.Fatalf("bad test fields %s: %v", js, err)
	}
	return f
}

// mustTime parses a time written in the tables, failing the test on a typo.
func mustTime(tb testing.TB, s string) time.Time {
	tb.Helper()
	t, err := batch.ParseTime(s)
	if err != nil {
		tb.Fatalf("bad test time %q: %v", s, err)
	}
	return t
}

func TestNextFrom(t *testing.T) {
	// The SPEC.md example: job2/job3 opened at 13:49:30 and closed, then opened again.
	const start = `"2026-11-22T13:49:30.000000Z"`
	tests := []struct {
		name   string
		fields string
		want   string
	}{
		// Rule 1: success with a batch_start.
		{"success: batch_start minus reprocess_hours (SPEC job2)",
			`{"status":"success","batch_start":` + start + `,"reprocess_hours":2,"from_date":"2016-01-01T23:59:00.000000Z"}`,
			"2026-11-22T11:49:30Z"},
		{"success: fractional hours",
			`{"status":"success","batch_start":` + start + `,"reprocess_hours":1.5}`,
			"2026-11-22T12:19:30Z"},
		{"success: quarter hour",
			`{"status":"success","batch_start":` + start + `,"reprocess_hours":0.25}`,
			"2026-11-22T13:34:30Z"},
		{"success: fraction of a second rounded to microseconds",
			`{"status":"success","batch_start":` + start + `,"reprocess_hours":0.0000001}`,
			"2026-11-22T13:49:29.99964Z"},
		{"success: more than a day",
			`{"status":"success","batch_start":` + start + `,"reprocess_hours":36.5}`,
			"2026-11-21T01:19:30Z"},
		{"success: reprocess_hours 0",
			`{"status":"success","batch_start":` + start + `,"reprocess_hours":0}`,
			"2026-11-22T13:49:30Z"},
		{"success: reprocess_hours absent means 0",
			`{"status":"success","batch_start":` + start + `}`,
			"2026-11-22T13:49:30Z"},
		{"success: batch_start wins over from_date and initial_from_date",
			`{"status":"success","batch_start":` + start + `,"from_date":"2020-01-01T00:00:00Z","initial_from_date":"2000-01-01T00:00:00Z"}`,
			"2026-11-22T13:49:30Z"},
		{"success: naive batch_start read as UTC",
			`{"status":"success","batch_start":"2026-11-22T13:49","reprocess_hours":1}`,
			"2026-11-22T12:49:00Z"},

		// Rule 1, second branch: keep from_date when the last batch did not succeed.
		{"failed: from_date kept (SPEC fail row)",
			`{"status":"failed","batch_start":"2026-11-22T14:00:00.000000Z","from_date":"2026-11-22T11:49:30.000000Z","reprocess_hours":2}`,
			"2026-11-22T11:49:30Z"},
		{"legacy failure behaves as failed",
			`{"status":"failure","batch_start":"2026-11-22T14:00:00.000000Z","from_date":"2026-11-22T11:49:30.000000Z","reprocess_hours":2}`,
			"2026-11-22T11:49:30Z"},
		{"open: from_date kept (re-run of a crashed batch)",
			`{"status":"open","batch_start":"2026-11-22T14:00:00.000000Z","from_date":"2026-11-22T11:49:30.000000Z","reprocess_hours":2}`,
			"2026-11-22T11:49:30Z"},
		{"new: from_date kept (SPEC job2 first open)",
			`{"status":"new","from_date":"2016-01-01T23:59:00.000000Z","reprocess_hours":2}`,
			"2016-01-01T23:59:00Z"},
		{"no status: from_date kept",
			`{"from_date":"2016-01-01T23:59:00.000000Z"}`,
			"2016-01-01T23:59:00Z"},
		{"naive from_date read as UTC",
			`{"status":"new","from_date":"2016-01-01T23:59"}`,
			"2016-01-01T23:59:00Z"},
		{"from_date wins over initial_from_date",
			`{"status":"failed","from_date":"2020-01-01T00:00:00Z","initial_from_date":"2000-01-01T00:00:00Z"}`,
			"2020-01-01T00:00:00Z"},

		// Rule 1, third branch: initial_from_date, then the sentinel.
		{"failed without from_date: initial_from_date",
			`{"status":"failed","initial_from_date":"2000-01-01T00:00:00Z"}`,
			"2000-01-01T00:00:00Z"},
		{"new without from_date: initial_from_date",
			`{"status":"new","initial_from_date":"2000-01-01T00:00:00Z"}`,
			"2000-01-01T00:00:00Z"},
		{"null from_date: initial_from_date",
			`{"status":"new","from_date":null,"initial_from_date":"2000-01-01T00:00:00Z"}`,
			"2000-01-01T00:00:00Z"},
		{"neither: the 1776 sentinel",
			`{"status":"new"}`,
			"1776-07-04T23:59:00Z"},
		{"no fields at all: the 1776 sentinel",
			`{}`,
			"1776-07-04T23:59:00Z"},

		// Success without a batch_start falls back (SPEC job1).
		{"success without batch_start or from_date: sentinel (SPEC job1)",
			`{"status":"success","param1":"hello","param2":"2016-01-01","batch_end_date":"2016-01-01T23:59"}`,
			"1776-07-04T23:59:00Z"},
		{"success without batch_start: initial_from_date",
			`{"status":"success","reprocess_hours":2,"initial_from_date":"2000-01-01T00:00:00Z"}`,
			"2000-01-01T00:00:00Z"},
		{"success without batch_start: from_date",
			`{"status":"success","reprocess_hours":2,"from_date":"2020-01-01T00:00:00Z"}`,
			"2020-01-01T00:00:00Z"},
		{"success with null batch_start: from_date",
			`{"status":"success","batch_start":null,"reprocess_hours":2,"from_date":"2020-01-01T00:00:00Z"}`,
			"2020-01-01T00:00:00Z"},

		// trunc_start (UTC here; other zones in TestNextFromTruncStart).
		{"trunc_start on the first open (SPEC job3)",
			`{"status":"new","from_date":"2016-01-01T23:59:00.000000Z","reprocess_hours":2,"trunc_start":true}`,
			"2016-01-01T00:00:00Z"},
		{"trunc_start after success (SPEC job3)",
			`{"status":"success","batch_start":` + start + `,"from_date":"2016-01-01T00:00:00.000000Z","reprocess_hours":2,"trunc_start":true}`,
			"2026-11-22T00:00:00Z"},
		{"trunc_start after reprocess_hours crosses midnight",
			`{"status":"success","batch_start":"2026-11-22T01:00:00Z","reprocess_hours":2,"trunc_start":true}`,
			"2026-11-21T00:00:00Z"},
		{"trunc_start of the sentinel",
			`{"trunc_start":true}`,
			"1776-07-04T00:00:00Z"},
		{"trunc_start false",
			`{"status":"new","from_date":"2016-01-01T23:59:00Z","trunc_start":false}`,
			"2016-01-01T23:59:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := mkFields(t, tt.fields)
			want := mustTime(t, tt.want)
			got := batch.NextFrom(f, time.UTC)
			if !got.Equal(want) {
				t.Errorf("NextFrom(%s) = %s, want %s", tt.fields, batch.FormatTime(got), batch.FormatTime(want))
			}
		})
	}
}

func TestNextFromTruncStart(t *testing.T) {
	berlin := mustLoadLocation(t, "Europe/Berlin")
	newYork := mustLoadLocation(t, "America/New_York")
	tests := []struct {
		name string
		from string
		loc  *time.Location
		want string
	}{
		{"UTC", "2026-11-22T13:49:30Z", time.UTC, "2026-11-22T00:00:00Z"},
		{"UTC at midnight stays", "2026-11-22T00:00:00Z", time.UTC, "2026-11-22T00:00:00Z"},
		{"nil location means UTC", "2026-11-22T13:49:30Z", nil, "2026-11-22T00:00:00Z"},
		{"Berlin winter", "2026-11-22T13:49:30Z", berlin, "2026-11-21T23:00:00Z"},
		{"Berlin just after local midnight is already the next day", "2026-11-22T23:30:00Z", berlin, "2026-11-22T23:00:00Z"},
		{"Berlin summer", "2026-07-01T12:00:00Z", berlin, "2026-06-30T22:00:00Z"},
		{"Berlin on the day summer time ends", "2026-10-25T12:00:00Z", berlin, "2026-10-24T22:00:00Z"},
		{"Berlin on the day summer time starts", "2026-03-29T12:00:00Z", berlin, "2026-03-28T23:00:00Z"},
		{"New York before the spring change", "2026-03-08T06:30:00Z", newYork, "2026-03-08T05:00:00Z"},
		{"New York after the spring change", "2026-03-09T03:30:00Z", newYork, "2026-03-08T05:00:00Z"},
		{"New York day after the spring change", "2026-03-09T04:30:00Z", newYork, "2026-03-09T04:00:00Z"},
		{"New York late on the autumn change day", "2026-11-02T04:30:00Z", newYork, "2026-11-01T04:00:00Z"},
		{"New York early UTC is the previous local day", "2026-11-22T03:00:00Z", newYork, "2026-11-21T05:00:00Z"},
		// Go uses the zone's local mean time before 1883; the store's script must agree.
		{"New York sentinel in local mean time", "1776-07-04T23:59:00Z", newYork, "1776-07-04T04:56:02Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := mkFields(t, `{"status":"new","trunc_start":true,"from_date":"`+tt.from+`"}`)
			want := mustTime(t, tt.want)
			got := batch.NextFrom(f, tt.loc)
			if !got.Equal(want) {
				t.Errorf("NextFrom(from %s, %v) = %s, want %s", tt.from, tt.loc, batch.FormatTime(got), batch.FormatTime(want))
			}
			if got.Location() != time.UTC {
				t.Errorf("NextFrom returned a time in %v, want UTC", got.Location())
			}
		})
	}
}

func TestNextFromIsPerJob(t *testing.T) {
	// SPEC.md rule 4: nothing carries over between jobs. Computing job2 first must not change job1.
	job2 := mkFields(t, `{"status":"new","from_date":"2016-01-01T23:59:00Z"}`)
	job1 := mkFields(t, `{"status":"success"}`)
	_ = batch.NextFrom(job2, time.UTC)
	if got := batch.NextFrom(job1, time.UTC); !got.Equal(batch.DefaultInitialFromDate) {
		t.Errorf("job1 NextFrom = %s, want the sentinel", batch.FormatTime(got))
	}
}

func TestReprocessDuration(t *testing.T) {
	tests := []struct {
		name   string
		fields string
		want   time.Duration
	}{
		{"absent", `{}`, 0},
		{"whole", `{"reprocess_hours":2}`, 2 * time.Hour},
		{"fractional", `{"reprocess_hours":1.5}`, 90 * time.Minute},
		{"written as a float", `{"reprocess_hours":2.0}`, 2 * time.Hour},
		{"rounded to the microsecond", `{"reprocess_hours":0.0000000004}`, 1 * time.Microsecond},
		{"below half a microsecond", `{"reprocess_hours":0.0000000001}`, 0},
		{"not a number", `{"reprocess_hours":"2"}`, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := batch.ReprocessDuration(mkFields(t, tt.fields)); got != tt.want {
				t.Errorf("ReprocessDuration(%s) = %v, want %v", tt.fields, got, tt.want)
			}
		})
	}
}

func TestNextBatchID(t *testing.T) {
	now := time.Date(2026, 11, 22, 13, 49, 30, 840061000, time.UTC)
	secs := now.Unix()
	tests := []struct {
		name string
		now  time.Time
		last int64
		want int64
	}{
		{"first batch", now, 0, secs},
		{"clock moved on", now, secs - 60, secs},
		{"one second later", now, secs - 1, secs},
		{"same second", now, secs, secs + 1},
		{"clock went back", now, secs + 100, secs + 101},
		{"fraction of a second is dropped", now.Add(500 * time.Millisecond), secs - 1, secs + 1},
		{"zone does not matter", now.In(time.FixedZone("X", 5*3600)), 0, secs},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := batch.NextBatchID(tt.now, tt.last); got != tt.want {
				t.Errorf("NextBatchID(%v, %d) = %d, want %d", tt.now, tt.last, got, tt.want)
			}
		})
	}
}

// midnightZones have days that start at a jump: clocks that skip midnight or show it twice
// (Havana, Santiago, Beirut, Sao Paulo until 2019), half-hour changes (Lord Howe) and a skipped
// day (Apia, 2011-12-30).
var midnightZones = []string{"UTC", "Europe/Berlin", "America/New_York", "America/Havana", "America/Santiago",
	"America/Sao_Paulo", "Asia/Beirut", "Australia/Lord_Howe", "Pacific/Apia", "Asia/Kolkata"}

// bruteMidnight finds the start of t's local day by walking back a minute at a time.
func bruteMidnight(t time.Time, loc *time.Location) time.Time {
	y, m, d := t.In(loc).Date()
	c := t.Truncate(time.Minute)
	for {
		py, pm, pd := c.Add(-time.Minute).In(loc).Date()
		if py != y || pm != m || pd != d {
			return c.UTC()
		}
		c = c.Add(-time.Minute)
	}
}

// TestMidnightAroundTransitions: around every clock change from 2010 to 2030 in zones with
// awkward ones, Midnight is the first minute of the local day.
func TestMidnightAroundTransitions(t *testing.T) {
	for _, name := range midnightZones {
		loc := mustLoadLocation(t, name)
		cases := 0
		for at := time.Date(2010, 1, 1, 0, 0, 0, 0, loc); at.Year() < 2030; {
			_, end := at.ZoneBounds()
			if end.IsZero() || !end.After(at) {
				break
			}
			for _, h := range []time.Duration{-25, -13, -1, 0, 1, 13, 25} {
				tm := end.Add(h*time.Hour + 17*time.Minute)
				if got, want := batch.Midnight(tm, loc), bruteMidnight(tm, loc); !got.Equal(want) {
					t.Errorf("%s: Midnight(%s) = %s, want %s", name, tm.In(loc), got.In(loc), want.In(loc))
				}
				cases++
			}
			at = end
		}
		if name != "UTC" && name != "Asia/Kolkata" && cases == 0 {
			t.Errorf("%s: no transitions found", name)
		}
	}
	// The first day starts before year 0001 in a zone west of UTC: Midnight stops at 0001.
	ny := mustLoadLocation(t, "America/New_York")
	if got := batch.Midnight(time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), ny); !got.Equal(time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("Midnight of 0001-01-01T00:00Z in New York = %s, want 0001-01-01T00:00:00Z", batch.FormatTime(got))
	}
}
