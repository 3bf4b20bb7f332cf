package notify

import (
	"slices"
	"sync"
	"time"
)

// Follower collects the names of the workflows that changed among those its match accepts, for
// a change stream (GET /v1/changes): one follower per stream, whatever the workflows it covers, so
// an idle stream costs nothing per workflow and a change costs one match per follower. Unlike a
// Waiter, which only learns that one of its workflows changed, a follower keeps which ones did, so
// that a burst of changes of a workflow becomes one name to report.
type Follower struct {
	// C receives a signal when names are waiting to be taken. It is buffered (one pending signal).
	C     <-chan struct{}
	c     chan struct{}
	match func(wf string) bool
	hub   *Hub

	mu      sync.Mutex
	changed map[string]struct{}
	missed  bool
}

// Follow registers a follower of the workflows match accepts. match runs under the hub's lock
// for every change of the installation: it must be quick. Call Stop when done.
func (h *Hub) Follow(match func(wf string) bool) *Follower {
	c := make(chan struct{}, 1)
	f := &Follower{C: c, c: c, match: match, hub: h, changed: map[string]struct{}{}}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.followers == nil {
		h.followers = map[*Follower]struct{}{}
	}
	h.followers[f] = struct{}{}
	h.count++ // a follower keeps the subscription as a waiter does
	select {
	case h.wanted <- struct{}{}:
	default:
	}
	return f
}

// Stop unregisters the follower.
func (f *Follower) Stop() {
	h := f.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.followers[f]; !ok {
		return
	}
	delete(h.followers, f)
	h.count--
	if h.count == 0 {
		h.idle = time.Now()
	}
}

// Take returns the workflows that changed since the last Take, sorted, and whether changes may
// have been missed meanwhile (the subscription was established again): then the follower's
// reader should read everything it shows again.
func (f *Follower) Take() (names []string, missed bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for wf := range f.changed {
		names = append(names, wf)
	}
	clear(f.changed)
	missed, f.missed = f.missed, false
	slices.Sort(names)
	return names, missed
}

func (f *Follower) add(wf string) {
	f.mu.Lock()
	f.changed[wf] = struct{}{}
	f.mu.Unlock()
	f.signal()
}

func (f *Follower) miss() {
	f.mu.Lock()
	f.missed = true
	f.mu.Unlock()
	f.signal()
}

func (f *Follower) signal() {
	select {
	case f.c <- struct{}{}:
	default: // a signal is already pending
	}
}
