package api

import (
	"bufio"
	"container/heap"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/notify"
)

// Parked waits.
//
// A wait whose first answer is pending is parked: its connection is taken from net/http (hijacked)
// and handed to the group of waits that ask the same question, and its handler returns. While
// parked, a wait costs its connection and a few hundred bytes, and nothing else: no goroutine of
// its own (net/http holds two per request, the handler's and the background read, 8-16 KB of
// stacks), no bufio buffers (4 KB each way), no timer, no channel. Measured with 1,000 waits in a
// separate process (bench, wake part): batchy's RSS went from 86 MB, growing over the rounds, to
// about the idle server's, and a wake-up's CPU fell by more than half.
//
// A group has one goroutine, one hub subscription for its workflows and one timer, set at its
// earliest deadline. A change makes it read the state once (shared with the other waits of the
// workflow, sharedReads) and derive the answer once; an answer that is not pending is written to
// every wait of the group, as the same bytes (only the request id differs), from as many
// goroutines as the process has cores, and the connections are closed (Connection: close: the
// client would otherwise keep a connection that no one reads). A wait that times out gets the
// group's latest pending answer.
//
// A parked connection's socket is taken out of the runtime's poller (detach): its answer is then
// one writev(2) and one close(2). A client that goes away is noticed at the next recheck
// (recheckEvery), by a read that does not block (clientGone), and its wait ends then: its count
// against --max-waits-per-client lasts that much longer than a wait held by net/http, which
// noticed at once.
//
// A wait is parked only over plain HTTP/1.x on TCP, on Linux; otherwise (TLS, HTTP/2, a test's
// recorder, another system) it is held by its handler as before.
//
// What a parked wait changes for the rest of the server: its request ends, for the middleware
// (request log, HTTP metrics), when it is parked, with status 200; batchy_active_waits counts it
// until it is answered. http.Server.Shutdown does not wait for it: Server.Close answers it
// (503, ask again) first.
type parking struct {
	mu     sync.Mutex
	groups map[string]*parkGroup // by the question (waitQuery.key)
	closed bool                  // by Server.Close: no more parking
	wg     sync.WaitGroup        // the groups' goroutines
}

// parkGroup is the parked waits that ask one question.
type parkGroup struct {
	q     *waitQuery
	watch *notify.Waiter
	kick  chan struct{} // a wait joined (an earlier deadline, perhaps a change it saw)
	stale atomic.Bool   // a joining wait saw a change the group may have missed: read again
	waits waitHeap      // by deadline; parking.mu
	last  *waitAnswer   // the latest pending answer, for the waits that time out; parking.mu
}

// closeDelay is how long the connections of a wake-up of many waits stay open after their answers
// were written (see writeParked).
const closeDelay = 20 * time.Millisecond

// parkedWait is one parked wait: its connection and what its answer needs of its request.
type parkedWait struct {
	fd       int      // the socket (detach), or -1: conn
	conn     net.Conn // when the socket could not be detached
	headers  []byte   // the request's own response headers (X-Request-Id), each ending in CRLF
	deadline time.Time
	release  func() // its count in waitCounter
}

// park hands the wait over to its group and reports whether it did; the caller then returns
// without writing (and without releasing the wait's count: the group does, once it answered).
// a is the wait's first answer, pending; w its watch, registered before that answer's read.
func (s *Server) park(c *gin.Context, q *waitQuery, w *notify.Waiter, a *waitAnswer, deadline time.Time, release func()) bool {
	if c.Request.ProtoMajor != 1 || c.Request.TLS != nil || !canPark {
		return false
	}
	u, ok := c.Writer.(interface{ Unwrap() http.ResponseWriter })
	if !ok {
		return false
	}
	if _, ok := u.Unwrap().(http.Hijacker); !ok {
		return false
	}
	p := &s.parking
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return false
	}
	// Only a TCP connection is known to be one before it is taken.
	if _, ok := c.Request.Context().Value(http.LocalAddrContextKey).(*net.TCPAddr); !ok {
		return false
	}
	conn, brw, err := c.Writer.Hijack()
	if err != nil {
		return false
	}
	// The parked wait neither reads nor writes through net/http's buffers (4 KB each way), which
	// net/http does not take back into its pools from a hijacked connection, and which gin's pool
	// of contexts would keep, through the last request it served, until it is reused or collected:
	// let them go now. A request the client pipelined behind this one is dropped with them, as
	// before (the answer says Connection: close).
	*brw.Reader, *brw.Writer = bufio.Reader{}, bufio.Writer{}
	pw := &parkedWait{fd: -1, deadline: deadline, release: release}
	if fd, ok := detach(conn); ok {
		pw.fd = fd
	} else {
		pw.conn = conn
		// A client that stops reading must not hold the group's writes for long.
		conn.SetWriteDeadline(deadline.Add(30 * time.Second))
	}
	size := 0
	for name, values := range c.Writer.Header() {
		for _, v := range values {
			size += len(name) + len(v) + 4
		}
	}
	pw.headers = make([]byte, 0, size)
	for name, values := range c.Writer.Header() {
		for _, v := range values {
			pw.headers = append(pw.headers, name...)
			pw.headers = append(pw.headers, ": "...)
			pw.headers = append(pw.headers, v...)
			pw.headers = append(pw.headers, "\r\n"...)
		}
	}

	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		s.writeParked([]*parkedWait{pw}, shutdownAnswer())
		return true
	}
	if p.groups == nil {
		p.groups = map[string]*parkGroup{}
	}
	g := p.groups[q.key]
	if g == nil {
		g = &parkGroup{q: q, watch: s.opts.Hub.Watch(q.workflows...), kick: make(chan struct{}, 1)}
		p.groups[q.key] = g
		p.wg.Add(1)
		go s.runGroup(g)
	}
	heap.Push(&g.waits, pw)
	if g.last == nil {
		g.last = a
	}
	p.mu.Unlock()
	// A change between this wait's read and its joining may have come before the group's watch.
	select {
	case <-w.C:
		g.stale.Store(true)
	default:
	}
	select {
	case g.kick <- struct{}{}:
	default:
	}
	return true
}

// runGroup answers a group's waits, until it has none.
func (s *Server) runGroup(g *parkGroup) {
	p := &s.parking
	defer p.wg.Done()
	defer g.watch.Stop()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		p.mu.Lock()
		if len(g.waits) == 0 {
			delete(p.groups, g.q.key)
			p.mu.Unlock()
			return
		}
		next := g.waits[0].deadline
		p.mu.Unlock()
		timer.Reset(time.Until(next))
		recheck := s.recheck.next()
		read, sweep := false, false
		select {
		case <-g.watch.C:
			read = true
		case <-g.kick:
			read = g.stale.Swap(false)
		case <-recheck:
			read, sweep = true, true
		case <-timer.C:
		case <-s.closing:
			p.mu.Lock()
			waits := g.waits.takeAll()
			delete(p.groups, g.q.key)
			p.mu.Unlock()
			s.writeParked(waits, shutdownAnswer())
			return
		}
		if sweep {
			s.sweepParked(g)
		}
		if read {
			g.stale.Store(false)
			a, _ := s.answer(context.Background(), g.q)
			var r parkedAnswer
			switch {
			case a.err != nil:
				r = s.errorAnswer(a.err)
			case a.res.State != batch.Pending:
				r = parkedAnswer{status: http.StatusOK, body: a.bytes()}
			}
			p.mu.Lock()
			var waits []*parkedWait
			if r.status != 0 {
				waits = g.waits.takeAll()
			} else {
				g.last = a
			}
			p.mu.Unlock()
			s.writeParked(waits, r)
		}
		// The waits whose deadline passed get the latest pending answer.
		now := time.Now()
		p.mu.Lock()
		var due []*parkedWait
		for len(g.waits) > 0 && !g.waits[0].deadline.After(now) {
			due = append(due, heap.Pop(&g.waits).(*parkedWait))
		}
		last := g.last
		p.mu.Unlock()
		if len(due) > 0 {
			s.writeParked(due, parkedAnswer{status: http.StatusOK, body: last.bytes()})
		}
	}
}

// sweepParked ends the group's waits whose client went away.
func (s *Server) sweepParked(g *parkGroup) {
	p := &s.parking
	p.mu.Lock()
	var gone []*parkedWait
	kept := g.waits[:0]
	for _, pw := range g.waits {
		if pw.fd >= 0 && clientGone(pw.fd) {
			gone = append(gone, pw)
			continue
		}
		kept = append(kept, pw)
	}
	clear(g.waits[len(kept):])
	g.waits = kept
	heap.Init(&g.waits)
	p.mu.Unlock()
	for _, pw := range gone {
		closeFD(pw.fd)
		pw.release()
	}
}

// parkedAnswer is a response to write to parked waits: a status and a JSON body.
type parkedAnswer struct {
	status int // 0: no answer yet
	body   []byte
}

func shutdownAnswer() parkedAnswer {
	body, _ := json.Marshal(errorBody(batch.EUNAVAILABLE, "the server is shutting down: ask again"))
	return parkedAnswer{status: http.StatusServiceUnavailable, body: body}
}

// errorAnswer is the response to a question that failed (as Server.fail writes it).
func (s *Server) errorAnswer(err error) parkedAnswer {
	code := batch.ErrorCode(err)
	st, ok := status[code]
	if !ok {
		st = http.StatusInternalServerError
	}
	if st >= 500 {
		s.log.Error("parked waits failed", "code", code, "err", err)
	}
	body, _ := json.Marshal(errorBody(code, batch.ErrorMessage(err)))
	return parkedAnswer{status: st, body: body}
}

// writeParked writes r to the waits and closes their connections. The response is built once:
// only each wait's own headers differ. The writes are spread over the process's cores.
func (s *Server) writeParked(waits []*parkedWait, r parkedAnswer) {
	if len(waits) == 0 {
		return
	}
	status := []byte("HTTP/1.1 " + strconv.Itoa(r.status) + " " + http.StatusText(r.status) + "\r\n")
	tail := make([]byte, 0, 160+len(r.body))
	tail = append(tail, "Content-Type: application/json; charset=utf-8\r\nDate: "...)
	tail = time.Now().UTC().AppendFormat(tail, http.TimeFormat)
	tail = append(tail, "\r\nConnection: close\r\nContent-Length: "...)
	tail = strconv.AppendInt(tail, int64(len(r.body)), 10)
	tail = append(tail, "\r\n\r\n"...)
	tail = append(tail, r.body...)
	// Every answer is written before any connection is closed. A close (a FIN, the socket's
	// teardown) costs more than the answer's writev: measured, close 63 % and writev 37 % of
	// batchy's CPU in a wake-up of 1,000 parked waits, nothing else above 1 %. With many waits the
	// closes wait closeDelay, so that they do not take the CPU from the clients reading their
	// answers (on 2 shared cores, the last answer read is the wake-up's latency). An error is the
	// client's: it went away.
	handed := make([]bool, len(waits))
	write := func(from, to int) {
		for i := from; i < to; i++ {
			pw := waits[i]
			if pw.fd >= 0 {
				handed[i] = writeFD(pw.fd, [][]byte{status, pw.headers, tail}, pw.release)
				continue
			}
			bufs := net.Buffers{status, pw.headers, tail}
			bufs.WriteTo(pw.conn)
		}
	}
	closeAll := func() {
		for i, pw := range waits {
			switch {
			case handed[i]:
			case pw.fd >= 0:
				closeFD(pw.fd)
				pw.release()
			default:
				pw.conn.Close()
				pw.release()
			}
		}
	}
	workers := min(runtime.GOMAXPROCS(0), (len(waits)+63)/64)
	if workers <= 1 {
		write(0, len(waits))
		closeAll()
		return
	}
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() { write(i*len(waits)/workers, (i+1)*len(waits)/workers) })
	}
	wg.Wait()
	s.parking.wg.Add(1)
	time.AfterFunc(closeDelay, func() {
		defer s.parking.wg.Done()
		closeAll()
	})
}

// closeParked answers every parked wait at once (shutting down) and waits, at most d, until they
// are written.
func (s *Server) closeParked(d time.Duration) {
	p := &s.parking
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
	}
}

// waitHeap orders parked waits by deadline.
type waitHeap []*parkedWait

func (h waitHeap) Len() int           { return len(h) }
func (h waitHeap) Less(i, j int) bool { return h[i].deadline.Before(h[j].deadline) }
func (h waitHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }

func (h *waitHeap) Push(x any) { *h = append(*h, x.(*parkedWait)) }

func (h *waitHeap) Pop() any {
	old := *h
	pw := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return pw
}

// takeAll empties the heap and returns its waits.
func (h *waitHeap) takeAll() []*parkedWait {
	all := *h
	*h = nil
	return all
}
