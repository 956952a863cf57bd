package train_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/checkpoint"
	"github.com/residual-nn/residual/data"
	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/train"
)

// Prepare opens the data once and sizes the model from it; Train runs.
// Here a ResNet-20 fine-tunes from an earlier run's checkpoint with the
// backbone frozen, a cosine schedule after a 1-epoch warm-up, and a
// moving average of the weights.
func ExamplePrepare() {
	mc, err := models.Preset("resnet20")
	if err != nil {
		log.Fatal(err)
	}
	t, err := train.Prepare(context.Background(), train.Config{Model: mc, Data: "mnist", Epochs: 5, Batch: 128, Optimizer: train.SGD, LR: 0.05, Momentum: 0.9,
		Schedule: train.Schedule{Kind: train.ScheduleCosine, WarmupEpochs: 1},
		Init:     "runs/mnist/best.safetensors", Freeze: []string{"backbone"}, EMA: 0.999, Patience: 2,
		Out: "runs/mnist-finetune", TensorBoard: true, Log: os.Stdout})
	if err != nil {
		log.Fatal(err)
	}
	res, err := t.Train(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("test accuracy %.2f%%\n", 100*res.TestAccuracy)
}

// A run stopped by Ctrl-C (Train's error matched ErrInterrupted), or one that
// should go on for longer, continues from its folder alone: its last
// checkpoint records the settings it was started with.
func ExampleResumeConfig() {
	cfg, err := train.ResumeConfig("runs/mnist-finetune")
	if err != nil {
		log.Fatal(err)
	}
	cfg.Epochs = 10 // train on to 10 epochs (the schedule follows the new length from here on)
	cfg.Log, cfg.TensorBoard = os.Stdout, true
	t, err := train.Prepare(context.Background(), cfg)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := t.Train(context.Background()); err != nil {
		log.Fatal(err)
	}
}

// Evaluating a checkpoint on a labelled set: its network and
// normalisation from package checkpoint, the batches from a data.Loader.
// Here the small ResNet of testdata/checkpoint (trained briefly on MNIST)
// on MNIST's first 1,000 test images.
func ExampleEvaluate() {
	c, err := checkpoint.Load("../testdata/checkpoint/mnist-tiny.safetensors")
	if err != nil {
		log.Fatal(err)
	}
	_, test, err := data.MNIST()
	if err != nil {
		log.Fatal(err)
	}
	idx := make([]int, 1000)
	for i := range idx {
		idx[i] = i
	}
	l := &data.Loader{Data: test.Subset(idx), Batch: 250, Normalisation: c.Preprocess.Normalisation}
	e, err := train.Evaluate(context.Background(), c.Net, l, len(c.Classes), ag.FP32)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("accuracy %.1f%%, top-5 %.1f%%; the 7s: %d of %d right\n", 100*e.Accuracy, 100*e.Top5, e.Confusion[7][7], sum(e.Confusion[7]))
	// Output:
	// accuracy 67.7%, top-5 98.2%; the 7s: 85 of 99 right
}

func sum(v []int) (s int) {
	for _, x := range v {
		s += x
	}
	return s
}

// Training from a Go program, stopped and resumed. A cancelled context
// stops Train at a step boundary once it has written the last checkpoint
// (here it is cancelled before Train starts; Ctrl-C under
// signal.NotifyContext stops it at whatever step it reached), and Train's
// error matches ErrInterrupted; ResumeConfig reads the run's settings back
// from its folder, and the resumed run trains to the end, its OnEpoch
// watching each epoch's metrics (an error from it would stop the run
// there, as the cancelled context did). A ResNet-8 on 64 MNIST images
// (Limit), 2 epochs of 8 steps.
func ExampleTrainer_Train() {
	out, err := os.MkdirTemp("", "train-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(out)
	mc, err := models.Preset("resnet8")
	if err != nil {
		log.Fatal(err)
	}
	cfg := train.Config{Model: mc, Data: "mnist", Limit: 64, Epochs: 2, Batch: 8, LR: 0.05, Momentum: 0.9, Out: out}
	ctx, cancel := context.WithCancel(context.Background())
	t, err := train.Prepare(ctx, cfg)
	if err != nil {
		log.Fatal(err)
	}
	cancel()
	res, err := t.Train(ctx)
	fmt.Printf("interrupted: %t, after %d epochs\n", errors.Is(err, train.ErrInterrupted), res.Epochs)

	cfg, err = train.ResumeConfig(out)
	if err != nil {
		log.Fatal(err)
	}
	cfg.OnEpoch = func(m train.Metrics) error {
		fmt.Printf("epoch %d: step %d, validation accuracy in [0, 1]: %t\n", m.Epoch, m.Step, m.ValAcc >= 0 && m.ValAcc <= 1)
		return nil
	}
	if res, err = train.Run(context.Background(), cfg); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("resumed: %d epochs, %d steps in all\n", res.Epochs, len(res.StepLoss))
	c, err := checkpoint.Load(filepath.Join(out, train.BestCheckpoint))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(c.Model.Name, "for", c.Preprocess.Height, "×", c.Preprocess.Width, "images of", c.Preprocess.Channels, "channel,", len(c.Classes), "classes")
	// Output:
	// interrupted: true, after 0 epochs
	// epoch 1: step 8, validation accuracy in [0, 1]: true
	// epoch 2: step 16, validation accuracy in [0, 1]: true
	// resumed: 2 epochs, 16 steps in all
	// resnet8 for 28 × 28 images of 1 channel, 10 classes
}
