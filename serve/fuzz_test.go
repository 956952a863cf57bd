package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/serve/inferencepb"
	"github.com/residual-nn/residual/tensor"
)

// sumBackend is a classifier over 2×2×1 inputs whose logits are the
// input's sum times 1, 2 and 3. Unlike fakeBackend it never panics, so
// that a fuzzed request answered 500 can only be the server's own fault.
type sumBackend struct{}

func (sumBackend) Info() ModelInfo {
	return ModelInfo{Task: models.Classify, Classes: []string{"a", "b", "c"}, Height: 2, Width: 2, Channels: 1}
}

func (sumBackend) Preprocess(img image.Image) (*tensor.Tensor, error) {
	return newFake().Preprocess(img)
}

func (sumBackend) Forward(_ context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	n := x.Shape[0]
	y := tensor.New(n, 3)
	for i := range n {
		var s float32
		for _, v := range x.Data[i*4 : (i+1)*4] {
			s += v
		}
		for k := range 3 {
			y.Data[i*3+k] = float32(k+1) * s
		}
	}
	return y, nil
}

// fuzzServer is a server with one model, "m", reached in process (no
// listener); its limits are small so that a fuzzed request can reach them.
func fuzzServer(f *testing.F) *Server {
	s := newServer(f, Config{MaxBatch: 4, MaxBodyBytes: 1 << 16, MaxImagePixels: 1 << 12,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := s.Add(context.Background(), "m", "1", sumBackend{}); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(s.Close)
	return s
}

// checkAnswer fails t unless the server answered a fuzzed request as the
// protocol says: 200 with a JSON body (or the binary extension's header
// and bytes), or a 4xx whose JSON body names the problem (or 504 for a
// request whose own "timeout" parameter expired while it ran); any other
// 5xx means a malformed request got past the decoders (a recovered panic
// answers 500).
func checkAnswer(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	body := rec.Body.Bytes()
	switch {
	case rec.Code == http.StatusOK:
		if h := rec.Header().Get(headerInferenceLength); h != "" {
			n, err := strconv.Atoi(h)
			if err != nil || n < 0 || n > len(body) {
				t.Fatalf("200 with %s %q over a %d-byte body", headerInferenceLength, h, len(body))
			}
			body = body[:n]
		}
		if !json.Valid(body) {
			t.Fatalf("200 with a body that is not JSON: %q", body)
		}
	case rec.Code >= 400 && rec.Code < 500 || rec.Code == http.StatusGatewayTimeout:
		var e struct{ Error string }
		if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
			t.Fatalf("%d without a JSON error: %q", rec.Code, body)
		}
	default:
		t.Fatalf("answered %d: %s", rec.Code, body)
	}
}

// stillServes fails t unless a well-formed request is answered after a
// fuzzed one (nothing it did broke the model or its batcher).
func stillServes(t *testing.T, h http.Handler) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/v2/models/m/infer",
		strings.NewReader(`{"inputs":[{"name":"input","shape":[1,2,2,1],"datatype":"FP32","data":[1,2,3,4]}]}`))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "[10,20,30]") {
		t.Fatalf("a good request after the fuzzed one: %d %s", rec.Code, rec.Body)
	}
}

// FuzzInferREST sends arbitrary bodies to the Open Inference Protocol's
// REST infer route, as JSON or as the binary tensor extension (a JSON
// header of the given length, then raw bytes): every one must get 200 or
// a 4xx naming the problem, and the server must keep serving.
func FuzzInferREST(f *testing.F) {
	good := `{"inputs":[{"name":"input","shape":[1,2,2,1],"datatype":"FP32","data":[1,2,3,4]}]}`
	f.Add([]byte(good), -1)
	f.Add([]byte(`{"inputs":[{"name":"input","shape":[2,2,2,1],"datatype":"UINT8","data":[[1,2],[3,4],[5,6],[7,8]]}],"outputs":[{"name":"logits","parameters":{"binary_data":true}}]}`), -1)
	f.Add([]byte(`{"inputs":[{"name":"input","shape":[1,2,2,1],"datatype":"FP16","data":[1,2,3,4]}],"parameters":{"timeout":1000000}}`), -1)
	hdr := `{"inputs":[{"name":"input","shape":[1,2,2,1],"datatype":"FP32","parameters":{"binary_data_size":16}}],"parameters":{"binary_data_output":true}}`
	f.Add(append([]byte(hdr), make([]byte, 16)...), len(hdr))
	hdr = `{"inputs":[{"name":"input","shape":[1,2,2,1],"datatype":"INT64","parameters":{"binary_data_size":32}}]}`
	f.Add(append([]byte(hdr), bytes.Repeat([]byte{0xff}, 32)...), len(hdr))
	f.Add([]byte(`{"inputs":[{"name":"input","shape":[1,2,2,1],"datatype":"BOOL","data":[true,false,1,0]}]}`), -1)
	f.Add([]byte(`{"inputs":[{"name":"input","shape":[1,2,2,1],"datatype":"FP32","data":[[[[[[[[1]]]]]]]]}]}`), -1)
	f.Add([]byte(`{"inputs":[{"name":"input","shape":[9223372036854775807,2,2,1],"datatype":"FP32","parameters":{"binary_data_size":1e300}}]}`), 10)
	s := fuzzServer(f)
	h := s.Handler()
	f.Fuzz(func(t *testing.T, body []byte, headerLen int) {
		req := httptest.NewRequest(http.MethodPost, "/v2/models/m/infer", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if headerLen >= 0 {
			req.Header.Set(headerInferenceLength, strconv.Itoa(headerLen))
			req.Header.Set("Content-Type", "application/octet-stream")
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		checkAnswer(t, rec)
		stillServes(t, h)
	})
}

// FuzzClassifyBody sends arbitrary bytes as the image of the classify
// route, raw or as a multipart form's "image" field: 200 with the top-k
// for a decodable image within the pixel limit, else a 4xx naming the
// problem.
func FuzzClassifyBody(f *testing.F) {
	png := pngBytes(f, image.NewGray(image.Rect(0, 0, 3, 5)))
	f.Add(png, false)
	f.Add(png, true)
	f.Add(pngBytes(f, image.NewRGBA(image.Rect(0, 0, 200, 200))), false) // over the pixel limit
	f.Add(png[:len(png)/2], false)
	f.Add([]byte("GIF89a\x01\x00\x01\x00"), false)
	f.Add([]byte("RIFF\x00\x00\x00\x00WEBPVP8 "), true)
	s := fuzzServer(f)
	h := s.Handler()
	f.Fuzz(func(t *testing.T, img []byte, multipart bool) {
		body, ct := img, "application/octet-stream"
		if multipart {
			const boundary = "fuzzboundary"
			body = []byte("--" + boundary + "\r\nContent-Disposition: form-data; name=\"image\"; filename=\"x\"\r\n\r\n" +
				string(img) + "\r\n--" + boundary + "--\r\n")
			ct = "multipart/form-data; boundary=" + boundary
		}
		req := httptest.NewRequest(http.MethodPost, "/v1/models/m:classify", bytes.NewReader(body))
		req.Header.Set("Content-Type", ct)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		checkAnswer(t, rec)
		stillServes(t, h)
	})
}

// FuzzInferGRPC decodes arbitrary bytes as a ModelInferRequest and calls
// the gRPC service with it (through the interceptor, which recovers
// panics as INTERNAL): every message must be answered or refused with
// INVALID_ARGUMENT, NOT_FOUND or another client-side code, never
// INTERNAL or UNKNOWN.
func FuzzInferGRPC(f *testing.F) {
	add := func(r *inferencepb.ModelInferRequest) {
		b, err := proto.Marshal(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	in := func(dt string, shape ...int64) *inferencepb.ModelInferRequest_InferInputTensor {
		return &inferencepb.ModelInferRequest_InferInputTensor{Name: "input", Datatype: dt, Shape: shape}
	}
	r := &inferencepb.ModelInferRequest{ModelName: "m", Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{in("FP32", 1, 2, 2, 1)}}
	r.Inputs[0].Contents = &inferencepb.InferTensorContents{Fp32Contents: []float32{1, 2, 3, 4}}
	add(r)
	r = &inferencepb.ModelInferRequest{ModelName: "m", ModelVersion: "1", Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{in("UINT8", 2, 2, 2, 1)},
		RawInputContents: [][]byte{{1, 2, 3, 4, 5, 6, 7, 8}}}
	add(r)
	r = &inferencepb.ModelInferRequest{ModelName: "m", Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{in("INT64", 1, 2, 2, 1)}}
	r.Inputs[0].Contents = &inferencepb.InferTensorContents{Int64Contents: []int64{-1 << 63, 0, 1, 1<<63 - 1}}
	add(r)
	r = &inferencepb.ModelInferRequest{ModelName: "m", Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{in("FP64", 1, 2, 2, 1)}}
	r.Inputs[0].Contents = &inferencepb.InferTensorContents{Fp64Contents: []float64{1e300, 0, 1, 2}}
	add(r)
	add(&inferencepb.ModelInferRequest{ModelName: "nope"})
	s := fuzzServer(f)
	g := &grpcService{s: s}
	info := &grpc.UnaryServerInfo{FullMethod: "/inference.GRPCInferenceService/ModelInfer"}
	f.Fuzz(func(t *testing.T, msg []byte) {
		var r inferencepb.ModelInferRequest
		if proto.Unmarshal(msg, &r) != nil {
			return // refused by the protobuf decoder before the service sees it
		}
		_, err := s.grpcInterceptor(context.Background(), &r, info, func(ctx context.Context, req any) (any, error) {
			return g.ModelInfer(ctx, req.(*inferencepb.ModelInferRequest))
		})
		if c := status.Code(err); c == codes.Internal || c == codes.Unknown {
			t.Fatalf("answered %v", err)
		}
		good := &inferencepb.ModelInferRequest{ModelName: "m", Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{in("FP32", 1, 2, 2, 1)}}
		good.Inputs[0].Contents = &inferencepb.InferTensorContents{Fp32Contents: []float32{1, 2, 3, 4}}
		if _, err := g.ModelInfer(context.Background(), good); err != nil {
			t.Fatalf("a good request after the fuzzed one: %v", err)
		}
	})
}

// FuzzJSONCounts: for any JSON array or object, jsonCounts' elements are
// those encoding/json decodes, and its containers and commas are at least
// the values less the first of each non-empty container and at most twice
// the values (counted on what encoding/json decodes).
func FuzzJSONCounts(f *testing.F) {
	for _, s := range []string{`[]`, `{}`, `null`, `[1]`, ` [ 1 , [2,3] , {"a":[4]} ] `, `["],[\"{", "\\", 5]`,
		`{"a":"}","b":{"c":[[],[]]}}`, `[[[]]]`, `["\u005d", true, false, null, -1.5e3]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var v any
		if json.Unmarshal(raw, &v) != nil {
			return // jsonCounts reads valid JSON only
		}
		var values, firsts func(any) int
		values = func(v any) int {
			n := 1
			switch v := v.(type) {
			case []any:
				for _, e := range v {
					n += values(e)
				}
			case map[string]any:
				for _, e := range v {
					n += values(e)
				}
			}
			return n
		}
		firsts = func(v any) int { // non-empty containers
			n := 0
			switch v := v.(type) {
			case []any:
				n = min(len(v), 1)
				for _, e := range v {
					n += firsts(e)
				}
			case map[string]any:
				n = min(len(v), 1)
				for _, e := range v {
					n += firsts(e)
				}
			}
			return n
		}
		top, counted := jsonCounts(raw)
		want := 0
		switch v := v.(type) {
		case []any:
			want = len(v)
		case map[string]any:
			want = len(v)
			if top > want { // duplicate keys: encoding/json keeps the last
				return
			}
		default:
			return
		}
		if top != want {
			t.Errorf("%s: %d elements; encoding/json decodes %d", raw, top, want)
		}
		if n, f := values(v), firsts(v); counted < n-f || counted > 2*n {
			t.Errorf("%s: %d containers and commas; want between %d and %d (values %d, non-empty containers %d)", raw, counted, n-f, 2*n, n, f)
		}
	})
}
