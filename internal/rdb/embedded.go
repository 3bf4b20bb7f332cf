package rdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	lua "github.com/yuin/gopher-lua"
)

// Embedded is the in-process Redis-compatible server (miniredis) batchy runs on when no Redis is
// configured, made durable the way Redis's own append-only file is, with appendfsync always:
//
//   - every command that changes data is appended to a journal (<data file>.<gen>.wal) and the
//     journal is fsynced before the command's reply is given; concurrent writers share an fsync
//     (group commit). The journal holds the commands themselves (a transition is one EVALSHA with
//     its arguments: a few hundred bytes), so a change costs what it changed, whatever the size of
//     the installation.
//   - no reply, to anyone, shows a change before it is durable: a read waits for the journal to
//     cover every write it may have seen (Redis holds replies until its AOF is written in the same
//     way).
//   - when the journal grows past the last snapshot's size (and at least compactAfter), a snapshot
//     of every key (<data file>.<gen>.snap) is written and older files are removed.
//   - at start, the newest snapshot is loaded and the journals from its generation on are replayed.
//     Every record carries a CRC-32C: a record a crash cut short at the end of the journal is
//     dropped with a log line; damage anywhere else refuses to start, naming the file and offset.
//   - when the journal cannot be written (disk full, I/O error), the writes not yet on disk are
//     answered with an error and undone (the memory is reloaded from the files), and writes are
//     refused until a new snapshot can be written; reads and Ping keep answering (Ping with why).
//
// The data file itself holds only a marker and is the lock: it is flocked, so links, symlinks and
// bind mounts of it cannot start a second server on the same data.
type Embedded struct {
	srv    *miniredis.Miniredis
	client *redis.Client // what batchy uses: every command passes the journal hook
	raw    *redis.Client // replay and snapshots: no hook
	files  *storeFiles   // nil: memory only
	sock   string        // the Unix socket batchy's clients use (listenUnix)
	unix   net.Listener
	log    *slog.Logger

	// wmu orders writes: a write runs and is appended to the journal buffer while holding it, so
	// the journal's order is the order miniredis ran them in.
	wmu     sync.Mutex
	scripts map[string]string // sha1 → source of every script seen, declared at each journal's start
	// lastEntry is the last entry ID of event streams applyDirect wrote, until another write
	// (which may have added one) forgets them.
	lastEntry map[string]string
	broken    error // why writes are refused

	mu         sync.Mutex // the journal state below
	cond       *sync.Cond
	wal        journalFile
	buf        []byte // records appended, not yet written
	appended   uint64 // seq of the last record in buf (or written)
	walSize    int64  // bytes of the journal written and synced
	syncing    bool
	failing    bool   // a write failed: nothing is written until fail has undone it
	failedFrom uint64 // records after this seq ...
	failedUpTo uint64 // ... and up to this one were lost to a failed write
	failErr    error
	snapSize   int64
	compacting bool
	closed     bool
	compactWG  sync.WaitGroup
	stopTTL    chan struct{} // closed by Close: expireEvery stops
	stopOnce   sync.Once

	issued  atomic.Uint64 // seq of the last write started
	durable atomic.Uint64 // seq of the last write on disk
	epoch   atomic.Uint64 // counts rollbacks: a read that saw undone writes reads again
}

// EmbeddedOptions configure OpenEmbedded.
type EmbeddedOptions struct {
	// Repair starts on a damaged journal by keeping its records before the damage (and moving
	// the rest aside), instead of refusing to start.
	Repair bool
	Logger *slog.Logger
}

func init() {
	// miniredis runs each script in a new gopher-lua state, whose value stack (the registry) is
	// 5,120 slots by default: an 80 KB allocation per script, above the Go allocator's 32 KB
	// small-object limit, so every script took the heap lock twice and left a large span to sweep
	// (measured: 60 % of the embedded store's CPU under load was the heap lock and the sweeper).
	// 2,000 slots (32,000 bytes) are a small object. Batchy's scripts unpack at most 1,000 values
	// at a time (lua/lib.lua chunked), and a workflow's transition about two per job: the embedded
	// store takes workflows of up to EmbeddedMaxJobs jobs (Options.MaxJobs). gopher-lua is used by
	// miniredis alone.
	lua.RegistrySize = 2000
	lua.CallStackSize = 64 // the scripts call a few functions deep
}

// EmbeddedMaxJobs is the most jobs a workflow may have on the embedded store (see init).
const EmbeddedMaxJobs = 900

// compactAfter is the journal size below which no snapshot is written: replaying this much at
// start takes about a second.
var compactAfter int64 = 16 << 20 // changed by tests only, before any store starts

// StartEmbedded starts the embedded store on a loopback port with its data file at path (""
// keeps the data in memory only).
func StartEmbedded(path string) (*Embedded, error) {
	return OpenEmbedded(path, EmbeddedOptions{})
}

// OpenEmbedded starts the embedded store, recovering its data from path's snapshot and journal.
func OpenEmbedded(path string, opts EmbeddedOptions) (*Embedded, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	e := &Embedded{srv: miniredis.NewMiniRedis(), log: opts.Logger, scripts: map[string]string{}, lastEntry: map[string]string{}}
	e.cond = sync.NewCond(&e.mu)
	// TTLs (the alert marks' only) do not run on miniredis's clock: with ClockTTL every command
	// after a clock change walks and sorts every key. expireEvery moves them along instead.
	e.srv.SetTime(time.Now())
	if err := e.srv.StartAddr("127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("rdb.StartEmbedded: %w", err)
	}
	if err := e.listenUnix(); err != nil {
		e.srv.Close()
		return nil, err
	}
	e.raw = redis.NewClient(&redis.Options{Network: "unix", Addr: e.sock, MaxRetries: -1})
	if path != "" {
		files, err := lockStoreFiles(path)
		if err == nil {
			e.files = files
			if err = e.recover(opts.Repair); err != nil {
				files.unlock()
			}
		}
		if err != nil {
			e.raw.Close()
			e.unix.Close()
			os.RemoveAll(filepath.Dir(e.sock))
			e.srv.Close()
			return nil, err
		}
	}
	e.client = redis.NewClient(&redis.Options{Network: "unix", Addr: e.sock})
	if e.files != nil {
		e.client.AddHook(journalHook{e})
	}
	e.stopTTL = make(chan struct{})
	go e.expireEvery(ttlEvery)
	return e, nil
}

// ttlEvery is how often keys with a TTL are expired.
const ttlEvery = time.Minute

// expireEvery moves the TTLs of keys along by the time passed, every so often (a walk of every
// key: miniredis's FastForward), journaled so that a replay expires the same keys at the same
// point.
func (e *Embedded) expireEvery(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-e.stopTTL:
			return
		case now := <-t.C:
			e.expireBy(now.Sub(last))
			last = now
		}
	}
}

// expireBy moves the TTLs along by d, journaled.
func (e *Embedded) expireBy(d time.Duration) {
	e.wmu.Lock()
	defer e.wmu.Unlock()
	if e.broken != nil {
		return
	}
	e.srv.FastForward(d)
	if e.files == nil {
		return
	}
	seq := e.issued.Add(1)
	w := payloadWriter{recExpire}
	w.uint(seq)
	w.int(int64(d))
	e.mu.Lock()
	e.buf = appendFrame(e.buf, w)
	e.appended = seq
	e.mu.Unlock()
}

// listenUnix serves the embedded server on a Unix socket of a private temporary directory as well:
// batchy's clients use it, which costs the kernel less per command than TCP on loopback.
func (e *Embedded) listenUnix() error {
	dir, err := os.MkdirTemp("", "batchy-embedded-")
	if err != nil {
		return fmt.Errorf("rdb.StartEmbedded: %w", err)
	}
	e.sock = filepath.Join(dir, "redis.sock")
	l, err := net.Listen("unix", e.sock)
	if err != nil {
		os.RemoveAll(dir)
		return fmt.Errorf("rdb.StartEmbedded: %w", err)
	}
	e.unix = l
	srv := e.srv.Server()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return // closed by Close
			}
			srv.ServeConn(c)
		}
	}()
	return nil
}

// Client returns a client connected to the embedded server.
func (e *Embedded) Client() *redis.Client { return e.client }

// Path returns the data file's path, "" when the data is kept in memory only.
func (e *Embedded) Path() string {
	if e.files == nil {
		return ""
	}
	return e.files.path
}

// Close writes a snapshot (so that the next start replays nothing), stops the server and releases
// the data file.
func (e *Embedded) Close() error {
	e.stopOnce.Do(func() { close(e.stopTTL) })
	var err error
	if e.files != nil {
		e.mu.Lock()
		e.closed = true
		e.mu.Unlock()
		e.compactWG.Wait()
		e.wmu.Lock()
		if e.broken == nil {
			err = e.compactLocked()
		}
		// From here on writes are refused before they run: a request still in flight gets an
		// error, not a write into a journal being closed.
		e.broken = errStoreClosed
		e.wmu.Unlock()
		e.mu.Lock()
		for e.syncing || e.failing {
			e.cond.Wait()
		}
		e.mu.Unlock()
	}
	e.client.Close()
	e.raw.Close()
	e.unix.Close()
	os.RemoveAll(filepath.Dir(e.sock))
	e.srv.Close()
	if e.files != nil {
		e.mu.Lock()
		if e.wal.f != nil {
			e.wal.f.Close()
		}
		e.mu.Unlock()
		e.files.unlock()
	}
	return err
}

// errStoreClosed is why writes are refused after Close.
var errStoreClosed = errors.New("the embedded store is closed")

// writeRefused is the error a write gets while the journal cannot be written.
func writeRefused(cause error) error {
	return fmt.Errorf("LOADING the embedded store refuses writes: its journal could not be written (%v); reads still work", cause)
}

// write runs a changing command (or a pipeline) and journals it; it returns once the journal
// holding it is on disk.
func (e *Embedded) write(ctx context.Context, cmds []redis.Cmder, run func(context.Context) error) error {
	e.wmu.Lock()
	if e.broken != nil {
		err := redis.Error(proto(writeRefused(e.broken)))
		e.wmu.Unlock()
		for _, c := range cmds {
			c.SetErr(err)
		}
		return err
	}
	now := time.Now()
	e.srv.SetTime(now)
	seq := e.issued.Add(1)
	clear(e.lastEntry)
	// A cancelled context must not leave the command's fate unknown: it is on loopback to this
	// process and always completes.
	err := run(context.WithoutCancel(ctx))
	if err != nil && !isReply(err) {
		// Not a reply of the server: whether it ran is unknown. Nothing may be acknowledged
		// until the memory is the journal's again.
		e.wmu.Unlock()
		e.fail(fmt.Errorf("a command's reply was lost: %w", err))
		return err
	}
	rec, journaled := e.record(seq, now, cmds, err)
	e.mu.Lock()
	if journaled {
		e.buf = appendFrame(e.buf, rec)
	} else {
		e.buf = appendFrame(e.buf, noopRecord(seq))
	}
	e.appended = seq
	e.mu.Unlock()
	e.wmu.Unlock()
	if serr := e.waitDurable(seq, false); serr != nil {
		for _, c := range cmds {
			c.SetErr(serr)
		}
		return serr
	}
	return err
}

// read runs a reading command and returns once every write it may have seen is on disk; when
// writes it saw were undone meanwhile, it runs again.
func (e *Embedded) read(ctx context.Context, cmds []redis.Cmder, run func(context.Context) error) error {
	for {
		epoch := e.epoch.Load()
		err := run(ctx)
		target := e.issued.Load()
		if e.durable.Load() >= target {
			return err
		}
		e.waitDurable(target, true)
		if e.epoch.Load() == epoch {
			return err
		}
		for _, c := range cmds {
			c.SetErr(nil)
		}
	}
}

// waitDurable returns once the record seq is on disk, writing the buffered records itself when
// no other caller is (group commit). A reader (forRead) only waits: the writer of the record
// writes it.
func (e *Embedded) waitDurable(seq uint64, forRead bool) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for {
		if seq > e.failedFrom && seq <= e.failedUpTo {
			return e.failErr
		}
		if e.durable.Load() >= seq {
			return nil
		}
		if e.syncing || e.failing || len(e.buf) == 0 || (forRead && e.appended < seq) {
			e.cond.Wait()
			continue
		}
		buf, upto := e.buf, e.appended
		e.buf = nil
		e.syncing = true
		wal, off := e.wal, e.walSize
		e.mu.Unlock()
		err := wal.writeAt(buf, off)
		e.mu.Lock()
		e.syncing = false
		if err != nil {
			e.failing = true
			e.mu.Unlock()
			e.fail(err)
			e.mu.Lock()
			continue
		}
		e.walSize += int64(len(buf))
		e.durable.Store(upto)
		e.cond.Broadcast()
		if e.walSize > max(compactAfter, e.snapSize) && !e.compacting && !e.closed {
			e.compacting = true
			e.compactWG.Add(1)
			go e.compact()
		}
	}
}

// fail undoes every write not on disk (the memory is reloaded from the files) and refuses writes
// until a snapshot can be written (probe). The caller that found the failure set failing first,
// so that nobody writes records after the lost ones meanwhile.
func (e *Embedded) fail(cause error) {
	e.wmu.Lock()
	defer e.wmu.Unlock()
	e.mu.Lock()
	e.failing = true
	for e.syncing {
		e.cond.Wait()
	}
	from, lost, size := e.durable.Load(), e.issued.Load(), e.walSize
	e.buf = nil
	e.mu.Unlock()
	if e.broken == nil {
		e.log.Error("embedded store: the journal cannot be written; writes are refused until it can, reads go on", "file", e.wal.name, "err", cause)
		go e.probe()
	}
	e.broken = cause
	clear(e.lastEntry)
	if lost > from {
		_ = e.wal.f.Truncate(size) // a failed truncate is left behind with this journal at the next snapshot
		if err := e.reload(size); err != nil {
			e.log.Error("embedded store: reloading the data files after a failed write", "err", err)
		}
	}
	e.mu.Lock()
	if lost > from {
		e.failedFrom, e.failedUpTo = from, lost
		e.failErr = &unavailableError{fmt.Errorf("the embedded store could not write the change to its journal (%v): the change was not made", cause)}
	}
	e.appended = lost
	e.durable.Store(lost) // the memory is the files' again: nothing in it waits for a write
	e.epoch.Add(1)
	e.failing = false
	e.cond.Broadcast()
	e.mu.Unlock()
}

// probe tries, every second, to write a snapshot and a new journal; once it can, writes resume.
func (e *Embedded) probe() {
	for {
		time.Sleep(time.Second)
		e.mu.Lock()
		closed := e.closed
		e.mu.Unlock()
		if closed {
			return
		}
		e.wmu.Lock()
		if e.broken == errStoreClosed {
			e.wmu.Unlock()
			return
		}
		err := e.compactLocked()
		if err == nil {
			e.log.Info("embedded store: the journal can be written again; writes resume")
			e.broken = nil
		}
		e.wmu.Unlock()
		if err == nil {
			return
		}
	}
}

// compact writes a snapshot and starts a new journal, in the background.
func (e *Embedded) compact() {
	defer e.compactWG.Done()
	e.wmu.Lock()
	var err error
	if e.broken == nil {
		err = e.compactLocked()
	}
	e.wmu.Unlock()
	e.mu.Lock()
	e.compacting = false
	e.mu.Unlock()
	if err != nil {
		e.log.Error("embedded store: writing a snapshot", "err", err)
	}
}

// compactLocked (wmu held: no write runs) writes everything buffered, starts journal gen+1,
// writes snapshot gen+1 of the memory, then removes the older files.
func (e *Embedded) compactLocked() error {
	if err := e.flushLocked(); err != nil {
		return err
	}
	seq := e.issued.Load()
	snap := e.dump(seq)
	gen := e.wal.gen + 1
	wal, err := e.files.createJournal(gen, seq, e.scripts)
	if err != nil {
		return err
	}
	if err := e.files.writeSnapshot(gen, snap); err != nil {
		wal.f.Close()
		os.Remove(wal.name)
		return err
	}
	e.mu.Lock()
	old := e.wal
	e.wal, e.walSize, e.snapSize = wal, wal.size, int64(len(snap))
	e.mu.Unlock()
	old.f.Close()
	e.files.removeBefore(gen)
	return nil
}

// flushLocked (wmu held) writes the buffered records, after any write in progress.
func (e *Embedded) flushLocked() error {
	e.mu.Lock()
	for e.syncing {
		e.cond.Wait()
	}
	buf, upto := e.buf, e.appended
	e.buf = nil
	e.mu.Unlock()
	if len(buf) > 0 {
		if err := e.wal.writeAt(buf, e.walSize); err != nil {
			// The records stay unacknowledged; fail (which needs wmu) undoes them.
			e.mu.Lock()
			e.failing = true
			e.mu.Unlock()
			go e.fail(err)
			return err
		}
		e.mu.Lock()
		e.walSize += int64(len(buf))
		e.durable.Store(upto)
		e.cond.Broadcast()
		e.mu.Unlock()
	}
	if e.durable.Load() < e.issued.Load() {
		return errors.New("writes are not on disk")
	}
	return nil
}

// unavailableError is a failed write of the journal: the change was not made.
type unavailableError struct{ err error }

func (u *unavailableError) Error() string { return "LOADING " + u.err.Error() }
func (u *unavailableError) Unwrap() error { return u.err }
func (u *unavailableError) RedisError()   {}

// proto turns an error into a Redis error reply the store maps to "unavailable".
type protoError string

func (p protoError) Error() string { return string(p) }
func (protoError) RedisError()     {}

func proto(err error) protoError { return protoError(err.Error()) }

// isReply says whether err is a reply of the server (the command ran, or was refused) rather
// than a failure to reach it.
func isReply(err error) bool {
	var rerr redis.Error
	return errors.As(err, &rerr)
}

// lockFileInode takes an exclusive lock on the data file itself, failing at once when another
// process holds it. Locking the file (its inode), not its name, makes every path to it the same
// lock: a symlink, a hard link, "./", a bind mount.
func lockFileInode(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("rdb: data file directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("rdb: opening data file: %w", err)
	}
	if err := lockFile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("rdb: data file %s is in use by another batchy process (stop it first, or use another --data-file)", path)
	}
	return f, nil
}
