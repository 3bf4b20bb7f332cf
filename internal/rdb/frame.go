package rdb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// The embedded store's files (the journal and the snapshots, embedded.go) are sequences of
// frames: a 4-byte little-endian payload length, the payload's CRC-32C (4 bytes), the payload. A
// frame whose checksum does not match is damage; a frame cut short by the end of the file is a
// write a crash interrupted.

const frameHeader = 8

// maxFrame bounds a frame's payload, so that a damaged length cannot make a reader allocate
// gigabytes: no command batchy sends comes near it.
const maxFrame = 256 << 20

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// appendFrame appends payload as one frame to b.
func appendFrame(b, payload []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(payload)))
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(payload, crcTable))
	return append(b, payload...)
}

// errTorn is a frame cut short by the end of the data: the tail of a write a crash interrupted.
var errTorn = errors.New("frame cut short by the end of the file")

// nextFrame returns the payload of the frame at the start of b and the bytes after it. A frame
// that does not fit in b is errTorn; a checksum that does not match is a damage error.
func nextFrame(b []byte) (payload, rest []byte, err error) {
	if len(b) < frameHeader {
		return nil, nil, errTorn
	}
	n := binary.LittleEndian.Uint32(b)
	if n > maxFrame {
		if len(b) < frameHeader+maxFrame {
			return nil, nil, errTorn // a length the crash left half written, most likely
		}
		return nil, nil, fmt.Errorf("frame length %d is out of range", n)
	}
	if uint64(len(b)) < frameHeader+uint64(n) {
		return nil, nil, errTorn
	}
	payload = b[frameHeader : frameHeader+n]
	if crc32.Checksum(payload, crcTable) != binary.LittleEndian.Uint32(b[4:]) {
		return nil, nil, errors.New("checksum mismatch")
	}
	return payload, b[frameHeader+n:], nil
}

// payloadWriter builds a frame's payload: unsigned varints and length-prefixed byte strings.
type payloadWriter []byte

func (w *payloadWriter) uint(v uint64)   { *w = binary.AppendUvarint(*w, v) }
func (w *payloadWriter) int(v int64)     { *w = binary.AppendVarint(*w, v) }
func (w *payloadWriter) bytes(s []byte)  { w.uint(uint64(len(s))); *w = append(*w, s...) }
func (w *payloadWriter) string(s string) { w.uint(uint64(len(s))); *w = append(*w, s...) }

// payloadReader reads what payloadWriter wrote; the first error sticks.
type payloadReader struct {
	b   []byte
	err error
}

var errShortPayload = errors.New("record shorter than its content")

func (r *payloadReader) uint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errShortPayload
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *payloadReader) int() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errShortPayload
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *payloadReader) string() string {
	n := r.uint()
	if r.err != nil {
		return ""
	}
	if n > uint64(len(r.b)) {
		r.err = errShortPayload
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *payloadReader) strings() []string {
	n := r.uint()
	if r.err != nil || n > uint64(len(r.b)) { // each string takes at least one byte
		if r.err == nil {
			r.err = errShortPayload
		}
		return nil
	}
	out := make([]string, n)
	for i := range out {
		out[i] = r.string()
	}
	return out
}
