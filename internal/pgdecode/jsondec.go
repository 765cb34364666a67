package pgdecode

import (
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// jdec reads the JSON pg_query's parser writes (pg_query_parse): objects
// keyed by the protobuf fields' JSON names, enums by name, a oneof member
// under its field's name. The generated jsonX functions walk it; any
// surprise makes them return false and Parse decodes protobuf instead.
type jdec struct {
	b []byte
	i int
}

func (d *jdec) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// open consumes c ('{' or '[').
func (d *jdec) open(c byte) bool {
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

// more reports whether another member or element follows, consuming the
// comma before it, or the closing bracket when none does.
func (d *jdec) more() bool {
	d.ws()
	if d.i >= len(d.b) {
		return false
	}
	switch d.b[d.i] {
	case ',':
		d.i++
		return true
	case '}', ']':
		d.i++
		return false
	}
	return true
}

// key reads a member's name and its colon. pg_query's names are plain
// ASCII: a name with an escape is a surprise.
func (d *jdec) key() ([]byte, bool) {
	d.ws()
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		return nil, false
	}
	start := d.i + 1
	for j := start; j < len(d.b); j++ {
		switch d.b[j] {
		case '\\':
			return nil, false
		case '"':
			k := d.b[start:j]
			d.i = j + 1
			d.ws()
			if d.i >= len(d.b) || d.b[d.i] != ':' {
				return nil, false
			}
			d.i++
			return k, true
		}
	}
	return nil, false
}

func (d *jdec) str() (string, bool) {
	d.ws()
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		return "", false
	}
	start := d.i + 1
	for j := start; j < len(d.b); j++ {
		c := d.b[j]
		if c == '"' {
			d.i = j + 1
			if !utf8.Valid(d.b[start:j]) {
				return "", false
			}
			return string(d.b[start:j]), true
		}
		if c == '\\' {
			return d.escaped(start)
		}
	}
	return "", false
}

// escaped reads a string holding escapes, from its first byte at start.
func (d *jdec) escaped(start int) (string, bool) {
	out := make([]byte, 0, 32)
	for j := start; j < len(d.b); {
		c := d.b[j]
		switch {
		case c == '"':
			d.i = j + 1
			if !utf8.Valid(out) {
				return "", false
			}
			return string(out), true
		case c != '\\':
			out = append(out, c)
			j++
			continue
		}
		if j+1 >= len(d.b) {
			return "", false
		}
		e := d.b[j+1]
		j += 2
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := hex4(d.b, j)
			if !ok {
				return "", false
			}
			j += 4
			if utf16.IsSurrogate(r) {
				if j+6 > len(d.b) || d.b[j] != '\\' || d.b[j+1] != 'u' {
					return "", false
				}
				r2, ok := hex4(d.b, j+2)
				if !ok {
					return "", false
				}
				r = utf16.DecodeRune(r, r2)
				if r == utf8.RuneError {
					return "", false
				}
				j += 6
			}
			out = utf8.AppendRune(out, r)
		default:
			return "", false
		}
	}
	return "", false
}

func hex4(b []byte, j int) (rune, bool) {
	if j+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[j : j+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	return r, true
}

// number returns the bytes of a JSON number.
func (d *jdec) number() ([]byte, bool) {
	d.ws()
	start := d.i
	for d.i < len(d.b) {
		switch c := d.b[d.i]; {
		case c >= '0' && c <= '9', c == '-', c == '+', c == '.', c == 'e', c == 'E':
			d.i++
			continue
		}
		break
	}
	return d.b[start:d.i], d.i > start
}

// int64 reads an integer: an optional minus and up to 18 digits (more is
// a surprise: pg_query's integers fit in 64 bits, and this keeps clear of
// overflow).
func (d *jdec) int64() (int64, bool) {
	n, ok := d.number()
	if !ok {
		return 0, false
	}
	neg := n[0] == '-'
	if neg {
		n = n[1:]
	}
	if len(n) == 0 || len(n) > 18 {
		return 0, false
	}
	var v int64
	for _, c := range n {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	if neg {
		v = -v
	}
	return v, true
}

func (d *jdec) uint64() (uint64, bool) {
	v, ok := d.int64()
	return uint64(v), ok && v >= 0
}

func (d *jdec) float64() (float64, bool) {
	n, ok := d.number()
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseFloat(string(n), 64)
	return v, err == nil
}

func (d *jdec) boolean() (bool, bool) {
	d.ws()
	switch {
	case len(d.b)-d.i >= 4 && string(d.b[d.i:d.i+4]) == "true":
		d.i += 4
		return true, true
	case len(d.b)-d.i >= 5 && string(d.b[d.i:d.i+5]) == "false":
		d.i += 5
		return false, true
	}
	return false, false
}

// end reports whether only whitespace is left.
func (d *jdec) end() bool {
	d.ws()
	return d.i == len(d.b)
}
