package rdb_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/batchy/batchy/internal/rdb"
)

// TestEmbeddedKeepsEvents: the embedded store's event streams survive a restart, with their ids,
// each cut to its newest events; the batch state's data file does not hold them.
func TestEmbeddedKeepsEvents(t *testing.T) {
	path := filepath.Join(t.TempDir(), "batchy.json")
	e, err := rdb.StartEmbedded(path)
	if err != nil {
		t.Fatal(err)
	}
	c := e.Client()
	const n = 1005
	var ids []string
	for i := range n {
		id, err := c.XAdd(ctx, &redis.XAddArgs{Stream: "batchy:{w}:events", Values: []string{"event", fmt.Sprint(i)}}).Result()
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	c.XAdd(ctx, &redis.XAddArgs{Stream: "batchy:{v}:events", Values: []string{"event", "other"}})
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(path), "batchy.events.json")); err != nil {
		t.Fatalf("no events file next to the data file: %v", err)
	}

	e, err = rdb.StartEmbedded(path)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	got, err := e.Client().XRange(ctx, "batchy:{w}:events", "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1000 {
		t.Fatalf("%d events after a restart, want the newest 1000", len(got))
	}
	if got[0].ID != ids[n-1000] || got[999].ID != ids[n-1] || got[999].Values["event"] != fmt.Sprint(n-1) {
		t.Errorf("events after a restart run %s..%s (%v), want %s..%s", got[0].ID, got[999].ID, got[999].Values, ids[n-1000], ids[n-1])
	}
	if other, _ := e.Client().XLen(ctx, "batchy:{v}:events").Result(); other != 1 {
		t.Errorf("the other stream has %d events, want 1", other)
	}
	// New events go after the restored ones.
	next, err := e.Client().XAdd(ctx, &redis.XAddArgs{Stream: "batchy:{w}:events", Values: []string{"event", "new"}}).Result()
	if err != nil || next <= ids[n-1] {
		t.Errorf("a new event got id %s (%v), want one after %s", next, err, ids[n-1])
	}
}
