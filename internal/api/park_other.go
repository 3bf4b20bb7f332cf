//go:build !unix

package api

import "syscall"

// canCheckClient says whether clientGone works here: not without a non-blocking read(2), so waits
// are held by their handlers.
const canCheckClient = false

func clientGone(syscall.RawConn) bool { return false }
