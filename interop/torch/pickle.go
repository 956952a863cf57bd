package torch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/nlpodyssey/gopickle/pickle"

	"github.com/residual-nn/residual/limits"
)

// byteReader is what readPickle reads from: a bufio.Reader over a legacy
// file, a bytes.Reader over a zip entry.
type byteReader interface {
	io.Reader
	io.ByteReader
}

// maxLine bounds a protocol-0 text argument (INT, LONG, FLOAT, GLOBAL
// names, GET and PUT keys): far beyond a module path or a 64-bit integer,
// and short enough that no text number costs time to parse.
const maxLine = 1 << 12

// maxLong bounds the bytes of a LONG4 integer: the interpreter decodes
// them in time quadratic in their number, and a state dict's largest
// integer (the legacy format's magic number) has 10.
const maxLong = 64

// errTruncated reports a pickle that ends inside an opcode.
var errTruncated = errors.New("pickle truncated")

// readPickle reads one pickle from r, up to and including its STOP opcode,
// and returns its bytes after checking every length it holds: each
// argument and frame must lie within the pickle and the whole within
// limits.HeaderBytes, no text argument may exceed maxLine bytes and MARKs
// may not nest deeper than limits.Nesting. The pickle interpreter
// allocates a buffer of whatever length an opcode names before it reads
// it, and panics on a negative one; after this pass no length it sees
// exceeds the bytes that follow it. Unknown opcodes are refused here too.
func readPickle(r byteReader) ([]byte, error) {
	var out bytes.Buffer
	budget := limits.HeaderBytes
	take := func(n int64) ([]byte, error) {
		if n < 0 || n > budget-int64(out.Len()) {
			return nil, fmt.Errorf("pickle argument of %d bytes exceeds the %d-byte bound on a pickle (limits.HeaderBytes)", n, limits.HeaderBytes)
		}
		start := out.Len()
		if m, err := io.CopyN(&out, r, n); err != nil {
			return nil, fmt.Errorf("%w: %d of %d bytes of an argument", errTruncated, m, n)
		}
		return out.Bytes()[start:], nil
	}
	line := func() error {
		for i := 0; i <= maxLine; i++ {
			b, err := r.ReadByte()
			if err != nil {
				return fmt.Errorf("%w inside a text argument", errTruncated)
			}
			out.WriteByte(b)
			if b == '\n' {
				return nil
			}
		}
		return fmt.Errorf("pickle text argument longer than %d bytes", maxLine)
	}
	// length reads an n-byte little-endian length and then that many bytes.
	length := func(n int, signed bool) error {
		b, err := take(int64(n))
		if err != nil {
			return err
		}
		var v int64
		switch n {
		case 1:
			v = int64(b[0])
		case 4:
			if u := binary.LittleEndian.Uint32(b); signed {
				v = int64(int32(u))
			} else {
				v = int64(u)
			}
		case 8:
			u := binary.LittleEndian.Uint64(b)
			if u > 1<<62 {
				return fmt.Errorf("pickle length %d out of range", u)
			}
			v = int64(u)
		}
		_, err = take(v)
		return err
	}
	depth := 0
	frameEnd := int64(-1) // where the current frame ends, −1 outside one
	for {
		if int64(out.Len()) >= budget {
			return nil, fmt.Errorf("pickle longer than %d bytes (limits.HeaderBytes)", limits.HeaderBytes)
		}
		if frameEnd >= 0 && int64(out.Len()) == frameEnd {
			frameEnd = -1
		}
		op, err := r.ReadByte()
		if err != nil {
			if out.Len() == 0 {
				return nil, fmt.Errorf("no pickle: %w", io.ErrUnexpectedEOF)
			}
			return nil, fmt.Errorf("%w: no STOP opcode after %d bytes", errTruncated, out.Len())
		}
		out.WriteByte(op)
		var err2 error
		switch op {
		case '.': // STOP
			if frameEnd > int64(out.Len()) {
				return nil, fmt.Errorf("pickle stops %d bytes before the end of its frame", frameEnd-int64(out.Len()))
			}
			return out.Bytes(), nil
		case '(': // MARK
			if depth++; depth > limits.Nesting {
				return nil, fmt.Errorf("pickle nests deeper than %d (limits.Nesting)", limits.Nesting)
			}
		case '1', 't', 'l', 'd', 'e', 'u', 'o', 0x90, 0x91: // POP_MARK and the ops that consume a MARK
			if depth > 0 {
				depth--
			}
		case 'i': // INST: two lines, consumes a MARK
			if depth > 0 {
				depth--
			}
			if err2 = line(); err2 == nil {
				err2 = line()
			}
		case 'c': // GLOBAL: module and name lines
			if err2 = line(); err2 == nil {
				err2 = line()
			}
		case 'I', 'L': // INT, LONG: a decimal line
			start := out.Len()
			if err2 = line(); err2 == nil {
				err2 = textIntFits(out.Bytes()[start:], op == 'L')
			}
		case 'F', 'P', 'S', 'V', 'g', 'p': // text arguments
			err2 = line()
		case 0x8a: // LONG1: a one-byte count, then the integer's bytes
			var b []byte
			if b, err2 = take(1); err2 == nil {
				if b, err2 = take(int64(b[0])); err2 == nil {
					err2 = longFits(b)
				}
			}
		case 'K', 'U', 'h', 'q', 0x80, 0x82, 'C', 0x8c: // one-byte argument, or length and data
			switch op {
			case 'U', 'C', 0x8c: // SHORT_BINSTRING, SHORT_BINBYTES, SHORT_BINUNICODE
				err2 = length(1, false)
			default:
				_, err2 = take(1)
			}
		case 'M', 0x83: // BININT2, EXT2
			_, err2 = take(2)
		case 'J', 'j', 'r', 0x84: // BININT, LONG_BINGET, LONG_BINPUT, EXT4
			_, err2 = take(4)
		case 'G': // BINFLOAT
			_, err2 = take(8)
		case 'T': // BINSTRING: signed 4-byte length
			err2 = length(4, true)
		case 0x8b: // LONG4: an integer of a signed 4-byte length of bytes
			var b []byte
			if b, err2 = take(4); err2 == nil {
				if n := int32(binary.LittleEndian.Uint32(b)); n < 0 || n > maxLong {
					err2 = fmt.Errorf("pickle integer of %d bytes; a state dict needs at most %d", n, maxLong)
				} else if b, err2 = take(int64(n)); err2 == nil {
					err2 = longFits(b)
				}
			}
		case 'X', 'B': // BINUNICODE, BINBYTES
			err2 = length(4, false)
		case 0x8d, 0x8e, 0x96: // BINUNICODE8, BINBYTES8, BYTEARRAY8
			err2 = length(8, false)
		case 0x95: // FRAME: an 8-byte size, then that many bytes of opcodes
			if frameEnd >= 0 {
				return nil, fmt.Errorf("pickle frame begins inside another frame at byte %d", out.Len()-1)
			}
			var b []byte
			if b, err2 = take(8); err2 == nil {
				size := binary.LittleEndian.Uint64(b)
				if size > uint64(budget-int64(out.Len())) {
					return nil, fmt.Errorf("pickle frame of %d bytes exceeds the %d-byte bound on a pickle (limits.HeaderBytes)", size, limits.HeaderBytes)
				}
				frameEnd = int64(out.Len()) + int64(size)
			}
		case '0', '2', 'N', 'Q', 'R', 'a', 'b', '}', ']', 's', ')', 0x81, 0x85, 0x86, 0x87, 0x88, 0x89,
			0x8f, 0x92, 0x93, 0x94, 0x97, 0x98: // no argument
		default:
			return nil, fmt.Errorf("unknown pickle opcode 0x%02x at byte %d", op, out.Len()-1)
		}
		if err2 != nil {
			return nil, err2
		}
	}
}

// longFits refuses a LONG1 or LONG4 integer (little-endian two's
// complement) of 1 to 8 bytes that an int cannot hold: the interpreter
// makes those an int and drops what does not fit, so on a 32-bit platform
// a storage of 2⁴⁰ values read as 0 and an offset of 2⁶³−1 as −1. Longer
// ones it makes a *big.Int, which no state dict field takes, and an
// empty one it refuses itself.
func longFits(b []byte) error {
	if len(b) == 0 || len(b) > 8 {
		return nil
	}
	var u uint64
	for i := len(b) - 1; i >= 0; i-- {
		u = u<<8 | uint64(b[i])
	}
	shift := 64 - 8*len(b)
	return intFits(int64(u<<shift) >> shift)
}

// textIntFits is longFits for a protocol-0 INT's or LONG's decimal line
// (with its newline; a LONG with an L after the digits where Python 2
// wrote one). The interpreter reads an INT with strconv.Atoi, refusing one
// past an int in strconv's words ("value out of range", past 2³¹−1 on a
// 32-bit platform only): refused here, as the binary integers are, in
// the same words on every platform. It reads a LONG as an int64 made an
// int, and past an int64 as a *big.Int. What is no number the
// interpreter refuses itself.
func textIntFits(line []byte, long bool) error {
	s := strings.TrimSuffix(string(line), "\n")
	if long {
		s = strings.TrimSuffix(s, "L")
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if !long && errors.Is(err, strconv.ErrRange) {
		return errIntPastInt(s)
	}
	if err != nil {
		return nil
	}
	return intFits(v)
}

// intFits refuses a pickle integer past the platform's int.
func intFits(v int64) error {
	if int64(int(v)) != v {
		return errIntPastInt(v)
	}
	return nil
}

// errIntPastInt is the error for a pickle integer v that an int cannot
// hold.
func errIntPastInt(v any) error {
	return fmt.Errorf("pickle integer %v does not fit an int, at most %d on this %d-bit platform", v, math.MaxInt, strconv.IntSize)
}

// unpickle interprets a pickle that readPickle checked, with globals
// resolved by find and persistent ids by load. The interpreter
// (github.com/nlpodyssey/gopickle) can still panic on malformed input (a
// stack it assumes non-empty, an unhashable dictionary key): that is
// recovered here and reported as an error.
func unpickle(b []byte, find func(module, name string) (any, error), load func(any) (any, error)) (obj any, err error) {
	defer func() {
		if r := recover(); r != nil {
			obj, err = nil, fmt.Errorf("malformed pickle (the pickle reader failed: %v)", r)
		}
	}()
	u := pickle.NewUnpickler(bytes.NewReader(b))
	u.FindClass = find
	u.PersistentLoad = load
	return u.Load()
}
