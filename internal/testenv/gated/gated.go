// Package gated gives tests a reader that stops half way until released, to stand for a
// transfer whose source stalls.
package gated

import "io"

// Reader reads Data, blocking once Gate bytes were read until Release is closed.
type Reader struct {
	Data    []byte
	Gate    int
	Release chan struct{}
	off     int
}

// Read implements io.Reader.
func (r *Reader) Read(p []byte) (int, error) {
	if r.off >= r.Gate {
		<-r.Release
	}
	if r.off >= len(r.Data) {
		return 0, io.EOF
	}
	end := len(r.Data)
	if r.off < r.Gate {
		end = r.Gate
	}
	n := copy(p, r.Data[r.off:end])
	r.off += n
	return n, nil
}
