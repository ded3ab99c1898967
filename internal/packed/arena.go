package packed

import "unsafe"

// Arena keeps packed records end to end in one buffer, so that a collection of them costs the
// garbage collector two objects and no pointer per record: a record is a Ref, an offset and a
// length. It is for the models of every contact of every account (a million records at 10,000
// accounts of 100), where a string per record was most of the objects the collector marked.
//
// A record is never written over: a change appends the new record and leaves the old one
// dead, and once more than half of the buffer is dead the owner compacts it into a new one
// (Wasteful, Compact). So a string View returns stays what it was, and valid, for as long as
// it is kept, even past a change or a compaction; but it keeps the whole buffer it points into
// alive, so what is kept beyond the owner's lock (events, snapshots) is a Copy.
//
// An Arena is not safe for concurrent use; its owner's lock guards it.
type Arena struct {
	buf  []byte
	dead int
}

// Ref is where a record is in its Arena. The zero Ref is an empty record of no fields.
type Ref struct{ off, n uint32 }

// Len returns the record's length in bytes.
func (r Ref) Len() int { return int(r.n) }

// maxArena bounds a buffer's size, so that offsets fit a Ref.
const maxArena = 1<<32 - 1

// Add appends a record of fields and returns it.
func (a *Arena) Add(fields ...string) Ref {
	n := 0
	for _, s := range fields {
		n += uvarintLen(len(s)) + len(s)
	}
	off := a.grow(n)
	for _, s := range fields {
		a.buf = appendField(a.buf, s)
	}
	return Ref{uint32(off), uint32(n)}
}

// Set returns r with field i replaced by v, as a new record (r is then dead), or r itself when
// field i already is v. r must have more than i fields.
func (a *Arena) Set(r Ref, i int, v string) Ref {
	head, old, tail := split(a.View(r), i)
	if old == v {
		return r
	}
	n := len(head) + uvarintLen(len(v)) + len(v) + len(tail)
	off := a.grow(n)
	// head, v and tail may be views of buf: appending copies them from below len(buf), which
	// is never written, or from the old buffer when append moves it.
	a.buf = append(a.buf, head...)
	a.buf = appendField(a.buf, v)
	a.buf = append(a.buf, tail...)
	a.Drop(r)
	return Ref{uint32(off), uint32(n)}
}

// Drop marks r dead.
func (a *Arena) Drop(r Ref) { a.dead += int(r.n) }

// View returns the record r as a string that shares the buffer (see Arena).
func (a *Arena) View(r Ref) string {
	if r.n == 0 {
		return ""
	}
	return unsafe.String(&a.buf[r.off], int(r.n))
}

// Copy returns the record r as a string of its own.
func (a *Arena) Copy(r Ref) string { return string(a.buf[r.off : r.off+r.n]) }

// Field returns field i of record r, a view (r must have more than i fields).
func (a *Arena) Field(r Ref, i int) string { return Field(a.View(r), i) }

// Size returns the buffer's length and how much of it is dead.
func (a *Arena) Size() (used, dead int) { return len(a.buf), a.dead }

// Wasteful reports whether more than half of the buffer (and at least 4 KiB) is dead: the
// owner should then Compact.
func (a *Arena) Wasteful() bool { return a.dead >= 4096 && a.dead > len(a.buf)/2 }

// Compact copies the live records into a new buffer. each must call move on every live record
// once, and store the Ref it returns in place of the old one.
func (a *Arena) Compact(each func(move func(Ref) Ref)) {
	old := a.buf
	a.buf, a.dead = make([]byte, 0, len(old)-a.dead), 0
	each(func(r Ref) Ref {
		off := len(a.buf)
		a.buf = append(a.buf, old[r.off:r.off+r.n]...)
		return Ref{uint32(off), r.n}
	})
}

// CompactIfWasteful compacts a when it is Wasteful. Every element of list refers to one live
// record, and ref returns where the element keeps its Ref.
func CompactIfWasteful[T any](a *Arena, list []T, ref func(*T) *Ref) {
	if !a.Wasteful() {
		return
	}
	a.Compact(func(move func(Ref) Ref) {
		for i := range list {
			r := ref(&list[i])
			*r = move(*r)
		}
	})
}

// grow makes room for n more bytes and returns where they start. A buffer that would pass 4
// GiB is a caller's bug (a contact list is a few hundred KiB at most).
func (a *Arena) grow(n int) int {
	off := len(a.buf)
	if off+n > maxArena {
		panic("packed: arena over 4 GiB")
	}
	if cap(a.buf)-off < n {
		nb := make([]byte, off, max(2*cap(a.buf), off+n, 256))
		copy(nb, a.buf)
		a.buf = nb
	}
	return off
}

func appendField(b []byte, s string) []byte {
	n := uint(len(s))
	for n >= 0x80 {
		b = append(b, byte(n)|0x80)
		n >>= 7
	}
	b = append(b, byte(n))
	return append(b, s...)
}
