package api

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// TestWriteFDSlowClient: an answer larger than the socket's buffer is written whole, the rest by
// a goroutine once the client reads; the caller is told, and done runs after the close.
func TestWriteFDSlowClient(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	client, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	fd, ok := detach(server)
	if !ok {
		t.Fatal("detach refused a TCP connection")
	}
	head, body := []byte("head\r\n"), bytes.Repeat([]byte("0123456789"), 800_000) // 8 MB
	done := make(chan struct{})
	if !writeFD(fd, [][]byte{head, body}, func() { close(done) }) {
		t.Fatal("8 MB fitted in the socket's buffer: the slow path was not taken")
	}
	client.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(client) // to the end of file: the goroutine closed the socket
	if err != nil {
		t.Fatal(err)
	}
	if want := append(head, body...); !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, want %d", len(got), len(want))
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("done did not run")
	}
}
