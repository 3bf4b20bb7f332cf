package rdb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// Embedded is the in-process Redis-compatible server batchy runs on when no Redis is configured,
// with its data saved to a file after every change and loaded again at start (its event streams
// to a file of their own, every few seconds: embedded_events.go).
type Embedded struct {
	srv    *miniredis.Miniredis
	client *redis.Client
	path   string
	lock   *os.File // held (flock) while running, so two processes never share a data file

	mu      sync.Mutex
	cond    *sync.Cond
	want    uint64 // changes asked to be saved
	done    uint64 // changes saved (as far as the last finished save covers)
	saving  bool
	lastErr error

	eventsMu   sync.Mutex
	eventsSum  [32]byte      // what the events file last written holds
	stopEvents chan struct{} // closed by Close
	eventsDone chan struct{} // closed when the periodic events save has stopped
}

// dataFile is the data file's content: every key with its type and value.
type dataFile struct {
	Version int                `json:"version"`
	SavedAt time.Time          `json:"saved_at"`
	Keys    map[string]dataKey `json:"keys"`
}

type dataKey struct {
	Type  string   `json:"type"`
	Value []string `json:"value"` // hash: field, value...; zset: member, score...; set, list: members; string: [value]
}

// scriptSnapshot reads every key of the embedded server in one atomic step, so a saved file never
// mixes states from before and after a transition. Event streams are left out: writing them on
// every change would make each transition rewrite up to --events-keep events per workflow; the
// embedded store keeps events in memory only.
// No KEYS, no ARGV. Result: {key, type, {values}, ...}.
var scriptSnapshot = redis.NewScript(`
local out = {}
for _, k in ipairs(redis.call('KEYS', '*')) do
  local t = redis.call('TYPE', k)
  if type(t) == 'table' then t = t['ok'] end
  local v
  if t == 'hash' then v = redis.call('HGETALL', k)
  elseif t == 'zset' then v = redis.call('ZRANGE', k, 0, -1, 'WITHSCORES')
  elseif t == 'set' then v = redis.call('SMEMBERS', k)
  elseif t == 'list' then v = redis.call('LRANGE', k, 0, -1)
  elseif t == 'string' then v = {redis.call('GET', k)}
  elseif t == 'stream' then v = nil -- events: kept in memory only (see docs/redis.md)
  else return redis.error_reply('ERR the embedded store cannot save key ' .. k .. ' of type ' .. t) end
  if v then
    out[#out + 1] = k
    out[#out + 1] = t
    out[#out + 1] = v
  end
end
return out
`)

// StartEmbedded starts the embedded store on a loopback port and loads path if it exists. An
// empty path keeps the data in memory only.
func StartEmbedded(path string) (*Embedded, error) {
	srv := miniredis.NewMiniRedis()
	var lock *os.File
	if path != "" {
		var err error
		if lock, err = lockFile(path); err != nil {
			return nil, err
		}
		removeStaleTemps(path)
		removeStaleTemps(eventsPath(path))
		if err := load(srv, path); err != nil {
			lock.Close()
			return nil, err
		}
		if err := loadEvents(srv, eventsPath(path)); err != nil {
			lock.Close()
			return nil, err
		}
	}
	if err := srv.StartAddr("127.0.0.1:0"); err != nil {
		if lock != nil {
			lock.Close()
		}
		return nil, fmt.Errorf("rdb.StartEmbedded: %w", err)
	}
	e := &Embedded{srv: srv, path: path, lock: lock, client: redis.NewClient(&redis.Options{Addr: srv.Addr()})}
	e.cond = sync.NewCond(&e.mu)
	if path != "" {
		e.stopEvents, e.eventsDone = make(chan struct{}), make(chan struct{})
		go e.saveEventsEvery(eventsSaveEvery, e.stopEvents, e.eventsDone)
	}
	return e, nil
}

// Client returns a client connected to the embedded server.
func (e *Embedded) Client() *redis.Client { return e.client }

// Path returns the data file's path, "" when the data is kept in memory only.
func (e *Embedded) Path() string { return e.path }

// Save writes the data file, returning once a save that began after the call has finished.
// Concurrent callers share saves (group commit), so a burst of changes costs few writes.
func (e *Embedded) Save(ctx context.Context) error {
	if e.path == "" {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.want++
	mine := e.want
	for e.done < mine {
		if e.saving {
			e.cond.Wait()
			continue
		}
		e.saving = true
		covers := e.want
		e.mu.Unlock()
		err := e.saveNow(ctx)
		e.mu.Lock()
		e.saving = false
		e.lastErr = err
		if err == nil {
			e.done = covers
		}
		e.cond.Broadcast()
		if err != nil {
			return err
		}
	}
	return nil
}

func (e *Embedded) saveNow(ctx context.Context) error {
	v, err := scriptSnapshot.Run(context.WithoutCancel(ctx), e.client, nil).Result()
	if err != nil {
		return fmt.Errorf("rdb.Embedded.Save: %w", err)
	}
	df := dataFile{Version: 1, SavedAt: time.Now().UTC(), Keys: map[string]dataKey{}}
	list := asList(v)
	for i := 0; i+2 < len(list); i += 3 {
		vals := asList(list[i+2])
		k := dataKey{Type: str(list[i+1]), Value: make([]string, len(vals))}
		for j, x := range vals {
			k.Value[j] = str(x)
		}
		df.Keys[str(list[i])] = k
	}
	data, err := json.Marshal(df)
	if err != nil {
		return fmt.Errorf("rdb.Embedded.Save: %w", err)
	}
	return WriteFileAtomic(e.path, data, 0o600)
}

// Close saves the data file and the events file one last time, stops the server and releases the
// data file.
func (e *Embedded) Close() error {
	err := e.Save(context.Background())
	if e.stopEvents != nil {
		close(e.stopEvents)
		<-e.eventsDone
		err = errors.Join(err, e.saveEvents())
	}
	e.client.Close()
	e.srv.Close()
	if e.lock != nil {
		e.lock.Close() // closing releases the flock
	}
	return err
}

// lockFile takes an exclusive lock on path's ".lock" companion, failing at once when another
// process holds it: two stores writing one data file would overwrite each other's changes.
func lockFile(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("rdb: data file directory: %w", err)
	}
	f, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("rdb: locking data file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("rdb: data file %s is in use by another batchy process (stop it first, or use another --data-file)", path)
	}
	return f, nil
}

// load fills srv from the data file at path; a missing file is an empty store.
func load(srv *miniredis.Miniredis, path string) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("rdb: reading data file: %w", err)
	}
	var df dataFile
	if err := json.Unmarshal(data, &df); err != nil {
		return fmt.Errorf("rdb: data file %s is not valid (%v): restore it from a backup or move it away", path, err)
	}
	if df.Version != 1 {
		return fmt.Errorf("rdb: data file %s has version %d, this batchy reads version 1", path, df.Version)
	}
	for key, k := range df.Keys {
		switch k.Type {
		case "hash":
			srv.HSet(key, k.Value...)
		case "zset":
			for i := 0; i+1 < len(k.Value); i += 2 {
				score, err := strconv.ParseFloat(k.Value[i+1], 64)
				if err != nil {
					return fmt.Errorf("rdb: data file %s: key %s: bad score %q", path, key, k.Value[i+1])
				}
				srv.ZAdd(key, score, k.Value[i])
			}
		case "set":
			srv.SAdd(key, k.Value...)
		case "list":
			srv.RPush(key, k.Value...)
		case "string":
			if len(k.Value) == 1 {
				srv.Set(key, k.Value[0])
			}
		default:
			return fmt.Errorf("rdb: data file %s: key %s has unknown type %q", path, key, k.Type)
		}
	}
	return nil
}

// removeStaleTemps deletes the temporary files of saves a crash interrupted (WriteFileAtomic's
// ".<name>.tmp-*"). The caller holds the data file's lock, so no save of another process is
// writing one.
func removeStaleTemps(path string) {
	stale, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*"))
	for _, f := range stale {
		os.Remove(f)
	}
}

// WriteFileAtomic replaces path with data so that a crash at any moment leaves either the old or
// the new content: write a temporary file in the same directory, sync it, rename it over path,
// then sync the directory so the rename itself is durable.
func WriteFileAtomic(path string, data []byte, perm fs.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
