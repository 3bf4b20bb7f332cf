package api

import (
	"testing"
	"time"
)

// TestRecheckWakesEveryWaitAtOnce: every wait gets the same channel, closed at the period, and the
// next period's is a fresh one; the ticker stops with the server.
func TestRecheckWakesEveryWaitAtOnce(t *testing.T) {
	r := &recheck{every: 200 * time.Millisecond}
	stop := make(chan struct{})
	defer close(stop)
	r.start(stop)
	r.start(stop) // a second wait starts nothing more
	a, b := r.next(), r.next()
	if a != b {
		t.Fatal("two waits of one period got different channels")
	}
	for _, c := range []<-chan struct{}{a, b} {
		select {
		case <-c:
		case <-time.After(5 * time.Second):
			t.Fatal("the recheck did not come")
		}
	}
	select {
	case <-r.next():
		t.Fatal("the next period's channel is already closed")
	default:
	}
}
