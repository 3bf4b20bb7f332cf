package rdb

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// MarkAlerts marks alert keys of a workflow as sent (keys[i] at at[i]), for ttl, unless marked
// already, in one round trip: first[i] is true for the first caller of keys[i] only, whichever
// replica it runs on.
func (s *Store) MarkAlerts(ctx context.Context, wf string, keys []string, at []time.Time, ttl time.Duration) ([]bool, []error) {
	pipe := s.client.Pipeline()
	cmds := make([]*redis.BoolCmd, len(keys))
	for i, k := range keys {
		cmds[i] = pipe.SetNX(ctx, s.keys.Alert(wf, k), at[i].Format(time.RFC3339Nano), ttl)
	}
	_, _ = pipe.Exec(ctx) // each command's own error is read below
	first := make([]bool, len(keys))
	errs := make([]error, len(keys))
	for i, c := range cmds {
		if first[i], errs[i] = c.Result(); errs[i] != nil {
			errs[i] = fmt.Errorf("rdb.MarkAlerts: %w", errs[i])
		}
	}
	return first, errs
}
