package rdb_test

import (
	"reflect"
	"testing"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/rdb"
	"github.com/batchy/batchy/internal/rdb/rdbtest"
)

// TestApplyStale calls apply.lua directly on a real Redis: given a revision the state is no longer
// at, it answers STALE with the current state and writes nothing; given the current one, it
// writes and moves rev on.
func TestApplyStale(t *testing.T) {
	client := rdbtest.StartRedis(t).Client(t)
	s := rdb.New(client, rdb.Options{})
	k := s.Keys()
	st, err := s.Load(ctx, &batch.Workflow{Name: "w", Jobs: batch.Jobs{{Name: "a", Fields: batch.Fields{}}}}, false)
	if err != nil || len(st.Jobs) != 1 {
		t.Fatal(st, err)
	}
	s.FlushIndex(ctx) // the load's index write, 50 ms later otherwise
	before := rdbtest.Snapshot(t, client)
	rev, _ := client.HGet(ctx, k.State("w"), "rev").Result()
	keys := []string{k.State("w"), k.Batches("w"), k.History("w"), k.Events("w")}
	args := func(rev string) []any {
		return []any{rev, 100, k.Changed(), "w", "", 0, 1, 1, "last_batch_id", "7", 0, 0, 0, "x", "rewind 1", "j", "a", "a", "new - - - - - - -"}
	}
	v, err := rdb.ScriptApply.Run(ctx, client, keys, args(rev+"x")...).Result()
	reply, _ := v.([]any)
	if err != nil || len(reply) != 2 || reply[0] != "STALE" || !contains(reply[1], rev) {
		t.Fatalf("stale apply = %v, %v", v, err)
	}
	if after := rdbtest.Snapshot(t, client); !reflect.DeepEqual(after, before) {
		t.Errorf("a stale apply wrote:\nbefore %v\nafter  %v", before, after)
	}
	v, err = rdb.ScriptApply.Run(ctx, client, keys, args(rev)...).Result()
	reply, _ = v.([]any)
	if err != nil || len(reply) != 3 || reply[0] != "OK" {
		t.Fatalf("apply = %v, %v", v, err)
	}
	h, _ := client.HGetAll(ctx, k.State("w")).Result()
	if h["last_batch_id"] != "7" || h["rev"] != reply[1].(string)+" 1" {
		t.Errorf("after apply: last_batch_id %s, rev %q (entry %s)", h["last_batch_id"], h["rev"], reply[1])
	}
}

// contains reports whether a reply's list holds s.
func contains(list any, s string) bool {
	l, _ := list.([]any)
	for _, v := range l {
		if v == s {
			return true
		}
	}
	return false
}
