package rdb

import (
	"context"
	"time"
)

// ScriptApply is apply.lua, for the tests that call it directly.
var ScriptApply = scriptApply

// SetJournalWriteHook makes every write of the embedded store's files call f first, failing with
// its error (nil: the write goes ahead); nil removes the hook.
func SetJournalWriteHook(f func(name string) error) {
	if f == nil {
		writeHook.Store(nil)
		return
	}
	writeHook.Store(&f)
}

// SetCompactAfter sets the journal size past which a snapshot is written, until the test ends.
func SetCompactAfter(t interface{ Cleanup(func()) }, n int64) {
	old := compactAfter
	compactAfter = n
	t.Cleanup(func() { compactAfter = old })
}

// FlushIndex writes s's coalesced index writes now (indexer.go).
func FlushIndex(ctx context.Context, s *Store) { s.FlushIndex(ctx) }

// ExpireBy moves the embedded store's TTLs along by d now (what expireEvery does every minute).
func ExpireBy(e *Embedded, d time.Duration) { e.expireBy(d) }
