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

// ReprocessDuration is reprocess_hours as a duration, rounded to the microsecond as the store's
// script rounds it.
func ReprocessDuration(f Fields) time.Duration {
	hours, _ := f.Float(FieldReprocessHours)
	return time.Duration(math.Floor(hours*3600e6+0.5)) * time.Microsecond
}

// Midnight returns the start of t's day in loc.
func Midnight(t time.Time, loc *time.Location) time.Time {
	if loc == nil {
		loc = time.UTC
	}
	y, m, d := t.In(loc).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, loc).UTC()
}

// NextBatchID returns the id of a batch opened at now after the batch last: now's unix seconds, or
// last + 1 when the clock has not moved past last, so ids stay unique and strictly increasing.
func NextBatchID(now time.Time, last int64) int64 {
	id := now.Unix()
	if id <= last {
		id = last + 1
	}
	return id
}
