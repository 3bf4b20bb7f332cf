package rdb

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/batchy/batchy/internal/batch"
)

// Readiness (Store.Ping) is a real write: a PING answers on a replica, on a master paused for
// writes (CLIENT PAUSE WRITE), on a Cluster node whose peer serving a third of the slots is dead,
// and from a client still routing to a dead node: each a store that answers but cannot take a
// transition. So Ping writes a small key with a TTL, and on a Cluster one key in every master's
// slot range, through the same client the transitions use.
const (
	// HealthTimeout bounds a readiness write: a store that takes longer is reported unavailable.
	// Short, so that /readyz turns 503 within about a second of a store that stops taking writes.
	HealthTimeout = time.Second
	// healthTTL keeps the health keys from outliving the replicas that write them.
	healthTTL = time.Minute
	// clusterSlots is the number of slots of a Redis Cluster.
	clusterSlots = 16384
)

// health runs one readiness write at a time: /readyz is polled (a load balancer, Kubernetes, a
// test every 100 ms), and a store that hangs must not collect a connection per poll. Callers
// arriving while a write is in flight share its result.
type health struct {
	mu   sync.Mutex
	call *healthCall
}

type healthCall struct {
	done chan struct{}
	err  error
}

// Ping implements batch.Store: it checks that the store takes a write now (see HealthTimeout),
// and says why not: "the store did not take a write within 1s", "the Redis server is a read-only
// replica", "the Redis Cluster has slots that no master serves", ...
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, HealthTimeout)
	defer cancel()
	s.health.mu.Lock()
	c := s.health.call
	if c == nil {
		c = &healthCall{done: make(chan struct{})}
		s.health.call = c
		go func() {
			// Not the caller's context: the write ends by itself (the client's I/O timeouts), and
			// callers that stop waiting share it meanwhile.
			wctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			c.err = s.writeHealth(wctx)
			cancel()
			s.health.mu.Lock()
			s.health.call = nil
			s.health.mu.Unlock()
			close(c.done)
		}()
	}
	s.health.mu.Unlock()
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		return &batch.Error{Code: batch.EUNAVAILABLE, Message: fmt.Sprintf("the store did not take a write within %s", HealthTimeout), Cause: ctx.Err()}
	}
}

// writeHealth writes this replica's health key: one SET on a single node, Sentinel's master and
// the embedded store (which journals and syncs it like any write); on a Cluster, one CLUSTER
// SLOTS and a SET in each master's slot range, in parallel.
func (s *Store) writeHealth(ctx context.Context) error {
	val := strconv.FormatInt(time.Now().UnixMilli(), 10)
	// Sent once, without go-redis's retries: a refused connection is an answer, not a reason
	// to wait a backoff or two past HealthTimeout.
	set := func(key string) error {
		cmd := redis.NewCmd(ctx, "set", key, val, "px", healthTTL.Milliseconds())
		_ = s.client.Process(ctx, noRetryCmd{cmd})
		return cmd.Err()
	}
	cc, ok := s.client.(*redis.ClusterClient)
	if !ok {
		return healthError(set(s.keys.Health("~", s.replica)))
	}
	ranges, err := cc.ClusterSlots(ctx).Result()
	if err != nil {
		return healthError(err)
	}
	covered := 0
	for _, r := range ranges {
		covered += int(r.End-r.Start) + 1
	}
	if covered < clusterSlots {
		return &batch.Error{Code: batch.EUNAVAILABLE, Message: fmt.Sprintf("the Redis Cluster has %d slots that no master serves", clusterSlots-covered)}
	}
	errs := make(chan error, len(ranges))
	for _, r := range ranges {
		go func() {
			errs <- set(s.keys.Health(slotTag(int(r.Start), int(r.End)), s.replica))
		}()
	}
	var first error
	for range ranges {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return healthError(first)
}

// slotTag returns a hash tag whose slot lies in [start, end]: "~<n>" for the first n that lands
// there (a range of a three-master Cluster takes a few tries; a single slot up to about 50,000,
// still well under a millisecond). No workflow name holds '~'.
func slotTag(start, end int) string {
	for n := 0; ; n++ {
		tag := "~" + strconv.Itoa(n)
		if slot := keySlot(tag); slot >= start && slot <= end {
			return tag
		}
	}
}

// keySlot is Redis Cluster's slot of a hash tag: CRC16 (XMODEM) modulo 16384.
func keySlot(tag string) int {
	var crc uint16
	for i := 0; i < len(tag); i++ {
		crc ^= uint16(tag[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % clusterSlots
}

// healthError says why a readiness write failed, in words an operator acts on and without the
// addresses a connection error quotes (/readyz needs no token).
func healthError(err error) error {
	if err == nil {
		return nil
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		msg := rerr.Error()
		for _, c := range []struct{ prefix, why string }{
			{"READONLY", "the Redis server is a read-only replica (a failover in progress, or a client not yet following it)"},
			{"CLUSTERDOWN", "the Redis Cluster is down (CLUSTERDOWN): slots without a reachable master"},
			{"MASTERDOWN", "the Redis replica lost its master (MASTERDOWN)"},
			{"NOREPLICAS", "the Redis master has too few replicas to take writes (NOREPLICAS)"},
			{"MISCONF", "the Redis server refuses writes: it cannot persist (MISCONF)"},
			{"OOM", "the Redis server refuses writes: out of memory (OOM)"},
			{"TRYAGAIN", "the Redis Cluster is moving slots (TRYAGAIN)"},
			{"LOADING the embedded store", ""}, // storeError words it
			{"LOADING", "the Redis server is loading its data"},
		} {
			if strings.HasPrefix(msg, c.prefix) {
				if c.why == "" {
					break
				}
				return &batch.Error{Code: batch.EUNAVAILABLE, Message: "the store does not take writes: " + c.why, Cause: err}
			}
		}
		return storeError("rdb.Ping", err)
	}
	var nerr net.Error
	if errors.As(err, &nerr) && nerr.Timeout() || errors.Is(err, context.DeadlineExceeded) {
		return &batch.Error{Code: batch.EUNAVAILABLE, Message: "the store did not take a write in time", Cause: err}
	}
	return &batch.Error{Code: batch.EUNAVAILABLE, Message: "the store did not answer (connection failed)", Cause: err}
}

// defaultReplica names this process in its health keys: <hostname>-<pid>.
func defaultReplica() string {
	host, _ := os.Hostname()
	if host == "" {
		host = "batchy"
	}
	return host + "-" + strconv.Itoa(os.Getpid())
}
