package batch_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/batchy/batchy/internal/batch"
)

func fieldsOf(t *testing.T, js string) batch.Fields {
	t.Helper()
	var f batch.Fields
	if err := json.Unmarshal([]byte(js), &f); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestJobReadiness covers SPEC.md "Readiness".
func TestJobReadiness(t *testing.T) {
	since := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name, fields string
		want         batch.Readiness
	}{
		{"success since T", `{"status":"success","batch_end":"2026-11-22T01:00:00.000000Z"}`, batch.Ready},
		{"success exactly at T", `{"status":"success","batch_end":"2026-11-22T00:00:00.000000Z"}`, batch.Ready},
		{"success before T does not count", `{"status":"success","batch_end":"2026-11-21T23:59:59.999999Z"}`, batch.Pending},
		{"failed since T", `{"status":"failed","batch_end":"2026-11-22T01:00:00.000000Z"}`, batch.Failed},
		{"legacy failure since T", `{"status":"failure","batch_end":"2026-11-22T01:00:00"}`, batch.Failed},
		{"failed before T is pending", `{"status":"failed","batch_end":"2026-11-21T01:00:00.000000Z"}`, batch.Pending},
		{"open", `{"status":"open","batch_end":null}`, batch.Pending},
		{"new", `{"status":"new"}`, batch.Pending},
		{"success without batch_end", `{"status":"success"}`, batch.Pending},
		{"original naive batch_end", `{"status":"success","batch_end":"2026-11-22 08:00:00"}`, batch.Ready},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := batch.JobReadiness(fieldsOf(t, c.fields), since); got != c.want {
				t.Errorf("got %s, want %s", got, c.want)
			}
		})
	}
}

func TestStandingsAndOverall(t *testing.T) {
	since := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	jobs := batch.Jobs{
		{Name: "a", Fields: fieldsOf(t, `{"status":"success","batch_id":7,"batch_end":"2026-11-22T01:00:00.000000Z"}`)},
		{Name: "b", Fields: fieldsOf(t, `{"status":"failed","batch_end":"2026-11-22T01:00:00.000000Z"}`)},
		{Name: "c", Fields: fieldsOf(t, `{"status":"open"}`)},
	}
	all, err := batch.Standings(batch.Target{Workflow: "w"}, jobs, since)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 || all[0].BatchID != 7 || all[0].BatchEnd != "2026-11-22T01:00:00.000000Z" || all[0].Readiness != batch.Ready {
		t.Errorf("standings = %+v", all)
	}
	if got := batch.Overall(all, true); got != batch.Failed {
		t.Errorf("overall with fail-fast = %s, want failed", got)
	}
	if got := batch.Overall(all, false); got != batch.Pending {
		t.Errorf("overall without fail-fast = %s, want pending", got)
	}
	one, err := batch.Standings(batch.Target{Workflow: "w", Job: "a"}, jobs, since)
	if err != nil || len(one) != 1 || batch.Overall(one, true) != batch.Ready {
		t.Errorf("job target a: %+v %v", one, err)
	}
	if _, err := batch.Standings(batch.Target{Workflow: "w", Job: "zz"}, jobs, since); batch.ErrorCode(err) != batch.ENOTFOUND {
		t.Errorf("unknown job: %v, want not_found (never ready)", err)
	}
	if _, err := batch.Standings(batch.Target{Workflow: "w"}, nil, since); batch.ErrorCode(err) != batch.ENOTFOUND {
		t.Errorf("workflow without jobs: %v, want not_found", err)
	}
}

func TestParseTarget(t *testing.T) {
	for in, want := range map[string]batch.Target{"wf1": {Workflow: "wf1"}, "wf1:job3": {Workflow: "wf1", Job: "job3"}} {
		got, err := batch.ParseTarget(in)
		if err != nil || got != want || got.String() != in {
			t.Errorf("ParseTarget(%q) = %+v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", ":", "wf1:", ":job", "wf*", "wf1:a:b", "../x"} {
		if _, err := batch.ParseTarget(bad); batch.ErrorCode(err) != batch.EINVALID {
			t.Errorf("ParseTarget(%q): %v, want invalid", bad, err)
		}
	}
}
