package api

import (
	"net"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// canPark says whether waits can be parked here (see detach, clientGone).
const canPark = true

// detach takes the socket of a hijacked connection out of the runtime's poller: a duplicate of it,
// and the connection closed. A parked wait then costs its descriptor alone, and its answer one
// writev(2) and one close(2), without the runtime's epoll_ctl at that moment (measured: the
// close of a net.Conn was the largest cost of answering 1,000 parked waits). ok is false when
// conn is not a socket.
func detach(conn net.Conn) (fd int, ok bool) {
	sc, isSock := conn.(syscall.Conn)
	if !isSock {
		return -1, false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, false
	}
	var derr error
	if err := rc.Control(func(s uintptr) { fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil || derr != nil {
		return -1, false
	}
	conn.Close() // the duplicate holds the socket open
	return fd, true
}

// writeFD writes bufs to the (non-blocking) socket; the caller closes it (closeFD) and calls done,
// unless writeFD returns true. What a full socket buffer leaves over is written by a goroutine of
// its own through the runtime poller, for up to 10 seconds, so that one slow client holds no one
// else's answer; that goroutine then closes fd and calls done.
func writeFD(fd int, bufs [][]byte, done func()) (handedOver bool) {
	n, err := unix.Writev(fd, bufs)
	total := 0
	for _, b := range bufs {
		total += len(b)
	}
	if err == nil && n == total || err != nil && err != unix.EAGAIN {
		return false
	}
	rest := make([]byte, 0, total-max(n, 0))
	for _, b := range bufs {
		if n >= len(b) {
			n -= len(b)
			continue
		}
		rest = append(rest, b[max(n, 0):]...)
		n = 0
	}
	go func() {
		f := os.NewFile(uintptr(fd), "parked wait")
		f.SetWriteDeadline(time.Now().Add(10 * time.Second))
		f.Write(rest)
		f.Close()
		done()
	}()
	return true
}

// closeFD closes a parked wait's socket.
func closeFD(fd int) { unix.Close(fd) }

// clientGone reports, without blocking, whether the client of a parked wait closed its connection
// (or sent more than its request, which a parked wait does not read). One read(2) of one byte on
// the non-blocking socket: EAGAIN means the client is there and quiet.
func clientGone(fd int) bool {
	var b [1]byte
	n, err := unix.Read(fd, b[:])
	return n > 0 || err == nil || err != unix.EAGAIN && err != unix.EINTR
}
