package notify_test

import (
	"context"
	"testing"
	"time"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/notify"
	"github.com/batchy/batchy/internal/rdb"
	"github.com/batchy/batchy/internal/rdb/rdbtest"
)

var ctx = context.Background()

func signalled(w *notify.Waiter, within time.Duration) bool {
	select {
	case <-w.C:
		return true
	case <-time.After(within):
		return false
	}
}

func drain(w *notify.Waiter) {
	for signalled(w, 50*time.Millisecond) {
	}
}

// TestTransitionsWakeTheirWaiters: every transition script publishes, and only the waiters of
// that workflow wake.
func TestTransitionsWakeTheirWaiters(t *testing.T) {
	rdbtest.EachBackend(t, func(t *testing.T, b rdbtest.Backend) {
		client, _ := b.New(t)
		store := rdb.New(client, rdb.Options{})
		hub := notify.NewHub(store, nil)
		runCtx, cancel := context.WithCancel(ctx)
		defer cancel()
		go hub.Run(runCtx)

		w1 := hub.Watch("w1")
		defer w1.Stop()
		w2 := hub.Watch("w2")
		defer w2.Stop()
		drain(w1) // the first subscription wakes everyone once
		drain(w2)

		wf := &batch.Workflow{Name: "w1", Jobs: batch.Jobs{{Name: "a", Fields: batch.Fields{}}}}
		steps := []struct {
			name string
			do   func() error
		}{
			{"load", func() error { _, err := store.Load(ctx, wf, false); return err }},
			{"open", func() error { _, err := store.Open(ctx, "w1", batch.OpenRequest{}); return err }},
			{"close", func() error {
				_, err := store.End(ctx, "w1", batch.EndRequest{Status: batch.StatusSuccess})
				return err
			}},
			{"watermark", func() error { _, err := store.SetWatermark(ctx, "w1", "a", time.Now()); return err }},
		}
		for _, s := range steps {
			if err := s.do(); err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
			if !signalled(w1, 2*time.Second) {
				t.Errorf("%s did not wake the waiter of w1", s.name)
			}
		}
		if signalled(w2, 100*time.Millisecond) {
			t.Errorf("the waiter of w2 woke on changes to w1")
		}
		if n := hub.Waiters(); n != 2 {
			t.Errorf("Waiters() = %d, want 2", n)
		}
	})
}

// TestOneSubscriptionAndRecovery: a thousand waiters share one Redis subscription, and a lost
// subscription is re-established with every waiter woken to re-check.
func TestOneSubscriptionAndRecovery(t *testing.T) {
	srv := rdbtest.StartRedis(t)
	client := srv.Client(t)
	store := rdb.New(client, rdb.Options{})
	hub := notify.NewHub(store, nil)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go hub.Run(runCtx)

	waiters := make([]*notify.Waiter, 1000)
	for i := range waiters {
		waiters[i] = hub.Watch("w1")
		defer waiters[i].Stop()
	}
	subscribers := func() int64 {
		n, err := client.PubSubNumSub(ctx, store.Keys().Changed()).Result()
		if err != nil {
			t.Fatal(err)
		}
		return n[store.Keys().Changed()]
	}
	deadline := time.Now().Add(5 * time.Second)
	for subscribers() != 1 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := subscribers(); n != 1 {
		t.Fatalf("%d subscriptions for 1000 waiters, want 1", n)
	}
	time.Sleep(100 * time.Millisecond) // let the first subscription's wake-up land
	for _, w := range waiters {
		select {
		case <-w.C:
		default:
		}
	}

	// Kill the subscription's connection: the hub re-subscribes and wakes everyone.
	if err := client.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	for i, w := range waiters {
		if !signalled(w, 10*time.Second) {
			t.Fatalf("waiter %d was not woken after the subscription was lost", i)
		}
	}
	deadline = time.Now().Add(10 * time.Second)
	for subscribers() != 1 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	// And notifications flow again.
	wf := &batch.Workflow{Name: "w1", Jobs: batch.Jobs{{Name: "a", Fields: batch.Fields{}}}}
	if _, err := store.Load(ctx, wf, false); err != nil {
		t.Fatal(err)
	}
	if !signalled(waiters[0], 5*time.Second) {
		t.Errorf("no notification after the subscription came back")
	}
}

// TestSubscribedOnlyWhileWaited: without waiters the hub holds no subscription (a transition's
// notification reaches no one and costs nothing to read); the first waiter brings it, and is woken
// once it is in place, to re-check what it read before; it goes when the last waiter has been gone
// for the idle grace.
func TestSubscribedOnlyWhileWaited(t *testing.T) {
	client := rdbtest.StartRedis(t).Client(t)
	store := rdb.New(client, rdb.Options{})
	hub := notify.NewHub(store, nil)
	notify.SetIdleGrace(hub, 200*time.Millisecond)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go hub.Run(runCtx)
	subscribers := func() int64 {
		n, err := client.PubSubNumSub(ctx, store.Keys().Changed()).Result()
		if err != nil {
			t.Fatal(err)
		}
		return n[store.Keys().Changed()]
	}
	waitFor := func(want int64, why string) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); subscribers() != want; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d subscriptions, want %d", why, subscribers(), want)
			}
		}
	}
	time.Sleep(300 * time.Millisecond)
	if n := subscribers(); n != 0 {
		t.Fatalf("%d subscriptions without a waiter, want 0", n)
	}
	w := hub.Watch("w1")
	if !signalled(w, 5*time.Second) {
		t.Fatal("the first waiter was not woken once the subscription was in place")
	}
	waitFor(1, "with a waiter")
	wf := &batch.Workflow{Name: "w1", Jobs: batch.Jobs{{Name: "a", Fields: batch.Fields{}}}}
	if _, err := store.Load(ctx, wf, false); err != nil {
		t.Fatal(err)
	}
	if !signalled(w, 5*time.Second) {
		t.Fatal("a change did not wake the waiter")
	}
	w.Stop()
	waitFor(0, "after the last waiter left")
	w = hub.Watch("w1")
	defer w.Stop()
	waitFor(1, "with a waiter again")
}
