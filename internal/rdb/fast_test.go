package rdb_test

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"reflect"
	"strings"
	"testing"
	"time"
	_ "time/tzdata"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/event"
	"github.com/batchy/batchy/internal/rdb"
	"github.com/batchy/batchy/internal/rdb/rdbtest"
)

// TestFastPathMatchesScripts: the same random transitions, on two workflows of the same file, one
// through a store computing them in Go (apply.lua, from its copy of the state) and one through
// stores without copies (open.lua and end.lua computing them in Lua), leave the same state, the
// same history (trimmed alike) and the same events, and fail alike; in a zone with daylight saving
// time so that trunc_start's midnights are computed on both sides.
func TestFastPathMatchesScripts(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin") // time/tzdata is embedded: never missing
	if err != nil {
		t.Fatal(err)
	}
	const yaml = `
batchy:
  exclusive: false
a:
  from_date: 2016-01-01T23:59
  reprocess_hours: 2.5
  n: 12345678901234567890
b:
  trunc_start: true
  reprocess_hours: 30
c:
  status: success
  initial_from_date: 2020-03-29T01:30
  trunc_start: true
`
	rdbtest.EachBackend(t, func(t *testing.T, b rdbtest.Backend) {
		f := newFixture(t, b, rdb.Options{HistoryKeep: 20, Location: berlin})
		opts := rdb.Options{HistoryKeep: 20, Location: berlin, Now: f.clock.Now}
		if f.emb != nil {
			opts.Embedded = f.emb
		}
		fast := rdb.New(f.client, opts)
		slow := func() *rdb.Store { return rdb.New(f.client, opts) } // a new store has no copies
		f.store = fast
		f.load(t, "fast", yaml, false)
		f.store = slow()
		f.load(t, "slow", yaml, false)
		if _, err := fast.State(ctx, "fast"); err != nil { // the copy
			t.Fatal(err)
		}
		if b.Name == "redis" {
			f.client.ConfigResetStat(ctx)
		}
		rng := rand.New(rand.NewSource(7))
		f.clock.Set("2026-03-28T22:00:00.123456Z")
		jobs := []string{"a", "b", "c"}
		for step := 0; step < 150; step++ {
			f.clock.t = f.clock.t.Add(time.Duration(rng.Intn(5*3600)) * time.Second)
			var some []string
			for _, j := range jobs {
				if rng.Intn(2) == 0 {
					some = append(some, j)
				}
			}
			var what string
			var do func(s *rdb.Store, wf string) (*batch.State, error)
			switch k := rng.Intn(10); {
			case k < 4:
				what = "open " + strings.Join(some, ",")
				do = func(s *rdb.Store, wf string) (*batch.State, error) {
					return s.Open(ctx, wf, batch.OpenRequest{Jobs: some})
				}
			case k == 4:
				what = "backfill " + strings.Join(some, ",")
				from := f.clock.t.Add(-72 * time.Hour)
				do = func(s *rdb.Store, wf string) (*batch.State, error) {
					return s.Open(ctx, wf, batch.OpenRequest{Jobs: some, From: from, To: from.Add(time.Hour)})
				}
			default:
				status, strict, force := batch.StatusSuccess, rng.Intn(2) == 0, rng.Intn(5) == 0
				if k >= 8 {
					status = batch.StatusFailed
				}
				md := batch.Fields{"rows": json.RawMessage("42"), "note": json.RawMessage(`"a b"`)}
				if rng.Intn(2) == 0 {
					md = nil
				}
				what = string(status) + " " + strings.Join(some, ",")
				ctx := ctx
				if step%3 == 0 { // a scheduler run's step: its entry names the run
					ctx = event.WithRun(ctx, fmt.Sprintf("run-%d", step))
				}
				do = func(s *rdb.Store, wf string) (*batch.State, error) {
					return s.End(ctx, wf, batch.EndRequest{Jobs: some, Status: status, Strict: strict, Force: force, Metadata: md})
				}
			}
			stFast, errFast := do(fast, "fast")
			stSlow, errSlow := do(slow(), "slow")
			if batch.ErrorCode(errFast) != batch.ErrorCode(errSlow) || errFast != nil && strings.ReplaceAll(errFast.Error(), "fast", "slow") != errSlow.Error() {
				t.Fatalf("step %d %s: errors differ: fast %v, slow %v", step, what, errFast, errSlow)
			}
			if errFast != nil {
				continue
			}
			if got, want := mustJSON(stFast.Jobs), mustJSON(stSlow.Jobs); got != want {
				t.Fatalf("step %d %s: states differ:\nfast %s\nslow %s", step, what, got, want)
			}
			if got, want := summary(stFast), summary(stSlow); !reflect.DeepEqual(got, want) {
				t.Fatalf("step %d %s: events differ:\nfast %v\nslow %v", step, what, got, want)
			}
			dFast, _ := fast.Dump(ctx, "fast")
			dSlow, _ := slow().Dump(ctx, "slow")
			if got, want := mustJSON(dFast.Batches), mustJSON(dSlow.Batches); got != want {
				t.Fatalf("step %d %s: history differs:\nfast %s\nslow %s", step, what, got, want)
			}
			if !reflect.DeepEqual(dFast.Stash, dSlow.Stash) || dFast.Meta["last_batch_id"] != dSlow.Meta["last_batch_id"] {
				t.Fatalf("step %d %s: stash or last batch differ: %v %v / %v %v", step, what, dFast.Stash, dFast.Meta["last_batch_id"], dSlow.Stash, dSlow.Meta["last_batch_id"])
			}
		}
		if b.Name == "redis" { // the fast store did compute in Go: apply.lua reads rev first
			if n := commandCalls(t, f)["hget"]; n < 50 {
				t.Errorf("the fast store's transitions read rev %d times: it fell back to the scripts", n)
			}
		}
		// The stream holds what the transitions returned.
		events, err := rdb.NewEventStream(f.client, f.store.Keys(), 0).Read(ctx, "fast", event.Query{After: "0-0", Limit: 10_000})
		if err != nil || len(events) < 100 {
			t.Fatalf("fast workflow's stream: %d events, %v", len(events), err)
		}
		byRun := 0
		for _, e := range events {
			if e.RunID != "" {
				byRun++
				if e.Type != event.TypeClose && e.Type != event.TypeFail || !strings.HasPrefix(e.RunID, "run-") {
					t.Fatalf("event %+v: a run id on a %s", e, e.Type)
				}
			}
		}
		if byRun == 0 {
			t.Error("no event read back from the stream names the run that made it")
		}
	})
}

// summary lists a state's changes without their IDs and times.
func summary(st *batch.State) []string {
	var out []string
	for _, e := range event.FromChanges(st.Changes) {
		out = append(out, e.Type+" "+e.Job+" "+e.Message+" "+mustJSON(e.Fields)+" "+e.RunID)
	}
	return out
}
