package data

import (
	"fmt"
	"path/filepath"

	"github.com/residual-nn/residual/limits"
)

const cifarPixels = 32 * 32 * 3

// ReadCIFAR decodes CIFAR binary records: for CIFAR-10 (labelBytes 1) one
// label byte and 3072 pixel bytes (1024 red, 1024 green, 1024 blue, rows in
// order); for CIFAR-100 (labelBytes 2) a coarse and a fine label byte
// (fine is used). Pixels are stored NHWC.
func ReadCIFAR(b []byte, labelBytes int, classes []string) (*Dataset, error) {
	rec := labelBytes + cifarPixels
	if len(b) == 0 || len(b)%rec != 0 {
		return nil, fmt.Errorf("cifar: %d bytes is not a whole number of %d-byte records", len(b), rec)
	}
	n := len(b) / rec
	d := &Dataset{H: 32, W: 32, C: 3, Pixels: make([]uint8, n*cifarPixels), Labels: make([]int32, n), Classes: classes}
	for i := 0; i < n; i++ {
		r := b[i*rec : (i+1)*rec]
		d.Labels[i] = int32(r[labelBytes-1])
		planes := r[labelBytes:]
		out := d.Pixels[i*cifarPixels:]
		for p := 0; p < 1024; p++ {
			out[3*p], out[3*p+1], out[3*p+2] = planes[p], planes[1024+p], planes[2048+p]
		}
	}
	if err := d.Check(); err != nil {
		return nil, fmt.Errorf("cifar: %w", err)
	}
	return d, nil
}

// CIFAR10Classes are CIFAR-10's class names.
var CIFAR10Classes = []string{"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"}

// CIFAR reads CIFAR-10 (classes 10: data_batch_1.bin … data_batch_5.bin,
// test_batch.bin) or CIFAR-100 (classes 100: train.bin, test.bin) from the
// folder of the binary distribution.
func CIFAR(dir string, classes int) (train, test *Dataset, err error) {
	var trainFiles, testFiles []string
	var names []string
	lb := 1
	switch classes {
	case 10:
		for i := 1; i <= 5; i++ {
			trainFiles = append(trainFiles, fmt.Sprintf("data_batch_%d.bin", i))
		}
		testFiles, names = []string{"test_batch.bin"}, CIFAR10Classes
	case 100:
		trainFiles, testFiles, lb = []string{"train.bin"}, []string{"test.bin"}, 2
		for i := 0; i < 100; i++ {
			names = append(names, fmt.Sprint(i))
		}
	default:
		return nil, nil, fmt.Errorf("cifar: %d classes (10 or 100)", classes)
	}
	read := func(files []string) (*Dataset, error) {
		var all []byte
		for _, f := range files {
			// A batch file is 30,730,000 bytes; a device or a file of
			// gigabytes is refused before it is read.
			b, err := limits.ReadFile(filepath.Join(dir, f), int64(limits.TensorElements))
			if err != nil {
				return nil, fmt.Errorf("cifar: %w", err)
			}
			if len(b) == 0 {
				return nil, fmt.Errorf("cifar: %s is empty (a batch file holds 10,000 records)", f)
			}
			if len(b)%(lb+cifarPixels) != 0 {
				return nil, fmt.Errorf("cifar: %s: %d bytes is not a whole number of records (truncated?)", f, len(b))
			}
			all = append(all, b...)
		}
		return ReadCIFAR(all, lb, names)
	}
	if train, err = read(trainFiles); err != nil {
		return nil, nil, err
	}
	if test, err = read(testFiles); err != nil {
		return nil, nil, err
	}
	return train, test, nil
}
