package serve_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/residual-nn/residual/data/imagefile"
	"github.com/residual-nn/residual/infer"
	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/serve"
	"github.com/residual-nn/residual/serve/inferencepb"
	"github.com/residual-nn/residual/tensor"
)

// brightness is a toy classifier of one grey pixel: logits (-4x+2, 4x-2)
// for "dark" and "bright". A real server serves package infer's Model
// (FromInfer, OpenCheckpoint; Example_checkpoint).
type brightness struct{}

func (brightness) Info() serve.ModelInfo {
	return serve.ModelInfo{Task: models.Classify, Classes: []string{"dark", "bright"}, Height: 1, Width: 1, Channels: 1}
}

func (brightness) Preprocess(img image.Image) (*tensor.Tensor, error) {
	g := color.GrayModel.Convert(img.At(img.Bounds().Min.X, img.Bounds().Min.Y)).(color.Gray)
	return tensor.MustFromData([]float32{float32(g.Y) / 255}, 1, 1, 1, 1), nil
}

func (brightness) Forward(_ context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	y := tensor.New(x.Shape[0], 2)
	for i, v := range x.Data {
		y.Data[2*i], y.Data[2*i+1] = -4*v+2, 4*v-2
	}
	return y, nil
}

// A server with one model, asked to classify a white image through the
// image route (the v2 routes and gRPC serve the same model).
func Example() {
	s, err := serve.New(serve.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	if err := s.Add(context.Background(), "brightness", "1", brightness{}); err != nil {
		fmt.Println(err)
		return
	}
	ts := httptest.NewServer(s.Handler()) // on 127.0.0.1
	defer ts.Close()

	img := image.NewGray(image.Rect(0, 0, 4, 4))
	for i := range img.Pix {
		img.Pix[i] = 255
	}
	var body bytes.Buffer
	png.Encode(&body, img)
	resp, err := http.Post(ts.URL+"/v1/models/brightness:classify?top=2", "image/png", &body)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	var r serve.ClassifyResponse
	json.NewDecoder(resp.Body).Decode(&r)
	for _, g := range r.Predictions {
		fmt.Printf("%s %.4f\n", g.Label, g.Probability)
	}
	// Output:
	// bright 0.9820
	// dark 0.0180
}

// Serving a checkpoint trained or imported by residual: Load opens it
// with OpenCheckpoint, through package infer (Config.Open's default, as
// `residual serve` opens its models), and the image route classifies a
// PNG file's bytes.
func Example_checkpoint() {
	s, err := serve.New(serve.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	if err := s.Load(context.Background(), "digits", "1", "../testdata/checkpoint/mnist-tiny.safetensors"); err != nil {
		fmt.Println(err)
		return
	}
	ts := httptest.NewServer(s.Handler()) // on 127.0.0.1
	defer ts.Close()

	png, err := os.ReadFile("../testdata/checkpoint/digit0.png") // MNIST's first test digit, a 7
	if err != nil {
		fmt.Println(err)
		return
	}
	resp, err := http.Post(ts.URL+"/v1/models/digits:classify?top=1", "image/png", bytes.NewReader(png))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	var r serve.ClassifyResponse
	json.NewDecoder(resp.Body).Decode(&r)
	for _, g := range r.Predictions {
		fmt.Printf("%s %.3f\n", g.Label, g.Probability)
	}
	// Output:
	// 7 0.602
}

// A Go client over gRPC, with package inferencepb's generated client: the
// Open Inference Protocol's ModelInfer on a tensor, the answer's raw FP32
// bytes decoded.
func ExampleServer_NewGRPC() {
	s, err := serve.New(serve.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	if err := s.Add(context.Background(), "brightness", "1", brightness{}); err != nil {
		fmt.Println(err)
		return
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	gs := s.NewGRPC()
	go gs.Serve(ln)
	defer gs.Stop()

	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	client := inferencepb.NewGRPCInferenceServiceClient(conn)
	resp, err := client.ModelInfer(context.Background(), &inferencepb.ModelInferRequest{
		ModelName: "brightness",
		Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{{
			Name: "input", Datatype: "FP32", Shape: []int64{2, 1, 1, 1},
			Contents: &inferencepb.InferTensorContents{Fp32Contents: []float32{0, 1}},
		}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	out := resp.RawOutputContents[0]
	fmt.Print("logits ", resp.Outputs[0].Shape, ":")
	for i := 0; i < len(out); i += 4 {
		fmt.Printf(" %.1f", math.Float32frombits(binary.LittleEndian.Uint32(out[i:])))
	}
	fmt.Println()
	// Output:
	// logits [2 2]: 2.0 -2.0 -2.0 2.0
}

// A model already open in the program (package infer), served with
// FromInfer by Run on listeners of its own until its context ends: Run
// then stops taking requests, answers those in flight (within the drain
// time) and returns nil.
func ExampleServer_Run() {
	m, err := infer.Open("../testdata/checkpoint/mnist-tiny.safetensors")
	if err != nil {
		fmt.Println(err)
		return
	}
	b, err := serve.FromInfer(m)
	if err != nil {
		fmt.Println(err)
		return
	}
	s, err := serve.New(serve.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := s.Add(context.Background(), "digits", "1", b); err != nil {
		fmt.Println(err)
		return
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, hl, gl, 5*time.Second) }()

	resp, err := http.Get("http://" + hl.Addr().String() + "/v2/models/digits/ready")
	if err == nil {
		resp.Body.Close()
		fmt.Println("ready:", resp.StatusCode)
	} else {
		fmt.Println(err)
	}
	stop() // as a SIGTERM handler would
	fmt.Println("Run returned:", <-done)
	// Output:
	// ready: 200
	// Run returned: <nil>
}

// A Go client of the Open Inference Protocol over REST: the image,
// preprocessed as the model's metadata says (infer.Model.Preprocess does
// it for a checkpoint), goes to /v2/models/NAME/infer as a JSON tensor,
// NHWC, in an InferenceRequest, and the probabilities come back as JSON
// data in an InferenceResponse.
func ExampleServer_Handler() {
	m, err := infer.Open("../testdata/checkpoint/mnist-tiny.safetensors")
	if err != nil {
		fmt.Println(err)
		return
	}
	b, err := serve.FromInfer(m)
	if err != nil {
		fmt.Println(err)
		return
	}
	s, err := serve.New(serve.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	if err := s.Add(context.Background(), "digits", "1", b); err != nil {
		fmt.Println(err)
		return
	}
	ts := httptest.NewServer(s.Handler()) // on 127.0.0.1
	defer ts.Close()

	img, err := imagefile.Load("../testdata/checkpoint/digit0.png") // MNIST's first test digit, a 7
	if err != nil {
		fmt.Println(err)
		return
	}
	x, err := m.Preprocess(img) // [1, 28, 28, 1]
	if err != nil {
		fmt.Println(err)
		return
	}
	shape := make([]int64, len(x.Shape))
	for i, d := range x.Shape {
		shape[i] = int64(d)
	}
	req, err := json.Marshal(serve.InferenceRequest{
		Inputs:  []serve.RequestInput{{Name: "input", Shape: shape, Datatype: "FP32", Data: x.Data}},
		Outputs: []serve.RequestOutput{{Name: "probabilities"}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	resp, err := http.Post(ts.URL+"/v2/models/digits/infer", "application/json", bytes.NewReader(req))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	var answer serve.InferenceResponse
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		fmt.Println(resp.Status, err)
		return
	}
	p := answer.Outputs[0]
	best := 0
	for i, v := range p.Data {
		if v > p.Data[best] {
			best = i
		}
	}
	fmt.Printf("%s %v: class %s, probability %.3f\n", p.Name, p.Shape, m.Info().Classes[best], p.Data[best])
	// Output:
	// probabilities [1 10]: class 7, probability 0.602
}

// Serving HTTP on an http.Server of the program's own, and shutting it
// down gracefully with a context: Shutdown stops taking connections and
// waits, until the context's deadline, for the requests in flight to be
// answered; Close then unloads the models.
func ExampleServer_HTTPServer() {
	s, err := serve.New(serve.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := s.Load(context.Background(), "digits", "1", "../testdata/checkpoint/mnist-tiny.safetensors"); err != nil {
		fmt.Println(err)
		return
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	hs := s.HTTPServer()
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()

	png, err := os.ReadFile("../testdata/checkpoint/digit0.png") // a 7
	if err != nil {
		fmt.Println(err)
		return
	}
	resp, err := http.Post("http://"+ln.Addr().String()+"/v1/models/digits:classify?top=1", "image/png", bytes.NewReader(png))
	if err != nil {
		fmt.Println(err)
		return
	}
	var r serve.ClassifyResponse
	err = json.NewDecoder(resp.Body).Decode(&r)
	resp.Body.Close()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("classified:", r.Predictions[0].Label)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fmt.Println("Shutdown:", hs.Shutdown(ctx)) // as a SIGTERM handler would
	s.Close()
	fmt.Println("Serve:", <-served)
	// Output:
	// classified: 7
	// Shutdown: <nil>
	// Serve: http: Server closed
}
