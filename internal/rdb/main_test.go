package rdb_test

import (
	"testing"

	"github.com/batchy/batchy/internal/rdb/rdbtest"
)

// TestMain stops the shared Cluster the cluster backend runs on when the tests end.
func TestMain(m *testing.M) { rdbtest.Main(m) }
