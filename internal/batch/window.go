package batch

import (
	"math"
	"time"
)

// NextFrom returns the from_date that opening the job now would give it (SPEC.md "open", steps 1
// and 2). The Redis store computes the same thing inside its open script, where it must happen to
// be atomic; this function is the readable statement of the rule, the preview the API and
// `batchy validate` show, and the oracle the store's tests compare the script against.
func NextFrom(f Fields, loc *time.Location) time.Time {
	var from time.Time
	if start, ok := f.Time(FieldBatchStart); ok && f.Status() == StatusSuccess {
		from = start.Add(-ReprocessDuration(f))
	} else if t, ok := f.Time(FieldFromDate); ok {
		from = t
	} else if t, ok := f.Time(FieldInitialFromDate); ok {
		from = t
	} else {
		from = DefaultInitialFromDate
	}
	if trunc, _ := f.Bool(FieldTruncStart); trunc {
		from = Midnight(from, loc)
	}
	return from
}

// MaxReprocessHours bounds reprocess_hours (100 years): a window reaching further back would leave
// the years the store handles, and a time.Duration overflows past about 292 years.
const MaxReprocessHours = 876_000

// ReprocessDuration is reprocess_hours as a duration, rounded to the microsecond as the store's
// script rounds it.
func ReprocessDuration(f Fields) time.Duration {
	hours, _ := f.Float(FieldReprocessHours)
	return time.Duration(math.Floor(hours*3600e6+0.5)) * time.Microsecond
}

// Midnight returns the start of t's day in loc, and never a time before year 0001 (the first day
// starts earlier in a zone west of UTC): dates stay within the years the store handles.
func Midnight(t time.Time, loc *time.Location) time.Time {
	if loc == nil {
		loc = time.UTC
	}
	y, m, d := t.In(loc).Date()
	onDay := func(c time.Time) bool {
		cy, cm, cd := c.In(loc).Date()
		return cy == y && cm == m && cd == d
	}
	// The day starts at 00:00 in one of the offsets in force around it or, where the clocks jump
	// over midnight, at the jump: the earliest of these that falls on the day. (time.Date leaves
	// the choice open when midnight is skipped or happens twice, and the store's script must
	// compute the same start: see midnight in internal/rdb/scripts.go.)
	day := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	start := t.UTC()
	for _, h := range []time.Duration{-26, -12, 0, 12, 26} {
		probe := day.Add(h * time.Hour).In(loc)
		_, off := probe.Zone()
		jump, _ := probe.ZoneBounds()
		for _, c := range []time.Time{day.Add(-time.Duration(off) * time.Second), jump.UTC()} {
			if !c.IsZero() && c.Before(start) && onDay(c) {
				start = c
			}
		}
	}
	if start.Before(firstTime) {
		return firstTime
	}
	return start
}

// firstTime is the earliest time the store holds.
var firstTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)

// NextBatchID returns the id of a batch opened at now after the batch last: now's unix seconds, or
// last + 1 when the clock has not moved past last, so ids stay unique and strictly increasing.
func NextBatchID(now time.Time, last int64) int64 {
	id := now.Unix()
	if id <= last {
		id = last + 1
	}
	return id
}
