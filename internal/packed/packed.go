// Package packed keeps several strings in one: each after its uvarint length.
//
// The bridge keeps a model of every contact of every account, in the msn client and in the
// core: a million contacts at 10,000 accounts of 100. A contact's strings are the fields of one
// record, and an account's records live end to end in one Arena, so that the garbage collector
// has a few objects an account to mark instead of one or more per contact. Reading a field walks
// the lengths before it; changing one appends the record anew. The strings a read returns share
// the record's memory.
package packed

import "strings"

// Pack packs fields.
func Pack(fields ...string) string {
	n := 0
	for _, s := range fields {
		n += uvarintLen(len(s)) + len(s)
	}
	var b strings.Builder
	b.Grow(n)
	for _, s := range fields {
		write(&b, s)
	}
	return b.String()
}

// Field returns field i of rec. rec must have been packed with more than i fields.
func Field(rec string, i int) string {
	var s string
	for range i + 1 {
		s, rec = next(rec)
	}
	return s
}

// Unpack fills out with the first len(out) fields of rec.
func Unpack(rec string, out []string) {
	for i := range out {
		out[i], rec = next(rec)
	}
}

// List packs items as a list ("" for none): a packed string of any number of fields.
func List(items []string) string {
	if len(items) == 0 {
		return ""
	}
	return Pack(items...)
}

// Items returns the items of a List, nil for none.
func Items(list string) []string {
	var out []string
	for list != "" {
		var item string
		item, list = next(list)
		out = append(out, item)
	}
	return out
}

// split cuts rec around field i: what is before it, the field, what is after it.
func split(rec string, i int) (head, field, tail string) {
	r := rec
	for range i {
		_, r = next(r)
	}
	field, tail = next(r)
	return rec[:len(rec)-len(r)], field, tail
}

func write(b *strings.Builder, s string) {
	n := uint(len(s))
	for n >= 0x80 {
		b.WriteByte(byte(n) | 0x80)
		n >>= 7
	}
	b.WriteByte(byte(n))
	b.WriteString(s)
}

// next splits the field at the start of r from the rest. r is always what this package
// wrote, so its lengths are in range.
func next(r string) (field, rest string) {
	var n uint
	for shift := uint(0); ; shift += 7 {
		b := r[0]
		r = r[1:]
		n |= uint(b&0x7f) << shift
		if b < 0x80 {
			break
		}
	}
	return r[:n], r[n:]
}

func uvarintLen(n int) int {
	l := 1
	for n >= 0x80 {
		n >>= 7
		l++
	}
	return l
}
