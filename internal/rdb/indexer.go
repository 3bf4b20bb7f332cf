package rdb

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/event"
)

// indexDelay is how long a change's index write waits for more changes of the same workflow to
// share it. On the embedded store, where index.lua costs a fresh Lua interpreter, 50 ms took
// open+close at c16 from about 1,500 to about 2,100 pairs/s (10 ms shared a write between two
// changes or so).
const indexDelay = 50 * time.Millisecond

// indexer coalesces the index writes of a store's changes (index.go): a workflow changed several
// times within indexDelay gets one write, of its latest state. Under load (many transitions of
// the same workflows) the index then costs Redis a fraction of a call per transition instead of
// an index.lua run each (2 to 6 calls); a single change waits indexDelay. What this process reads
// of the index (the lists, the scheduler's due and changed workflows) is written first: it always
// sees its own changes.
type indexer struct {
	write func(ctx context.Context, p *pendingIndex) error

	mu      sync.Mutex
	pending map[string]*pendingIndex
	armed   bool

	flushMu sync.Mutex // one flush at a time: a read waits for a flush in progress
}

// pendingIndex is a workflow's index write to come: its latest state, that change's event entry
// ID, and whether any of the coalesced changes was a load or may wake after: dependents.
type pendingIndex struct {
	st         *batch.State
	rev        string
	load, wake bool
	// lastSuccess and lastFailure are those of the coalesced states before st: a success followed
	// within indexDelay by a failure is still the workflow's last success.
	lastSuccess, lastFailure *time.Time
}

func newIndexer(write func(ctx context.Context, p *pendingIndex) error) *indexer {
	return &indexer{write: write, pending: map[string]*pendingIndex{}}
}

// add queues a workflow's index write after a change.
func (x *indexer) add(st *batch.State, rev string, load, wake bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	p := x.pending[st.Workflow]
	if p == nil {
		x.pending[st.Workflow] = &pendingIndex{st: st, rev: rev, load: load, wake: wake}
	} else {
		older := st
		if laterRev(rev, p.rev) { // two requests may return in another order than they changed
			older, p.st, p.rev = p.st, st, rev
		}
		success, failure := outcome(older)
		p.lastSuccess, p.lastFailure = latest(p.lastSuccess, success), latest(p.lastFailure, failure)
		p.load, p.wake = p.load || load, p.wake || wake
	}
	if !x.armed {
		x.armed = true
		time.AfterFunc(indexDelay, func() { x.flush(context.Background()) })
	}
}

// outcome is the last success and last failure that the change which made st shows, as
// batch.Summarize would find them in st, from the change's records instead of every job's dates
// (the coalescing runs on the request's path): a fail is a failure at its time; a close that left
// every job in success is a success at its time, the latest batch_end of the workflow.
func outcome(st *batch.State) (success, failure *time.Time) {
	for i := range st.Changes {
		c := &st.Changes[i]
		switch c.Type {
		case event.TypeFail:
			failure = latest(failure, &c.Time)
		case event.TypeClose:
			if allSucceeded(st) {
				success = latest(success, &c.Time)
			}
		}
	}
	return success, failure
}

func allSucceeded(st *batch.State) bool {
	for _, j := range st.Jobs {
		if j.Fields.Status() != batch.StatusSuccess {
			return false
		}
	}
	return len(st.Jobs) > 0
}

// latest is the later of two optional times.
func latest(a, b *time.Time) *time.Time {
	if a == nil || (b != nil && b.After(*a)) {
		return b
	}
	return a
}

// flush writes the queued index writes now.
func (x *indexer) flush(ctx context.Context) {
	x.flushMu.Lock()
	defer x.flushMu.Unlock()
	x.mu.Lock()
	batch := x.pending
	x.pending = map[string]*pendingIndex{}
	x.armed = false
	x.mu.Unlock()
	for _, p := range batch {
		// A failed write leaves the entry to the workflow's next change or to RebuildIndex.
		_ = x.write(context.WithoutCancel(ctx), p)
	}
}

// laterRev says whether event entry ID a ("<ms>-<seq>") comes after b.
func laterRev(a, b string) bool {
	am, as := splitRev(a)
	bm, bs := splitRev(b)
	return am > bm || (am == bm && as > bs)
}

func splitRev(r string) (int64, int64) {
	m, s, _ := strings.Cut(r, "-")
	ms, _ := strconv.ParseInt(m, 10, 64)
	seq, _ := strconv.ParseInt(s, 10, 64)
	return ms, seq
}

// FlushIndex writes the index writes of this store's changes that are still waiting (up to
// indexDelay) now: before a shutdown, or before comparing the whole of Redis in a test.
func (s *Store) FlushIndex(ctx context.Context) { s.ix.flush(ctx) }
