package rdb

import (
	"context"
	_ "embed"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

//go:embed lua/alert_claim.lua
var luaAlertClaim string

//go:embed lua/alert_renew.lua
var luaAlertRenew string

//go:embed lua/alert_settle.lua
var luaAlertSettle string

var (
	scriptAlertClaim  = redis.NewScript(luaAlertClaim)
	scriptAlertRenew  = redis.NewScript(luaAlertRenew)
	scriptAlertSettle = redis.NewScript(luaAlertSettle)
)

// ClaimAlerts claims alerts of a workflow for delivery by holder, for lease, in one round trip:
// claimed[i] is true when keys[i] was neither claimed nor settled before, whichever replica tried
// it. A claimed alert's body is kept until SettleAlert, so that another replica delivers it
// (ReclaimAlerts) if holder stops renewing its claim. A key that could not be claimed is
// reported in errs[i].
func (s *Store) ClaimAlerts(ctx context.Context, wf string, keys []string, bodies [][]byte, holder string, lease time.Duration) (claimed []bool, errs []error) {
	pipe := s.client.Pipeline()
	// The index first: an entry without pending alerts is harmless (the scan drops it), a pending
	// alert without its entry would wait for the next one of its workflow.
	pipe.ZAdd(ctx, s.keys.AlertsDue(), redis.Z{Score: float64(time.Now().Add(lease).UnixMilli()), Member: wf})
	cmds := make([]*redis.Cmd, len(keys))
	for i, k := range keys {
		cmds[i] = scriptAlertClaim.Eval(ctx, pipe, []string{s.keys.Alert(wf, k), s.keys.AlertsPending(wf)}, k, holder, lease.Milliseconds(), bodies[i])
	}
	// EVAL, not EVALSHA: a pipeline cannot fall back when the script is not cached (the scripts
	// are short).
	_, _ = pipe.Exec(ctx) // each command's own error is read below
	claimed = make([]bool, len(keys))
	errs = make([]error, len(keys))
	for i, c := range cmds {
		n, err := c.Int()
		if err != nil {
			errs[i] = fmt.Errorf("rdb.ClaimAlerts: %w", err)
		}
		claimed[i] = n == 1
	}
	return claimed, errs
}

// RenewAlert extends holder's claim on an alert for lease; ok is false when holder no longer
// holds it (it expired and another replica claimed the alert).
func (s *Store) RenewAlert(ctx context.Context, wf, key, holder string, lease time.Duration) (bool, error) {
	pipe := s.client.Pipeline()
	pipe.ZAdd(ctx, s.keys.AlertsDue(), redis.Z{Score: float64(time.Now().Add(lease).UnixMilli()), Member: wf})
	c := scriptAlertRenew.Eval(ctx, pipe, []string{s.keys.Alert(wf, key)}, holder, lease.Milliseconds())
	_, _ = pipe.Exec(ctx)
	n, err := c.Int()
	if err != nil {
		return false, fmt.Errorf("rdb.RenewAlert: %w", err)
	}
	return n == 1, nil
}

// SettleAlert records an alert's outcome, sent (delivered) or not (given up), at at, for ttl: it
// is no longer pending, and raising it again within ttl sends nothing.
func (s *Store) SettleAlert(ctx context.Context, wf, key string, sent bool, at time.Time, ttl time.Duration) error {
	mark := "sent "
	if !sent {
		mark = "failed "
	}
	err := scriptAlertSettle.Run(ctx, s.client, []string{s.keys.Alert(wf, key), s.keys.AlertsPending(wf)}, key, mark+at.UTC().Format(time.RFC3339Nano), ttl.Milliseconds()).Err()
	if err != nil {
		return fmt.Errorf("rdb.SettleAlert: %w", err)
	}
	return nil
}

// ReclaimAlerts claims, for holder, the pending alerts whose claims expired (their replica died
// or lost Redis mid-delivery), of at most limit workflows due by now, and calls claimed for each.
// It reads only the workflows the index says are due: a scan costs nothing when no alert is
// pending.
func (s *Store) ReclaimAlerts(ctx context.Context, holder string, lease time.Duration, now time.Time, limit int, claimed func(wf, key string, body []byte)) error {
	wfs, err := s.client.ZRangeByScore(ctx, s.keys.AlertsDue(), &redis.ZRangeBy{Min: "-inf", Max: strconv.FormatInt(now.UnixMilli(), 10), Count: int64(limit)}).Result()
	if err != nil {
		return fmt.Errorf("rdb.ReclaimAlerts: %w", err)
	}
	for _, wf := range wfs {
		pending, err := s.client.HGetAll(ctx, s.keys.AlertsPending(wf)).Result()
		if err != nil {
			return fmt.Errorf("rdb.ReclaimAlerts: %w", err)
		}
		if len(pending) == 0 {
			s.client.ZRem(ctx, s.keys.AlertsDue(), wf)
			continue
		}
		// Look again after a lease: the alerts still claimed by a live replica are settled or
		// due by then.
		s.client.ZAdd(ctx, s.keys.AlertsDue(), redis.Z{Score: float64(now.Add(lease).UnixMilli()), Member: wf})
		for key, body := range pending {
			n, err := scriptAlertClaim.Run(ctx, s.client, []string{s.keys.Alert(wf, key), s.keys.AlertsPending(wf)}, key, holder, lease.Milliseconds(), "").Int()
			if err != nil {
				return fmt.Errorf("rdb.ReclaimAlerts: %w", err)
			}
			if n == 1 {
				claimed(wf, key, []byte(body))
			}
		}
	}
	return nil
}

// MarkAlertsSent marks alert keys of a workflow as sent at at, for ttl, unless claimed or sent
// already, in one round trip (SET NX each): the alerts no webhook is there to deliver.
func (s *Store) MarkAlertsSent(ctx context.Context, wf string, keys []string, at time.Time, ttl time.Duration) ([]bool, []error) {
	pipe := s.client.Pipeline()
	cmds := make([]*redis.BoolCmd, len(keys))
	for i, k := range keys {
		cmds[i] = pipe.SetNX(ctx, s.keys.Alert(wf, k), "sent "+at.UTC().Format(time.RFC3339Nano), ttl)
	}
	_, _ = pipe.Exec(ctx) // each command's own error is read below
	first := make([]bool, len(keys))
	errs := make([]error, len(keys))
	for i, c := range cmds {
		if first[i], errs[i] = c.Result(); errs[i] != nil {
			errs[i] = fmt.Errorf("rdb.MarkAlertsSent: %w", errs[i])
		}
	}
	return first, errs
}
