package config

import (
	"context"
	"os"
	"sync"
	"time"

	"github.com/batchy/batchy/internal/batch"
)

// Unloaded lists the workflows of a configuration directory that were never loaded, and tells
// which names have a file, for the lists that show them. Listing the directory and asking the
// store about every name costs as much as the directory holds files, so the answers are kept and
// read again only when they may have changed: the listing when the directory changed (a file
// added, removed or renamed changes its modification time), the never-loaded names also when the
// number of loaded workflows did (a first load; workflows are never unloaded). The zero value is
// ready to use.
type Unloaded struct {
	mu sync.Mutex
	// The listing: the configured names of dir (List) at its modification time mtime.
	dir        string
	mtime      time.Time
	configured map[string]bool
	listed     []string
	// The never-loaded names of that listing, with loaded workflows in the store; valid unless
	// the listing changed since.
	loaded int
	names  []string
	valid  bool
}

// list reads dir's listing again when it changed (u.mu held); ok is false when there is no
// directory, which configures nothing.
func (u *Unloaded) list(dir string) (ok bool, err error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return false, nil // no directory: nothing configured (List says the same)
	}
	if u.configured != nil && u.dir == dir && u.mtime.Equal(fi.ModTime()) {
		return true, nil
	}
	names, err := List(dir)
	if batch.ErrorCode(err) == batch.ENOTFOUND {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	set := make(map[string]bool, len(names))
	for _, n := range names {
		set[n] = true
	}
	u.dir, u.mtime, u.listed, u.configured, u.valid = dir, fi.ModTime(), names, set, false
	return true, nil
}

// Get returns the never-loaded workflows of dir, sorted, given the number of loaded workflows and
// a way to ask which names are loaded.
func (u *Unloaded) Get(ctx context.Context, dir string, loadedTotal int, isLoaded func(context.Context, []string) ([]bool, error)) ([]string, error) {
	if dir == "" {
		return nil, nil
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if ok, err := u.list(dir); !ok {
		return nil, err
	}
	if u.valid && u.loaded == loadedTotal {
		return u.names, nil
	}
	loaded, err := isLoaded(ctx, u.listed)
	if err != nil {
		return nil, err
	}
	var out []string
	for i, n := range u.listed {
		if !loaded[i] {
			out = append(out, n)
		}
	}
	u.loaded, u.names, u.valid = loadedTotal, out, true
	return out, nil
}

// Configured returns a test of whether a workflow has a configuration file in dir: one look at
// the directory's modification time, however many names are tested.
func (u *Unloaded) Configured(dir string) (func(name string) bool, error) {
	if dir == "" {
		return func(string) bool { return false }, nil
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if ok, err := u.list(dir); !ok {
		return func(string) bool { return false }, err
	}
	set := u.configured // replaced, never changed, by a later listing
	return func(name string) bool { return set[name] }, nil
}
