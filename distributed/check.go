package distributed

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/residual-nn/residual/internal/typednil"
)

// errNoComm is what the functions that take a Comm return for a nil one.
var errNoComm = errors.New("distributed: no Comm (nil; Init or NewGroup makes one)")

// CheckSame fails, on every rank alike, unless every rank of c holds the
// same value: the start-up check that the ranks agree on the model
// config, the data and the flags before they train together. The ranks
// exchange a SHA-256 of value; if one differs, rank 0's value and the
// first differing rank's are exchanged and the error names the ranks
// that differ and shows what differs. With value written as one
// "key=value" per line, the message lists just the lines that differ.
func CheckSame(c Comm, name, value string) error {
	if typednil.Is(c) {
		return errNoComm
	}
	sum := sha256.Sum256([]byte(value))
	h0 := sum
	if err := c.BroadcastBytes(h0[:], 0); err != nil {
		return fmt.Errorf("distributed: checking %s: %w", name, err)
	}
	flags := make([]float32, c.Size())
	if h0 != sum {
		flags[c.Rank()] = 1
	}
	if err := c.AllReduceSum(flags); err != nil {
		return fmt.Errorf("distributed: checking %s: %w", name, err)
	}
	var differ []int
	for r, f := range flags {
		if f != 0 {
			differ = append(differ, r)
		}
	}
	if len(differ) == 0 {
		return nil
	}
	v0, err := BroadcastString(c, value, 0)
	if err != nil {
		return fmt.Errorf("distributed: checking %s: %w", name, err)
	}
	vd, err := BroadcastString(c, value, differ[0])
	if err != nil {
		return fmt.Errorf("distributed: checking %s: %w", name, err)
	}
	return fmt.Errorf("distributed: the ranks disagree on %s: rank%s %s differ%s from rank 0: %s",
		name, plural(len(differ)), joinInts(differ), verbS(len(differ)), describeDiff(v0, vd, differ[0]))
}

// BroadcastString returns root's s on every rank (the others' s is
// ignored): its length, then its bytes, so that the ranks need not know
// the length beforehand. Every rank must call it.
func BroadcastString(c Comm, s string, root int) (string, error) {
	if typednil.Is(c) {
		return "", errNoComm
	}
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(s)))
	if err := c.BroadcastBytes(n[:], root); err != nil {
		return "", err
	}
	b := make([]byte, binary.LittleEndian.Uint64(n[:]))
	copy(b, s) // on root; the others' contents are replaced
	if err := c.BroadcastBytes(b, root); err != nil {
		return "", err
	}
	return string(b), nil
}

// describeDiff says how rank d's value differs from rank 0's: the lines
// each has that the other has not, or both values if they are one line.
func describeDiff(v0, vd string, d int) string {
	l0, ld := strings.Split(v0, "\n"), strings.Split(vd, "\n")
	if len(l0) == 1 && len(ld) == 1 {
		return fmt.Sprintf("rank 0 has %s, rank %d has %s", clip(v0), d, clip(vd))
	}
	only := func(a, b []string) []string {
		var out []string
		for _, s := range a {
			if !slices.Contains(b, s) {
				out = append(out, clip(s))
			}
		}
		return out
	}
	o0, od := only(l0, ld), only(ld, l0)
	if len(o0) == 0 && len(od) == 0 {
		return fmt.Sprintf("the same lines in another order on rank %d", d)
	}
	none := func(s []string) string {
		if len(s) == 0 {
			return "nothing more"
		}
		return strings.Join(s, ", ")
	}
	return fmt.Sprintf("rank 0 has %s; rank %d has %s", none(o0), d, none(od))
}

// clip quotes s, shortened to its first 200 bytes.
func clip(s string) string {
	if len(s) > 200 {
		return fmt.Sprintf("%q… (%d bytes)", s[:200], len(s))
	}
	return fmt.Sprintf("%q", s)
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, ", ")
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func verbS(n int) string {
	if n == 1 {
		return "s"
	}
	return ""
}

// BroadcastTensors replaces every tensor on every rank with root's: the
// start of data-parallel training, where rank 0's initial parameters and
// buffers (batch-norm running statistics) become every rank's. Tensors
// are sent together in chunks of up to DefaultBucketBytes. The ranks
// first check that they hold tensors of the same sizes.
func BroadcastTensors(c Comm, tensors [][]float32, root int) error {
	sizes := make([]string, len(tensors))
	for i, t := range tensors {
		sizes[i] = fmt.Sprint(len(t))
	}
	if err := CheckSame(c, "the sizes of the tensors to broadcast", strings.Join(sizes, " ")); err != nil {
		return err
	}
	const chunk = DefaultBucketBytes / 4
	for lo := 0; lo < len(tensors); {
		if len(tensors[lo]) >= chunk {
			if err := c.Broadcast(tensors[lo], root); err != nil {
				return fmt.Errorf("distributed: broadcasting tensor %d: %w", lo, err)
			}
			lo++
			continue
		}
		hi, n := lo, 0
		for hi < len(tensors) && n+len(tensors[hi]) <= chunk {
			n += len(tensors[hi])
			hi++
		}
		buf := make([]float32, 0, n)
		for _, t := range tensors[lo:hi] {
			buf = append(buf, t...)
		}
		if err := c.Broadcast(buf, root); err != nil {
			return fmt.Errorf("distributed: broadcasting tensors %d to %d: %w", lo, hi-1, err)
		}
		for _, t := range tensors[lo:hi] {
			buf = buf[copy(t, buf):]
		}
		lo = hi
	}
	return nil
}
