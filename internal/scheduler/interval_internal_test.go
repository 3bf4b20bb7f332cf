package scheduler

import (
	"testing"
	"time"
)

// TestPrevFire: the interval before a fire time, in the schedule's zone, across a change of the
// clocks, and for @every.
func TestPrevFire(t *testing.T) {
	berlin, _ := time.LoadLocation("Europe/Berlin")
	for _, c := range []struct {
		expr       string
		loc        *time.Location
		fire, want time.Time
	}{
		{"0 * * * *", time.UTC, time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC), time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)},
		{"0 3 * * *", berlin, time.Date(2026, 10, 25, 3, 0, 0, 0, berlin), time.Date(2026, 10, 24, 3, 0, 0, 0, berlin)}, // 25 hours
		{"0 3 * * *", berlin, time.Date(2026, 3, 29, 3, 0, 0, 0, berlin), time.Date(2026, 3, 28, 3, 0, 0, 0, berlin)},   // 23 hours
		{"0 0 1 * *", time.UTC, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)},
		{"0 0 1 1 *", time.UTC, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"@every 15m", time.UTC, time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC), time.Date(2026, 11, 23, 9, 45, 0, 0, time.UTC)},
	} {
		sc, err := ParseSchedule(c.expr, c.loc)
		if err != nil {
			t.Fatal(err)
		}
		if got := prevFire(sc, c.fire); !got.Equal(c.want) {
			t.Errorf("%s before %s: %s, want %s", c.expr, c.fire, got, c.want)
		}
		if !isFire(sc, c.fire) {
			t.Errorf("%s: %s is not a fire time", c.expr, c.fire)
		}
	}
}
