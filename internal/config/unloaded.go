package config

import (
	"context"
	"os"
	"sync"
	"time"

	"github.com/batchy/batchy/internal/batch"
)

// Unloaded lists the workflows of a configuration directory that were never loaded, for the lists
// that show them. Listing the directory and asking the store about every name costs as much as the
// directory holds files, so the answer is kept and read again only when it may have changed: when
// the directory changed (a file added, removed or renamed changes its modification time) or the
// number of loaded workflows did (a first load; workflows are never unloaded). The zero value is
// ready to use.
type Unloaded struct {
	mu     sync.Mutex
	dir    string
	mtime  time.Time
	loaded int
	names  []string
	valid  bool
}

// Get returns the never-loaded workflows of dir, sorted, given the number of loaded workflows and
// a way to ask which names are loaded.
func (u *Unloaded) Get(ctx context.Context, dir string, loadedTotal int, isLoaded func(context.Context, []string) ([]bool, error)) ([]string, error) {
	if dir == "" {
		return nil, nil
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, nil // no directory: nothing configured (List says the same)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.valid && u.dir == dir && u.mtime.Equal(fi.ModTime()) && u.loaded == loadedTotal {
		return u.names, nil
	}
	configured, err := List(dir)
	if batch.ErrorCode(err) == batch.ENOTFOUND {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	loaded, err := isLoaded(ctx, configured)
	if err != nil {
		return nil, err
	}
	var out []string
	for i, n := range configured {
		if !loaded[i] {
			out = append(out, n)
		}
	}
	u.dir, u.mtime, u.loaded, u.names, u.valid = dir, fi.ModTime(), loadedTotal, out, true
	return out, nil
}
