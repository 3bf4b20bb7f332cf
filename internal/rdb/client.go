package rdb

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/redis/go-redis/v9"
)

// Client is a connection to Redis (a single node, Sentinel or Cluster), as Connect and
// StartEmbedded give it: the one name for it outside this package, which alone talks to Redis.
type Client = redis.UniversalClient

// SetLogger routes the Redis client's own messages (connection trouble) to log, so that a JSON log
// stays JSON. It sets the client library's one global logger: call it once, at start-up.
func SetLogger(log *slog.Logger) { redis.SetLogger(clientLogger{log}) }

// clientLogger passes go-redis's messages to slog.
type clientLogger struct{ log *slog.Logger }

func (l clientLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, "redis client: "+fmt.Sprintf(format, v...))
}
