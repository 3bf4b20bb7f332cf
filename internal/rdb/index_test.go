package rdb_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/rdb"
	"github.com/batchy/batchy/internal/rdb/rdbtest"
)

// names returns the workflow names of a page.
func names(p *batch.SummaryPage) []string {
	out := []string{}
	for _, s := range p.Summaries {
		out = append(out, s.Workflow)
	}
	return out
}

// TestSummaries: every transition keeps the workflow's summary and the status index, read a page
// at a time by name, by status and by name prefix, with counts per status; a bad status, prefix or
// cursor is refused; RebuildIndex writes a lost index again.
func TestSummaries(t *testing.T) {
	rdbtest.EachBackend(t, func(t *testing.T, b rdbtest.Backend) {
		f := newFixture(t, b, rdb.Options{})
		for i := range 7 {
			f.load(t, fmt.Sprintf("wf%d", i), "a: {}\nb: {}\n", false)
		}
		f.load(t, "other", "a: {}\n", false)
		// wf0 and wf1 open, wf2 succeeded, wf3 failed (job b, with a reason); the rest new.
		for _, wf := range []string{"wf0", "wf1", "wf2", "wf3"} {
			if _, err := f.store.Open(ctx, wf, batch.OpenRequest{}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := f.store.End(ctx, "wf2", batch.EndRequest{Status: batch.StatusSuccess}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.store.End(ctx, "wf3", batch.EndRequest{Jobs: []string{"b"}, Status: batch.StatusFailed, Metadata: batch.Fields{"error": json.RawMessage(`"disk full"`)}}); err != nil {
			t.Fatal(err)
		}
		page := func(q batch.SummaryQuery) *batch.SummaryPage {
			t.Helper()
			p, err := f.store.Summaries(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			return p
		}
		check := func(name string, p *batch.SummaryPage, want []string, next string) {
			t.Helper()
			if got := names(p); !reflect.DeepEqual(got, want) || p.Next != next {
				t.Errorf("%s: %v next %q, want %v next %q", name, got, p.Next, want, next)
			}
		}
		p := page(batch.SummaryQuery{Limit: 3})
		check("first page", p, []string{"other", "wf0", "wf1"}, "wf1")
		check("second page", page(batch.SummaryQuery{Limit: 3, Cursor: p.Next}), []string{"wf2", "wf3", "wf4"}, "wf4")
		check("last page", page(batch.SummaryQuery{Limit: 3, Cursor: "wf4"}), []string{"wf5", "wf6"}, "")
		check("prefix", page(batch.SummaryQuery{Prefix: "wf", Limit: 2}), []string{"wf0", "wf1"}, "wf1")
		check("prefix, no match", page(batch.SummaryQuery{Prefix: "zz"}), []string{}, "")
		check("open (wf3 failed: the worst of its jobs)", page(batch.SummaryQuery{Status: batch.StatusOpen}), []string{"wf0", "wf1"}, "")
		check("open, paged", page(batch.SummaryQuery{Status: batch.StatusOpen, Limit: 1}), []string{"wf0"}, "wf0")
		check("open, last page", page(batch.SummaryQuery{Status: batch.StatusOpen, Limit: 1, Cursor: "wf0"}), []string{"wf1"}, "")
		check("new, prefix", page(batch.SummaryQuery{Status: batch.StatusNew, Prefix: "wf"}), []string{"wf4", "wf5", "wf6"}, "")
		check("success", page(batch.SummaryQuery{Status: batch.StatusSuccess}), []string{"wf2"}, "")
		namesOnly := page(batch.SummaryQuery{Status: batch.StatusNew, Limit: 2, NamesOnly: true})
		check("names only", namesOnly, []string{"other", "wf4"}, "wf4")
		if s := namesOnly.Summaries[0]; s.Status != "" || s.Jobs != 0 {
			t.Errorf("names only: %+v, want the name alone", s)
		}
		raw := page(batch.SummaryQuery{Status: batch.StatusFailed, Raw: true})
		check("raw", raw, []string{"wf3"}, "")
		if len(raw.Raw) != 1 {
			t.Fatalf("raw: %d summaries' JSON, want 1", len(raw.Raw))
		}
		var decoded batch.Summary
		if err := json.Unmarshal(raw.Raw[0], &decoded); err != nil || decoded.Workflow != "wf3" || !reflect.DeepEqual(decoded.Failed, []string{"b"}) {
			t.Errorf("raw: %s (%v), want wf3's summary", raw.Raw[0], err)
		}

		failed := page(batch.SummaryQuery{Status: batch.StatusFailed})
		check("failed", failed, []string{"wf3"}, "")
		if len(failed.Summaries) == 1 {
			s := failed.Summaries[0]
			if !reflect.DeepEqual(s.Failed, []string{"b"}) || s.Reason != `{"error":"disk full"}` || s.Jobs != 2 || s.LastBatchID == 0 || s.LastStart == nil || s.LastEnd != nil {
				t.Errorf("wf3's summary %+v: want job b failed with its reason, 2 jobs, the batch still running (a open)", s)
			}
		}
		counts, total, err := f.store.StatusCounts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := map[batch.Status]int{batch.StatusFailed: 1, batch.StatusOpen: 2, batch.StatusNew: 4, batch.StatusAbandoned: 0, batch.StatusSuccess: 1}
		if !reflect.DeepEqual(counts, want) || total != 8 {
			t.Errorf("counts %v of %d, want %v of 8", counts, total, want)
		}
		for _, q := range []batch.SummaryQuery{{Status: "bogus"}, {Cursor: "a b"}, {Prefix: "{x}"}} {
			if _, err := f.store.Summaries(ctx, q); batch.ErrorCode(err) != batch.EINVALID {
				t.Errorf("Summaries(%+v): %v, want EINVALID", q, err)
			}
		}

		// The index lost (a crash between a change and its index write, an earlier batchy):
		// RebuildIndex writes it again from the states.
		k := f.store.Keys()
		for _, key := range []string{k.Summaries(), k.StatusIndex(), k.Names(), k.IndexChanges(), k.Due()} {
			if err := f.client.Del(ctx, key).Err(); err != nil {
				t.Fatal(err)
			}
		}
		if n, err := f.store.RebuildIndex(ctx); err != nil || n != 8 {
			t.Fatalf("RebuildIndex: %d, %v; want 8", n, err)
		}
		check("failed, rebuilt", page(batch.SummaryQuery{Status: batch.StatusFailed}), []string{"wf3"}, "")
		if _, total, _ := f.store.StatusCounts(ctx); total != 8 {
			t.Errorf("after the rebuild: %d workflows, want 8", total)
		}
	})
}

// TestSummaryLastSuccessAndFailure: a workflow's summary says when it last succeeded and last
// failed, and keeps each across the changes that follow (a failure keeps the last success, a
// success the last failure, an open both), a reload included.
func TestSummaryLastSuccessAndFailure(t *testing.T) {
	rdbtest.EachBackend(t, func(t *testing.T, b rdbtest.Backend) {
		f := newFixture(t, b, rdb.Options{})
		f.load(t, "wf", "a: {}\nb: {}\n", false)
		summary := func() batch.Summary {
			t.Helper()
			p, err := f.store.Summaries(ctx, batch.SummaryQuery{})
			if err != nil || len(p.Summaries) != 1 {
				t.Fatalf("summaries: %+v, %v", p, err)
			}
			return p.Summaries[0]
		}
		step := func(open bool, status batch.Status) {
			t.Helper()
			if open {
				if _, err := f.store.Open(ctx, "wf", batch.OpenRequest{}); err != nil {
					t.Fatal(err)
				}
			}
			if status != "" {
				if _, err := f.store.End(ctx, "wf", batch.EndRequest{Status: status}); err != nil {
					t.Fatal(err)
				}
			}
		}
		if s := summary(); s.LastSuccess != nil || s.LastFailure != nil {
			t.Fatalf("a new workflow: last success %v, last failure %v; want neither", s.LastSuccess, s.LastFailure)
		}
		step(true, batch.StatusSuccess)
		s1 := summary()
		if s1.LastSuccess == nil || s1.LastEnd == nil || !s1.LastSuccess.Equal(*s1.LastEnd) || s1.LastFailure != nil {
			t.Fatalf("after a success: %+v; want last_success = the batch's end, no last_failure", s1)
		}
		f.clock.Set("2026-11-22T14:49:30Z")
		step(true, batch.StatusFailed)
		s2 := summary()
		if s2.LastSuccess == nil || !s2.LastSuccess.Equal(*s1.LastSuccess) || s2.LastFailure == nil || !s2.LastFailure.After(*s1.LastSuccess) {
			t.Fatalf("after a failure: last success %v, last failure %v; want the earlier success kept and the failure after it", s2.LastSuccess, s2.LastFailure)
		}
		step(true, "")
		f.load(t, "wf", "a: {}\nb:\n  table: t\n", false)
		s3 := summary()
		if s3.LastSuccess == nil || !s3.LastSuccess.Equal(*s1.LastSuccess) || s3.LastFailure == nil || !s3.LastFailure.Equal(*s2.LastFailure) {
			t.Fatalf("after an open and a reload: last success %v, last failure %v; want both kept", s3.LastSuccess, s3.LastFailure)
		}
		f.clock.Set("2026-11-22T15:49:30Z")
		step(false, batch.StatusSuccess)
		s4 := summary()
		if s4.LastSuccess == nil || !s4.LastSuccess.After(*s2.LastFailure) || s4.LastFailure == nil || !s4.LastFailure.Equal(*s2.LastFailure) {
			t.Fatalf("after the next success: last success %v, last failure %v; want a new success and the failure kept", s4.LastSuccess, s4.LastFailure)
		}
		// Changes within the index's coalescing window share one index write, of the last state:
		// a success followed at once by a failure is still the last success.
		f.clock.Set("2026-11-22T16:49:30Z")
		step(true, batch.StatusSuccess)
		f.clock.Set("2026-11-22T16:50:30Z")
		step(true, batch.StatusFailed)
		s5 := summary()
		if s5.LastSuccess == nil || !s5.LastSuccess.Equal(mustTime("2026-11-22T16:49:30Z")) || s5.LastFailure == nil || !s5.LastFailure.Equal(mustTime("2026-11-22T16:50:30Z")) {
			t.Fatalf("after a success and a failure in one index write: last success %v, last failure %v; want 16:49:30 and 16:50:30", s5.LastSuccess, s5.LastFailure)
		}
		// SummaryOf reads one workflow's kept summary (the change stream's outcomes).
		if got, err := f.store.SummaryOf(ctx, "wf"); err != nil || got == nil || !reflect.DeepEqual(*got, s5) {
			t.Errorf("SummaryOf(wf) = %+v, %v; want %+v", got, err, s5)
		}
		if got, err := f.store.SummaryOf(ctx, "nope"); err != nil || got != nil {
			t.Errorf("SummaryOf(nope) = %+v, %v; want nil", got, err)
		}
	})
}
