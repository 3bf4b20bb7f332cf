package rdb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/batchy/batchy/internal/batch"
)

// Migrate brings the data under the store's prefix to this layout (Layout) and reports how many
// workflows it rewrote. A workflow written by layout 1 (a hash per job and per batch) is read in
// one transaction and rewritten by one script that also deletes its old keys, so a crash leaves it
// in one layout or the other, never both; events and the scheduler's runs keep their keys. Data
// of a newer layout is refused with the way across: export with the newer batchy, import here.
// Stop every batchy of the earlier version first: one still running would write the old layout.
func (s *Store) Migrate(ctx context.Context) (int, error) {
	v, err := s.client.Get(ctx, s.keys.Layout()).Result()
	switch {
	case err == nil && v == Layout:
		return 0, nil
	case err == nil:
		if n, _ := strconv.Atoi(v); n > 2 {
			return 0, fmt.Errorf("this Redis holds batchy data in layout %s (key %s), newer than this batchy's layout %s: run the newer batchy, or move the data across with `batchy export` from the newer version and `batchy import` here", v, s.keys.Layout(), Layout)
		}
	case !errors.Is(err, redis.Nil):
		return 0, storeError("rdb.Migrate", err)
	}
	names, err := s.client.SMembers(ctx, s.keys.Workflows()).Result()
	if err != nil {
		return 0, storeError("rdb.Migrate", err)
	}
	sort.Strings(names)
	legacy := legacyKeys{s.keys}
	migrated := 0
	for _, wf := range names {
		if !batch.ValidName(wf) {
			continue
		}
		n, err := s.client.Exists(ctx, legacy.meta(wf)).Result()
		if err != nil {
			return migrated, storeError("rdb.Migrate", err)
		}
		if n == 0 {
			continue
		}
		if err := s.migrateWorkflow(ctx, wf); err != nil {
			return migrated, fmt.Errorf("migrating workflow %s to layout %s: %w", wf, Layout, err)
		}
		migrated++
	}
	if err := s.client.Set(ctx, s.keys.Layout(), Layout, 0).Err(); err != nil {
		return migrated, storeError("rdb.Migrate", err)
	}
	return migrated, nil
}

// migrateWorkflow rewrites one workflow of layout 1.
func (s *Store) migrateWorkflow(ctx context.Context, wf string) error {
	legacy := legacyKeys{s.keys}
	var jobsCmd *redis.StringCmd
	var idsCmd *redis.StringSliceCmd
	if _, err := s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		jobsCmd = p.HGet(ctx, legacy.meta(wf), "jobs")
		idsCmd = p.ZRange(ctx, s.keys.Batches(wf), 0, -1)
		return nil
	}); err != nil && !errors.Is(err, redis.Nil) {
		return storeError("rdb.Migrate", err)
	}
	var jobs []string
	if err := json.Unmarshal([]byte(jobsCmd.Val()), &jobs); err != nil {
		return fmt.Errorf("meta.jobs %q is not a JSON array of job names", jobsCmd.Val())
	}
	ids := idsCmd.Val()
	var meta *redis.MapStringStringCmd
	jobCmds := make([]*redis.MapStringStringCmd, len(jobs))
	stashCmds := make([]*redis.MapStringStringCmd, len(jobs))
	batchCmds := make([]*redis.MapStringStringCmd, len(ids))
	old := []string{legacy.meta(wf)}
	if _, err := s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		meta = p.HGetAll(ctx, legacy.meta(wf))
		for i, j := range jobs {
			jobCmds[i] = p.HGetAll(ctx, legacy.job(wf, j))
			stashCmds[i] = p.HGetAll(ctx, legacy.stash(wf, j))
			old = append(old, legacy.job(wf, j), legacy.stash(wf, j))
		}
		for i, id := range ids {
			batchCmds[i] = p.HGetAll(ctx, legacy.batch(wf, id))
			old = append(old, legacy.batch(wf, id))
		}
		return nil
	}); err != nil {
		return storeError("rdb.Migrate", err)
	}
	if meta.Val()["jobs"] != jobsCmd.Val() {
		return errors.New("the workflow was reloaded while it was read: is a batchy of the earlier version still running?")
	}
	d := &batch.Dump{Workflow: wf, Meta: meta.Val(), Jobs: map[string]batch.Fields{}, Stash: map[string]map[string]string{}}
	for i, j := range jobs {
		f := batch.Fields{}
		for k, v := range jobCmds[i].Val() {
			f[k] = json.RawMessage(v)
		}
		d.Jobs[j] = f
		if st := stashCmds[i].Val(); len(st) > 0 {
			d.Stash[j] = st
		}
	}
	for i, id := range ids {
		n, err := strconv.ParseInt(id, 10, 64)
		if err != nil {
			return fmt.Errorf("history id %q is not a number", id)
		}
		b := batch.Batch{ID: n}
		for _, j := range sortedKeys(batchCmds[i].Val()) {
			var f batch.Fields
			if err := json.Unmarshal([]byte(batchCmds[i].Val()[j]), &f); err != nil {
				return fmt.Errorf("batch %s job %s: %w", id, j, err)
			}
			b.Jobs = append(b.Jobs, batch.Job{Name: j, Fields: f})
		}
		d.Batches = append(d.Batches, b)
	}
	if err := checkDump(d); err != nil {
		return err
	}
	return s.restore(ctx, d, old)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
