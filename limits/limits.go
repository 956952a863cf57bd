// Package limits holds the bounds that residual applies to every input it
// may not trust: checkpoints and state dicts, ONNX and Keras files, images,
// data sets and server requests, and the memory a requested batch may
// take (CheckMemory). Each parser and loader checks its input
// against these values before it allocates, so a small hostile file gets an
// error naming the problem instead of a crash or an allocation of
// gigabytes. docs/SECURITY.md lists where each limit is applied and how it
// is tested.
//
// The values are variables so that a program with other needs (a server
// on a large machine, a test) can change them before it reads anything;
// they are not safe to change while inputs are being read.
package limits

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/big"
	"os"
	"strconv"
	"strings"
)

var (
	// TensorElements bounds the number of values of one tensor read from a
	// file or produced by an operator of an untrusted graph: 2^28 (1 GiB of
	// float32), which ResNet-152's largest weight (2.4M) and a batch of 64
	// 224×224×64 activations (205M) stay below.
	TensorElements = 1 << 28
	// TotalBytes bounds the tensor data of one checkpoint, state dict or
	// model file: 4 GiB, beyond ResNet-1202's 78 MB and ResNet-152's
	// 240 MB by far.
	TotalBytes int64 = 4 << 30
	// HeaderBytes bounds the structured part of a file that is read whole
	// before its tensor data: a safetensors JSON header, a pickle (a .pth's
	// data.pkl), a Keras model.json or labels.json. 100 MiB, just above
	// the reference safetensors reader's 100,000,000 bytes; ResNet-152's
	// data.pkl is 40 kB.
	HeaderBytes int64 = 100 << 20
	// ImagePixels bounds an image's width × height, checked from its
	// header before it is decoded: PIL's MAX_IMAGE_PIXELS (89,478,485, a
	// 1/4 GB 24-bit image), so that what PIL refuses as a decompression
	// bomb, residual refuses too.
	ImagePixels = 89_478_485
	// ImageSide bounds an image's width and height on their own, and any
	// size an image is resized to: 1<<16, the largest side PNG decoders
	// commonly accept.
	ImageSide = 1 << 16
	// Classes bounds a classifier's class count (ImageNet-21k has 21,841).
	Classes = 1 << 17
	// Channels bounds the channels of a layer described by a file.
	Channels = 1 << 16
	// Layers bounds the depth a file may ask a network to have (blocks per
	// stage, an MLP's depth): ResNet-1202 has 600 blocks.
	Layers = 1 << 14
	// Nesting bounds the nesting of structured data in a file or request:
	// a pickle's MARKs, an ONNX model's or a gRPC request's messages, the
	// data arrays of a JSON request.
	Nesting = 1 << 10
	// Memory, when positive, is the memory in bytes that CheckMemory
	// allows, in place of what the system has available: to keep a process
	// within less, or for a test.
	Memory int64
)

// CheckElements returns an error naming what if the shape is negative in
// any dimension or holds more than TensorElements values. It multiplies
// without overflowing.
func CheckElements(what string, shape ...int) error {
	n := 1
	for _, d := range shape {
		if d < 0 {
			return fmt.Errorf("%s: negative dimension in shape %v", what, shape)
		}
		if d != 0 && n > TensorElements/d {
			return fmt.Errorf("%s: shape %v holds more than %d values (limits.TensorElements)", what, shape, TensorElements)
		}
		n *= d
	}
	return nil
}

// ParseShape decodes a JSON list of dimensions (a safetensors header's
// or a TensorFlow.js weight manifest's "shape") into ints, with
// encoding/json's error for anything else; a shape it returns is still to
// be checked with CheckElements. A dimension that an int cannot hold (past
// 2³¹−1 on 386 and arm, past 2⁶³−1 elsewhere) does not get encoding/json's
// "cannot unmarshal number": the shape is checked as CheckElements checks
// one, on numbers of any size, so that one that holds too many values gets
// that error (without its what) on every platform, and one that does not
// (a zero comes first) a *WideDimensionError naming the dimension and the
// platform's bound.
func ParseShape(b []byte) ([]int, error) {
	var shape []int
	err := json.Unmarshal(b, &shape)
	if err == nil {
		return shape, nil
	}
	var dims []json.RawMessage
	if json.Unmarshal(b, &dims) != nil {
		return nil, err
	}
	vals := make([]*big.Int, len(dims))
	var wide *big.Int // the first dimension past an int
	for i, d := range dims {
		v, ok := new(big.Int).SetString(string(d), 10)
		if !ok { // not a whole number: what encoding/json makes of it in an int
			var x int // null leaves 0
			if err := json.Unmarshal(d, &x); err != nil {
				return nil, err // naming it, where err may name a wide dimension before it
			}
			v = new(big.Int)
		}
		vals[i] = v
		if wide == nil && (!v.IsInt64() || int64(int(v.Int64())) != v.Int64()) {
			wide = v
		}
	}
	if wide == nil { // every dimension fits: encoding/json refused something else
		return nil, err
	}
	// CheckElements's checks, in its order, on numbers of any size.
	n, most := big.NewInt(1), big.NewInt(int64(TensorElements))
	for _, v := range vals {
		if v.Sign() < 0 {
			return nil, fmt.Errorf("negative dimension in shape %v", vals)
		}
		if n.Mul(n, v).Cmp(most) > 0 {
			return nil, fmt.Errorf("shape %v holds more than %d values (limits.TensorElements)", vals, TensorElements)
		}
	}
	return nil, &WideDimensionError{Shape: vals, Dim: wide}
}

// WideDimensionError is ParseShape's error for a shape that holds no
// values, a zero dimension coming before one that an int cannot hold, so
// that CheckElements's checks pass it and only the platform's int refuses
// it. A reader that refuses an empty dimension anyway (a TensorFlow.js
// weight) finds the zero in Shape and names that instead, in the same
// words on every platform.
type WideDimensionError struct {
	Shape []*big.Int // every dimension, at full size
	Dim   *big.Int   // the first dimension past an int
}

// Error names the shape and its first dimension past an int, with the
// platform's largest int.
func (e *WideDimensionError) Error() string {
	return fmt.Sprintf("shape %v: dimension %v does not fit an int, at most %d on this %d-bit platform", e.Shape, e.Dim, math.MaxInt, strconv.IntSize)
}

// CheckImage returns an error naming what if a w×h image is empty or
// larger than ImageSide on a side or ImagePixels in all.
func CheckImage(what string, w, h int) error {
	switch {
	case w <= 0 || h <= 0:
		return fmt.Errorf("%s: image of %d×%d pixels is empty", what, w, h)
	case w > ImageSide || h > ImageSide:
		return fmt.Errorf("%s: image of %d×%d pixels has a side over %d (limits.ImageSide)", what, w, h, ImageSide)
	case int64(w)*int64(h) > int64(ImagePixels):
		return fmt.Errorf("%s: image of %d×%d = %d pixels is over %d (limits.ImagePixels): refused as a possible decompression bomb", what, w, h, int64(w)*int64(h), ImagePixels)
	}
	return nil
}

// ReadFile reads a whole file that must be a regular file of at most
// limit bytes: its size comes from Stat and is checked before anything is
// allocated (on a 32-bit platform also against 2³¹−1 bytes, the longest
// slice), and a device, a pipe or a folder is refused rather than read
// without end. It opens as OpenNoWait does: a FIFO that no process writes
// would block the open itself.
func ReadFile(path string, limit int64) ([]byte, error) {
	f, err := OpenNoWait(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("%s has %d bytes, more than the %d allowed", path, st.Size(), limit)
	}
	if int64(int(st.Size())) != st.Size() { // past 2³¹−1 on a 32-bit platform: no slice is that long
		return nil, fmt.Errorf("%s has %d bytes, more than a 32-bit process holds (%d)", path, st.Size(), math.MaxInt)
	}
	b := make([]byte, st.Size())
	if n, err := io.ReadFull(f, b); err != nil {
		return nil, fmt.Errorf("%s: read %d of %d bytes: %w", path, n, len(b), err)
	}
	return b, nil
}

// OpenNoWait opens path for reading as os.Open does, except that opening a
// FIFO does not wait for a process to open it for writing (where there
// are FIFOs: O_NONBLOCK, cleared again once open, so that reads wait for
// data as usual). A FIFO that no process writes then reads as empty, at
// once, where os.Open would block for ever, beyond any signal's reach.
func OpenNoWait(path string) (*os.File, error) { return openNoWait(path) }

// AvailableMemory returns the memory the system can give new allocations
// without swapping: Linux's MemAvailable (/proc/meminfo). ok is false
// where it is not known (another system, an unreadable file).
func AvailableMemory() (bytes int64, ok bool) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	return memAvailable(f)
}

// memAvailable reads MemAvailable, in bytes, from a /proc/meminfo.
func memAvailable(r io.Reader) (int64, bool) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 && f[0] == "MemAvailable:" && f[2] == "kB" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb << 10, err == nil && kb >= 0 && kb < 1<<53
		}
	}
	return 0, false
}

// CheckMemory returns an error naming what when need bytes exceed the
// memory available now (Memory if set, else AvailableMemory; nil where
// that is unknown):
// for work that would otherwise grow until the kernel kills the process,
// without a message and without saving anything. On a 32-bit platform
// it allows at most 2³¹−1 bytes (2.1 GB), whatever Memory or the machine
// says: the longest slice, and half of the 4 GiB such a process can
// address at best; past that an allocation panics (makeslice: len out of
// range) or exhausts the address space.
func CheckMemory(what string, need int64) error {
	avail, ok := Memory, Memory > 0
	if !ok {
		avail, ok = AvailableMemory()
	}
	if strconv.IntSize == 32 && (!ok || avail > math.MaxInt32) {
		if need <= math.MaxInt32 {
			return nil
		}
		return fmt.Errorf("%s needs at least %s of memory; a 32-bit process holds %s at most", what, sizeText(need), sizeText(math.MaxInt32))
	}
	if !ok || need <= avail {
		return nil
	}
	return fmt.Errorf("%s needs at least %s of memory; %s is available", what, sizeText(need), sizeText(avail))
}

// sizeText writes a byte count in GB, or MB below 1 GB.
func sizeText(n int64) string {
	if n < 1e9 {
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	}
	return fmt.Sprintf("%.1f GB", float64(n)/1e9)
}
