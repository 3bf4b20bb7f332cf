//go:build unix

package rdb

import (
	"os"
	"syscall"
)

// lockFile takes an exclusive lock on f's inode, failing at once when another process holds it.
func lockFile(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
}
