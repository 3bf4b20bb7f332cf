package rdb_test

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/event"
	"github.com/batchy/batchy/internal/rdb"
	"github.com/batchy/batchy/internal/rdb/rdbtest"
)

// testdata/layout1 was written by batchy with layout 1 (a hash per job and per batch): the
// embedded store's data and events files after loads, opens, closes, fails, metadata, an abandon,
// an open backfill and a watermark, with history trimmed to 5, and the export (Dump) of each
// workflow as that batchy gave it.
type layout1File struct {
	Keys map[string]struct {
		Type  string   `json:"type"`
		Value []string `json:"value"`
	} `json:"keys"`
}

func readLayout1(t *testing.T) (layout1File, map[string]*batch.Dump) {
	t.Helper()
	var data layout1File
	var dumps map[string]*batch.Dump
	for name, v := range map[string]any{"batchy.json": &data, "dumps.json": &dumps} {
		b, err := os.ReadFile(filepath.Join("testdata", "layout1", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatal(err)
		}
	}
	return data, dumps
}

// writeKeys writes layout 1's keys into a Redis, as that batchy left them.
func writeKeys(t *testing.T, c redis.UniversalClient, data layout1File) {
	t.Helper()
	for k, v := range data.Keys {
		var err error
		switch v.Type {
		case "hash":
			args := make([]any, len(v.Value))
			for i, s := range v.Value {
				args[i] = s
			}
			err = c.HSet(ctx, k, args...).Err()
		case "zset":
			for i := 0; i+1 < len(v.Value); i += 2 {
				score, _ := strconv.ParseFloat(v.Value[i+1], 64)
				if err = c.ZAdd(ctx, k, redis.Z{Score: score, Member: v.Value[i]}).Err(); err != nil {
					break
				}
			}
		case "set":
			for _, m := range v.Value {
				if err = c.SAdd(ctx, k, m).Err(); err != nil {
					break
				}
			}
		default:
			t.Fatalf("key %s: type %s", k, v.Type)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestMigrateLayout1: data written by the previous layout comes across with nothing lost: every
// workflow's export is what the old batchy exported, the old keys are gone, and the workflows go on
// (the next window continues from the migrated history, the open backfill ends into its stash).
func TestMigrateLayout1(t *testing.T) {
	data, dumps := readLayout1(t)
	check := func(t *testing.T, f *fixture) {
		t.Helper()
		n, err := f.store.Migrate(ctx)
		if err != nil || n != len(dumps) {
			t.Fatalf("Migrate = %d, %v; want %d workflows", n, err, len(dumps))
		}
		for wf, want := range dumps {
			got, err := f.store.Dump(ctx, wf)
			if err != nil {
				t.Fatal(err)
			}
			// Compared as JSON: the expected values were read from an indented file.
			if mustJSON(got.Jobs) != mustJSON(want.Jobs) {
				t.Errorf("%s jobs:\n got %s\nwant %s", wf, mustJSON(got.Jobs), mustJSON(want.Jobs))
			}
			if len(got.Stash)+len(want.Stash) > 0 && !reflect.DeepEqual(got.Stash, want.Stash) {
				t.Errorf("%s stash:\n got %v\nwant %v", wf, got.Stash, want.Stash)
			}
			if mustJSON(got.Batches) != mustJSON(want.Batches) {
				t.Errorf("%s history:\n got %s\nwant %s", wf, mustJSON(got.Batches), mustJSON(want.Batches))
			}
			for _, k := range []string{"jobs", "last_batch_id", "exclusive", "settings", "loaded_at"} {
				if got.Meta[k] != want.Meta[k] {
					t.Errorf("%s meta %s = %q, want %q", wf, k, got.Meta[k], want.Meta[k])
				}
			}
		}
		for k := range data.Keys {
			if k == "batchy:workflows" || k == "batchy:{wf1}:batches" || k == "batchy:{big}:batches" {
				continue
			}
			if n, _ := f.client.Exists(ctx, k).Result(); n != 0 {
				t.Errorf("key %s of layout 1 is still there", k)
			}
		}
		if v, _ := f.client.Get(ctx, "batchy:layout").Result(); v != rdb.Layout {
			t.Errorf("layout key = %q", v)
		}
		if n, err := f.store.Migrate(ctx); n != 0 || err != nil {
			t.Errorf("second Migrate = %d, %v; want nothing to do", n, err)
		}

		// The workflows go on.
		st, err := f.store.End(ctx, "wf1", batch.EndRequest{Jobs: []string{"job3"}, Status: batch.StatusSuccess})
		if err != nil {
			t.Fatal(err)
		}
		j3, _ := st.Jobs.Get("job3")
		if got, want := string(j3.Fields["batch_id"]), dumps["wf1"].Stash["job3"]["batch_id"]; got != want {
			t.Errorf("job3 after its backfill: batch_id %s, want %s from its stash", got, want)
		}
		f.clock.t = f.clock.t.Add(1e15)
		before, _ := f.store.State(ctx, "big")
		st, err = f.store.Open(ctx, "big", batch.OpenRequest{})
		if err != nil {
			t.Fatal(err)
		}
		a, _ := before.Jobs.Get("a")
		old, _ := a.Fields.Int(batch.FieldBatchID)
		if got := eventSummary(st); !reflect.DeepEqual(got, []string{"abandon a " + strconv.FormatInt(old, 10), "open a", "open b"}) {
			t.Errorf("open after migration: events %v", got)
		}
		a, _ = st.Jobs.Get("a")
		if string(a.Fields["n"]) != "12345678901234567890" {
			t.Errorf("a.n = %s, want the big number as it was", a.Fields["n"])
		}
	}
	rdbtest.EachBackend(t, func(t *testing.T, b rdbtest.Backend) {
		f := newFixture(t, b, rdb.Options{HistoryKeep: 5})
		writeKeys(t, f.client, data)
		check(t, f)
	})
	t.Run("embedded data file", func(t *testing.T) {
		dir := t.TempDir()
		for _, name := range []string{"batchy.json", "batchy.events.json"} {
			copyFile(t, filepath.Join("testdata", "layout1", name), filepath.Join(dir, name))
		}
		emb, err := rdb.StartEmbedded(filepath.Join(dir, "batchy.json"))
		if err != nil {
			t.Fatal(err)
		}
		defer emb.Close()
		c := &clock{t: mustTime("2026-11-22T13:49:30Z")}
		f := &fixture{store: rdb.New(emb.Client(), rdb.Options{Now: c.Now, Embedded: emb, HistoryKeep: 5}), client: emb.Client(), clock: c, emb: emb}
		check(t, f)
		// The old entries of the event stream read as they did.
		events, err := rdb.NewEventStream(emb.Client(), f.store.Keys(), 0).Read(ctx, "wf1", event.Query{After: "0-0", Limit: 1000})
		if err != nil || len(events) < 30 || events[0].Type != event.TypeLoad || events[0].Message != "configuration loaded: 3 jobs" {
			t.Errorf("events after migration: %d, %v (first %+v)", len(events), err, events)
		}
	})
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
