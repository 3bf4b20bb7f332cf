package rdb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// storeFiles are the embedded store's files: the data file (a marker, and the lock), and beside
// it the snapshots and journals, <data file>.<gen>.snap and <data file>.<gen>.wal.
type storeFiles struct {
	path string   // the data file as given
	base string   // the data file's real path (symlinks resolved): the others are named after it
	lock *os.File // the data file, flocked
}

// dataMarker is the data file's content: what and where the data is, for a person opening it.
const dataMarker = `{"batchy_embedded_store": 2, "note": "the data is in the .snap and .wal files beside this file (see docs/redis.md); back it up with batchy export"}` + "\n"

// lockStoreFiles locks the data file at path, creating it when missing.
func lockStoreFiles(path string) (*storeFiles, error) {
	lock, err := lockFileInode(path)
	if err != nil {
		return nil, err
	}
	real, err := filepath.EvalSymlinks(path)
	if err == nil {
		real, err = filepath.Abs(real)
	}
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("rdb: data file %s: %w", path, err)
	}
	// Temporary files of snapshots a crash interrupted (WriteFileAtomic's ".<name>.tmp-*"): no
	// other process writes them, the lock is ours.
	stale, _ := filepath.Glob(filepath.Join(filepath.Dir(real), "."+filepath.Base(real)+".*.tmp-*"))
	for _, t := range stale {
		os.Remove(t)
	}
	return &storeFiles{path: path, base: real, lock: lock}, nil
}

func (f *storeFiles) unlock() { f.lock.Close() } // closing releases the flock

func (f *storeFiles) name(gen uint64, ext string) string {
	return f.base + "." + strconv.FormatUint(gen, 10) + ext
}

// generations lists the generations of the files with extension ext (".snap", ".wal"), oldest
// first.
func (f *storeFiles) generations(ext string) []uint64 {
	matches, _ := filepath.Glob(f.base + ".*" + ext)
	var gens []uint64
	for _, m := range matches {
		g, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(m, f.base+"."), ext), 10, 64)
		if err == nil && g > 0 {
			gens = append(gens, g)
		}
	}
	slices.Sort(gens)
	return gens
}

// removeBefore deletes the snapshots and journals older than gen, which the snapshot gen covers.
func (f *storeFiles) removeBefore(gen uint64) {
	for _, ext := range []string{".snap", ".wal"} {
		for _, g := range f.generations(ext) {
			if g < gen {
				os.Remove(f.name(g, ext))
			}
		}
	}
	syncDir(filepath.Dir(f.base))
}

// journalFile is an open journal.
type journalFile struct {
	f    *os.File
	name string
	gen  uint64
	size int64
}

// writeAt writes b at off and makes it durable (fdatasync: the file's size is data).
func (j journalFile) writeAt(b []byte, off int64) error {
	if hook := writeHook.Load(); hook != nil {
		if err := (*hook)(j.name); err != nil {
			return err
		}
	}
	if _, err := j.f.WriteAt(b, off); err != nil {
		return err
	}
	return syncData(j.f)
}

// writeHook, when set (tests), runs before each journal and snapshot write and fails it with its
// error: a disk that is full.
var writeHook atomic.Pointer[func(name string) error]

// createJournal starts journal gen, whose first record follows record seq, declaring scripts.
func (f *storeFiles) createJournal(gen, seq uint64, scripts map[string]string) (journalFile, error) {
	name := f.name(gen, ".wal")
	file, err := os.OpenFile(name, os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o600)
	if err != nil {
		return journalFile{}, fmt.Errorf("rdb: creating journal: %w", err)
	}
	h := payloadWriter{recHeader}
	h.string("batchy-journal")
	h.uint(1)
	h.uint(gen)
	h.uint(seq)
	b := appendFrame(nil, h)
	for _, sha := range slices.Sorted(maps.Keys(scripts)) {
		b = appendFrame(b, append(payloadWriter{recScript}, scripts[sha]...))
	}
	j := journalFile{f: file, name: name, gen: gen}
	if err := j.writeAt(b, 0); err != nil {
		file.Close()
		os.Remove(name)
		return journalFile{}, fmt.Errorf("rdb: writing journal %s: %w", name, err)
	}
	syncDir(filepath.Dir(name))
	j.size = int64(len(b))
	return j, nil
}

// writeSnapshot writes snapshot gen atomically.
func (f *storeFiles) writeSnapshot(gen uint64, data []byte) error {
	name := f.name(gen, ".snap")
	if hook := writeHook.Load(); hook != nil {
		if err := (*hook)(name); err != nil {
			return err
		}
	}
	if err := WriteFileAtomic(name, data, 0o600); err != nil {
		return fmt.Errorf("rdb: writing snapshot %s: %w", name, err)
	}
	return nil
}

// dump encodes every key of the memory as a snapshot covering record seq (wmu held: nothing
// changes meanwhile; reads go on).
func (e *Embedded) dump(seq uint64) []byte {
	h := payloadWriter{recSnap}
	h.string("batchy-snapshot")
	h.uint(1)
	h.uint(e.wal.gen + 1)
	h.uint(seq)
	h.int(time.Now().UnixNano())
	b := appendFrame(nil, h)
	keys := e.srv.Keys()
	n := 0
	for _, k := range keys {
		var vals []string
		t := e.srv.Type(k)
		switch t {
		case "hash":
			fields, _ := e.srv.HKeys(k)
			vals = make([]string, 0, 2*len(fields))
			for _, fl := range fields {
				vals = append(vals, fl, e.srv.HGet(k, fl))
			}
		case "zset":
			m, _ := e.srv.SortedSet(k)
			vals = make([]string, 0, 2*len(m))
			for _, mem := range slices.Sorted(maps.Keys(m)) {
				vals = append(vals, mem, strconv.FormatFloat(m[mem], 'g', -1, 64))
			}
		case "set":
			vals, _ = e.srv.Members(k)
		case "list":
			vals, _ = e.srv.List(k)
		case "string":
			v, _ := e.srv.Get(k)
			vals = []string{v}
		case "stream":
			entries, _ := e.srv.Stream(k)
			for _, en := range entries {
				vals = append(vals, en.ID, strconv.Itoa(len(en.Values)))
				vals = append(vals, en.Values...)
			}
		default:
			continue // gone since the listing, or a type batchy never writes
		}
		w := payloadWriter{recKey}
		w.string(k)
		w.string(t)
		w.int(e.srv.TTL(k).Milliseconds())
		w.uint(uint64(len(vals)))
		for _, v := range vals {
			w.string(v)
		}
		b = appendFrame(b, w)
		n++
	}
	end := payloadWriter{recSnapEnd}
	end.uint(uint64(n))
	return appendFrame(b, end)
}

// damageError is damage found in one of the store's files.
type damageError struct {
	file   string
	offset int64
	why    string
}

func (d *damageError) Error() string {
	return fmt.Sprintf("rdb: the embedded store's file %s is damaged at offset %d (%s): recover with `batchy import` of your last export into a new --data-file, or start with --repair to keep what precedes the damage (the rest is moved aside)", d.file, d.offset, d.why)
}

// loadSnapshot fills the memory from snapshot gen and returns the record seq it covers.
func (e *Embedded) loadSnapshot(name string) (uint64, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return 0, fmt.Errorf("rdb: reading snapshot: %w", err)
	}
	rest := data
	off := func() int64 { return int64(len(data) - len(rest)) }
	damage := func(why string) error { return &damageError{file: name, offset: off(), why: why} }
	var seq uint64
	keys, ended := 0, false
	for first := true; len(rest) > 0; first = false {
		at := off()
		payload, next, err := nextFrame(rest)
		if err != nil {
			return 0, &damageError{file: name, offset: at, why: err.Error()}
		}
		r := payloadReader{b: payload[1:]}
		switch kind := payload[0]; {
		case first && kind != recSnap, !first && kind == recSnap:
			return 0, damage("not a snapshot")
		case kind == recSnap:
			if r.string() != "batchy-snapshot" || r.uint() != 1 {
				return 0, damage("not a snapshot of this version")
			}
			r.uint() // gen: the file's name says it
			seq = r.uint()
		case kind == recKey:
			if err := e.restoreKey(&r); err != nil {
				return 0, damage(err.Error())
			}
			keys++
		case kind == recSnapEnd:
			if n := r.uint(); n != uint64(keys) {
				return 0, damage(fmt.Sprintf("%d keys, the end record says %d", keys, n))
			}
			ended = true
		default:
			return 0, damage(fmt.Sprintf("unknown record %q", kind))
		}
		if r.err != nil {
			return 0, damage(r.err.Error())
		}
		rest = next
	}
	if !ended {
		return 0, damage("the snapshot ends before its end record")
	}
	return seq, nil
}

// restoreKey sets one key of a snapshot.
func (e *Embedded) restoreKey(r *payloadReader) error {
	k, t, ttl := r.string(), r.string(), r.int()
	vals := r.strings()
	if r.err != nil {
		return r.err
	}
	srv := e.srv
	switch t {
	case "hash":
		if len(vals)%2 != 0 {
			return errors.New("odd hash")
		}
		srv.HSet(k, vals...)
	case "zset":
		for i := 0; i+1 < len(vals); i += 2 {
			score, err := strconv.ParseFloat(vals[i+1], 64)
			if err != nil {
				return fmt.Errorf("key %s: bad score %q", k, vals[i+1])
			}
			srv.ZAdd(k, score, vals[i])
		}
	case "set":
		srv.SAdd(k, vals...)
	case "list":
		srv.RPush(k, vals...)
	case "string":
		if len(vals) != 1 {
			return errors.New("bad string")
		}
		srv.Set(k, vals[0])
	case "stream":
		for i := 0; i+1 < len(vals); {
			id := vals[i]
			n, err := strconv.Atoi(vals[i+1])
			if err != nil || n < 0 || i+2+n > len(vals) {
				return fmt.Errorf("key %s: bad stream entry", k)
			}
			if _, err := srv.XAdd(k, id, vals[i+2:i+2+n]); err != nil {
				return fmt.Errorf("key %s: %v", k, err)
			}
			i += 2 + n
		}
	default:
		return fmt.Errorf("key %s has unknown type %q", k, t)
	}
	if ttl > 0 {
		srv.SetTTL(k, time.Duration(ttl)*time.Millisecond)
	}
	return nil
}

// replay runs journal name's records after record seq on the memory, up to limit bytes (-1: all),
// and returns the last record's seq, the bytes of whole records and, for a record a crash cut
// short at the end, a torn error.
func (e *Embedded) replay(name string, seq uint64, limit int64) (last uint64, valid int64, err error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return seq, 0, fmt.Errorf("rdb: reading journal: %w", err)
	}
	if limit >= 0 && int64(len(data)) > limit {
		data = data[:limit]
	}
	rest := data
	ctx := context.Background()
	for first := true; len(rest) > 0; first = false {
		at := int64(len(data) - len(rest))
		damage := func(why string) error { return &damageError{file: name, offset: at, why: why} }
		payload, next, ferr := nextFrame(rest)
		if errors.Is(ferr, errTorn) {
			return seq, at, errTorn
		}
		if ferr != nil {
			return seq, at, damage(ferr.Error())
		}
		r := payloadReader{b: payload[1:]}
		switch kind := payload[0]; {
		case first != (kind == recHeader):
			return seq, at, damage("not a journal")
		case kind == recHeader:
			if r.string() != "batchy-journal" || r.uint() != 1 {
				return seq, at, damage("not a journal of this version")
			}
			r.uint()
			if prev := r.uint(); prev > seq {
				return seq, at, damage(fmt.Sprintf("starts after record %d, the data before it ends at record %d", prev, seq))
			}
		case kind == recScript:
			src := string(payload[1:])
			if err := e.raw.ScriptLoad(ctx, src).Err(); err != nil {
				return seq, at, damage("script: " + err.Error())
			}
			e.learnScript([]string{"script", "load", src})
		case kind == recNoop || kind == recCmds || kind == recExpire:
			s := r.uint()
			if s <= seq {
				break // in the snapshot already
			}
			if s != seq+1 {
				return seq, at, damage(fmt.Sprintf("record %d follows record %d", s, seq))
			}
			if kind == recExpire {
				e.srv.FastForward(time.Duration(r.int()))
			}
			if kind == recCmds {
				e.srv.SetTime(time.Unix(0, r.int()))
				n := r.uint()
				for i := uint64(0); i < n && r.err == nil; i++ {
					args := r.strings()
					if r.err != nil {
						break
					}
					e.learnScript(args)
					cmd := make([]any, len(args))
					for i, a := range args {
						cmd[i] = a
					}
					if err := e.raw.Do(ctx, cmd...).Err(); err != nil && !isReply(err) {
						return seq, at, fmt.Errorf("rdb: replaying %s at offset %d: %w", name, at, err)
					}
				}
			}
			seq = s
		default:
			return seq, at, damage(fmt.Sprintf("unknown record %q", kind))
		}
		if r.err != nil {
			return seq, at, damage(r.err.Error())
		}
		rest = next
	}
	return seq, int64(len(data)), nil
}

// recover loads the newest snapshot and replays the journals after it; a data file of the
// previous format (one JSON file) is converted.
func (e *Embedded) recover(repair bool) error {
	f := e.files
	marker, err := os.ReadFile(f.path)
	if err != nil {
		return fmt.Errorf("rdb: reading data file: %w", err)
	}
	snaps, wals := f.generations(".snap"), f.generations(".wal")
	switch {
	case len(snaps) == 0 && len(wals) == 0 && bytes.HasPrefix(bytes.TrimSpace(marker), []byte(`{"version"`)):
		return e.convertV1(marker)
	case len(snaps) == 0 && len(wals) == 0 && len(marker) > 0:
		return fmt.Errorf("rdb: data file %s names snapshot and journal files beside it (%s.*.snap, .wal) and there are none: were they moved or deleted? Start from your last export (batchy import) with a new --data-file", f.path, filepath.Base(f.base))
	case len(snaps) == 0 && len(marker) == 0:
		// New, or the first start died before its first snapshot: nothing was acknowledged.
		return e.create()
	case len(snaps) == 0:
		return fmt.Errorf("rdb: data file %s has journals but no snapshot beside it: start from your last export (batchy import) with a new --data-file", f.path)
	}
	gen := snaps[len(snaps)-1]
	seq, err := e.loadSnapshot(f.name(gen, ".snap"))
	if err != nil {
		return err
	}
	e.snapSize = fileSize(f.name(gen, ".snap"))
	var last journalFile
	for i, g := range wals {
		if g < gen {
			continue
		}
		name := f.name(g, ".wal")
		s, valid, err := e.replay(name, seq, -1)
		seq = s
		tail := i == len(wals)-1
		var dmg *damageError
		switch {
		case err == nil:
		case errors.Is(err, errTorn) && tail:
			e.log.Warn("embedded store: dropping the end of the journal, a write a crash interrupted (never acknowledged)", "file", name, "offset", valid)
		case errors.As(err, &dmg) && repair:
			e.log.Warn("embedded store: --repair: keeping the journal before the damage, moving the rest aside", "file", name, "offset", valid, "damage", dmg.why)
			if err := moveAside(name, valid); err != nil {
				return err
			}
			for _, later := range wals[i+1:] {
				os.Rename(f.name(later, ".wal"), f.name(later, ".wal")+".damaged")
			}
			tail = true
		case errors.Is(err, errTorn):
			return &damageError{file: name, offset: valid, why: "cut short before the journal that follows it"}
		default:
			return err
		}
		if tail {
			file, err := os.OpenFile(name, os.O_RDWR, 0o600)
			if err != nil {
				return fmt.Errorf("rdb: opening journal: %w", err)
			}
			if err := file.Truncate(valid); err != nil {
				file.Close()
				return fmt.Errorf("rdb: dropping the end of journal %s: %w", name, err)
			}
			last = journalFile{f: file, name: name, gen: g, size: valid}
			break
		}
	}
	e.issued.Store(seq)
	e.durable.Store(seq)
	e.appended = seq
	if last.f == nil {
		// The journal of the newest snapshot is missing (removed by hand): start one.
		if last, err = f.createJournal(gen, seq, e.scripts); err != nil {
			return err
		}
	}
	e.wal, e.walSize = last, last.size
	return nil
}

// moveAside keeps the first valid bytes of name and copies the whole file to name.damaged.
func moveAside(name string, valid int64) error {
	data, err := os.ReadFile(name)
	if err != nil {
		return err
	}
	if err := WriteFileAtomic(name+".damaged", data, 0o600); err != nil {
		return fmt.Errorf("rdb: keeping the damaged journal: %w", err)
	}
	return nil
}

// create starts a new, empty store: snapshot 1 and journal 1, then the marker.
func (e *Embedded) create() error {
	wal, err := e.files.createJournal(1, 0, e.scripts)
	if err != nil {
		return err
	}
	e.wal = journalFile{gen: 0}
	snap := e.dump(0)
	if err := e.files.writeSnapshot(1, snap); err != nil {
		return err
	}
	e.wal, e.walSize, e.snapSize = wal, wal.size, int64(len(snap))
	return writeMarker(e.files)
}

// convertV1 loads a data file of the previous format (one JSON file, with the events in
// <name>.events.json), writes snapshot 1, and keeps the old files as <name>.v1.bak.
func (e *Embedded) convertV1(data []byte) error {
	f := e.files
	if err := loadV1(e.srv, f.path, data); err != nil {
		return err
	}
	events := eventsPathV1(f.base)
	if err := loadEventsV1(e.srv, events); err != nil {
		return err
	}
	if err := WriteFileAtomic(f.base+".v1.bak", data, 0o600); err != nil {
		return fmt.Errorf("rdb: keeping the previous data file: %w", err)
	}
	if err := e.create(); err != nil {
		return err
	}
	if _, err := os.Stat(events); err == nil {
		os.Rename(events, events+".v1.bak")
	}
	e.log.Info("embedded store: converted the data file to snapshot and journal; the previous file is kept", "file", f.path, "kept", f.base+".v1.bak")
	return nil
}

// writeMarker writes the data file's marker in place: the data file keeps its inode, which is
// the lock.
func writeMarker(f *storeFiles) error {
	if err := f.lock.Truncate(0); err != nil {
		return fmt.Errorf("rdb: writing data file: %w", err)
	}
	if _, err := f.lock.WriteAt([]byte(dataMarker), 0); err != nil {
		return fmt.Errorf("rdb: writing data file: %w", err)
	}
	return f.lock.Sync()
}

// reload rebuilds the memory from the files, the current journal up to size bytes (a failed
// write's undo).
func (e *Embedded) reload(size int64) error {
	e.srv.FlushAll()
	snaps := e.files.generations(".snap")
	if len(snaps) == 0 {
		return errors.New("no snapshot")
	}
	gen := snaps[len(snaps)-1]
	seq, err := e.loadSnapshot(e.files.name(gen, ".snap"))
	if err != nil {
		return err
	}
	for _, g := range e.files.generations(".wal") {
		if g < gen {
			continue
		}
		limit := int64(-1)
		if g == e.wal.gen {
			limit = size
		}
		if seq, _, err = e.replay(e.files.name(g, ".wal"), seq, limit); err != nil && !errors.Is(err, errTorn) {
			return err
		}
	}
	return nil
}

func fileSize(name string) int64 {
	st, err := os.Stat(name)
	if err != nil {
		return 0
	}
	return st.Size()
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
