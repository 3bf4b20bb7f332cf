//go:build linux

package main

import (
	"bytes"
	"fmt"
	"net"
	"net/url"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/batchy/batchy/internal/batch"
)

// rawWaitRound is waitRound made cheap for the 2 cores the waiters share with batchy: the n waits
// are raw TCP sockets, each sent the same pre-built request, and one goroutine reads every answer
// as epoll reports it (no goroutine, HTTP client or JSON decoder per wait). Each connection is
// new: batchy closes a parked wait's connection after its answer.
func rawWaitRound(base, wf string, n int, since time.Time, sent func()) waitReport {
	rep := waitReport{Ends: make([]int64, n)}
	fail := func(err error) waitReport {
		sent()
		rep.Errors = append(rep.Errors, err.Error())
		return rep
	}
	u, err := url.Parse(base)
	if err != nil {
		return fail(err)
	}
	addr, err := net.ResolveTCPAddr("tcp4", u.Host)
	if err != nil {
		return fail(err)
	}
	q := url.Values{"target": {wf}, "since": {batch.FormatTime(since)}, "timeout": {"90s"}, "fail_fast": {"true"}}
	req := []byte("GET /v1/wait?" + q.Encode() + " HTTP/1.1\r\nHost: " + u.Host + "\r\nAccept: application/json\r\n\r\n")
	sa := &syscall.SockaddrInet4{Port: addr.Port}
	copy(sa.Addr[:], addr.IP.To4())

	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return fail(err)
	}
	defer syscall.Close(ep)
	fds := make([]int, n)
	got := make([][]byte, n)
	for i := range fds {
		fds[i] = -1
	}
	defer func() {
		for _, fd := range fds {
			if fd >= 0 {
				syscall.Close(fd)
			}
		}
	}()
	for i := range n {
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			return fail(err)
		}
		fds[i] = fd
		if err := syscall.Connect(fd, sa); err != nil {
			return fail(fmt.Errorf("connect: %w", err))
		}
		for off := 0; off < len(req); {
			k, err := syscall.Write(fd, req[off:])
			if err != nil {
				return fail(fmt.Errorf("write: %w", err))
			}
			off += k
		}
		if err := syscall.SetNonblock(fd, true); err != nil {
			return fail(err)
		}
		// Edge-triggered: an answered socket stays open (closed at the end of the round, out of
		// the measured path) and reports at most its end of file once more.
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | epollET, Fd: int32(i)}
		if err := syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
			return fail(err)
		}
	}
	sent()
	events := make([]syscall.EpollEvent, 256)
	buf := make([]byte, 16<<10)
	deadline := time.Now().Add(2 * time.Minute)
	answered := make([]bool, n)
	for left := n; left > 0; {
		if time.Now().After(deadline) {
			rep.Errors = append(rep.Errors, fmt.Sprintf("%d waits unanswered after 2 minutes", left))
			break
		}
		k, err := syscall.EpollWait(ep, events, 1000)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			rep.Errors = append(rep.Errors, err.Error())
			break
		}
		for _, ev := range events[:k] {
			i := int(ev.Fd)
			if answered[i] {
				continue
			}
			// Read until the answer is whole (usually at the first read: no second read to find
			// the socket drained) or the socket is drained.
			eof, done := false, false
			for !done && !eof {
				r, err := syscall.Read(fds[i], buf)
				if r > 0 {
					got[i] = append(got[i], buf[:r]...)
					done, _ = rawAnswer(got[i])
					continue
				}
				eof = r == 0 || err != syscall.EAGAIN && err != syscall.EINTR
				if !eof {
					break
				}
			}
			done, err := rawAnswer(got[i])
			if !done && !eof {
				continue
			}
			rep.Ends[i] = time.Now().UnixNano()
			if err == nil && !done {
				err = fmt.Errorf("the connection closed before a whole answer: %q", got[i])
			}
			if err != nil {
				rep.Errors = append(rep.Errors, err.Error())
			}
			answered[i] = true
			left--
		}
	}
	return rep
}

// rawAnswer says whether b holds a whole HTTP answer, and whether it is 200 and ready.
func rawAnswer(b []byte) (done bool, err error) {
	head, body, ok := bytes.Cut(b, []byte("\r\n\r\n"))
	if !ok {
		return false, nil
	}
	length := -1
	for _, line := range bytes.Split(head, []byte("\r\n"))[1:] {
		name, v, _ := bytes.Cut(line, []byte(":"))
		if string(bytes.ToLower(name)) == "content-length" {
			length, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
		}
	}
	if length < 0 || len(body) < length {
		return false, nil
	}
	if !bytes.HasPrefix(head, []byte("HTTP/1.1 200 ")) {
		return true, fmt.Errorf("wait answered %q", head)
	}
	if !bytes.Contains(body, []byte(`"state":"ready"`)) {
		return true, fmt.Errorf("wait answered %s, want ready", body)
	}
	return true, nil
}

// epollET is EPOLLET as the uint32 of EpollEvent.Events (syscall's constant is a negative int).
const epollET = 1 << 31

// exitWatcher watches the processes' exits from one thread: a pidfd each, in one epoll set (a
// pidfd turns readable when its process exits, before it is reaped). exited waits for every exit
// (3 minutes at most: a zero time for those that did not) and returns the time each was seen.
func exitWatcher(cmds []*exec.Cmd) (exited func() []time.Time, err error) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	fds := make([]int, 0, len(cmds))
	closeAll := func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
		unix.Close(ep)
	}
	for i, cmd := range cmds {
		fd, err := unix.PidfdOpen(cmd.Process.Pid, 0)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("pidfd_open: %w", err)
		}
		fds = append(fds, fd)
		if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(i)}); err != nil {
			closeAll()
			return nil, err
		}
	}
	ends := make([]time.Time, len(cmds))
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer close(done)
		events := make([]unix.EpollEvent, 64)
		deadline := time.Now().Add(3 * time.Minute)
		for left := len(cmds); left > 0 && time.Now().Before(deadline); {
			k, err := unix.EpollWait(ep, events, 1000)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return
			}
			now := time.Now()
			for _, ev := range events[:k] {
				if i := ev.Fd; ends[i].IsZero() {
					ends[i] = now
					unix.EpollCtl(ep, unix.EPOLL_CTL_DEL, fds[i], nil)
					left--
				}
			}
		}
	}()
	return func() []time.Time {
		<-done
		closeAll()
		return ends
	}, nil
}
