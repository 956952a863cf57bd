package serve

import (
	"bytes"
	"context"
	"encoding/binary"
	"math"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/serve/inferencepb"
	"github.com/residual-nn/residual/tensor"
)

func grpcClient(t testing.TB, ts *testServer) inferencepb.GRPCInferenceServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(ts.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return inferencepb.NewGRPCInferenceServiceClient(conn)
}

// TestGRPC checks the gRPC service: health, metadata, and ModelInfer with
// raw and typed contents giving the model's own logits; errors map to
// INVALID_ARGUMENT, NOT_FOUND and RESOURCE_EXHAUSTED.
func TestGRPC(t *testing.T) {
	net := newResNet(t)
	// The slow model's batches take 400 ms, so a deadline of 200 ms cannot
	// be met, and leaves the call 200 ms to reach the admission check:
	// with 20 ms against 150, a loaded machine delivered the call after
	// its deadline had passed (DEADLINE_EXCEEDED, not the refusal).
	slow := newFake()
	slow.delay = 400 * time.Millisecond
	ts := start(t, Config{MaxBatch: 1}, map[string]Backend{"resnet": net, "slow": slow})
	c := grpcClient(t, ts)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	if r, err := c.ServerLive(ctx, &inferencepb.ServerLiveRequest{}); err != nil || !r.Live {
		t.Fatalf("ServerLive: %v %v", r, err)
	}
	if r, err := c.ServerReady(ctx, &inferencepb.ServerReadyRequest{}); err != nil || !r.Ready {
		t.Fatalf("ServerReady: %v %v", r, err)
	}
	if r, err := c.ModelReady(ctx, &inferencepb.ModelReadyRequest{Name: "resnet"}); err != nil || !r.Ready {
		t.Fatalf("ModelReady: %v %v", r, err)
	}
	md, err := c.ModelMetadata(ctx, &inferencepb.ModelMetadataRequest{Name: "resnet", Version: "1"})
	if err != nil || md.Name != "resnet" || len(md.Inputs) != 1 || md.Inputs[0].Datatype != "FP32" || len(md.Inputs[0].Shape) != 4 || md.Outputs[0].Shape[1] != 10 {
		t.Fatalf("ModelMetadata: %v %v", md, err)
	}

	x := tensor.NewRNG(5).Randn(1, 28, 28, 1)
	want := net.net.Forward(ag.Constant(x)).Data
	raw := make([]byte, 4*len(x.Data))
	for i, v := range x.Data {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	in := &inferencepb.ModelInferRequest_InferInputTensor{Name: "input", Datatype: "FP32", Shape: []int64{1, 28, 28, 1}}
	reqs := map[string]*inferencepb.ModelInferRequest{
		"raw": {ModelName: "resnet", Id: "a", Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{in}, RawInputContents: [][]byte{raw},
			Outputs: []*inferencepb.ModelInferRequest_InferRequestedOutputTensor{{Name: "logits"}}},
		"typed": {ModelName: "resnet", Id: "a", Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{{Name: "input", Datatype: "FP32", Shape: in.Shape,
			Contents: &inferencepb.InferTensorContents{Fp32Contents: x.Data}}}, Outputs: []*inferencepb.ModelInferRequest_InferRequestedOutputTensor{{Name: "logits"}}},
	}
	for name, req := range reqs {
		r, err := c.ModelInfer(ctx, req)
		if err != nil {
			t.Fatalf("%s ModelInfer: %v", name, err)
		}
		if r.Id != "a" || r.ModelVersion != "1" || len(r.Outputs) != 1 || len(r.RawOutputContents) != 1 || len(r.RawOutputContents[0]) != 40 {
			t.Fatalf("%s response %v", name, r)
		}
		for i, v := range want.Data {
			if got := math.Float32frombits(binary.LittleEndian.Uint32(r.RawOutputContents[0][4*i:])); got != v {
				t.Fatalf("%s logit %d: %v, model %v", name, i, got, v)
			}
		}
	}

	bad := map[codes.Code]*inferencepb.ModelInferRequest{
		codes.InvalidArgument: {ModelName: "resnet", Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{{Name: "input", Datatype: "FP32", Shape: []int64{1, 28, 28, 3}}}, RawInputContents: [][]byte{raw}},
		codes.NotFound:        {ModelName: "nope", Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{in}, RawInputContents: [][]byte{raw}},
	}
	for want, req := range bad {
		if _, err := c.ModelInfer(ctx, req); status.Code(err) != want {
			t.Errorf("want %v, got %v", want, err)
		}
	}
	// Typed contents outside their datatype's range are refused, naming
	// the element (the slow model takes 1×2×2×1).
	for dt, contents := range map[string]*inferencepb.InferTensorContents{
		"UINT8": {UintContents: []uint32{1, 256, 3, 4}},
		"INT8":  {IntContents: []int32{1, 2, -129, 4}},
		"FP64":  {Fp64Contents: []float64{1, 2, 3, 1e300}},
	} {
		req := &inferencepb.ModelInferRequest{ModelName: "slow", Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{{Name: "input", Datatype: dt, Shape: []int64{1, 2, 2, 1}, Contents: contents}}}
		if _, err := c.ModelInfer(ctx, req); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "outside") {
			t.Errorf("%s contents out of range: %v, want INVALID_ARGUMENT naming it", dt, err)
		}
	}
	// A deadline the slow model cannot meet is refused at admission.
	sin := &inferencepb.ModelInferRequest_InferInputTensor{Name: "input", Datatype: "FP32", Shape: []int64{1, 2, 2, 1}, Contents: &inferencepb.InferTensorContents{Fp32Contents: []float32{1, 2, 3, 4}}}
	sreq := &inferencepb.ModelInferRequest{ModelName: "slow", Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{sin}}
	dctx, dcancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer dcancel()
	if _, err := c.ModelInfer(dctx, sreq); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("deadline that cannot be met: %v, want RESOURCE_EXHAUSTED", err)
	}
	if r, err := c.ModelInfer(ctx, sreq); err != nil || len(r.Outputs) != 2 {
		t.Errorf("slow model after the refusal: %v %v", r, err)
	}
	// Typed contents in another field than the datatype's, or besides
	// it, are refused naming both (the extra was ignored).
	for _, contents := range []*inferencepb.InferTensorContents{
		{IntContents: []int32{1, 2, 3, 4}},
		{Fp32Contents: []float32{1, 2, 3, 4}, IntContents: []int32{5}},
	} {
		req := &inferencepb.ModelInferRequest{ModelName: "slow", Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{{Name: "input", Datatype: "FP32", Shape: []int64{1, 2, 2, 1}, Contents: contents}}}
		if _, err := c.ModelInfer(ctx, req); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "the request fills contents.int_contents") {
			t.Errorf("FP32 with int_contents: %v", err)
		}
	}
	// Raw FP64 beyond float32's range is named as such, not as the
	// infinity it would become.
	raw64 := make([]byte, 32)
	binary.LittleEndian.PutUint64(raw64[8:], math.Float64bits(1e300))
	req64 := &inferencepb.ModelInferRequest{ModelName: "slow", Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{{Name: "input", Datatype: "FP64", Shape: []int64{1, 2, 2, 1}}}, RawInputContents: [][]byte{raw64}}
	if _, err := c.ModelInfer(ctx, req64); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "1e+300 is outside float32's range") {
		t.Errorf("raw FP64 1e300: %v", err)
	}
	// Triton's "timeout" parameter (µs) is honoured as over REST (it was
	// ignored over gRPC), and a value that is not a non-negative
	// int64_param refused.
	for _, tc := range []struct {
		p    *inferencepb.InferParameter
		want codes.Code
	}{
		{&inferencepb.InferParameter{ParameterChoice: &inferencepb.InferParameter_Int64Param{Int64Param: 200000}}, codes.ResourceExhausted},
		{&inferencepb.InferParameter{ParameterChoice: &inferencepb.InferParameter_Int64Param{Int64Param: -5}}, codes.InvalidArgument},
		{&inferencepb.InferParameter{ParameterChoice: &inferencepb.InferParameter_StringParam{StringParam: "abc"}}, codes.InvalidArgument},
		{&inferencepb.InferParameter{ParameterChoice: &inferencepb.InferParameter_Int64Param{Int64Param: 1 << 62}}, codes.OK},
	} {
		sreq.Parameters = map[string]*inferencepb.InferParameter{"timeout": tc.p}
		if _, err := c.ModelInfer(ctx, sreq); status.Code(err) != tc.want {
			t.Errorf("timeout parameter %v: %v, want %v", tc.p, err, tc.want)
		}
	}
	// A name of megabytes is not echoed whole into the status (20 MB
	// broke the connection and every call on it).
	_, err = c.ModelReady(ctx, &inferencepb.ModelReadyRequest{Name: strings.Repeat("a", 4<<20)})
	if status.Code(err) != codes.NotFound || len(err.Error()) > 300 || !strings.Contains(err.Error(), "4194304 bytes") {
		t.Errorf("a 4 MB model name: %d bytes of %v", len(err.Error()), status.Code(err))
	}
}

// TestGRPCUnknownModelFirst checks that ModelInfer resolves the model and
// version before it looks at the inputs: an unknown one is NOT_FOUND
// naming it, not INVALID_ARGUMENT about the request's inputs.
func TestGRPCUnknownModelFirst(t *testing.T) {
	ts := start(t, Config{}, map[string]Backend{"m": newFake()})
	c := grpcClient(t, ts)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, req := range []*inferencepb.ModelInferRequest{
		{ModelName: "nosuch"},
		{ModelName: "m", ModelVersion: "99"},
		{ModelName: "nosuch", Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{{Name: "x", Datatype: "FP8"}}, RawInputContents: [][]byte{{1}, {2}}},
		{ModelName: "m", ModelVersion: "99", Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{{Name: "input", Datatype: "FP32", Shape: []int64{1, 3}}}},
	} {
		_, err := c.ModelInfer(ctx, req)
		if status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), req.ModelName) {
			t.Errorf("gRPC ModelInfer of model %q version %q: %v; want NOT_FOUND naming it", req.ModelName, req.ModelVersion, err)
		}
	}
}

// TestGRPCStalledMessage: a call whose message stalls part-way (declared
// 1 MB, 60 kB sent) is ended within Config.WriteTimeout, as a REST request
// is; grpc-go alone held it for as long as the client's deadline, or for
// ever without one. Raw HTTP/2 frames: a gRPC client cannot stall.
func TestGRPCStalledMessage(t *testing.T) {
	ts := start(t, Config{WriteTimeout: 500 * time.Millisecond}, map[string]Backend{"m": newFake()})
	conn, err := net.Dial("tcp", ts.grpcAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	fr.WriteSettings()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, kv := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", "/inference.GRPCInferenceService/ModelInfer"},
		{":authority", ts.grpcAddr}, {"content-type", "application/grpc"}, {"te", "trailers"}} {
		enc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]})
	}
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true})
	prefix := make([]byte, 5)
	binary.BigEndian.PutUint32(prefix[1:], 1<<20)
	fr.WriteData(1, false, prefix)
	for range 4 {
		fr.WriteData(1, false, make([]byte, 15000))
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("the stalled call was not ended within 10 s (WriteTimeout 500 ms): %v", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
			continue
		case *http2.RSTStreamFrame, *http2.GoAwayFrame:
		case *http2.HeadersFrame:
			if !f.StreamEnded() {
				continue
			}
		default:
			continue
		}
		t.Logf("the stalled call ended after %v with a %T", time.Since(start), f)
		return
	}
}

// rawCodec sends a []byte as the message as it is, so that a test can send
// bytes that are no protobuf message.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return v.([]byte), nil }
func (rawCodec) Unmarshal(b []byte, v any) error {
	*v.(*[]byte) = b
	return nil
}
func (rawCodec) Name() string { return "proto" }

// TestGRPCMalformedMessage: a ModelInfer request whose bytes are no
// ModelInferRequest (a truncated field; a model name that is not UTF-8,
// which only protobuf-go's decoder refuses) is answered INVALID_ARGUMENT
// naming the problem, and logged: grpc-go answered INTERNAL ("failed to
// unmarshal"), writing that status itself before any interceptor ran.
func TestGRPCMalformedMessage(t *testing.T) {
	ts := start(t, Config{}, map[string]Backend{"m": newFake()})
	conn, err := grpc.NewClient(ts.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, c := range []struct {
		name string
		msg  []byte
		want string
	}{
		{"a truncated field", []byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f}, "a ModelInferRequest that does not parse"},
		{"a model name that is not UTF-8", protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), []byte{'m', 0xff}), "a ModelInferRequest that does not parse"},
	} {
		var out []byte
		err = conn.Invoke(ctx, "/inference.GRPCInferenceService/ModelInfer", c.msg, &out, grpc.ForceCodec(rawCodec{}))
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), c.want) {
			t.Errorf("%s: %v; want INVALID_ARGUMENT naming %q", c.name, err, c.want)
		}
	}
	if !ts.logged(5*time.Second, "method=/inference.GRPCInferenceService/ModelInfer code=InvalidArgument", "a ModelInferRequest that does not parse") {
		t.Errorf("the call is not logged within 5 s:\n%s", ts.logs.String())
	}
	// A well-formed call still passes.
	if _, err := grpcClient(t, ts).ServerLive(ctx, &inferencepb.ServerLiveRequest{}); err != nil {
		t.Error(err)
	}
}

// TestGRPCDefaultTimeout: a gRPC call whose client gives no deadline gets
// Config.Timeout, as a REST request does: the bound every stream gets
// (Config.WriteTimeout) was taken for a client's deadline, so the default
// never applied and the call ran to the model's end. With a model whose
// batches take 2 s (its warm-up too), a call is refused at admission
// (RESOURCE_EXHAUSTED, naming its 200 ms) or ends at its deadline; a call
// whose client gives 10 s is answered.
func TestGRPCDefaultTimeout(t *testing.T) {
	slow, quick := newFake(), newFake()
	slow.delay, quick.delay = 2*time.Second, 100*time.Millisecond // set before the server runs them
	ts := start(t, Config{Timeout: 200 * time.Millisecond}, map[string]Backend{"slow": slow, "quick": quick})
	req := func(model string) *inferencepb.ModelInferRequest {
		return &inferencepb.ModelInferRequest{ModelName: model, Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{{Name: "input", Datatype: "FP32",
			Shape: []int64{1, 2, 2, 1}, Contents: &inferencepb.InferTensorContents{Fp32Contents: []float32{1, 2, 3, 4}}}}}
	}
	_, err := grpcClient(t, ts).ModelInfer(context.Background(), req("slow"))
	switch status.Code(err) {
	case codes.DeadlineExceeded:
	case codes.ResourceExhausted:
		if !strings.Contains(err.Error(), "deadline in 19") && !strings.Contains(err.Error(), "deadline in 200") {
			t.Errorf("refused at admission, but not for a deadline of 200 ms: %v", err)
		}
	default:
		t.Errorf("a call without a deadline on a server with Timeout 200ms, a 2 s model: %v; want DEADLINE_EXCEEDED or RESOURCE_EXHAUSTED", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := grpcClient(t, ts).ModelInfer(ctx, req("quick")); err != nil {
		t.Errorf("a call with a 10 s deadline, a 100 ms model: %v", err)
	}
}

// A MaxBodyBytes beyond gRPC's own 2 GiB − 1 (math.MaxInt64 for "no
// bound") serves gRPC calls: the decoded bound, 8 × the wire's, overflowed
// to a negative number and every message was refused as too large.
func TestGRPCHugeMaxBody(t *testing.T) {
	ts := start(t, Config{MaxBodyBytes: math.MaxInt64}, map[string]Backend{"fake": newFake()})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := grpcClient(t, ts).ModelInfer(ctx, &inferencepb.ModelInferRequest{ModelName: "fake", Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{{Name: "input",
		Datatype: "FP32", Shape: []int64{1, 2, 2, 1}, Contents: &inferencepb.InferTensorContents{Fp32Contents: []float32{1, 2, 3, 4}}}}})
	if err != nil {
		t.Errorf("a 16-byte tensor with MaxBodyBytes math.MaxInt64: %v", err)
	}
}
