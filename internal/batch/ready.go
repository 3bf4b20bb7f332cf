package batch

import (
	"strings"
	"time"
)

// Target is what a waiter waits for: a whole workflow, or one job of it.
type Target struct {
	Workflow string
	// Job is empty for the whole workflow.
	Job string
}

// String writes the target as waitsy reads it: "wf" or "wf:job".
func (t Target) String() string {
	if t.Job == "" {
		return t.Workflow
	}
	return t.Workflow + ":" + t.Job
}

// ParseTarget reads "wf" or "wf:job".
func ParseTarget(s string) (Target, error) {
	wf, job, hasJob := strings.Cut(s, ":")
	if err := CheckName("workflow", wf); err != nil {
		return Target{}, Errorf(EINVALID, "target %q: %s", clip(s), ErrorMessage(err))
	}
	if hasJob {
		if err := CheckName("job", job); err != nil {
			return Target{}, Errorf(EINVALID, "target %q: %s", clip(s), ErrorMessage(err))
		}
	}
	return Target{Workflow: wf, Job: job}, nil
}

// Readiness is a job's standing for a waiter (SPEC.md "Readiness").
type Readiness string

// A job is ready when it succeeded since T, failed when it failed since T, pending otherwise.
const (
	Ready   Readiness = "ready"
	Failed  Readiness = "failed"
	Pending Readiness = "pending"
)

// JobReadiness says whether a job is ready or has failed since since.
func JobReadiness(f Fields, since time.Time) Readiness {
	end, ok := f.Time(FieldBatchEnd)
	if !ok || end.Before(since) {
		return Pending
	}
	switch f.Status() {
	case StatusSuccess:
		return Ready
	case StatusFailed:
		return Failed
	}
	return Pending
}

// JobStanding is one watched job's readiness with what a report shows of it.
type JobStanding struct {
	Workflow  string    `json:"workflow"`
	Job       string    `json:"job"`
	Readiness Readiness `json:"readiness"`
	Status    string    `json:"status"`
	BatchID   int64     `json:"batch_id,omitempty"`
	BatchEnd  string    `json:"batch_end,omitempty"`
}

// Standings returns the readiness of every job a target names in a workflow's jobs. A target naming
// a job the workflow lacks is ENOTFOUND: an unknown job is never ready.
func Standings(t Target, jobs Jobs, since time.Time) ([]JobStanding, error) {
	if t.Job != "" {
		j, ok := jobs.Get(t.Job)
		if !ok {
			return nil, Errorf(ENOTFOUND, "job %s is not in workflow %s", t.Job, t.Workflow)
		}
		jobs = Jobs{j}
	}
	if len(jobs) == 0 {
		return nil, Errorf(ENOTFOUND, "workflow %s has no jobs", t.Workflow)
	}
	out := make([]JobStanding, 0, len(jobs))
	for _, j := range jobs {
		s := JobStanding{Workflow: t.Workflow, Job: j.Name, Readiness: JobReadiness(j.Fields, since), Status: string(j.Fields.Status())}
		s.BatchID, _ = j.Fields.Int(FieldBatchID)
		if end, ok := j.Fields.Time(FieldBatchEnd); ok {
			s.BatchEnd = FormatTime(end)
		}
		out = append(out, s)
	}
	return out, nil
}

// Overall sums up standings: Failed if any failed (and failFast), else Ready if all are ready,
// else Pending. Without failFast a failed job is pending: the waiter waits for a rerun.
func Overall(standings []JobStanding, failFast bool) Readiness {
	overall := Ready
	for _, s := range standings {
		switch s.Readiness {
		case Failed:
			if failFast {
				return Failed
			}
			overall = Pending
		case Pending:
			overall = Pending
		}
	}
	return overall
}
