package rdb

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Record kinds of the journal and the snapshot (the first byte of a frame's payload).
const (
	recHeader  = 'h' // journal: "batchy-journal", version, gen, seq of the record before the first
	recScript  = 's' // a script's source, declared so that the EVALSHAs after it replay
	recCmds    = 'c' // seq, unix nanoseconds, the commands (each its arguments)
	recNoop    = 'n' // seq: a write that changed nothing (keeps the numbering contiguous)
	recExpire  = 'x' // seq, nanoseconds: the TTLs moved along by that much (expireEvery)
	recSnap    = 'S' // snapshot: "batchy-snapshot", version, gen, seq it covers, unix nanoseconds
	recKey     = 'k' // snapshot: key, type, TTL (ms, 0 none), values
	recSnapEnd = 'e' // snapshot: number of keys; a snapshot without it is incomplete
)

// journalHook sends every command through the journal: writes are journaled, reads wait for
// what they may have seen to be on disk (Embedded.write, Embedded.read).
type journalHook struct{ e *Embedded }

var _ redis.Hook = journalHook{}

func (h journalHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h journalHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		cmds := []redis.Cmder{cmd}
		run := func(ctx context.Context) error { return next(ctx, cmd) }
		switch h.e.classify(cmds) {
		case cmdPass:
			return run(ctx)
		case cmdWrite:
			return h.e.write(ctx, cmds, run)
		case cmdPing:
			if err := h.e.refusing(); err != nil {
				cmd.SetErr(err)
				return err
			}
		}
		return h.e.read(ctx, cmds, run)
	}
}

func (h journalHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		run := func(ctx context.Context) error { return next(ctx, cmds) }
		switch h.e.classify(cmds) {
		case cmdPass:
			return run(ctx)
		case cmdWrite:
			return h.e.write(ctx, cmds, run)
		}
		return h.e.read(ctx, cmds, run)
	}
}

// refusing returns why writes are refused, nil when they are not.
func (e *Embedded) refusing() error {
	e.wmu.Lock()
	defer e.wmu.Unlock()
	if e.broken == nil {
		return nil
	}
	return redis.Error(proto(writeRefused(e.broken)))
}

type cmdClass int

const (
	cmdRead cmdClass = iota
	cmdWrite
	cmdPing
	cmdPass // a connection's set-up (HELLO, CLIENT SETINFO): sent while a command waits for it
)

// readOnlyScripts are the scripts that change nothing: not journaled.
var readOnlyScripts = map[string]bool{scriptBatches.Hash(): true, scriptDump.Hash(): true}

// classify tells writes (anything miniredis does not call read-only, but PUBLISH, which changes
// no data, and the reading scripts) from reads.
func (e *Embedded) classify(cmds []redis.Cmder) cmdClass {
	switch cmds[0].Name() {
	case "hello", "client", "auth", "select":
		return cmdPass
	}
	for _, c := range cmds {
		switch name := c.Name(); name {
		case "ping":
			if len(cmds) == 1 {
				return cmdPing
			}
		case "publish", "multi", "exec", "discard":
		case "evalsha", "evalsha_ro":
			if args := c.Args(); name == "evalsha_ro" || (len(args) > 1 && readOnlyScripts[argString(args[1])]) {
				continue
			}
			return cmdWrite
		default:
			if !e.srv.IsReadOnlyCommand(name) {
				return cmdWrite
			}
		}
	}
	return cmdRead
}

// record encodes the journal record of cmds as run at now; false when they changed nothing to
// replay (refused before running: NOSCRIPT, a wrong command).
func (e *Embedded) record(seq uint64, now time.Time, cmds []redis.Cmder, runErr error) ([]byte, bool) {
	var kept [][]string
	for _, c := range cmds {
		switch c.Name() {
		case "multi", "exec", "discard": // the replay runs alone: no transaction needed
			continue
		}
		err := c.Err()
		if len(cmds) == 1 {
			err = runErr // a single command's error is returned, not always set on it yet
		}
		if err != nil && (strings.HasPrefix(err.Error(), "NOSCRIPT") || strings.HasPrefix(err.Error(), "ERR unknown command")) {
			continue
		}
		args := make([]string, len(c.Args()))
		for i, a := range c.Args() {
			args[i] = argString(a)
		}
		e.learnScript(args)
		kept = append(kept, args)
	}
	if len(kept) == 0 {
		return nil, false
	}
	return encodeRecord(seq, now, kept), true
}

// learnScript remembers the source of a script an EVAL or SCRIPT LOAD sent (wmu held), so that
// each new journal declares it before the EVALSHAs that use it.
func (e *Embedded) learnScript(args []string) {
	var src string
	switch {
	case len(args) > 1 && strings.EqualFold(args[0], "eval"):
		src = args[1]
	case len(args) > 2 && strings.EqualFold(args[0], "script") && strings.EqualFold(args[1], "load"):
		src = args[2]
	default:
		return
	}
	sum := sha1.Sum([]byte(src))
	e.scripts[hex.EncodeToString(sum[:])] = src
}

func noopRecord(seq uint64) []byte {
	w := payloadWriter{recNoop}
	w.uint(seq)
	return w
}

// argString formats a command argument as go-redis sends it (internal/proto.Writer.WriteArg).
func argString(a any) string {
	switch v := a.(type) {
	case nil:
		return ""
	case string:
		return v
	case []byte:
		return string(v)
	case int:
		return strconv.FormatInt(int64(v), 10)
	case int8:
		return strconv.FormatInt(int64(v), 10)
	case int16:
		return strconv.FormatInt(int64(v), 10)
	case int32:
		return strconv.FormatInt(int64(v), 10)
	case int64:
		return strconv.FormatInt(v, 10)
	case uint:
		return strconv.FormatUint(uint64(v), 10)
	case uint8:
		return strconv.FormatUint(uint64(v), 10)
	case uint16:
		return strconv.FormatUint(uint64(v), 10)
	case uint32:
		return strconv.FormatUint(uint64(v), 10)
	case uint64:
		return strconv.FormatUint(v, 10)
	case float32:
		return strconv.FormatFloat(float64(v), 'f', -1, 64)
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case bool:
		if v {
			return "1"
		}
		return "0"
	case time.Time:
		return v.Format(time.RFC3339Nano)
	case time.Duration:
		return strconv.FormatInt(v.Nanoseconds(), 10)
	case fmt.Stringer:
		return v.String()
	default:
		return fmt.Sprint(v)
	}
}
