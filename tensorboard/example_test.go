package tensorboard_test

import (
	"fmt"
	"image"
	"image/color"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/residual-nn/residual/tensorboard"
)

// A training loop logs each step's loss and learning rate, and after each
// epoch its metrics and a picture, then flushes so that a running
// `tensorboard --logdir runs` shows the epoch.
func ExampleWriter() {
	dir, err := os.MkdirTemp("", "runs")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	w, err := tensorboard.NewWriter(filepath.Join(dir, "mnist-resnet20"))
	if err != nil {
		log.Fatal(err)
	}
	if err := w.SessionStart(1); err != nil { // a fresh run: step 1 comes first
		log.Fatal(err)
	}
	type metrics struct { // what train.Metrics looks like
		Epoch     int     `json:"epoch"`
		Step      int     `json:"step"`
		ValLoss   float64 `json:"val_loss"`
		ValAcc    float64 `json:"val_acc"`
		ValMIoU   float64 `json:"val_miou,omitempty"`
		Optimizer string  `json:"optimizer"`
	}
	step := int64(0)
	for epoch := 1; epoch <= 2; epoch++ {
		for range 100 { // the batches
			step++
			loss, lr := 2.3/float64(step), 0.1
			if err := w.TrainStep(step, loss, lr); err != nil {
				log.Fatal(err)
			}
		}
		// epoch/epoch, epoch/val_acc and epoch/val_loss at the global step.
		m := metrics{Epoch: epoch, Step: int(step), ValLoss: 0.5 / float64(epoch), ValAcc: 0.9, Optimizer: "sgd"}
		if err := w.Metrics(tensorboard.EpochPrefix, step, m, "step"); err != nil {
			log.Fatal(err)
		}
		img := image.NewGray(image.Rect(0, 0, 28, 28))
		img.SetGray(14, 14, color.Gray{255})
		if err := w.Image("samples/first", step, img); err != nil {
			log.Fatal(err)
		}
		if err := w.Flush(); err != nil {
			log.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}
	fmt.Println(strings.HasPrefix(filepath.Base(w.Path()), "events.out.tfevents."))
	// Output: true
}
