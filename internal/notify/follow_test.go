package notify_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/notify"
	"github.com/batchy/batchy/internal/rdb"
	"github.com/batchy/batchy/internal/rdb/rdbtest"
)

func followed(f *notify.Follower, within time.Duration) bool {
	select {
	case <-f.C:
		return true
	case <-time.After(within):
		return false
	}
}

// TestFollowerCollectsItsWorkflows: a follower learns which of its workflows changed, each once
// however often, on the hub's one subscription; a subscription established again says changes
// may have been missed.
func TestFollowerCollectsItsWorkflows(t *testing.T) {
	srv := rdbtest.StartRedis(t)
	client := srv.Client(t)
	store := rdb.New(client, rdb.Options{})
	hub := notify.NewHub(store, nil)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go hub.Run(runCtx)

	f := hub.Follow(func(wf string) bool { return strings.HasPrefix(wf, "a") })
	defer f.Stop()
	if !followed(f, 5*time.Second) {
		t.Fatal("the first subscription did not signal the follower")
	}
	if names, missed := f.Take(); len(names) != 0 || !missed {
		t.Fatalf("after the first subscription: %v missed=%v, want none and missed", names, missed)
	}
	for _, wf := range []string{"a1", "a2", "b1"} {
		if _, err := store.Load(ctx, &batch.Workflow{Name: wf, Jobs: batch.Jobs{{Name: "j", Fields: batch.Fields{}}}}, false); err != nil {
			t.Fatal(err)
		}
	}
	for range 5 {
		if _, err := store.Open(ctx, "a1", batch.OpenRequest{}); err != nil {
			t.Fatal(err)
		}
		if _, err := store.End(ctx, "a1", batch.EndRequest{Status: batch.StatusSuccess}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(200 * time.Millisecond) // the notifications arrive
	names, missed := f.Take()
	if want := []string{"a1", "a2"}; !slices.Equal(names, want) || missed {
		t.Errorf("Take() = %v missed=%v, want %v", names, missed, want)
	}
	if followed(f, 50*time.Millisecond) {
		if names, _ := f.Take(); len(names) != 0 {
			t.Errorf("a second Take() = %v, want none", names)
		}
	}

	// A lost subscription: re-established, the follower hears it may have missed changes.
	if err := client.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	if !followed(f, 5*time.Second) {
		t.Fatal("the new subscription did not signal the follower")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, missed := f.Take(); missed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no missed after the subscription was lost")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := hub.Waiters(); n != 1 {
		t.Errorf("Waiters() = %d with one follower, want 1", n)
	}
	f.Stop()
	f.Stop() // twice is harmless
	if n := hub.Waiters(); n != 0 {
		t.Errorf("Waiters() = %d after Stop, want 0", n)
	}
}
