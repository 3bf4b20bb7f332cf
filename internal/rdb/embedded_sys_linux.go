package rdb

import (
	"os"
	"syscall"
)

// syncData makes what was written to f durable: its data, and its size when it grew (fdatasync
// skips the times, which a journal does not need).
func syncData(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }
