//go:build !linux

package api

import "net"

// canPark says whether waits can be parked here: not without the socket calls of park_linux.go,
// so waits are held by their handlers.
const canPark = false

func detach(net.Conn) (int, bool)        { return -1, false }
func writeFD(int, [][]byte, func()) bool { return false }
func closeFD(int)                        {}
func clientGone(int) bool                { return false }
