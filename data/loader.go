package data

import (
	"context"
	"fmt"
	"hash/fnv"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/residual-nn/residual/data/transform"
	"github.com/residual-nn/residual/tensor"
)

// Augment describes the random augmentation of training images.
type Augment struct {
	// Pad pads each side with zeros and crops back to the original size
	// at a random offset (He et al.: 4).
	Pad int
	// Flip mirrors images horizontally with probability ½.
	Flip bool
	// ResizedCrop takes torchvision's RandomResizedCrop (see RandomCrop)
	// of each image of a classification set, resized to the set's size,
	// before padding and flipping; a folder's files are cropped from the
	// decoded image at its own size. Without it, a folder's files get the
	// evaluation transform (EvalTransform). Segmentation sets ignore it.
	ResizedCrop bool `json:",omitempty"`
}

// MaxPad bounds Augment.Pad: 64 pixels, beyond any published recipe (2
// for MNIST, 4 for CIFAR) and beyond the side of the 28×28 and 32×32
// images those recipes pad.
const MaxPad = 64

// Validate returns an error naming a field out of range: Pad outside
// [0, MaxPad].
func (a Augment) Validate() error {
	if a.Pad < 0 || a.Pad > MaxPad {
		return fmt.Errorf("data: augmentation pad %d outside [0, %d]", a.Pad, MaxPad)
	}
	return nil
}

// A Sampler gives the indices into a Loader's data set of each epoch's
// images, in order, as a torch DataLoader's sampler does: a rank's shard of
// a data-parallel run's permutation (distributed.Sampler satisfies it).
type Sampler interface {
	// Len returns the number of indices of every epoch.
	Len() int
	// Indices returns epoch's indices, Len of them, each in [0, N) for the
	// N images of the data set.
	Indices(epoch int) []int
}

// Loader cuts a data set into batches of normalised NHWC float32 images.
//
// Augmentation is drawn per image, from a stream seeded by Seed, the epoch
// and the image's index in Data alone: an image is shifted, flipped and
// cropped alike in an epoch whatever batch, position, goroutine or rank
// makes it (see Sampler), and differently in another epoch.
type Loader struct {
	// Data is the data set the batches are cut from.
	Data *Dataset
	// Batch is the number of images of a batch (≥ 1).
	Batch int
	// Shuffle draws a new order of the images every epoch, from Seed and
	// the epoch's number; otherwise they come in the set's order (or the
	// Sampler's: the two cannot be set together).
	Shuffle bool
	// Sampler, if set, gives each epoch's images (indices into Data) in
	// place of all of them in order or Shuffle's permutation.
	Sampler Sampler
	// DropLast leaves out the last batch when it would be smaller than
	// Batch (as torch's DataLoader(drop_last=True)); otherwise it is kept.
	DropLast bool
	// Augment is the random augmentation of every image; the zero
	// Augment applies none, a folder's files getting the evaluation
	// transform (what evaluation and calibration want).
	Augment Augment
	// Normalisation turns the pixels into the model's input (Mean, Std,
	// and Caffe's BGR and Scale255, which Keras ResNets expect), as
	// checkpoint.Preprocess records it.
	transform.Normalisation
	// Seed seeds the shuffled order and the augmentation's random
	// choices, each epoch's and each image's its own (see above): a batch
	// holds the same images, transformed alike, whenever it is made (a
	// resumed epoch's included).
	Seed uint64
	// KeepEmpty hands over a batch none of whose files could be read
	// (ImageOptions.SkipBadImages) as an empty batch — no rows, Skipped its
	// size — where the loader otherwise leaves it out. Data-parallel
	// training needs it: every rank must see every batch index.
	KeepEmpty bool

	mu      sync.Mutex
	epochs  int   // Epoch calls: an earlier epoch's goroutine, cancelled, records nothing
	err     error // what cut the last epoch short
	skipped int   // unreadable files the last epoch's batches left out
}

// Batch is one batch: images [B,H,W,C] and their labels — for a
// segmentation set, one class per pixel (B·H·W, row-major like the images)
// and, if the set has them, the pixels' loss weights in W.
type Batch struct {
	X     *tensor.Tensor
	Y     []int32
	W     []float32
	Index int // batch number within the epoch
	// Skipped counts the files of this batch left out as unreadable
	// (ImageOptions.SkipBadImages): their headers were good when the set
	// was opened, their pixel data is not.
	Skipped int
}

// Empty reports whether the batch has no image: every file of it was
// unreadable (Loader.KeepEmpty).
func (b Batch) Empty() bool { return b.X == nil || b.X.Shape[0] == 0 }

// Batches returns the number of batches in an epoch of Len images (the
// data set's, or the Sampler's Len): ⌈Len/Batch⌉, or ⌊Len/Batch⌋ with
// DropLast; 0 without data or with a Batch below 1.
func (l *Loader) Batches() int {
	if l.Data == nil || l.Batch < 1 {
		return 0
	}
	size := l.Data.Len()
	if l.Sampler != nil {
		size = l.Sampler.Len()
	}
	n := size / l.Batch
	if !l.DropLast && size%l.Batch != 0 {
		n++
	}
	return n
}

// shuffleSeed derives the seed of an epoch's permutation from the
// loader's seed (the hash of "seed/epoch/-1", as the loader has always
// drawn it).
func (l *Loader) shuffleSeed(epoch int) uint64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d/%d/-1", l.Seed, epoch)
	return h.Sum64()
}

// sampleSeed derives the seed of the random choices for image i of the
// data set (its index in Data, not its position in the epoch) in an epoch,
// from the loader's seed, the epoch and i alone, without allocating: each
// step is SplitMix64's mixer, a bijection that gives neighbouring inputs
// unrelated outputs.
func (l *Loader) sampleSeed(epoch, i int) uint64 {
	return splitMix(splitMix(splitMix(l.Seed)^uint64(epoch)) ^ uint64(i))
}

// splitMix is SplitMix64's output function of state z (Steele et al.,
// 2014): the state advanced by the golden-ratio increment, then mixed.
func splitMix(z uint64) uint64 {
	z += 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// order returns the epoch's image order: the Sampler's indices, checked
// against the data set, or all of its images, shuffled with Shuffle.
func (l *Loader) order(epoch int) ([]int, error) {
	if l.Sampler != nil {
		idx := l.Sampler.Indices(epoch)
		if len(idx) != l.Sampler.Len() {
			return nil, fmt.Errorf("data: loader: the sampler gave %d indices for epoch %d, its Len is %d", len(idx), epoch, l.Sampler.Len())
		}
		for _, i := range idx {
			if i < 0 || i >= l.Data.Len() {
				return nil, fmt.Errorf("data: loader: the sampler gave index %d for epoch %d, outside the data set's [0, %d)", i, epoch, l.Data.Len())
			}
		}
		return idx, nil
	}
	if !l.Shuffle {
		idx := make([]int, l.Data.Len())
		for i := range idx {
			idx[i] = i
		}
		return idx, nil
	}
	return tensor.NewRNG(l.shuffleSeed(epoch)).Perm(l.Data.Len()), nil
}

// Epoch prepares the batches of an epoch from batch number skip on, on a
// separate goroutine, two ahead of the consumer. The channel closes at the
// end of the epoch or when ctx is cancelled; a consumer that stops reading
// before the end must cancel ctx, or the goroutine waits for ever to hand
// over its next batch. A loader that cannot make the
// epoch — a Batch below 1, a negative skip, a data set that fails
// Dataset.Check, Mean or Std not of one value per channel, an Augment
// that fails Validate, Shuffle with a Sampler, a Sampler's indices not
// Len of them or outside the data set — gives a closed channel and Err
// says why; so it does for a failure while making a batch (an unreadable image file, or
// any panic, which is recovered on the goroutine and reported with its
// value).
func (l *Loader) Epoch(ctx context.Context, epoch, skip int) <-chan Batch {
	ch := make(chan Batch, 2)
	l.mu.Lock()
	l.epochs++
	gen := l.epochs
	l.err, l.skipped = nil, 0
	l.mu.Unlock()
	// setErr and addSkipped record what this epoch's goroutine finds, not
	// what one of an earlier epoch, left running, still makes.
	setErr := func(err error) {
		l.mu.Lock()
		if l.epochs == gen {
			l.err = err
		}
		l.mu.Unlock()
	}
	addSkipped := func(n int) {
		l.mu.Lock()
		if l.epochs == gen {
			l.skipped += n
		}
		l.mu.Unlock()
	}
	var order []int
	err := l.check(skip)
	if err == nil {
		order, err = l.order(epoch)
	}
	if err != nil {
		setErr(err)
		close(ch)
		return ch
	}
	go func() {
		defer close(ch)
		b := skip
		// The last line of defence: a panic here would end the process,
		// where the consumer could not recover it.
		defer func() {
			if r := recover(); r != nil {
				setErr(fmt.Errorf("data: the loader panicked making batch %d of epoch %d: %v", b+1, epoch, r))
			}
		}()
		for ; b < l.Batches(); b++ {
			var batch Batch
			if l.Data.Files != nil {
				var err error
				if batch, err = l.makeFiles(order, epoch, b); err != nil {
					setErr(err)
					return
				}
				addSkipped(batch.Skipped)
				if batch.Empty() && !l.KeepEmpty {
					if ctx.Err() != nil {
						return
					}
					continue
				}
			} else {
				batch = l.make(order, epoch, b)
			}
			// Deliver when there is room before looking at cancellation, so
			// that what a cancelled consumer receives does not depend on
			// goroutine scheduling.
			select {
			case ch <- batch:
				continue
			default:
			}
			select {
			case ch <- batch:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch
}

// check returns an error naming what keeps the loader from making an
// epoch from batch skip on.
func (l *Loader) check(skip int) error {
	switch {
	case l.Data == nil:
		return fmt.Errorf("data: loader without a data set")
	case l.Batch < 1:
		return fmt.Errorf("data: loader batch size %d (want ≥ 1)", l.Batch)
	case skip < 0:
		return fmt.Errorf("data: loader asked to skip %d batches (want ≥ 0)", skip)
	case l.Shuffle && l.Sampler != nil:
		return fmt.Errorf("data: loader with both Shuffle and a Sampler (the sampler gives the order: shuffle there)")
	}
	if err := l.Data.Check(); err != nil {
		return fmt.Errorf("data: loader: %w", err)
	}
	if err := l.Normalisation.Check(l.Data.C); err != nil {
		return fmt.Errorf("data: loader: normalisation: %w", err)
	}
	return l.Augment.Validate()
}

// make builds batch b of an epoch.
func (l *Loader) make(order []int, epoch, b int) Batch {
	d := l.Data
	lo, hi := b*l.Batch, min((b+1)*l.Batch, len(order))
	x := tensor.New(hi-lo, d.H, d.W, d.C)
	seg := d.IsSegmentation()
	y := make([]int32, hi-lo)
	var wt []float32
	if seg {
		y = make([]int32, (hi-lo)*d.H*d.W)
		if d.Weights != nil {
			wt = make([]float32, len(y))
		}
	}
	rng := tensor.NewRNG(0)
	n := d.H * d.W * d.C
	for i := lo; i < hi; i++ {
		rng.Reseed(l.sampleSeed(epoch, order[i]))
		src := d.Image(order[i])
		if l.Augment.ResizedCrop && !seg {
			if crop, err := transform.RandomResizedCrop(rng, src, d.H, d.W, d.C, d.H, d.W); err == nil { // the set's own size: within the limits
				src = crop
			}
		}
		dst := x.Data[(i-lo)*n : (i-lo+1)*n]
		dy, dx, flip := 0, 0, false
		if p := l.Augment.Pad; p > 0 {
			dy, dx = rng.IntN(2*p+1)-p, rng.IntN(2*p+1)-p
		}
		if l.Augment.Flip {
			flip = rng.Float64() < 0.5
		}
		for r := 0; r < d.H; r++ {
			sr := r + dy
			for c := 0; c < d.W; c++ {
				sc := c + dx
				if flip {
					sc = d.W - 1 - c + dx
				}
				if seg { // the mask moves with the image; padding is background, or ignored
					at, inside := (i-lo)*d.H*d.W+r*d.W+c, sr >= 0 && sr < d.H && sc >= 0 && sc < d.W
					if !inside && d.Ignore.Set {
						y[at] = IgnoreTarget // as torchvision's segmentation references pad with 255
					}
					if inside {
						m := d.Mask(order[i])[sr*d.W+sc]
						y[at] = int32(m)
						if d.Ignore.Is(m) {
							y[at] = IgnoreTarget
						}
					}
					if wt != nil {
						wt[at] = 1
						if inside {
							wt[at] = d.Weights[order[i]*d.H*d.W+sr*d.W+sc]
						}
					}
				}
				for ch := 0; ch < d.C; ch++ {
					v := uint8(0) // the zero padding of the pad-and-crop
					if sr >= 0 && sr < d.H && sc >= 0 && sc < d.W {
						v = src[(sr*d.W+sc)*d.C+ch]
					}
					o := l.Channel(ch, d.C)
					dst[(r*d.W+c)*d.C+o] = l.Value(v, o)
				}
			}
		}
		if !seg {
			y[i-lo] = d.Labels[order[i]]
		}
	}
	return Batch{X: x, Y: y, W: wt, Index: b}
}

// Err returns the error that cut the loader's last epoch short (its
// channel closed before the last batch): an image file of a folder that
// could not be read, named, or what kept Epoch from starting (see Epoch).
// It is nil after a whole epoch; call it once the channel is closed.
func (l *Loader) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Skipped returns how many files the batches of the loader's last epoch
// have left out as unreadable (ImageOptions.SkipBadImages), those of the
// batches it left out whole included: of the batches it made, from the
// one Epoch was asked to start at, also those made ahead and not taken
// when the consumer stopped early. Call it once the channel is closed.
func (l *Loader) Skipped() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.skipped
}

// makeFiles builds batch b of an epoch of a folder's files: each image is
// decoded and transformed on its own goroutine, its random choices drawn
// from its own stream (sampleSeed), so that the batch does not depend on
// which goroutine makes what. A file that cannot be read is an error
// naming it, or, with
// ImageOptions.SkipBadImages, is left out of the batch with a warning
// (a batch of no readable file is empty).
func (l *Loader) makeFiles(order []int, epoch, b int) (Batch, error) {
	d := l.Data
	lo, hi := b*l.Batch, min((b+1)*l.Batch, len(order))
	n := d.H * d.W * d.C
	x := tensor.New(hi-lo, d.H, d.W, d.C)
	errs := make([]error, hi-lo)
	parallel(hi-lo, func(k int) {
		rng := tensor.NewRNG(l.sampleSeed(epoch, order[lo+k]))
		src, err := d.sample(order[lo+k], l.Augment.ResizedCrop, rng)
		if err != nil {
			errs[k] = err
			return
		}
		dy, dx, flip := 0, 0, false
		if p := l.Augment.Pad; p > 0 {
			dy, dx = rng.IntN(2*p+1)-p, rng.IntN(2*p+1)-p
		}
		if l.Augment.Flip {
			flip = rng.Float64() < 0.5
		}
		dst := x.Data[k*n : (k+1)*n]
		for r := 0; r < d.H; r++ {
			for c := 0; c < d.W; c++ {
				sr, sc := r+dy, c+dx
				if flip {
					sc = d.W - 1 - c + dx
				}
				for ch := 0; ch < d.C; ch++ {
					v := uint8(0)
					if sr >= 0 && sr < d.H && sc >= 0 && sc < d.W {
						v = src[(sr*d.W+sc)*d.C+ch]
					}
					o := l.Channel(ch, d.C)
					dst[(r*d.W+c)*d.C+o] = l.Value(v, o)
				}
			}
		}
	})
	// Skipped images close up in place.
	var y []int32
	for k, err := range errs {
		if err != nil {
			if !d.Images.SkipBadImages {
				return Batch{}, unreadable(err)
			}
			d.Images.warn(err)
			continue
		}
		copy(x.Data[len(y)*n:(len(y)+1)*n], x.Data[k*n:(k+1)*n])
		y = append(y, d.Labels[order[lo+k]])
	}
	if len(y) < hi-lo {
		x = &tensor.Tensor{Shape: []int{len(y), d.H, d.W, d.C}, Data: x.Data[:len(y)*n]}
	}
	return Batch{X: x, Y: y, Index: b, Skipped: hi - lo - len(y)}, nil
}

// parallel calls f(0), …, f(n−1) on up to GOMAXPROCS goroutines. A
// panic in f is recovered on its goroutine and raised again on the
// caller's, once all have stopped, where the caller can recover it.
func parallel(n int, f func(int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var panicked any
	for range min(n, runtime.GOMAXPROCS(0)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if r := recover(); r != nil {
					once.Do(func() { panicked = r })
					next.Store(int64(n)) // the others stop at their next item
				}
			}()
			for k := int(next.Add(1) - 1); k < n; k = int(next.Add(1) - 1) {
				f(k)
			}
		}()
	}
	wg.Wait()
	if panicked != nil {
		panic(panicked)
	}
}
