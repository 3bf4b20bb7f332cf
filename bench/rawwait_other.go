//go:build !linux

package main

import "time"

// rawWaitRound needs epoll (Linux); elsewhere the waits go through net/http.
func rawWaitRound(base, wf string, n int, since time.Time, sent func()) waitReport {
	return waitRound(newHTTPClient(n+10), base, wf, n, since, sent)
}
