package executor

import (
	"bufio"
	"bytes"
	"io"
	"sync"
	"unicode/utf8"
)

// maxLine is the longest line passed to Task.Log in one call; a longer line arrives in pieces of
// at most maxLine bytes, so nothing is dropped and memory stays bounded.
const maxLine = 1 << 20

// logger serializes calls to Task.Log, so that a Log function needs no locking of its own even
// though stdout and stderr are read concurrently.
type logger struct {
	mu sync.Mutex
	f  func(stream, line string)
}

func (l *logger) line(stream, s string) {
	if l.f == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.f(stream, s)
}

// scanLines passes each line of r to log, without its line ending, until EOF or a read error
// (what was read before the error is still passed on).
func scanLines(r io.Reader, stream string, log *logger) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	sc.Split(splitLines)
	for sc.Scan() {
		log.line(stream, sc.Text())
	}
}

// splitLines is bufio.ScanLines, except that a line longer than maxLine is returned in pieces
// (cut before a UTF-8 sequence where one starts near the cut) instead of stopping the scan with
// bufio.ErrTooLong.
func splitLines(data []byte, atEOF bool) (advance int, token []byte, err error) {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return i + 1, dropCR(data[:i]), nil
	}
	if len(data) >= maxLine {
		n := maxLine
		for k := n - 1; k > n-utf8.UTFMax; k-- {
			if utf8.RuneStart(data[k]) {
				if !utf8.FullRune(data[k:n]) {
					n = k
				}
				break
			}
		}
		return n, data[:n], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), dropCR(data), nil
	}
	return 0, nil, nil
}

func dropCR(b []byte) []byte {
	if len(b) > 0 && b[len(b)-1] == '\r' {
		return b[:len(b)-1]
	}
	return b
}
