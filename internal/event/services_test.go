package event

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
)

// serviceMissing skips a test that needs a service this machine lacks, or fails it under
// CI=true, where every service must be there.
func serviceMissing(tb testing.TB, what string, err error) {
	tb.Helper()
	if os.Getenv("CI") == "true" {
		tb.Fatalf("%s is not reachable and CI=true, so this fails instead of skipping: %v", what, err)
	}
	tb.Skipf("%s is not reachable, skipping (set CI=true to make this a failure): %v", what, err)
}

// testPostgresURL returns the URL of a PostgreSQL test database: $BATCHY_TEST_POSTGRES_URL, or the
// machine's own server (trust auth, database test, user postgres or root).
func testPostgresURL(tb testing.TB) string {
	tb.Helper()
	candidates := []string{
		"postgres://postgres@127.0.0.1:5432/test?sslmode=disable",
		"postgres://root@127.0.0.1:5432/test?sslmode=disable",
	}
	if u := os.Getenv("BATCHY_TEST_POSTGRES_URL"); u != "" {
		candidates = []string{u}
	}
	var last error
	for _, u := range candidates {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, err := pgx.Connect(ctx, u)
		if err == nil {
			err = conn.Ping(ctx)
			conn.Close(ctx)
		}
		cancel()
		if err == nil {
			return u
		}
		last = err
	}
	serviceMissing(tb, "PostgreSQL", last)
	return ""
}

// testPostgresConn returns a connection to the test database, closed at the end of the test.
func testPostgresConn(tb testing.TB, u string) *pgx.Conn {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// testNATSURL returns the URL of a NATS test server: $BATCHY_TEST_NATS_URL or the machine's own.
func testNATSURL(tb testing.TB) string {
	tb.Helper()
	u := os.Getenv("BATCHY_TEST_NATS_URL")
	if u == "" {
		u = "nats://127.0.0.1:4222"
	}
	nc, err := nats.Connect(u, nats.Timeout(5*time.Second))
	if err != nil {
		serviceMissing(tb, "NATS", err)
	}
	nc.Close()
	return u
}

// uniqueName returns a lower-case identifier no other test run uses.
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s_%s%s", prefix, strconv.FormatInt(time.Now().UnixNano(), 36), strconv.FormatInt(rand.Int64N(36*36*36*36), 36))
}
