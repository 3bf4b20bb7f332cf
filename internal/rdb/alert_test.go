package rdb_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/batchy/batchy/internal/rdb"
	"github.com/batchy/batchy/internal/rdb/rdbtest"
)

// TestAlertClaims: an alert is claimed by one holder only; its claim is renewed by that holder
// alone; once it expires, another holder reclaims it from its stored body; once settled, nobody
// claims it again. On Redis and on the embedded store, whose pending alerts survive a restart.
func TestAlertClaims(t *testing.T) {
	check := func(t *testing.T, s *rdb.Store, lease time.Duration) {
		t.Helper()
		claimed, errs := s.ClaimAlerts(ctx, "w", []string{"k1", "k2"}, [][]byte{[]byte(`{"a":1}`), []byte(`{"a":2}`)}, "r1", lease)
		if errs[0] != nil || errs[1] != nil || !claimed[0] || !claimed[1] {
			t.Fatalf("first claim = %v %v", claimed, errs)
		}
		if claimed, _ := s.ClaimAlerts(ctx, "w", []string{"k1"}, [][]byte{[]byte(`{}`)}, "r2", lease); claimed[0] {
			t.Fatal("claimed twice")
		}
		if ok, err := s.RenewAlert(ctx, "w", "k1", "r2", lease); ok || err != nil {
			t.Errorf("renewed by a holder that does not hold it: %v %v", ok, err)
		}
		if ok, err := s.RenewAlert(ctx, "w", "k1", "r1", lease); !ok || err != nil {
			t.Errorf("renewed by its holder: %v %v", ok, err)
		}
		if err := s.SettleAlert(ctx, "w", "k2", true, time.Now(), time.Hour); err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		reclaim := func(now time.Time) {
			t.Helper()
			if err := s.ReclaimAlerts(ctx, "r2", lease, now, 10, func(wf, key string, body []byte) { got[wf+"/"+key] = string(body) }); err != nil {
				t.Fatal(err)
			}
		}
		reclaim(time.Now()) // k1 still claimed, k2 settled
		if len(got) != 0 {
			t.Fatalf("reclaimed while held or settled: %v", got)
		}
	}
	t.Run("redis", func(t *testing.T) {
		s := rdb.New(rdbtest.StartRedis(t).Client(t), rdb.Options{})
		lease := 200 * time.Millisecond
		check(t, s, lease)
		time.Sleep(lease + 100*time.Millisecond)
		got := map[string]string{}
		if err := s.ReclaimAlerts(ctx, "r2", lease, time.Now().Add(lease), 10, func(wf, key string, body []byte) { got[wf+"/"+key] = string(body) }); err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got["w/k1"] != `{"a":1}` {
			t.Errorf("reclaimed = %v, want k1 alone", got)
		}
		if claimed, _ := s.ClaimAlerts(ctx, "w", []string{"k2"}, [][]byte{[]byte(`{}`)}, "r3", lease); claimed[0] {
			t.Error("a settled alert claimed again")
		}
	})
	t.Run("embedded", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "batchy.db")
		env := mustEmbedded(t, path)
		check(t, env.store, time.Hour)
		env.e.Close()
		env = mustEmbedded(t, path)
		// After a restart the claim still holds (an hour), and the alert is still pending.
		got := 0
		env.store.ReclaimAlerts(ctx, "r2", time.Hour, time.Now().Add(2*time.Hour), 10, func(string, string, []byte) { got++ })
		if got != 0 {
			t.Errorf("reclaimed a held claim after a restart")
		}
		if ok, err := env.store.RenewAlert(ctx, "w", "k1", "r1", time.Hour); !ok || err != nil {
			t.Errorf("the claim did not survive the restart: %v %v", ok, err)
		}
	})
}
