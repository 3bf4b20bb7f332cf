// Package notify wakes the waiters of a batchy process when a workflow changes. Every transition
// script publishes the workflow's name on one Redis channel; a Hub holds ONE subscription to it
// (through a Source, rdb.Store) and fans each message out to the waiters of that workflow inside
// the process, so a thousand waiters cost one Redis connection, not a thousand.
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
	count   int
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
	return &Hub{source: source, log: log, waiters: map[string]map[*Waiter]struct{}{}}
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
}

// Waiters returns how many waiters are registered.
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
}

// Run keeps the subscription until ctx ends, re-establishing it after any error.
func (h *Hub) Run(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := h.source.ListenChanges(ctx, h.wakeAll, h.wake)
		if ctx.Err() != nil {
			return
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
