package scheduler_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/config"
	"github.com/batchy/batchy/internal/rdb"
	"github.com/batchy/batchy/internal/rdb/rdbtest"
	"github.com/batchy/batchy/internal/scheduler"
)

// redisCalls reads INFO commandstats: the calls of every command so far, scripts' inner calls
// included, leaving out the INFO and CONFIG RESETSTAT of the measure itself.
func redisCalls(t *testing.T, client rdb.Client) int {
	t.Helper()
	info, err := client.Info(ctx, "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimPrefix(strings.TrimSpace(line), "cmdstat_"), ":calls=")
		if !ok || name == "info" || name == "config|resetstat" {
			continue
		}
		n, _ := strconv.Atoi(strings.SplitN(rest, ",", 2)[0])
		total += n
	}
	return total
}

// TestIdleTickCost: the leader's idle tick costs the same few Redis calls with 10 and with 1,000
// workflows loaded (a quarter scheduled, some with after:), counted on a real Redis; a due fire
// and an upstream's change still wake their workflow.
func TestIdleTickCost(t *testing.T) {
	perTick := map[int]float64{}
	for _, n := range []int{10, 1000} {
		client := rdbtest.StartRedis(t).Client(t)
		store := rdb.New(client, rdb.Options{})
		for i := range n {
			yaml := "a: {}\nb: {}\n"
			switch i % 4 {
			case 0:
				yaml = "batchy:\n  schedule: \"0 3 1 1 *\"\n" + yaml // once a year: not due here
			case 1:
				yaml = fmt.Sprintf("batchy:\n  after: [wf%04d]\n", i-1) + yaml
			}
			wf, err := config.Parse(fmt.Sprintf("wf%04d", i), []byte(yaml), config.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := store.Load(ctx, wf, false); err != nil {
				t.Fatal(err)
			}
		}
		s := scheduler.New(scheduler.Options{Store: store, Runs: store.Scheduler(), ID: "idle", Lease: time.Minute})
		t.Cleanup(func() { s.Stop("test over") })
		now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
		// The first tick of a leader looks at every workflow (and records the schedules' start).
		if err := s.Tick(ctx, now); err != nil {
			t.Fatal(err)
		}
		if err := client.ConfigResetStat(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		const ticks = 10
		for i := range ticks {
			if err := s.Tick(ctx, now.Add(time.Duration(i+1)*time.Second)); err != nil {
				t.Fatal(err)
			}
		}
		perTick[n] = float64(redisCalls(t, client)) / ticks
		t.Logf("%d workflows: %.1f Redis calls per idle tick", n, perTick[n])

		// Still awake: an upstream's close starts its dependent at the next tick, and a manual run
		// starts at the next tick.
		if _, err := store.Open(ctx, "wf0000", batch.OpenRequest{}); err != nil {
			t.Fatal(err)
		}
		if _, err := store.End(ctx, "wf0000", batch.EndRequest{Status: batch.StatusSuccess}); err != nil {
			t.Fatal(err)
		}
		if err := s.Tick(ctx, now.Add(20*time.Second)); err != nil {
			t.Fatal(err)
		}
		runs, err := s.Runs(ctx, "wf0001", 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(runs) != 1 || runs[0].Trigger != scheduler.TriggerAfter {
			t.Errorf("%d workflows: after wf0000 succeeded, wf0001 has runs %+v, want one after: run", n, runs)
		}
	}
	if perTick[10] != perTick[1000] || perTick[10] > 5 {
		t.Errorf("Redis calls per idle tick: %v with 10 and 1,000 workflows; want the same, at most 5", perTick)
	}
}
