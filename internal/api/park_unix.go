//go:build unix

package api

import "syscall"

// canCheckClient says whether clientGone works here.
const canCheckClient = true

// clientGone reports, without blocking, whether the client of a parked wait closed its connection
// (or sent more than its request, which a parked wait does not read). One read(2) of one byte on
// the non-blocking socket: EAGAIN means the client is there and quiet.
func clientGone(rc syscall.RawConn) bool {
	gone := false
	var b [1]byte
	err := rc.Read(func(fd uintptr) bool {
		n, err := syscall.Read(int(fd), b[:])
		gone = n > 0 || err == nil || err != syscall.EAGAIN && err != syscall.EINTR
		return true // never wait for the socket to be readable
	})
	return gone || err != nil
}
