package rdb

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
)

// The embedded store's event streams are saved apart from the batch state: rewriting them with
// every transition would make each one cost as much as the whole event history. They go to
// <data file>.events.json every few seconds when they changed, and at shutdown, newest events
// first kept: a crash loses at most the last few seconds of events, never batch state.
const (
	// eventsKept is how many of each stream's newest events the events file holds.
	eventsKept = 1000
	// eventsSaveEvery is how often changed streams are written.
	eventsSaveEvery = 5 * time.Second
)

// eventsFile is the events file's content.
type eventsFile struct {
	Version int                                `json:"version"`
	SavedAt time.Time                          `json:"saved_at"`
	Streams map[string][]miniredis.StreamEntry `json:"streams"`
}

// eventsPath is the events file next to a data file: data/batchy.json → data/batchy.events.json.
func eventsPath(dataFile string) string {
	return strings.TrimSuffix(dataFile, ".json") + ".events.json"
}

// saveEvents writes the streams' newest events when they changed since the last save.
func (e *Embedded) saveEvents() error {
	streams := map[string][]miniredis.StreamEntry{}
	for _, k := range e.srv.Keys() {
		if e.srv.Type(k) != "stream" {
			continue
		}
		entries, err := e.srv.Stream(k)
		if err != nil {
			continue // removed since the listing
		}
		if len(entries) > eventsKept {
			entries = entries[len(entries)-eventsKept:]
		}
		streams[k] = entries
	}
	body, err := json.Marshal(streams)
	if err != nil {
		return fmt.Errorf("rdb.Embedded: events: %w", err)
	}
	sum := sha256.Sum256(body)
	e.eventsMu.Lock()
	defer e.eventsMu.Unlock()
	if bytes.Equal(sum[:], e.eventsSum[:]) {
		return nil
	}
	data, err := json.Marshal(eventsFile{Version: 1, SavedAt: time.Now().UTC(), Streams: streams})
	if err != nil {
		return fmt.Errorf("rdb.Embedded: events: %w", err)
	}
	if err := WriteFileAtomic(eventsPath(e.path), data, 0o600); err != nil {
		return fmt.Errorf("rdb.Embedded: events: %w", err)
	}
	e.eventsSum = sum
	return nil
}

// saveEventsEvery saves the streams periodically until stop is closed.
func (e *Embedded) saveEventsEvery(every time.Duration, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			e.saveEvents() // a failed save is retried at the next tick and at shutdown
		}
	}
}

// loadEvents fills srv's streams from the events file at path; a missing file is no events.
func loadEvents(srv *miniredis.Miniredis, path string) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("rdb: reading events file: %w", err)
	}
	var ef eventsFile
	if err := json.Unmarshal(data, &ef); err != nil || ef.Version != 1 {
		return fmt.Errorf("rdb: events file %s is not valid (%v): move it away to start without past events", path, err)
	}
	for k, entries := range ef.Streams {
		for _, en := range entries {
			if _, err := srv.XAdd(k, en.ID, en.Values); err != nil {
				return fmt.Errorf("rdb: events file %s: stream %s entry %s: %v", path, k, en.ID, err)
			}
		}
	}
	return nil
}
