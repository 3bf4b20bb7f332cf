package api_test

import (
	"testing"

	"github.com/batchy/batchy/internal/rdb/rdbtest"
)

// TestMain stops the Redis Cluster the store-backed tests share once they are done.
func TestMain(m *testing.M) { rdbtest.Main(m) }
