package rdb

import (
	"context"
	"fmt"
	"time"
)

// MarkAlert marks the alert key of a workflow as sent at at, for ttl, unless it is marked
// already: true for the first caller only, whichever replica it runs on.
func (s *Store) MarkAlert(ctx context.Context, wf, key string, at time.Time, ttl time.Duration) (bool, error) {
	first, err := s.client.SetNX(ctx, s.keys.Alert(wf, key), at.Format(time.RFC3339Nano), ttl).Result()
	if err != nil {
		return false, fmt.Errorf("rdb.MarkAlert: %w", err)
	}
	return first, nil
}
