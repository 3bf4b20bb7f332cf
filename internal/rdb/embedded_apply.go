package rdb

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// applyDirect is lua/apply.lua's common case (no conditional history fields, no trim) run on the
// embedded store as plain commands instead of a script: miniredis runs every script in a fresh
// Lua state, most of the embedded store's CPU per transition (bench/analysis.md). The journal's
// write lock, which every write of the embedded store takes, makes the revision check and the
// writes one step; the writes go in one MULTI/EXEC, so no reader sees half of them; the journal
// records them with the event entry's ID, so a replay makes exactly the same entry. It answers as
// apply.lua: the entry's ID, or the state as it is when it is no longer at rev (nothing written).
func (e *Embedded) applyDirect(ctx context.Context, keys []string, rev string, keep int64, channel, wf, addBatch, clock string, set, del, hist, fields []string) (entry string, stale map[string]string, err error) {
	state, batches, history, events := keys[0], keys[1], keys[2], keys[3]
	ctx = context.WithoutCancel(ctx) // on loopback to this process: always completes (see write)
	e.wmu.Lock()
	if e.broken != nil {
		e.wmu.Unlock()
		return "", nil, redis.Error(proto(writeRefused(e.broken)))
	}
	now := time.Now()
	e.srv.SetTime(now)
	seq := e.issued.Add(1)
	var cmds [][]string
	cur := e.srv.HGet(state, "rev")
	if cur != rev {
		stale, err = e.raw.HGetAll(ctx, state).Result()
	} else {
		entry, err = e.nextEntryID(ctx, events, now)
		if err == nil {
			xadd := append([]string{"xadd", events, "MAXLEN", "~", strconv.FormatInt(keep, 10), entry}, fields...)
			hset := append([]string{"hset", state, "rev", entry + " " + clock}, set...)
			cmds = append(cmds, xadd, hset)
			if len(del) > 0 {
				cmds = append(cmds, append([]string{"hdel", state}, del...))
			}
			if len(hist) > 0 {
				cmds = append(cmds, append([]string{"hset", history}, hist...))
			}
			if addBatch != "" {
				cmds = append(cmds, []string{"zadd", batches, addBatch, addBatch})
			}
			_, err = e.raw.TxPipelined(ctx, func(p redis.Pipeliner) error {
				for _, c := range cmds {
					p.Do(ctx, anys(c)...)
				}
				p.Publish(ctx, channel, wf)
				return nil
			})
			if err == nil {
				e.lastEntry[events] = entry
			}
		}
	}
	if err != nil && !isReply(err) {
		e.wmu.Unlock()
		e.fail(fmt.Errorf("a command's reply was lost: %w", err))
		return "", nil, err
	}
	if e.files == nil { // memory only: nothing to journal
		e.wmu.Unlock()
		return entry, stale, err
	}
	rec := noopRecord(seq)
	if len(cmds) > 0 && err == nil {
		rec = encodeRecord(seq, now, cmds)
	}
	e.mu.Lock()
	e.buf = appendFrame(e.buf, rec)
	e.appended = seq
	e.mu.Unlock()
	e.wmu.Unlock()
	if serr := e.waitDurable(seq, false); serr != nil {
		return "", nil, serr
	}
	if err != nil {
		return "", nil, err
	}
	return entry, stale, nil
}

// nextEntryID is the ID XADD '*' would give an entry of stream k at now (wmu held): now's
// milliseconds, or the last entry's with its sequence plus one when the clock has not passed it.
func (e *Embedded) nextEntryID(ctx context.Context, k string, now time.Time) (string, error) {
	last, ok := e.lastEntry[k]
	if !ok {
		xs, err := e.raw.XRevRangeN(ctx, k, "+", "-", 1).Result()
		if err != nil {
			return "", err
		}
		last = "0-0"
		if len(xs) == 1 {
			last = xs[0].ID
		}
	}
	ms, sq, _ := strings.Cut(last, "-")
	lastMS, _ := strconv.ParseInt(ms, 10, 64)
	lastSeq, _ := strconv.ParseInt(sq, 10, 64)
	if n := now.UnixMilli(); n > lastMS {
		return strconv.FormatInt(n, 10) + "-0", nil
	}
	return strconv.FormatInt(lastMS, 10) + "-" + strconv.FormatInt(lastSeq+1, 10), nil
}

// encodeRecord is the journal record of commands run at now.
func encodeRecord(seq uint64, now time.Time, cmds [][]string) []byte {
	w := payloadWriter{recCmds}
	w.uint(seq)
	w.int(now.UnixNano())
	w.uint(uint64(len(cmds)))
	for _, args := range cmds {
		w.uint(uint64(len(args)))
		for _, a := range args {
			w.string(a)
		}
	}
	return w
}

func anys(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}
