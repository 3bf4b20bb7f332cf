//go:build !linux

package main

import (
	"os/exec"
	"sync"
	"time"
)

// rawWaitRound needs epoll (Linux); elsewhere the waits go through net/http.
func rawWaitRound(base, wf string, n int, since time.Time, sent func()) waitReport {
	return waitRound(newHTTPClient(n+10), base, wf, n, since, sent)
}

// exitWatcher, without pidfds: a goroutine per process in wait(2) notes its exit time. The
// process is reaped then: the caller's cmd.Wait reports an error of its own.
func exitWatcher(cmds []*exec.Cmd) (func() []time.Time, error) {
	ends := make([]time.Time, len(cmds))
	var wg sync.WaitGroup
	for i, cmd := range cmds {
		wg.Go(func() {
			cmd.Process.Wait()
			ends[i] = time.Now()
		})
	}
	return func() []time.Time { wg.Wait(); return ends }, nil
}
