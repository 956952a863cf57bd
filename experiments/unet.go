package experiments

import (
	"context"
	"fmt"
	"io"
	"maps"
	"math"
	"path/filepath"
	"slices"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/checkpoint"
	"github.com/residual-nn/residual/data"
	"github.com/residual-nn/residual/infer"
	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/models/unet"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/tensor"
	"github.com/residual-nn/residual/train"
)

// UNetConfig: the original valid-convolution U-Net (crop and concatenate,
// overlap-tile inference; Ronneberger et al. 2015) trained beside the
// padded U-Net on the same canvases, budget and seeds.
type UNetConfig struct {
	// Source is the grey data set whose items make the canvases: "mnist"
	// or "fashion-mnist".
	Source string
	// Side is the training canvases' side; EvalSide the larger side of
	// the evaluation canvases, segmented tile by tile.
	Side, EvalSide int
	// Train, Val and Eval are canvas counts: training, validation after
	// every epoch (64-pixel canvases of test items), and the final
	// evaluation on EvalSide canvases of test items.
	Train, Val, Eval int
	// Depth and Base shape both U-Nets (levels, channels of the first);
	// both use batch norm.
	Depth, Base int
	Epochs      int
	Batch       int
	LR          float64 // AdamW, cosine schedule
	Seed        uint64
	Seeds       int
	Log         io.Writer
	// Resume continues the runs already in the output folder (see
	// Budget.Resume).
	Resume bool
}

// DefaultSegmentUNet is the protocol of docs/EXPERIMENTS.md: both U-Nets
// with 2 levels and 16 channels at the first, 10,000 training canvases of
// 64×64 MNIST digits, 5 epochs of AdamW at lr 0.003 (cosine), batch 32, 2
// seeds; mean IoU on 200 canvases of 160×160.
func DefaultSegmentUNet() UNetConfig {
	return UNetConfig{Source: "mnist", Side: 64, EvalSide: 160, Train: 10000, Val: 200, Eval: 200, Depth: 2, Base: 16,
		Epochs: 5, Batch: 32, LR: 0.003, Seed: 1, Seeds: 2}
}

// QuickSegmentUNet is a version of seconds for tests: 4 channels, 160
// training canvases, one epoch of 20 steps, 2 seeds, 4 evaluation
// canvases of 96×96.
// Its numbers test the machinery only.
func QuickSegmentUNet() UNetConfig {
	return UNetConfig{Source: "mnist", Side: 64, EvalSide: 96, Train: 160, Val: 16, Eval: 4, Depth: 2, Base: 4,
		Epochs: 1, Batch: 8, LR: 0.003, Seed: 1, Seeds: 2}
}

// UNetRow is one trained network's evaluation.
type UNetRow struct {
	Net       string  `json:"net"` // "padded" or "valid"
	Seed      uint64  `json:"seed"`
	Inference string  `json:"inference"`
	MeanIoU   float64 `json:"mean_iou"`
	PixelAcc  float64 `json:"pixel_accuracy"`
	Params    int     `json:"params"`
	// TrainSeconds is the training's wall time (trainSeconds); ValMeanIoU the
	// mean IoU the trainer reported on the validation canvases.
	TrainSeconds float64 `json:"train_seconds"`
	ValMeanIoU   float64 `json:"val_mean_iou"`
}

// mirrorSet extends every image and mask of a segmentation set by m pixels
// of mirror image on each side (unet.Mirrored), so that a valid U-Net's
// output covers the original canvas, as the paper's overlap-tile strategy
// extrapolates the missing context at the border.
func mirrorSet(d *data.Dataset, m int) *data.Dataset {
	h, w := d.H+2*m, d.W+2*m
	out := &data.Dataset{H: h, W: w, C: d.C, Classes: d.Classes, Pixels: make([]uint8, 0, d.Len()*h*w*d.C), Masks: make([]uint8, 0, d.Len()*h*w)}
	grow := func(pix []uint8, c int) []uint8 {
		t := tensor.New(1, d.H, d.W, c)
		for i, p := range pix {
			t.Data[i] = float32(p)
		}
		big := unet.Mirrored(t, m, m, m, m)
		b := make([]uint8, len(big.Data))
		for i, v := range big.Data {
			b[i] = uint8(v) // integers 0–255, exact in float32
		}
		return b
	}
	for i := 0; i < d.Len(); i++ {
		out.Pixels = append(out.Pixels, grow(d.Image(i), d.C)...)
		out.Masks = append(out.Masks, grow(d.Mask(i), 1)...)
	}
	return out
}

// SegmentUNet trains the valid and the padded U-Net on the same canvases
// with the same budget and seeds and compares their mean IoU on larger
// canvases: the valid one by overlap-tile inference with tiles of the
// training size, the padded one on the whole image (and, for reference, on
// tiles of the training size without context). It writes claims.json.
func SegmentUNet(ctx context.Context, c UNetConfig, out string) ([]UNetRow, error) {
	if c.Seeds < 1 || c.Train < 1 || c.Val < 1 || c.Eval < 1 || c.Epochs < 1 || c.Batch < 1 {
		return nil, fmt.Errorf("experiments: segment-unet: counts must be positive: %+v", c)
	}
	log := c.Log
	if log == nil {
		log = io.Discard
	}
	pc := unet.Config{InChannels: 1, Depth: c.Depth, Base: c.Base, BatchNorm: true}
	vc := pc
	vc.Valid = true
	in, got := vc.TileFor(c.Side)
	if got != c.Side {
		return nil, fmt.Errorf("experiments: segment-unet: a valid U-Net of depth %d cannot output exactly %d pixels (input %d gives %d); choose another side", c.Depth, c.Side, in, got)
	}
	if _, err := pc.OutputSize(c.Side); err != nil || c.Side%(1<<c.Depth) != 0 {
		return nil, fmt.Errorf("experiments: segment-unet: the padded U-Net of depth %d needs a side that is a multiple of %d, got %d", c.Depth, 1<<c.Depth, c.Side)
	}
	margin := (in - c.Side) / 2
	srcTrain, srcTest, err := data.Open(ctx, c.Source, 1)
	if err != nil {
		return nil, fmt.Errorf("experiments: segment-unet: %w", err)
	}
	trainC, err := data.Canvases(srcTrain, c.Train, 1, data.CanvasOptions{Side: c.Side})
	if err != nil {
		return nil, err
	}
	valC, err := data.Canvases(srcTest, c.Val, 2, data.CanvasOptions{Side: c.Side})
	if err != nil {
		return nil, err
	}
	// Larger canvases hold proportionally more items.
	a := max(int(math.Round(float64(c.EvalSide*c.EvalSide)/float64(c.Side*c.Side))), 1)
	evalC, err := data.Canvases(srcTest, c.Eval, 3, data.CanvasOptions{Side: c.EvalSide, MinItems: 2 * a, MaxItems: 4 * a})
	if err != nil {
		return nil, err
	}
	vTrain, vVal := mirrorSet(trainC, margin), mirrorSet(valC, margin)
	r, err := newReport(out, "The valid-convolution U-Net beside the padded one", true, c.Resume)
	if err != nil {
		return nil, err
	}
	defer r.abandon()
	var rows []UNetRow
	for _, seed := range seeds(c.Seed, c.Seeds) {
		for _, v := range []struct {
			name     string
			cfg      unet.Config
			tr, va   *data.Dataset
			evalTile []int // output tile sides; 0: the whole image; < 0: tiles of −side without context
			how      []string
		}{
			{"padded", pc, trainC, valC, []int{0, -c.Side}, []string{"whole image", fmt.Sprintf("%d-pixel tiles without context", c.Side)}},
			{"valid", vc, vTrain, vVal, []int{c.Side}, []string{fmt.Sprintf("overlap-tile, %d-pixel output tiles, %d-pixel mirrored margin", c.Side, margin)}},
		} {
			dir := r.path("runs", fmt.Sprintf("unet-%s-seed%d", v.name, seed))
			fmt.Fprintf(log, "training the %s U-Net (%d epochs on %d canvases, seed %d)\n", v.name, c.Epochs, c.Train, seed)
			res, err := trainIn(ctx, train.Config{Model: models.Config{Name: "unet-" + v.name, Arch: &models.UNet{Config: v.cfg}},
				Data: fmt.Sprintf("%s canvases (experiment segment-unet)", c.Source), TrainSet: v.tr, TestSet: v.va, Task: models.Segment,
				Epochs: c.Epochs, Batch: c.Batch, Optimizer: train.AdamW, LR: c.LR, WeightDecay: 1e-4,
				Schedule: train.Schedule{Kind: train.ScheduleCosine}, Augment: &data.Augment{Pad: 2}, Seed: seed,
				Out: dir, Log: log}, c.Resume)
			if err != nil {
				return nil, fmt.Errorf("experiments: segment-unet: training the %s U-Net: %w", v.name, err)
			}
			ck, err := checkpoint.Load(filepath.Join(dir, train.LastCheckpoint))
			if err != nil {
				return nil, fmt.Errorf("experiments: segment-unet: %w", err)
			}
			net, ok := ck.Net.(*unet.Net)
			if !ok {
				return nil, fmt.Errorf("experiments: segment-unet: the checkpoint holds a %T", ck.Net)
			}
			nn.SetTraining(net, false)
			for i, tile := range v.evalTile {
				if tile == 0 {
					tile = c.EvalSide
				}
				miou, acc, err := tiledIoU(ctx, net, evalC, ck.Preprocess, tile)
				if err != nil {
					return nil, err
				}
				rows = append(rows, UNetRow{Net: v.name, Seed: seed, Inference: v.how[i], MeanIoU: miou, PixelAcc: acc, Params: nn.NumParams(net),
					TrainSeconds: trainSeconds(res), ValMeanIoU: res.TestMeanIoU})
			}
		}
	}
	r.Printf("Both U-Nets: %d levels, %d channels at the first, batch norm, %d classes (background and the %s classes). Trained on the same %d canvases of %d×%d (the valid one sees them extended by a %d-pixel mirrored margin, so that its %d×%d output covers each canvas), %d epochs of AdamW at lr %g (cosine), weight decay 1e-4, batch %d, random 2-pixel shifts; seeds %v. Evaluated with the last weights on %d canvases of %d×%d from test images.\n",
		c.Depth, c.Base, len(trainC.Classes), c.Source, c.Train, c.Side, c.Side, margin, c.Side, c.Side, c.Epochs, c.LR, c.Batch, seeds(c.Seed, c.Seeds), c.Eval, c.EvalSide, c.EvalSide)
	r.Printf("| U-Net | inference | parameters | mean IoU (per seed) | pixel accuracy | training time |\n|---|---|---|---|---|---|")
	for _, row := range rows {
		r.Printf("| %s | %s | %d | %.4f (seed %d) | %.2f%% | %.0f s |", row.Net, row.Inference, row.Params, row.MeanIoU, row.Seed, 100*row.PixelAcc, row.TrainSeconds)
	}
	if err := r.JSON("segment-unet.json", rows); err != nil {
		return nil, err
	}
	if err := r.Claims(UNetClaims(rows)); err != nil {
		return nil, err
	}
	return rows, r.Close()
}

// tiledIoU segments every image of d with infer.SegmentUNet (output tiles of
// tile pixels; tiles of −tile without context for a negative tile:
// segmentWithoutContext) and returns the mean IoU over the classes present
// and the pixel accuracy.
func tiledIoU(ctx context.Context, net *unet.Net, d *data.Dataset, pre checkpoint.Preprocess, tile int) (miou, acc float64, err error) {
	k := net.Config.Classes
	conf := make([][]int, k)
	for i := range conf {
		conf[i] = make([]int, k)
	}
	right, total := 0, 0
	for i := 0; i < d.Len(); i++ {
		x, err := pre.Normalisation.Tensor(d.Image(i), d.H, d.W, d.C)
		if err != nil {
			return 0, 0, fmt.Errorf("experiments: segment-unet: %w", err)
		}
		var y *tensor.Tensor
		if tile < 0 {
			y, err = segmentWithoutContext(ctx, net, x, -tile)
		} else {
			y, err = infer.SegmentUNet(ctx, net, x, tile, ag.FP32)
		}
		if err != nil {
			return 0, 0, fmt.Errorf("experiments: segment-unet: %w", err)
		}
		for p, t := range d.Mask(i) {
			best := tensor.ArgMax(y.Data[p*k : (p+1)*k])
			conf[t][best]++
			if best == int(t) {
				right++
			}
			total++
		}
	}
	_, miou = train.IoU(conf)
	return miou, float64(right) / float64(max(total, 1)), nil
}

// segmentWithoutContext runs a padded U-Net on tiles of t×t pixels of x
// [1,H,W,C] (extended by mirroring at the bottom and right to whole tiles),
// each alone, with no context beyond it (the network pads each tile's
// border with zeros, as if it were the image's), and stitches their
// logits: the naive tiling that overlap-tile inference (SegmentUNet)
// avoids.
func segmentWithoutContext(ctx context.Context, net *unet.Net, x *tensor.Tensor, t int) (*tensor.Tensor, error) {
	h, w, c, k := x.Shape[1], x.Shape[2], x.Shape[3], net.Config.Classes
	ty, tx := (h+t-1)/t, (w+t-1)/t
	big := unet.Mirrored(x, 0, 0, ty*t-h, tx*t-w)
	bw := tx * t
	res := tensor.New(1, h, w, k)
	tile := tensor.New(1, t, t, c)
	for i := range ty {
		for j := range tx {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			for y := range t {
				src := ((i*t+y)*bw + j*t) * c
				copy(tile.Data[y*t*c:(y+1)*t*c], big.Data[src:src+t*c])
			}
			y, err := infer.SegmentUNet(ctx, net, tile, t, ag.FP32)
			if err != nil {
				return nil, err
			}
			for r := 0; r < t && i*t+r < h; r++ {
				cols := min(t, w-j*t)
				dst := ((i*t+r)*w + j*t) * k
				copy(res.Data[dst:dst+cols*k], y.Data[r*t*k:(r*t+cols)*k])
			}
		}
	}
	return res, nil
}

// UNetClaims tests the valid U-Net against the padded one: its mean IoU
// with overlap-tile inference is within 0.02 of the padded U-Net's on the
// whole image (measured: the mean over seeds of valid − padded, each seed
// pairing the two; spread: their standard deviation). Two untrained
// networks would agree too, so the claim also needs the padded U-Net to
// have learned the task: a mean IoU of at least 0.5 averaged over seeds.
func UNetClaims(rows []UNetRow) []Claim {
	byseed := map[uint64][2]float64{}
	has := map[uint64][2]bool{}
	for _, r := range rows {
		i := -1
		switch {
		case r.Net == "padded" && r.Inference == "whole image":
			i = 0
		case r.Net == "valid":
			i = 1
		}
		if i < 0 {
			continue
		}
		v, h := byseed[r.Seed], has[r.Seed]
		v[i], h[i] = r.MeanIoU, true
		byseed[r.Seed], has[r.Seed] = v, h
	}
	var diffs, padded []float64
	for _, s := range slices.Sorted(maps.Keys(byseed)) { // in seed order: a map's order changed the sums' last bits
		if v := byseed[s]; has[s][0] && has[s][1] {
			diffs, padded = append(diffs, v[1]-v[0]), append(padded, v[0])
		}
	}
	m, sd := meanSpread(diffs)
	pm, _ := meanSpread(padded)
	c := Within("the valid-convolution U-Net with overlap-tile inference reaches the padded U-Net's mean IoU (measured: valid − padded, mean over seeds)",
		"Ronneberger et al. 2015, Sec. 2 and Fig. 2 (overlap-tile strategy)", m, 0, 0.02)
	c.Criterion += ", the padded U-Net trained (its mean IoU " + FormatNumber(pm) + " ≥ 0.5)"
	c.Pass = c.Pass && pm >= 0.5
	c.Spread, c.Seeds = sd, len(diffs)
	return []Claim{c}
}
