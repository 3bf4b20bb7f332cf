package rdb

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// ListenChanges holds one subscription to the change channel (Keys.Changed, on which every
// transition publishes its workflow's name) until it fails or ctx ends, and returns why. It calls
// subscribed each time the subscription is established, after which messages published before may
// have been missed, and changed with each message's workflow name. On a Cluster the subscription
// lives on one node, and Redis forwards every node's PUBLISH to it; the caller subscribes again
// after an error (the node died, the connection was killed).
func (s *Store) ListenChanges(ctx context.Context, subscribed func(), changed func(wf string)) error {
	ps := s.client.Subscribe(ctx, s.keys.Changed())
	defer ps.Close()
	// Receive does not return when ctx ends: closing the subscription makes it.
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			ps.Close()
		case <-done:
		}
	}()
	for {
		msg, err := ps.Receive(ctx)
		if err != nil {
			return fmt.Errorf("rdb.ListenChanges: %w", err)
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				subscribed()
			}
		case *redis.Message:
			changed(m.Payload)
		}
	}
}
