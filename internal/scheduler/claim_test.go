package scheduler

import (
	"context"
	"testing"
	"time"

	"github.com/batchy/batchy/internal/rdb"
	"github.com/batchy/batchy/internal/rdb/rdbtest"
)

// TestClaimSentAgain: a claim whose reply was lost and that go-redis sends again still answers
// "claimed" (else no replica would run that fire), while another replica's claim of the same fire
// is refused.
func TestClaimSentAgain(t *testing.T) {
	ctx := context.Background()
	client := rdbtest.StartRedis(t).Client(t)
	r := &redisState{client: client, keys: rdb.Keys{Prefix: "batchy"}, keep: 100}
	now := time.Now()
	mine := &Run{ID: "run-mine", Workflow: "wf"}
	for attempt := 1; attempt <= 2; attempt++ {
		ok, err := r.claim(ctx, "wf", "last_fire", "", "1000", now, mine)
		if err != nil || !ok {
			t.Fatalf("attempt %d of the same claim = %v, %v; want claimed", attempt, ok, err)
		}
	}
	theirs := &Run{ID: "run-theirs", Workflow: "wf"}
	if ok, err := r.claim(ctx, "wf", "last_fire", "", "1000", now, theirs); err != nil || ok {
		t.Fatalf("another replica's claim of the same fire = %v, %v; want refused", ok, err)
	}
	if n := client.ZCard(ctx, r.keys.Runs("wf")).Val(); n != 1 {
		t.Errorf("%d runs for one fire, want 1", n)
	}
}
