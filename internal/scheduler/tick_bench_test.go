package scheduler_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/batchy/batchy/internal/config"
	"github.com/batchy/batchy/internal/rdb"
	"github.com/batchy/batchy/internal/rdb/rdbtest"
	"github.com/batchy/batchy/internal/scheduler"
)

// BenchmarkTick measures one idle leader tick with many workflows loaded (half of them scheduled,
// none due): the work the leader does every second when nothing happens, which the due index keeps
// the same whatever the number of workflows (TestIdleTickCost counts its Redis calls).
//
//	go test -run '^$' -bench BenchmarkTick -benchtime 20x ./internal/scheduler/
func BenchmarkTick(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("workflows=%d", n), func(b *testing.B) {
			client := rdbtest.StartRedis(b).Client(b)
			store := rdb.New(client, rdb.Options{})
			for i := range n {
				yaml := "a: {}\nb: {}\n"
				if i%2 == 0 {
					yaml = "batchy:\n  schedule: \"0 3 1 1 *\"\n" + yaml
				}
				wf, err := config.Parse(fmt.Sprintf("wf%04d", i), []byte(yaml), config.Limits{})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := store.Load(ctx, wf, false); err != nil {
					b.Fatal(err)
				}
			}
			s := scheduler.New(scheduler.Options{Store: store, Runs: store.Scheduler(), ID: "bench", Lease: time.Minute})
			b.Cleanup(func() { s.Stop("bench over") })
			now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
			if err := s.Tick(ctx, now); err != nil { // the first tick records the schedules' start
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := range b.N {
				if err := s.Tick(ctx, now.Add(time.Duration(i+1)*time.Second)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
