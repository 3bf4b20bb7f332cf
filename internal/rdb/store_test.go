package rdb_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/config"
	"github.com/batchy/batchy/internal/event"
	"github.com/batchy/batchy/internal/rdb"
	"github.com/batchy/batchy/internal/rdb/rdbtest"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = mustTime(s)
}

func mustTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

type fixture struct {
	store  *rdb.Store
	client redis.UniversalClient
	clock  *clock
	emb    *rdb.Embedded
}

func newFixture(t *testing.T, b rdbtest.Backend, opts rdb.Options) *fixture {
	t.Helper()
	client, emb := b.New(t)
	c := &clock{t: mustTime("2026-11-22T13:49:30Z")}
	opts.Now = c.Now
	if emb != nil {
		opts.Embedded = emb
	}
	return &fixture{store: rdb.New(client, opts), client: client, clock: c, emb: emb}
}

func mustParse(t *testing.T, name, yaml string) *batch.Workflow {
	t.Helper()
	wf, err := config.Parse(name, []byte(yaml), config.Limits{})
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return wf
}

func (f *fixture) load(t *testing.T, name, yaml string, reset bool) *batch.State {
	t.Helper()
	wf, err := config.Parse(name, []byte(yaml), config.Limits{})
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	st, err := f.store.Load(context.Background(), wf, reset)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return st
}

func wf1(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("testdata/wf1.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// field returns a job's field value decoded from JSON.
func field(t *testing.T, st *batch.State, job, name string) any {
	t.Helper()
	j, ok := st.Jobs.Get(job)
	if !ok {
		t.Fatalf("no job %s in %s", job, st.Workflow)
	}
	raw, ok := j.Fields[name]
	if !ok {
		return nil
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("%s.%s = %s: %v", job, name, raw, err)
	}
	return v
}

func wantField(t *testing.T, st *batch.State, job, name string, want any) {
	t.Helper()
	if got := field(t, st, job, name); !reflect.DeepEqual(got, want) {
		t.Errorf("%s.%s = %#v, want %#v", job, name, got, want)
	}
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := batch.ErrorCode(err); got != code {
		t.Fatalf("error = %v (code %q), want code %q", err, got, code)
	}
}

var ctx = context.Background()

// TestSpecExample walks SPEC.md's example table with the original's wf1.yaml.
func TestSpecExample(t *testing.T) {
	rdbtest.EachBackend(t, func(t *testing.T, b rdbtest.Backend) {
		f := newFixture(t, b, rdb.Options{})
		f.load(t, "wf1", wf1(t), false)

		st, err := f.store.Open(ctx, "wf1", batch.OpenRequest{})
		if err != nil {
			t.Fatal(err)
		}
		wantField(t, st, "job2", "from_date", "2016-01-01T23:59:00.000000Z")
		wantField(t, st, "job2", "to_date", "2026-11-22T13:49:30.000000Z")
		wantField(t, st, "job2", "batch_start", "2026-11-22T13:49:30.000000Z")
		wantField(t, st, "job2", "batch_end", nil)
		wantField(t, st, "job2", "status", "open")
		wantField(t, st, "job3", "from_date", "2016-01-01T00:00:00.000000Z")
		wantField(t, st, "job1", "from_date", "1776-07-04T23:59:00.000000Z")
		id := float64(mustTime("2026-11-22T13:49:30Z").Unix())
		for _, j := range []string{"job1", "job2", "job3"} {
			wantField(t, st, j, "batch_id", id)
		}

		f.clock.Set("2026-11-22T13:55:00Z")
		if _, err := f.store.End(ctx, "wf1", batch.EndRequest{Status: batch.StatusSuccess, Strict: true}); err != nil {
			t.Fatal(err)
		}
		f.clock.Set("2026-11-22T14:00:00Z")
		st, err = f.store.Open(ctx, "wf1", batch.OpenRequest{})
		if err != nil {
			t.Fatal(err)
		}
		wantField(t, st, "job2", "from_date", "2026-11-22T11:49:30.000000Z")
		wantField(t, st, "job2", "to_date", "2026-11-22T14:00:00.000000Z")
		wantField(t, st, "job3", "from_date", "2026-11-22T00:00:00.000000Z")

		f.clock.Set("2026-11-22T14:30:00Z")
		if _, err := f.store.End(ctx, "wf1", batch.EndRequest{Status: batch.StatusFailed, Strict: true}); err != nil {
			t.Fatal(err)
		}
		f.clock.Set("2026-11-22T15:00:00Z")
		st, err = f.store.Open(ctx, "wf1", batch.OpenRequest{})
		if err != nil {
			t.Fatal(err)
		}
		wantField(t, st, "job2", "from_date", "2026-11-22T11:49:30.000000Z")
		wantField(t, st, "job2", "to_date", "2026-11-22T15:00:00.000000Z")
		wantField(t, st, "job3", "from_date", "2026-11-22T00:00:00.000000Z")

		// User fields keep their types through all of it.
		wantField(t, st, "job2", "reprocess_hours", 2.0)
		wantField(t, st, "job3", "trunc_start", true)
		wantField(t, st, "job1", "param2", "2016-01-01")
		wantField(t, st, "job1", "batch_end_date", "2016-01-01T23:59")
	})
}

func TestOpenRules(t *testing.T) {
	const cfg = `
a:
  from_date: 2020-01-01T00:00
  reprocess_hours: 1.5
b:
  initial_from_date: "2019-06-01T12:00:00Z"
c: {}
`
	rdbtest.EachBackend(t, func(t *testing.T, b rdbtest.Backend) {
		f := newFixture(t, b, rdb.Options{})
		f.load(t, "w", cfg, false)
		st, err := f.store.Open(ctx, "w", batch.OpenRequest{})
		if err != nil {
			t.Fatal(err)
		}
		t.Run("own from_date starts the first window", func(t *testing.T) {
			wantField(t, st, "a", "from_date", "2020-01-01T00:00:00.000000Z")
		})
		t.Run("nothing leaks between jobs", func(t *testing.T) {
			wantField(t, st, "b", "from_date", "2019-06-01T12:00:00.000000Z")
			wantField(t, st, "c", "from_date", "1776-07-04T23:59:00.000000Z")
		})
		t.Run("two opens in one second get different ids", func(t *testing.T) {
			first := field(t, st, "a", "batch_id").(float64)
			f.store.End(ctx, "w", batch.EndRequest{Status: batch.StatusSuccess})
			st2, err := f.store.Open(ctx, "w", batch.OpenRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if second := field(t, st2, "a", "batch_id").(float64); second != first+1 {
				t.Errorf("second batch_id = %v, want %v", second, first+1)
			}
		})
		t.Run("fractional reprocess_hours", func(t *testing.T) {
			f.store.End(ctx, "w", batch.EndRequest{Status: batch.StatusSuccess})
			f.clock.Set("2026-11-22T16:00:00Z")
			st3, err := f.store.Open(ctx, "w", batch.OpenRequest{})
			if err != nil {
				t.Fatal(err)
			}
			// last batch_start 13:49:30 minus 1.5h
			wantField(t, st3, "a", "from_date", "2026-11-22T12:19:30.000000Z")
			wantField(t, st3, "c", "from_date", "2026-11-22T13:49:30.000000Z")
		})
	})
}

func TestBatchIDAfterClockGoesBack(t *testing.T) {
	rdbtest.EachBackend(t, func(t *testing.T, b rdbtest.Backend) {
		f := newFixture(t, b, rdb.Options{})
		f.load(t, "w", "a: {}\n", false)
		st, _ := f.store.Open(ctx, "w", batch.OpenRequest{})
		first := st.LastBatchID
		f.clock.Set("2026-11-22T10:00:00Z") // an hour earlier
		st, err := f.store.Open(ctx, "w", batch.OpenRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if st.LastBatchID != first+1 {
			t.Errorf("batch_id after the clock went back = %d, want %d", st.LastBatchID, first+1)
		}
	})
}

func TestReopenAbandonsOrConflicts(t *testing.T) {
	rdbtest.EachBackend(t, func(t *testing.T, b rdbtest.Backend) {
		f := newFixture(t, b, rdb.Options{})
		f.load(t, "w", "a:\n  from_date: 2020-01-01T00:00\n", false)
		st1, _ := f.store.Open(ctx, "w", batch.OpenRequest{})
		f.clock.Set("2026-11-22T14:00:00Z")
		st2, err := f.store.Open(ctx, "w", batch.OpenRequest{})
		if err != nil {
			t.Fatal(err)
		}
		wantField(t, st2, "a", "from_date", "2020-01-01T00:00:00.000000Z") // same window again
		if got, want := eventSummary(st1), []string{"open a"}; !reflect.DeepEqual(got, want) {
			t.Errorf("first open's events = %v, want %v", got, want)
		}
		if got, want := eventSummary(st2), []string{"abandon a " + strconv.FormatInt(st1.LastBatchID, 10), "open a"}; !reflect.DeepEqual(got, want) {
			t.Errorf("second open's events = %v, want %v", got, want)
		}
		old, err := f.store.Batch(ctx, "w", st1.LastBatchID)
		if err != nil {
			t.Fatal(err)
		}
		if s, _ := old.Jobs[0].Fields.String("status"); s != "abandoned" {
			t.Errorf("first batch status in history = %q, want abandoned", s)
		}

		f.load(t, "w", "batchy:\n  exclusive: true\na:\n  from_date: 2020-01-01T00:00\n", false)
		before := dump(t, f)
		_, err = f.store.Open(ctx, "w", batch.OpenRequest{})
		wantCode(t, err, batch.ECONFLICT)
		if after := dump(t, f); !reflect.DeepEqual(before, after) {
			t.Errorf("a refused open changed the state:\nbefore %+v\nafter  %+v", before, after)
		}
	})
}

func dump(t *testing.T, f *fixture) *batch.Dump {
	t.Helper()
	d, err := f.store.Dump(ctx, "w")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestEndRules(t *testing.T) {
	rdbtest.EachBackend(t, func(t *testing.T, b rdbtest.Backend) {
		f := newFixture(t, b, rdb.Options{})
		f.load(t, "w", "a: {}\nb: {}\n", false)
		t.Run("strict end of a job not open is a conflict and changes nothing", func(t *testing.T) {
			before := dump(t, f)
			_, err := f.store.End(ctx, "w", batch.EndRequest{Status: batch.StatusSuccess, Strict: true})
			wantCode(t, err, batch.ECONFLICT)
			if after := dump(t, f); !reflect.DeepEqual(before, after) {
				t.Errorf("state changed")
			}
		})
		t.Run("the original's end makes no job never opened success", func(t *testing.T) {
			before := dump(t, f)
			st, err := f.store.End(ctx, "w", batch.EndRequest{Status: batch.StatusSuccess})
			if err != nil {
				t.Fatal(err)
			}
			wantField(t, st, "a", "status", "new")
			if after := dump(t, f); !reflect.DeepEqual(before, after) {
				t.Errorf("state changed")
			}
		})
		t.Run("a forced end ends a job that is not open", func(t *testing.T) {
			st, err := f.store.End(ctx, "w", batch.EndRequest{Jobs: []string{"a"}, Status: batch.StatusSuccess, Strict: true, Force: true})
			if err != nil {
				t.Fatal(err)
			}
			wantField(t, st, "a", "status", "success")
			wantField(t, st, "a", "batch_end", "2026-11-22T13:49:30.000000Z")
		})
		t.Run("named jobs only", func(t *testing.T) {
			f.store.Open(ctx, "w", batch.OpenRequest{})
			f.clock.Set("2026-11-22T14:00:00Z")
			st, err := f.store.End(ctx, "w", batch.EndRequest{Jobs: []string{"b"}, Status: batch.StatusFailed, Strict: true})
			if err != nil {
				t.Fatal(err)
			}
			wantField(t, st, "a", "status", "open")
			wantField(t, st, "b", "status", "failed")
			wantField(t, st, "b", "batch_end", "2026-11-22T14:00:00.000000Z")
		})
		t.Run("wrong batch id is a conflict", func(t *testing.T) {
			_, err := f.store.End(ctx, "w", batch.EndRequest{Jobs: []string{"a"}, Status: batch.StatusSuccess, BatchID: 42})
			wantCode(t, err, batch.ECONFLICT)
		})
		t.Run("history records the end", func(t *testing.T) {
			st, _ := f.store.State(ctx, "w")
			b, err := f.store.Batch(ctx, "w", st.LastBatchID)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, j := range b.Jobs {
				got[j.Name], _ = j.Fields.String("status")
			}
			if want := map[string]string{"a": "open", "b": "failed"}; !reflect.DeepEqual(got, want) {
				t.Errorf("history statuses = %v, want %v", got, want)
			}
		})
		t.Run("the original's end keeps a failed job's result", func(t *testing.T) {
			f.clock.Set("2026-11-22T14:10:00Z")
			st, err := f.store.End(ctx, "w", batch.EndRequest{Status: batch.StatusSuccess})
			if err != nil {
				t.Fatal(err)
			}
			wantField(t, st, "a", "status", "success")
			wantField(t, st, "b", "status", "failed")
			wantField(t, st, "b", "batch_end", "2026-11-22T14:00:00.000000Z")
			if st, _ = f.store.End(ctx, "w", batch.EndRequest{Status: batch.StatusFailed}); st != nil {
				wantField(t, st, "a", "status", "success") // a late fail after the close
			}
		})
		t.Run("the original's end leaves a job open in an older batch", func(t *testing.T) {
			f.store.Open(ctx, "w", batch.OpenRequest{})
			f.clock.Set("2026-11-22T14:20:00Z")
			f.store.Open(ctx, "w", batch.OpenRequest{Jobs: []string{"b"}}) // a stays open in the batch before
			st, err := f.store.End(ctx, "w", batch.EndRequest{Status: batch.StatusSuccess})
			if err != nil {
				t.Fatal(err)
			}
			wantField(t, st, "a", "status", "open")
			wantField(t, st, "b", "status", "success")
		})
		t.Run("unknown workflow and job", func(t *testing.T) {
			_, err := f.store.End(ctx, "nope", batch.EndRequest{Status: batch.StatusSuccess})
			wantCode(t, err, batch.ENOTFOUND)
			_, err = f.store.End(ctx, "w", batch.EndRequest{Jobs: []string{"zz"}, Status: batch.StatusSuccess})
			wantCode(t, err, batch.ENOTFOUND)
			_, err = f.store.Open(ctx, "w", batch.OpenRequest{Jobs: []string{"a", "zz"}})
			wantCode(t, err, batch.ENOTFOUND)
			_, err = f.store.State(ctx, "nope")
			wantCode(t, err, batch.ENOTFOUND)
		})
	})
}

func TestReload(t *testing.T) {
	rdbtest.EachBackend(t, func(t *testing.T, b rdbtest.Backend) {
		f := newFixture(t, b, rdb.Options{})
		f.load(t, "w", "a:\n  from_date: 2020-01-01T00:00\n  p: 1\n  q: x\nb: {}\n", false)
		f.store.Open(ctx, "w", batch.OpenRequest{})
		f.store.End(ctx, "w", batch.EndRequest{Status: batch.StatusSuccess})

		st := f.load(t, "w", "a:\n  from_date: 2021-01-01T00:00\n  p: 2\n  status: new\nc:\n  from_date: 2022-01-01T00:00\n", false)
		wantField(t, st, "a", "status", "success")
		wantField(t, st, "a", "from_date", "2020-01-01T00:00:00.000000Z")
		wantField(t, st, "a", "batch_start", "2026-11-22T13:49:30.000000Z")
		wantField(t, st, "a", "p", 2.0)
		wantField(t, st, "a", "q", nil)
		wantField(t, st, "c", "from_date", "2022-01-01T00:00:00.000000Z")
		wantField(t, st, "c", "status", "new")
		if _, ok := st.Jobs.Get("b"); ok {
			t.Errorf("job b was removed from the file but is still in the workflow")
		}
		if st.LastBatchID == 0 {
			t.Errorf("last_batch_id was lost on reload")
		}

		st = f.load(t, "w", "a:\n  from_date: 2021-01-01T00:00\n", true)
		wantField(t, st, "a", "status", "new")
		wantField(t, st, "a", "from_date", "2021-01-01T00:00:00.000000Z")
		wantField(t, st, "a", "batch_start", nil)
		st, _ = f.store.Open(ctx, "w", batch.OpenRequest{})
		if want := mustTime("2026-11-22T13:49:30Z").Unix() + 1; st.LastBatchID != want {
			t.Errorf("batch_id after reset = %d, want %d (ids stay unique across resets)", st.LastBatchID, want)
		}
	})
}

func TestTypesKept(t *testing.T) {
	const cfg = `
a:
  big: 12345678901234567890123
  int: 9007199254740993
  float: 0.1
  yes: true
  nothing: null
  list: [1, "two", {three: 3}]
  text: "it's \"quoted\""
  date: 2016-01-01
`
	rdbtest.EachBackend(t, func(t *testing.T, b rdbtest.Backend) {
		f := newFixture(t, b, rdb.Options{})
		f.load(t, "w", cfg, false)
		f.store.Open(ctx, "w", batch.OpenRequest{})
		st, err := f.store.End(ctx, "w", batch.EndRequest{Status: batch.StatusSuccess})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{
			"int": `9007199254740993`, "float": `0.1`, "yes": `true`, "nothing": `null`,
			"list": `[1,"two",{"three":3}]`, "text": `"it's \"quoted\""`, "date": `"2016-01-01"`,
		}
		for k, v := range want {
			if got := string(st.Jobs[0].Fields[k]); got != v {
				t.Errorf("%s = %s, want %s", k, got, v)
			}
		}
		hist, _ := f.store.Batch(ctx, "w", st.LastBatchID)
		if got := string(hist.Jobs[0].Fields["int"]); got != want["int"] {
			t.Errorf("history int = %s, want %s", got, want["int"])
		}
	})
}

func TestHistory(t *testing.T) {
	rdbtest.EachBackend(t, func(t *testing.T, b rdbtest.Backend) {
		f := newFixture(t, b, rdb.Options{HistoryKeep: 3})
		f.load(t, "w", "a: {}\n", false)
		var ids []int64
		for i := 0; i < 5; i++ {
			st, err := f.store.Open(ctx, "w", batch.OpenRequest{})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, st.LastBatchID)
			f.store.End(ctx, "w", batch.EndRequest{Status: batch.StatusSuccess})
		}
		got, err := f.store.Batches(ctx, "w", batch.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var gotIDs []int64
		for _, b := range got {
			gotIDs = append(gotIDs, b.ID)
		}
		if want := []int64{ids[4], ids[3], ids[2]}; !reflect.DeepEqual(gotIDs, want) {
			t.Errorf("history = %v, want newest first, last 3: %v", gotIDs, want)
		}
		page, _ := f.store.Batches(ctx, "w", batch.ListOptions{Limit: 1, Before: ids[4]})
		if len(page) != 1 || page[0].ID != ids[3] {
			t.Errorf("page before %d = %+v, want batch %d", ids[4], page, ids[3])
		}
		_, err = f.store.Batch(ctx, "w", ids[0])
		wantCode(t, err, batch.ENOTFOUND)
		old := strconv.FormatInt(ids[0], 10)
		if n, _ := f.client.HExists(ctx, f.store.Keys().History("w"), old).Result(); n {
			t.Errorf("trimmed batch %d is still stored", ids[0])
		}
		if n, _ := f.client.HExists(ctx, f.store.Keys().History("w"), old+":a").Result(); n {
			t.Errorf("trimmed batch %d's job is still stored", ids[0])
		}
	})
}

func TestWatermarkAndBackfill(t *testing.T) {
	rdbtest.EachBackend(t, func(t *testing.T, b rdbtest.Backend) {
		f := newFixture(t, b, rdb.Options{})
		f.load(t, "w", "a:\n  from_date: 2020-01-01T00:00\n  reprocess_hours: 1\n", false)
		f.store.Open(ctx, "w", batch.OpenRequest{})
		_, err := f.store.SetWatermark(ctx, "w", "a", mustTime("2026-01-01T00:00:00Z"))
		wantCode(t, err, batch.ECONFLICT)
		f.store.End(ctx, "w", batch.EndRequest{Status: batch.StatusSuccess})

		// Backfill: explicit window, then the regular state comes back.
		f.clock.Set("2026-11-22T14:00:00Z")
		st, err := f.store.Open(ctx, "w", batch.OpenRequest{From: mustTime("2025-01-01T00:00:00Z"), To: mustTime("2025-02-01T00:00:00Z")})
		if err != nil {
			t.Fatal(err)
		}
		backfillID := st.LastBatchID
		wantField(t, st, "a", "from_date", "2025-01-01T00:00:00.000000Z")
		wantField(t, st, "a", "to_date", "2025-02-01T00:00:00.000000Z")
		wantField(t, st, "a", "backfill", true)
		_, err = f.store.Open(ctx, "w", batch.OpenRequest{})
		wantCode(t, err, batch.ECONFLICT)
		st, err = f.store.End(ctx, "w", batch.EndRequest{Status: batch.StatusSuccess, Strict: true, BatchID: backfillID})
		if err != nil {
			t.Fatal(err)
		}
		wantField(t, st, "a", "batch_start", "2026-11-22T13:49:30.000000Z")
		wantField(t, st, "a", "backfill", nil)
		hist, _ := f.store.Batch(ctx, "w", backfillID)
		if s, _ := hist.Jobs[0].Fields.String("status"); s != "success" {
			t.Errorf("backfill batch in history has status %q, want success", s)
		}
		f.clock.Set("2026-11-22T15:00:00Z")
		st, _ = f.store.Open(ctx, "w", batch.OpenRequest{})
		wantField(t, st, "a", "from_date", "2026-11-22T12:49:30.000000Z")
		f.store.End(ctx, "w", batch.EndRequest{Status: batch.StatusSuccess})

		// Rewind.
		st, err = f.store.SetWatermark(ctx, "w", "a", mustTime("2026-01-01T00:00:00Z"))
		if err != nil {
			t.Fatal(err)
		}
		wantField(t, st, "a", "status", "new")
		st, _ = f.store.Open(ctx, "w", batch.OpenRequest{})
		wantField(t, st, "a", "from_date", "2026-01-01T00:00:00.000000Z")

		_, err = f.store.Open(ctx, "w", batch.OpenRequest{From: mustTime("2026-01-02T00:00:00Z"), To: mustTime("2026-01-01T00:00:00Z")})
		wantCode(t, err, batch.EINVALID)
	})
}

// TestScriptMatchesNextFrom checks the open script against the pure rule on random states, in UTC
// and in a zone with daylight saving.
func TestScriptMatchesNextFrom(t *testing.T) {
	for _, zone := range []string{"UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"} {
		loc, err := time.LoadLocation(zone)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(zone, func(t *testing.T) {
			rdbtest.EachBackend(t, func(t *testing.T, b rdbtest.Backend) {
				f := newFixture(t, b, rdb.Options{Location: loc})
				rng := rand.New(rand.NewSource(1))
				statuses := []string{"new", "success", "failed", "open"}
				for i := 0; i < 60; i++ {
					fields := batch.Fields{
						"status":          quote(statuses[rng.Intn(4)]),
						"reprocess_hours": json.RawMessage([]string{"0", "2", "0.25", "36.5", "1000"}[rng.Intn(5)]),
						"trunc_start":     json.RawMessage([]string{"true", "false"}[rng.Intn(2)]),
					}
					if rng.Intn(4) > 0 {
						fields["batch_start"] = quote(batch.FormatTime(randomTime(rng)))
					}
					if rng.Intn(4) > 0 {
						fields["from_date"] = quote(batch.FormatTime(randomTime(rng)))
					}
					if rng.Intn(3) == 0 {
						fields["initial_from_date"] = quote(batch.FormatTime(randomTime(rng)))
					}
					wf := &batch.Workflow{Name: "w", Jobs: batch.Jobs{{Name: "a", Fields: fields}}}
					if _, err := f.store.Load(ctx, wf, true); err != nil {
						t.Fatal(err)
					}
					want := batch.NextFrom(fields, loc)
					// Through open.lua (a store without a copy of the state), then through the
					// fast path (the fixture's store, whose copy the load refreshed).
					for _, path := range []string{"script", "fast path"} {
						store := rdb.New(f.client, rdb.Options{Location: loc, Now: f.clock.Now})
						if path == "fast path" {
							store = f.store
							if _, err := f.store.Load(ctx, wf, true); err != nil {
								t.Fatal(err)
							}
						}
						st, err := store.Open(ctx, "w", batch.OpenRequest{})
						// to_date is now, or a later batch_start (times never go back).
						to := f.clock.Now()
						if start, ok := fields.Time("batch_start"); ok && start.After(to) {
							to = start
						}
						if want.After(to) { // an inverted window: refused
							if batch.ErrorCode(err) != batch.ECONFLICT {
								t.Fatalf("case %d %s: %s: from_date %s after to_date %s: err %v, want a conflict", i, mustJSON(fields), path, batch.FormatTime(want), batch.FormatTime(to), err)
							}
							continue
						}
						if err != nil {
							t.Fatal(err)
						}
						got, _ := st.Jobs[0].Fields.Time("from_date")
						if !got.Equal(want) {
							t.Fatalf("case %d %s: %s from_date %s, NextFrom %s", i, mustJSON(fields), path, batch.FormatTime(got), batch.FormatTime(want))
						}
					}
				}
			})
		})
	}
}

func randomTime(rng *rand.Rand) time.Time {
	// 1971 to 2040, with microseconds.
	return time.UnixMicro(31_536_000_000_000 + rng.Int63n(2_200_000_000_000_000)).UTC()
}

func quote(s string) json.RawMessage { b, _ := json.Marshal(s); return b }

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

func TestDumpRestore(t *testing.T) {
	rdbtest.EachBackend(t, func(t *testing.T, b rdbtest.Backend) {
		f := newFixture(t, b, rdb.Options{})
		f.load(t, "w", wf1(t), false)
		f.store.Open(ctx, "w", batch.OpenRequest{})
		f.store.End(ctx, "w", batch.EndRequest{Status: batch.StatusSuccess})
		f.clock.Set("2026-11-22T15:00:00Z")
		f.store.Open(ctx, "w", batch.OpenRequest{From: mustTime("2020-01-01T00:00:00Z")})
		d := dump(t, f)

		g := newFixture(t, b, rdb.Options{})
		g.load(t, "w", "other: {}\n", false)
		g.store.Open(ctx, "w", batch.OpenRequest{})
		if err := g.store.Restore(ctx, d); err != nil {
			t.Fatal(err)
		}
		got, err := g.store.Dump(ctx, "w")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, d) {
			t.Errorf("restored dump differs:\n got %s\nwant %s", mustJSON(got), mustJSON(d))
		}
		names, _ := g.store.Workflows(ctx)
		if !reflect.DeepEqual(names, []string{"w"}) {
			t.Errorf("workflows = %v", names)
		}
		bad := *d
		bad.Meta = map[string]string{"jobs": `["../x"]`}
		wantCode(t, g.store.Restore(ctx, &bad), batch.EINVALID)
	})
}

func TestStoreDown(t *testing.T) {
	srv := rdbtest.StartRedis(t)
	s := rdb.New(srv.Client(t), rdb.Options{})
	srv.Stop()
	_, err := s.State(ctx, "w")
	wantCode(t, err, batch.EUNAVAILABLE)
	var e *batch.Error
	if !errors.As(err, &e) || e.Message != "the store is not available" {
		t.Errorf("message = %q", batch.ErrorMessage(err))
	}
}

// TestKeysAreReadable: the key prefix is configurable, a workflow's keys share its hash tag, and
// a job's state is readable with HGETALL, as the original's troubleshooting showed.
func TestKeysAreReadable(t *testing.T) {
	rdbtest.EachBackend(t, func(t *testing.T, b rdbtest.Backend) {
		f := newFixture(t, b, rdb.Options{Prefix: "etl"})
		f.load(t, "w", "a:\n  p: 1\n", false)
		st, _ := f.store.Open(ctx, "w", batch.OpenRequest{})
		got, err := f.client.HGetAll(ctx, "etl:{w}:state").Result()
		if err != nil {
			t.Fatal(err)
		}
		id := strconv.FormatInt(st.LastBatchID, 10)
		start := strconv.FormatInt(f.clock.Now().UnixMicro(), 10)
		if want := "open " + id + " 1776-07-04 " + start + " " + start + " n - -"; got["run:a"] != strings.Replace(want, "1776-07-04", strconv.FormatInt(batch.DefaultInitialFromDate.UnixMicro(), 10), 1) ||
			got["cfg:a"] != `{"p":1}` || got["jobs"] != "a" || got["layout"] != rdb.Layout {
			t.Errorf("HGETALL etl:{w}:state = %v", got)
		}
		hist, _ := f.client.HGetAll(ctx, "etl:{w}:history").Result()
		if hist[id] != "a" || hist[id+":a"] != got["run:a"]+"\n"+got["cfg:a"] {
			t.Errorf("HGETALL etl:{w}:history = %v", hist)
		}
		keys := allKeys(t, f.client, "etl:{w}:*")
		want := []string{"etl:{w}:batches", "etl:{w}:events", "etl:{w}:history", "etl:{w}:state"}
		sort.Strings(keys)
		if !reflect.DeepEqual(keys, want) {
			t.Errorf("keys = %v, want %v", keys, want)
		}
		if n, _ := f.client.Exists(ctx, "batchy:{w}:state").Result(); n != 0 {
			t.Errorf("a key with the default prefix exists")
		}
	})
}

// allKeys lists the keys matching pattern on every master: on a Cluster, KEYS (and SCAN) sent to
// the cluster client reach one node only unless the client spreads them itself.
func allKeys(t *testing.T, c redis.UniversalClient, pattern string) []string {
	t.Helper()
	cc, ok := c.(*redis.ClusterClient)
	if !ok {
		keys, err := c.Keys(ctx, pattern).Result()
		if err != nil {
			t.Fatal(err)
		}
		return keys
	}
	var mu sync.Mutex
	var keys []string
	err := cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		ks, err := m.Keys(ctx, pattern).Result()
		mu.Lock()
		defer mu.Unlock()
		keys = append(keys, ks...)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// eventSummary reads the events a change returned as "type job" (and the batch id of an abandon).
func eventSummary(st *batch.State) []string {
	var out []string
	for _, e := range event.FromChanges(st.Changes) {
		s := e.Type + " " + e.Job
		if e.Type == event.TypeAbandon {
			s += " " + strconv.FormatInt(e.BatchID, 10)
		}
		out = append(out, strings.TrimSpace(s))
	}
	return out
}

// TestChangesRecordTheirEvents: every change appends its events to the workflow's stream in its
// own script, and returns exactly those, with their stream IDs; a refused change records none.
func TestChangesRecordTheirEvents(t *testing.T) {
	rdbtest.EachBackend(t, func(t *testing.T, b rdbtest.Backend) {
		f := newFixture(t, b, rdb.Options{})
		stream := rdb.NewEventStream(f.client, f.store.Keys(), 0)
		var returned []event.Event
		check := func(st *batch.State, err error) *batch.State {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
			returned = append(returned, event.FromChanges(st.Changes)...)
			return st
		}
		check(f.store.Load(ctx, mustParse(t, "w", "a:\n  from_date: 2020-01-01T00:00\nb: {}\n"), false))
		st := check(f.store.Open(ctx, "w", batch.OpenRequest{}))
		id := st.LastBatchID
		f.clock.Set("2026-11-22T14:00:00Z")
		bf := mustTime("2026-11-22T14:00:00Z").Unix() // the backfill's batch id
		check(f.store.End(ctx, "w", batch.EndRequest{Jobs: []string{"a"}, Status: batch.StatusSuccess}))
		check(f.store.End(ctx, "w", batch.EndRequest{Jobs: []string{"b"}, Status: batch.StatusFailed}))
		check(f.store.SetWatermark(ctx, "w", "a", mustTime("2026-01-01T00:00:00Z")))
		check(f.store.Open(ctx, "w", batch.OpenRequest{From: mustTime("2025-01-01T00:00:00Z"), To: mustTime("2025-02-01T00:00:00Z")}))
		// Refused changes record nothing.
		_, err := f.store.End(ctx, "w", batch.EndRequest{Status: batch.StatusSuccess, BatchID: 1})
		wantCode(t, err, batch.ECONFLICT)
		_, err = f.store.Open(ctx, "w", batch.OpenRequest{Jobs: []string{"nope"}})
		wantCode(t, err, batch.ENOTFOUND)

		stored, err := stream.Read(ctx, "w", event.Query{After: "0-0", Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(stored, returned) {
			t.Fatalf("the stream holds\n%+v\nthe changes returned\n%+v", stored, returned)
		}
		type want struct {
			typ, job, level string
			batch           int64
			message         string
			fields          map[string]any
		}
		wants := []want{
			{"load", "", "info", 0, "configuration loaded: 2 jobs", map[string]any{"reset": false}},
			{"open", "a", "info", id, fmt.Sprintf("batch %d opened: window 2020-01-01T00:00:00.000000Z to 2026-11-22T13:49:30.000000Z", id),
				map[string]any{"from_date": "2020-01-01T00:00:00.000000Z", "to_date": "2026-11-22T13:49:30.000000Z"}},
			{"open", "b", "info", id, fmt.Sprintf("batch %d opened: window 1776-07-04T23:59:00.000000Z to 2026-11-22T13:49:30.000000Z", id),
				map[string]any{"from_date": "1776-07-04T23:59:00.000000Z", "to_date": "2026-11-22T13:49:30.000000Z"}},
			{"close", "a", "info", id, fmt.Sprintf("batch %d succeeded", id), map[string]any{"duration_seconds": 630.0}},
			{"fail", "b", "error", id, fmt.Sprintf("batch %d failed", id), map[string]any{"duration_seconds": 630.0}},
			{"rewind", "a", "warn", 0, "watermark set: the next window starts at 2026-01-01T00:00:00.000000Z",
				map[string]any{"from_date": "2026-01-01T00:00:00.000000Z"}},
			{"open", "a", "info", bf, fmt.Sprintf("backfill batch %d opened: window 2025-01-01T00:00:00.000000Z to 2025-02-01T00:00:00.000000Z", bf),
				map[string]any{"from_date": "2025-01-01T00:00:00.000000Z", "to_date": "2025-02-01T00:00:00.000000Z", "backfill": true}},
			{"open", "b", "info", bf, fmt.Sprintf("backfill batch %d opened: window 2025-01-01T00:00:00.000000Z to 2025-02-01T00:00:00.000000Z", bf),
				map[string]any{"from_date": "2025-01-01T00:00:00.000000Z", "to_date": "2025-02-01T00:00:00.000000Z", "backfill": true}},
		}
		if len(stored) != len(wants) {
			t.Fatalf("%d events, want %d: %+v", len(stored), len(wants), stored)
		}
		for i, w := range wants {
			e := stored[i]
			got := want{e.Type, e.Job, e.Level, e.BatchID, e.Message, e.Fields}
			if !reflect.DeepEqual(got, w) || e.Workflow != "w" || e.ID == "" || e.Time.IsZero() {
				t.Errorf("event %d = %+v, want %+v", i, e, w)
			}
		}
		if at := stored[3].Time; !at.Equal(mustTime("2026-11-22T14:00:00Z")) {
			t.Errorf("the close event's time = %v, want the change's", at)
		}
	})
}

// TestJobsNamedLikeEntryFields: a transition's entry names its kind x and its jobs j, then has
// one field per job; jobs named x, j or e (an event's own entry field) are read back as jobs, in
// the changes a transition returns and in the stream.
func TestJobsNamedLikeEntryFields(t *testing.T) {
	rdbtest.EachBackend(t, func(t *testing.T, b rdbtest.Backend) {
		f := newFixture(t, b, rdb.Options{})
		stream := rdb.NewEventStream(f.client, f.store.Keys(), 0)
		var returned []event.Event
		check := func(st *batch.State, err error) *batch.State {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
			returned = append(returned, event.FromChanges(st.Changes)...)
			return st
		}
		check(f.store.Load(ctx, mustParse(t, "w", "x: {}\nj: {}\ne: {}\na: {}\n"), false))
		check(f.store.Open(ctx, "w", batch.OpenRequest{}))
		check(f.store.Open(ctx, "w", batch.OpenRequest{Jobs: []string{"x", "j"}})) // abandons x and j
		check(f.store.End(ctx, "w", batch.EndRequest{Jobs: []string{"x"}, Status: batch.StatusSuccess}))
		check(f.store.End(ctx, "w", batch.EndRequest{Jobs: []string{"j"}, Status: batch.StatusFailed}))
		check(f.store.SetWatermark(ctx, "w", "x", mustTime("2026-01-01T00:00:00Z")))

		type got struct{ typ, job string }
		var kinds []got
		for _, e := range returned {
			kinds = append(kinds, got{e.Type, e.Job})
		}
		want := []got{{"load", ""},
			{"open", "x"}, {"open", "j"}, {"open", "e"}, {"open", "a"},
			{"abandon", "x"}, {"abandon", "j"}, {"open", "x"}, {"open", "j"},
			{"close", "x"}, {"fail", "j"}, {"rewind", "x"}}
		if !reflect.DeepEqual(kinds, want) {
			t.Fatalf("the changes returned:\n%v\nwant\n%v", kinds, want)
		}
		for _, e := range returned {
			if e.Type != "load" && e.Type != "rewind" && e.BatchID == 0 {
				t.Errorf("%s of %s: no batch id: %+v", e.Type, e.Job, e)
			}
		}
		stored, err := stream.Read(ctx, "w", event.Query{After: "0-0", Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(stored, returned) {
			t.Fatalf("the stream holds\n%+v\nthe changes returned\n%+v", stored, returned)
		}
		newest, err := stream.Read(ctx, "w", event.Query{Limit: 100})
		if err != nil || len(newest) != len(returned) || !reflect.DeepEqual(newest[0], returned[len(returned)-1]) {
			t.Errorf("newest first: %d events, %v", len(newest), err)
		}
		if got, _ := stream.Read(ctx, "w", event.Query{After: "0-0", Job: "j"}); len(got) != 4 {
			t.Errorf("events of job j: %+v", got)
		}
		tail, err := stream.Tail(ctx, "w", returned[8].ID, time.Millisecond)
		if err != nil || !reflect.DeepEqual(tail, returned[9:]) {
			t.Errorf("tail after %s: %+v, %v; want %+v", returned[8].ID, tail, err, returned[9:])
		}
		if last, _ := stream.LastID(ctx, "w"); last != returned[len(returned)-1].ID {
			t.Errorf("last ID %s, want %s", last, returned[len(returned)-1].ID)
		}
	})
}

// TestEventStreamCapped: the stream keeps about EventsKeep events (trimmed as Redis's MAXLEN ~ does).
func TestEventStreamCapped(t *testing.T) {
	rdbtest.EachBackend(t, func(t *testing.T, b rdbtest.Backend) {
		f := newFixture(t, b, rdb.Options{EventsKeep: 10})
		f.load(t, "w", "a: {}\n", false)
		for i := 0; i < 150; i++ {
			if _, err := f.store.Open(ctx, "w", batch.OpenRequest{}); err != nil {
				t.Fatal(err)
			}
		}
		n, err := f.client.XLen(ctx, f.store.Keys().Events("w")).Result()
		if err != nil {
			t.Fatal(err)
		}
		// Approximate trimming removes whole stream nodes (100 entries by default) at a time.
		if n < 10 || n > 200 {
			t.Errorf("stream length after 150 opens (300 events) with EventsKeep 10 = %d", n)
		}
	})
}

// TestScriptMidnightAroundTransitions: trunc_start's midnight in the open script is the one
// batch.Midnight computes, on days whose clocks skip midnight, show it twice, or skip the day.
func TestScriptMidnightAroundTransitions(t *testing.T) {
	for _, zone := range []string{"America/Havana", "America/Santiago", "Pacific/Apia"} {
		loc, err := time.LoadLocation(zone)
		if err != nil {
			t.Fatal(err)
		}
		var times []time.Time
		for at := time.Date(2011, 6, 1, 0, 0, 0, 0, loc); at.Year() < 2016; {
			_, end := at.ZoneBounds()
			if end.IsZero() || !end.After(at) {
				break
			}
			times = append(times, end.Add(-50*time.Minute), end.Add(30*time.Minute), end.Add(20*time.Hour))
			at = end
		}
		t.Run(zone, func(t *testing.T) {
			rdbtest.EachBackend(t, func(t *testing.T, b rdbtest.Backend) {
				f := newFixture(t, b, rdb.Options{Location: loc})
				for _, tm := range times {
					fields := batch.Fields{"status": quote("new"), "from_date": quote(batch.FormatTime(tm)), "trunc_start": json.RawMessage("true")}
					if _, err := f.store.Load(ctx, &batch.Workflow{Name: "w", Jobs: batch.Jobs{{Name: "a", Fields: fields}}}, true); err != nil {
						t.Fatal(err)
					}
					// A store without a copy of the state: open.lua computes the midnight.
					st, err := rdb.New(f.client, rdb.Options{Location: loc, Now: f.clock.Now}).Open(ctx, "w", batch.OpenRequest{})
					if err != nil {
						t.Fatal(err)
					}
					got, _ := st.Jobs[0].Fields.Time("from_date")
					if want := batch.NextFrom(fields, loc); !got.Equal(want) {
						t.Errorf("from_date %s (%s): script's midnight %s, batch.Midnight %s", batch.FormatTime(tm), tm.In(loc), got.In(loc), want.In(loc))
					}
				}
			})
		})
	}
	// A west zone's first day starts before year 0001: both stop at 0001-01-01.
	ny, _ := time.LoadLocation("America/New_York")
	rdbtest.EachBackend(t, func(t *testing.T, b rdbtest.Backend) {
		f := newFixture(t, b, rdb.Options{Location: ny})
		f.load(t, "w", "a:\n  from_date: 0001-01-01T00:00:00Z\n  trunc_start: true\n", false)
		st, err := f.store.Open(ctx, "w", batch.OpenRequest{})
		if err != nil {
			t.Fatal(err)
		}
		wantField(t, st, "a", "from_date", "0001-01-01T00:00:00.000000Z")
	})
}

// TestReloadEndsRemovedOpenJobsInHistory: a job removed by a reload (or reset) while open is
// ended in its batch's history with the reason, instead of staying open there forever.
func TestReloadEndsRemovedOpenJobsInHistory(t *testing.T) {
	rdbtest.EachBackend(t, func(t *testing.T, b rdbtest.Backend) {
		f := newFixture(t, b, rdb.Options{})
		f.load(t, "w", "a: {}\nb: {}\nc: {}\n", false)
		st, err := f.store.Open(ctx, "w", batch.OpenRequest{})
		if err != nil {
			t.Fatal(err)
		}
		id := st.LastBatchID
		f.store.End(ctx, "w", batch.EndRequest{Jobs: []string{"c"}, Status: batch.StatusSuccess, Strict: true})
		f.clock.Set("2026-11-22T14:00:00Z")
		f.load(t, "w", "a: {}\n", false) // b removed while open, c removed after its close
		bt, err := f.store.Batch(ctx, "w", id)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, j := range bt.Jobs {
			s, _ := j.Fields.String(batch.FieldStatus)
			end, _ := j.Fields.String(batch.FieldBatchEnd)
			got[j.Name] = s + " " + end + " " + string(j.Fields[batch.FieldMetadata])
		}
		want := map[string]string{
			"a": "open  ",
			"b": `abandoned 2026-11-22T14:00:00.000000Z {"reason":"removed from the workflow by a reload"}`,
			"c": "success 2026-11-22T13:49:30.000000Z ",
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("batch %d after the reload:\n got %q\nwant %q", id, got, want)
		}
	})
}

// TestNoInvertedWindow: an open whose computed from_date lies after its to_date is a conflict
// naming the job and both dates, and changes nothing; a watermark in the future is refused.
func TestNoInvertedWindow(t *testing.T) {
	rdbtest.EachBackend(t, func(t *testing.T, b rdbtest.Backend) {
		f := newFixture(t, b, rdb.Options{})
		// The clock is 2026-11-22T13:49:30Z.
		f.load(t, "w", "a: {}\nlater:\n  from_date: \"2026-12-01T00:00:00Z\"\n", false)
		before := dump(t, f)
		_, err := f.store.Open(ctx, "w", batch.OpenRequest{})
		wantCode(t, err, batch.ECONFLICT)
		for _, want := range []string{"job later", "2026-12-01T00:00:00.000000Z", "2026-11-22T13:49:30.000000Z"} {
			if !strings.Contains(batch.ErrorMessage(err), want) {
				t.Errorf("error %q does not name %s", batch.ErrorMessage(err), want)
			}
		}
		if after := dump(t, f); !reflect.DeepEqual(before, after) {
			t.Errorf("the refused open changed the state")
		}
		if _, err := f.store.Open(ctx, "w", batch.OpenRequest{Jobs: []string{"a"}}); err != nil {
			t.Errorf("the other job alone: %v", err)
		}

		_, err = f.store.SetWatermark(ctx, "w", "a", mustTime("2026-11-22T13:49:31Z"))
		wantCode(t, err, batch.EINVALID)
		if _, err := f.store.SetWatermark(ctx, "w", "later", mustTime("2026-11-22T13:49:30Z")); err != nil {
			t.Fatalf("a watermark at now: %v", err)
		}
		if _, err := f.store.Open(ctx, "w", batch.OpenRequest{Jobs: []string{"later"}}); err != nil {
			t.Errorf("open after the watermark moved back: %v", err)
		}
	})
}

// TestStates: the states of many workflows at once are those State reads one at a time, nil for
// a workflow not loaded.
func TestStates(t *testing.T) {
	rdbtest.EachBackend(t, func(t *testing.T, b rdbtest.Backend) {
		f := newFixture(t, b, rdb.Options{})
		f.load(t, "w", "batchy:\n  schedule: \"0 3 * * *\"\na:\n  from_date: 2020-01-01T00:00\n  p: 1\nb: {}\n", false)
		f.load(t, "x", "c:\n  table: t\n", false)
		if _, err := f.store.Open(ctx, "w", batch.OpenRequest{}); err != nil {
			t.Fatal(err)
		}
		got, err := f.store.States(ctx, []string{"w", "nope", "x"})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 3 || got[1] != nil {
			t.Fatalf("States = %v, want 3 states with nil for the workflow not loaded", got)
		}
		for i, wf := range []string{"w", "x"} {
			want, err := f.store.State(ctx, wf)
			if err != nil {
				t.Fatal(err)
			}
			if g := got[2*i]; !reflect.DeepEqual(g, want) {
				t.Errorf("States' %s = %+v, want %+v as State reads it", wf, g, want)
			}
		}
	})
}
