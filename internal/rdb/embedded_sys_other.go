//go:build !linux

package rdb

import "os"

// syncData makes what was written to f durable (File.Sync: F_FULLFSYNC on macOS, FlushFileBuffers
// on Windows).
func syncData(f *os.File) error { return f.Sync() }
