package format

import (
	"slices"

	"github.com/batchy/batchy/internal/batch"
)

// CheckNames refuses jobs whose names would collide in the env or infa output, where the later
// would silently overwrite the earlier: two fields that map to one variable (jobs job-1 and job_1
// both export BATCHY_JOB_1_STATUS; see EnvName), a field that maps to BATCHY_BATCH_ID (job batch,
// field id), or two jobs that write the same Informatica section ([infa_section or job name],
// compared exactly, as written). Every job is checked with the runtime fields a transition gives
// it (status, batch_id, from_date, ...) besides its own. The EINVALID error names both jobs or
// fields.
func CheckNames(jobs batch.Jobs) error {
	type owner struct{ job, field string }
	vars := map[string]owner{}
	sections := map[string]string{}
	for _, j := range jobs {
		names := j.Fields.Names()
		for _, f := range batch.RuntimeFields {
			if _, ok := j.Fields[f]; !ok {
				names = append(names, f)
			}
		}
		slices.Sort(names)
		for _, f := range names {
			v := EnvName(j.Name, f)
			if v == EnvBatchID || v == EnvWorkflow {
				return batch.Errorf(batch.EINVALID, "job %s, field %s: its env variable %s is the one that holds the batch's own value: rename the job or the field", j.Name, f, v)
			}
			o, taken := vars[v]
			switch {
			case !taken:
				vars[v] = owner{j.Name, f}
			case o.job == j.Name:
				return batch.Errorf(batch.EINVALID, "job %s: fields %s and %s both export %s in env output: rename one", j.Name, o.field, f, v)
			default:
				return batch.Errorf(batch.EINVALID, "jobs %s and %s both export %s in env output (fields %s and %s): rename one", o.job, j.Name, v, o.field, f)
			}
		}
		section, ok := j.Fields.String(batch.FieldInfaSection)
		if !ok || section == "" {
			section = j.Name
		}
		if other, taken := sections[section]; taken {
			return batch.Errorf(batch.EINVALID, "jobs %s and %s both write the Informatica section [%s]: give one another infa_section", other, j.Name, section)
		}
		sections[section] = j.Name
	}
	return nil
}
