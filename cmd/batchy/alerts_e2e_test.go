package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/batchy/batchy/internal/alert"
	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/rdb"
	"github.com/batchy/batchy/internal/rdb/rdbtest"
)

// TestAlertBackstopEndToEnd: batchy serve alerts a failure made through its API once (in process,
// the backstop finding it claimed), and a failure written to Redis by a replica that never claimed
// its alert (a store without the alerter: as one that died right after the transition) once too,
// from the streams, within the backstop's poll.
func TestAlertBackstopEndToEnd(t *testing.T) {
	var mu sync.Mutex
	var alerts []alert.Alert
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var a alert.Alert
		b, _ := io.ReadAll(r.Body)
		json.Unmarshal(b, &a)
		mu.Lock()
		alerts = append(alerts, a)
		mu.Unlock()
	}))
	defer hook.Close()
	got := func(n int, within time.Duration) []alert.Alert {
		for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			mu.Lock()
			k := len(alerts)
			mu.Unlock()
			if k >= n {
				break
			}
		}
		time.Sleep(2 * alertBackstopPoll) // and no more
		mu.Lock()
		defer mu.Unlock()
		return append([]alert.Alert(nil), alerts...)
	}

	srv := rdbtest.StartRedis(t)
	cfg := t.TempDir()
	os.WriteFile(filepath.Join(cfg, "w.yaml"), []byte("a: {}\n"), 0o644)
	p := startServe(t, nil, "--redis-url", "redis://"+srv.Addr, "--cfg-dir", cfg, "--alert-webhook-json", hook.URL, "--alert-backstop")
	if code, body := curl(t, p.url+"/load_cfg/w"); code != 200 {
		t.Fatalf("load: %d %s", code, body)
	}
	time.Sleep(alertBackstopPoll + time.Second) // the backstop follows the streams from now on
	curl(t, p.url+"/open_batch/w")
	if code, body := curl(t, p.url+"/fail_batch/w"); code != 200 {
		t.Fatalf("fail_batch: %d %s", code, body)
	}
	if a := got(1, 10*time.Second); len(a) != 1 || a[0].Condition != alert.Failed || a[0].Job != "a" {
		t.Fatalf("alerts after a fail through the API = %+v, want one failed for a", a)
	}

	dead := rdb.New(srv.Client(t), rdb.Options{})
	ctx := context.Background()
	st, err := dead.Open(ctx, "w", batch.OpenRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dead.End(ctx, "w", batch.EndRequest{Status: batch.StatusFailed}); err != nil {
		t.Fatal(err)
	}
	id, _ := st.Jobs[0].Fields.Int(batch.FieldBatchID)
	a := got(2, 3*alertBackstopPoll)
	if len(a) != 2 || a[1].Condition != alert.Failed || a[1].Job != "a" || a[1].BatchID != id {
		t.Errorf("alerts after a fail whose replica died = %+v, want a second one, for batch %d", a, id)
	}
}
