package data

import (
	"bufio"
	"compress/gzip"
	"embed"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/residual-nn/residual/limits"
)

//go:embed mnist/*.gz
var mnistFiles embed.FS

// ReadIDX decodes an IDX file (gzipped or not) of unsigned bytes: images
// (3 dimensions: N, H, W) or labels (1 dimension). It returns the
// dimensions and the values. The dimensions may make at most
// limits.TensorElements values, which are read as they arrive: a header
// that claims more than its data is refused where the data ends, having
// allocated about what arrived, not what it claimed.
func ReadIDX(r io.Reader) (dims []int, values []uint8, err error) {
	br := bufio.NewReader(r)
	if magic, err := br.Peek(2); err == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("idx: bad gzip stream: %w", err)
		}
		defer gz.Close()
		br = bufio.NewReader(gz)
	}
	var hdr [4]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return nil, nil, fmt.Errorf("idx: truncated header: %w", err)
	}
	if hdr[0] != 0 || hdr[1] != 0 {
		return nil, nil, fmt.Errorf("idx: bad magic %x (not an IDX file)", hdr)
	}
	if hdr[2] != 0x08 {
		return nil, nil, fmt.Errorf("idx: element type 0x%02x is not unsigned bytes (0x08)", hdr[2])
	}
	nd := int(hdr[3])
	if nd < 1 || nd > 4 {
		return nil, nil, fmt.Errorf("idx: %d dimensions (want 1 to 4)", nd)
	}
	total := 1
	for i := 0; i < nd; i++ {
		var d uint32
		if err := binary.Read(br, binary.BigEndian, &d); err != nil {
			return nil, nil, fmt.Errorf("idx: truncated dimensions: %w", err)
		}
		// A header must not make the reader allocate more than one tensor
		// may hold (a few kilobytes of gzip can claim gigabytes of zeros):
		// 2^28 bytes, 5.7 times MNIST's training images.
		if d == 0 || uint64(total)*uint64(d) > uint64(limits.TensorElements) {
			return nil, nil, fmt.Errorf("idx: dimension %d of size %d is empty, or makes more than %d values (limits.TensorElements)", i, d, limits.TensorElements)
		}
		total *= int(d)
		dims = append(dims, int(d))
	}
	// Read what is there, growing the buffer with the data, rather than
	// allocating all the header claims before reading a byte of it.
	values, err = io.ReadAll(io.LimitReader(br, int64(total)))
	if err != nil {
		return nil, nil, fmt.Errorf("idx: reading %v values: %w", dims, err)
	}
	if len(values) != total {
		return nil, nil, fmt.Errorf("idx: %v values promised, data truncated after %d", dims, len(values))
	}
	if _, err := br.ReadByte(); err != io.EOF {
		return nil, nil, fmt.Errorf("idx: trailing data after %v values", dims)
	}
	return dims, values, nil
}

// ReadIDXPair reads an image file and a label file into a data set of
// 1-channel images with classes named "0", "1", ….
func ReadIDXPair(images, labels io.Reader, classes []string) (*Dataset, error) {
	dims, pix, err := ReadIDX(images)
	if err != nil {
		return nil, fmt.Errorf("images: %w", err)
	}
	if len(dims) != 3 {
		return nil, fmt.Errorf("images: IDX with %d dimensions, want 3 (N, H, W)", len(dims))
	}
	ldims, lab, err := ReadIDX(labels)
	if err != nil {
		return nil, fmt.Errorf("labels: %w", err)
	}
	if len(ldims) != 1 || ldims[0] != dims[0] {
		return nil, fmt.Errorf("labels: %v labels for %d images", ldims, dims[0])
	}
	d := &Dataset{H: dims[1], W: dims[2], C: 1, Pixels: pix, Labels: make([]int32, len(lab)), Classes: classes}
	for i, l := range lab {
		d.Labels[i] = int32(l)
	}
	if err := d.Check(); err != nil {
		return nil, err
	}
	return d, nil
}

var digits = []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}

// FashionClasses are Fashion-MNIST's class names.
var FashionClasses = []string{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"}

// MNIST returns the embedded MNIST training (60,000) and test (10,000) sets.
func MNIST() (train, test *Dataset, err error) {
	open := func(name string) (io.ReadCloser, error) { return mnistFiles.Open("mnist/" + name) }
	return readIDXSet(open, digits)
}

// DefaultFashionDir is where Debian's dataset-fashion-mnist puts the files.
const DefaultFashionDir = "/usr/share/datasets/fashion-mnist"

// FashionMNIST reads Fashion-MNIST's four IDX files (gzipped or not) from
// dir (DefaultFashionDir if empty).
func FashionMNIST(dir string) (train, test *Dataset, err error) {
	if dir == "" {
		dir = DefaultFashionDir
	}
	return readIDXSet(dirOpener(dir), FashionClasses)
}

// IDXDir reads an MNIST-layout folder (train-images-idx3-ubyte[.gz], …)
// with the given class names (digits if nil).
func IDXDir(dir string, classes []string) (train, test *Dataset, err error) {
	if classes == nil {
		classes = digits
	}
	return readIDXSet(dirOpener(dir), classes)
}

func dirOpener(dir string) func(string) (io.ReadCloser, error) {
	return func(name string) (io.ReadCloser, error) {
		// Opened without waiting for a writer (a FIFO would block
		// os.Open beyond any signal's reach; opened so it reads as empty).
		p := filepath.Join(dir, name)
		f, err := limits.OpenNoWait(p)
		if os.IsNotExist(err) {
			f, err = limits.OpenNoWait(p[:len(p)-len(".gz")])
		}
		if os.IsNotExist(err) {
			return nil, fmt.Errorf("data: %s (or without .gz) not found: %w", p, err)
		}
		return f, err
	}
}

func readIDXSet(open func(string) (io.ReadCloser, error), classes []string) (train, test *Dataset, err error) {
	read := func(prefix string) (*Dataset, error) {
		img, err := open(prefix + "-images-idx3-ubyte.gz")
		if err != nil {
			return nil, err
		}
		defer img.Close()
		lab, err := open(prefix + "-labels-idx1-ubyte.gz")
		if err != nil {
			return nil, err
		}
		defer lab.Close()
		d, err := ReadIDXPair(img, lab, classes)
		if err != nil {
			return nil, fmt.Errorf("data: %s set: %w", prefix, err)
		}
		return d, nil
	}
	if train, err = read("train"); err != nil {
		return nil, nil, err
	}
	if test, err = read("t10k"); err != nil {
		return nil, nil, err
	}
	if train.H != test.H || train.W != test.W {
		return nil, nil, fmt.Errorf("data: train images are %dx%d, test images %dx%d", train.H, train.W, test.H, test.W)
	}
	return train, test, nil
}
