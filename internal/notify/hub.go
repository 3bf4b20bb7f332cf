// Package notify wakes the waiters of a batchy process when a workflow changes. Every transition
// script publishes the workflow's name on one Redis channel; a Hub holds ONE subscription to it
// (through a Source, rdb.Store) and fans each message out to the waiters of that workflow inside
// the process, so a thousand waiters cost one Redis connection, not a thousand. The subscription
// is held only while the process has waiters (and a short while after the last one left): a
// process that nobody waits on neither receives nor reads a message per transition.
package notify

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Source delivers the change notifications (rdb.Store).
type Source interface {
	// ListenChanges holds one subscription until it fails or ctx ends, and returns why. It calls
	// subscribed each time the subscription is established (messages published before may have
	// been missed) and changed with the name of each workflow that changed.
	ListenChanges(ctx context.Context, subscribed func(), changed func(wf string)) error
}

// Hub fans workflow change notifications out to waiters.
type Hub struct {
	source Source
	log    *slog.Logger

	mu      sync.Mutex
	waiters map[string]map[*Waiter]struct{} // by workflow
	// followers are the change streams' (follow.go); count counts them too.
	followers map[*Follower]struct{}
	count     int
	idle      time.Time     // when count last fell to 0
	wanted    chan struct{} // signalled when a waiter arrives (Run may be waiting for one)
	// idleGrace is how long the subscription stays after the last waiter left.
	idleGrace time.Duration
}

// Waiter receives a signal on C when one of its workflows may have changed. C is buffered (one
// pending signal), so a burst of changes costs one re-check.
type Waiter struct {
	C         <-chan struct{}
	c         chan struct{}
	workflows []string
	hub       *Hub
}

// NewHub returns a hub on source; call Run to start the subscription. Source may be nil for a hub
// whose Run is never called: its waiters are never woken.
func NewHub(source Source, log *slog.Logger) *Hub {
	if log == nil {
		log = slog.Default()
	}
	return &Hub{source: source, log: log, waiters: map[string]map[*Waiter]struct{}{}, wanted: make(chan struct{}, 1), idleGrace: 30 * time.Second}
}

// Watch registers a waiter for the workflows. Register before reading the state it waits on, so
// a change between the read and the wait still wakes it. Call Stop when done.
func (h *Hub) Watch(workflows ...string) *Waiter {
	c := make(chan struct{}, 1)
	w := &Waiter{C: c, c: c, workflows: workflows, hub: h}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, wf := range workflows {
		if h.waiters[wf] == nil {
			h.waiters[wf] = map[*Waiter]struct{}{}
		}
		h.waiters[wf][w] = struct{}{}
	}
	h.count++
	select {
	case h.wanted <- struct{}{}:
	default:
	}
	return w
}

// Stop unregisters the waiter.
func (w *Waiter) Stop() {
	h := w.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, wf := range w.workflows {
		delete(h.waiters[wf], w)
		if len(h.waiters[wf]) == 0 {
			delete(h.waiters, wf)
		}
	}
	h.count--
	if h.count == 0 {
		h.idle = time.Now()
	}
}

// Waiters returns how many waiters and followers are registered.
func (h *Hub) Waiters() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.count
}

func (w *Waiter) signal() {
	select {
	case w.c <- struct{}{}:
	default: // a signal is already pending
	}
}

// wake signals the waiters of one workflow.
func (h *Hub) wake(wf string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for w := range h.waiters[wf] {
		w.signal()
	}
	for f := range h.followers {
		if f.match(wf) {
			f.add(wf)
		}
	}
}

// wakeAll signals every waiter: after the subscription was (re)established, messages may have been
// missed, so everyone re-checks.
func (h *Hub) wakeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, ws := range h.waiters {
		for w := range ws {
			w.signal()
		}
	}
	for f := range h.followers {
		f.miss()
	}
}

// Run holds the subscription while the hub has waiters, until ctx ends, re-establishing it after
// any error. A waiter that arrives while there is none is woken once it is in place (subscribed
// wakes everyone), so it re-checks what it read before: nothing published meanwhile is missed.
func (h *Hub) Run(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		if !h.waitForWaiters(ctx) {
			return
		}
		sub, stop := context.WithCancel(ctx)
		idle := make(chan struct{})
		go h.stopWhenIdle(sub, stop, idle)
		err := h.source.ListenChanges(sub, h.wakeAll, h.wake)
		stop()
		if ctx.Err() != nil {
			return
		}
		select {
		case <-idle: // dropped on purpose: no waiter for idleGrace
			backoff = 100 * time.Millisecond
			continue
		default:
		}
		h.log.Warn("notification subscription lost; re-subscribing", "err", err, "retry_in", backoff)
		h.wakeAll()
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// waitForWaiters returns once the hub has a waiter; false if ctx ended first.
func (h *Hub) waitForWaiters(ctx context.Context) bool {
	for {
		if h.Waiters() > 0 {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-h.wanted:
		}
	}
}

// stopWhenIdle ends the subscription (stop) once the hub has had no waiter for idleGrace, and
// then closes idle; it returns when sub ends.
func (h *Hub) stopWhenIdle(sub context.Context, stop context.CancelFunc, idle chan<- struct{}) {
	t := time.NewTicker(max(h.idleGrace/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-sub.Done():
			return
		case <-t.C:
			h.mu.Lock()
			quiet := h.count == 0 && time.Since(h.idle) >= h.idleGrace
			h.mu.Unlock()
			if quiet {
				close(idle)
				stop()
				return
			}
		}
	}
}
