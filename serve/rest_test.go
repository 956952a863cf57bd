package serve

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/internal/slicepool"
	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/tensor"
)

// TestInferMatchesModel checks the v2 route end to end with a real
// ResNet-20: JSON and binary requests and responses give the logits of the
// model called directly, bit for bit (same input, batch of one, same code
// path; JSON carries float32 exactly as Go prints the shortest
// round-tripping decimal), and probabilities are the logits' softmax.
func TestInferMatchesModel(t *testing.T) {
	net := newResNet(t)
	ts := start(t, Config{}, map[string]Backend{"resnet": net})
	x := tensor.NewRNG(3).Randn(1, 28, 28, 1)
	want := net.net.Forward(ag.Constant(x)).Data

	code, _, b := post(t, ts.url+"/v2/models/resnet/infer", "application/json", inferJSON(x.Shape, x.Data, ""))
	if code != http.StatusOK {
		t.Fatalf("JSON infer: %d %s", code, b)
	}
	r := decodeInfer(t, b)
	if r.ModelName != "resnet" || r.ModelVersion != "1" || r.ID != "r1" || len(r.Outputs) != 2 {
		t.Fatalf("response header fields: %+v", r)
	}
	if r.Outputs[0].Name != logitsName || fmt.Sprint(r.Outputs[0].Shape) != "[1 10]" {
		t.Fatalf("logits output %+v", r.Outputs[0])
	}
	for i, v := range want.Data {
		if r.Outputs[0].Data[i] != v {
			t.Fatalf("logit %d: served %v, model %v", i, r.Outputs[0].Data[i], v)
		}
	}
	var sum float64
	for _, p := range r.Outputs[1].Data {
		sum += float64(p)
	}
	// Ten float32 probabilities each rounded once: |Σ-1| ≤ 10·2^-24 ≈ 6e-7.
	if math.Abs(sum-1) > 1e-6 {
		t.Errorf("probabilities sum to %v", sum)
	}

	// Binary tensor extension: FP32 input bytes after the JSON header,
	// logits requested as binary.
	raw := make([]byte, 4*len(x.Data))
	for i, v := range x.Data {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	hdr := fmt.Sprintf(`{"inputs":[{"name":"input","shape":[1,28,28,1],"datatype":"FP32","parameters":{"binary_data_size":%d}}],"outputs":[{"name":"logits","parameters":{"binary_data":true}}]}`, len(raw))
	code, h, b := post(t, ts.url+"/v2/models/resnet/versions/1/infer", "application/octet-stream", append([]byte(hdr), raw...), headerInferenceLength, fmt.Sprint(len(hdr)))
	if code != http.StatusOK {
		t.Fatalf("binary infer: %d %s", code, b)
	}
	var n int
	fmt.Sscan(h.Get(headerInferenceLength), &n)
	if n <= 0 || n > len(b) {
		t.Fatalf("response %s header %q for %d bytes", headerInferenceLength, h.Get(headerInferenceLength), len(b))
	}
	rb := decodeInfer(t, b[:n])
	if len(rb.Outputs) != 1 || rb.Outputs[0].Parameters["binary_data_size"] != float64(40) || len(b)-n != 40 {
		t.Fatalf("binary response: %+v and %d bytes", rb, len(b)-n)
	}
	for i, v := range want.Data {
		if got := math.Float32frombits(binary.LittleEndian.Uint32(b[n+4*i:])); got != v {
			t.Fatalf("binary logit %d: %v, model %v", i, got, v)
		}
	}
}

// TestDatatypes sends one input in every numeric datatype (nested JSON,
// and raw bytes for FP16) and checks the values reach the model.
func TestDatatypes(t *testing.T) {
	ts := start(t, Config{}, map[string]Backend{"m": newFake()})
	// The fake's class-0 logit is Σx = 1+2+3+4 = 10 in every case.
	for _, dt := range []string{"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP32", "FP64"} {
		data := `[[[[1],[2]],[[3],[4]]]]`
		want := float32(10)
		if dt == "BOOL" {
			data, want = `[true,false,true,true]`, 3
		}
		body := fmt.Sprintf(`{"inputs":[{"name":"input","shape":[1,2,2,1],"datatype":%q,"data":%s}],"outputs":[{"name":"logits"}]}`, dt, data)
		code, _, b := post(t, ts.url+"/v2/models/m/infer", "application/json", []byte(body))
		if code != http.StatusOK {
			t.Errorf("%s: %d %s", dt, code, b)
			continue
		}
		if got := decodeInfer(t, b).Outputs[0].Data[0]; got != want {
			t.Errorf("%s: logit %v, want %v", dt, got, want)
		}
	}
	// The edges of the integer ranges are accepted exactly.
	for dt, data := range map[string]string{"UINT8": `[0,255,0,0]`, "INT8": `[-128,127,0,1]`, "UINT64": `[18446744073709551615,0,0,0]`, "INT64": `[-9223372036854775808,0,0,0]`, "INT32": `[2e3,0,0,0]`} {
		body := fmt.Sprintf(`{"inputs":[{"name":"input","shape":[1,2,2,1],"datatype":%q,"data":%s}],"outputs":[{"name":"logits"}]}`, dt, data)
		if code, _, b := post(t, ts.url+"/v2/models/m/infer", "application/json", []byte(body)); code != http.StatusOK {
			t.Errorf("%s %s: %d %s", dt, data, code, b)
		}
	}
	// FP16 1, 2, 3, 4 (0x3c00, 0x4000, 0x4200, 0x4400) as binary data.
	raw := []byte{0x00, 0x3c, 0x00, 0x40, 0x00, 0x42, 0x00, 0x44}
	hdr := `{"inputs":[{"name":"input","shape":[1,2,2,1],"datatype":"FP16","parameters":{"binary_data_size":8}}],"outputs":[{"name":"logits"}]}`
	code, _, b := post(t, ts.url+"/v2/models/m/infer", "application/octet-stream", append([]byte(hdr), raw...), headerInferenceLength, fmt.Sprint(len(hdr)))
	if code != http.StatusOK || decodeInfer(t, b).Outputs[0].Data[0] != 10 {
		t.Errorf("FP16: %d %s", code, b)
	}
}

// TestBadRequests checks that each malformed request gets 400 (or 404)
// with a JSON error naming the problem, and that the server then still
// serves.
func TestBadRequests(t *testing.T) {
	ts := start(t, Config{MaxBatch: 4}, map[string]Backend{"m": newFake()})
	good := `{"name":"input","shape":[1,2,2,1],"datatype":"FP32","data":[1,2,3,4]}`
	cases := []struct {
		name, path, body string
		status           int
		says             string
	}{
		{"malformed JSON", "m", `{"inputs":[`, 400, "malformed"},
		{"not an object", "m", `[1,2]`, 400, "malformed"},
		{"no inputs", "m", `{"inputs":[]}`, 400, "0 inputs"},
		{"wrong input name", "m", strings.Replace(`{"inputs":[`+good+`]}`, `"input"`, `"x"`, 1), 400, `unknown input "x"`},
		{"wrong shape", "m", `{"inputs":[{"name":"input","shape":[1,3,2,1],"datatype":"FP32","data":[1,2,3,4,5,6]}]}`, 400, "does not match"},
		{"rank 2", "m", `{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}`, 400, "does not match"},
		{"negative dimension", "m", `{"inputs":[{"name":"input","shape":[1,-2,2,1],"datatype":"FP32","data":[1,2,3,4]}]}`, 400, "invalid dimension"},
		{"huge shape", "m", `{"inputs":[{"name":"input","shape":[100000,100000,100000,1],"datatype":"FP32","data":[1]}]}`, 400, "limits.TensorElements"},
		{"too few values", "m", `{"inputs":[{"name":"input","shape":[1,2,2,1],"datatype":"FP32","data":[1,2,3]}]}`, 400, "holds 3 elements"},
		{"too many values", "m", `{"inputs":[{"name":"input","shape":[1,2,2,1],"datatype":"FP32","data":[1,2,3,4,5]}]}`, 400, "more than the 4"},
		{"string values", "m", `{"inputs":[{"name":"input","shape":[1,2,2,1],"datatype":"FP32","data":["a","b","c","d"]}]}`, 400, "data element 0 is a string; want a number"},
		{"string data", "m", `{"inputs":[{"name":"input","shape":[1,2,2,1],"datatype":"FP32","data":"abcd"}]}`, 400, "data is a string; want numbers in (nested) arrays"},
		{"null data", "m", `{"inputs":[{"name":"input","shape":[1,2,2,1],"datatype":"FP32","data":null}]}`, 400, "data is null; want numbers in (nested) arrays"},
		{"null element", "m", `{"inputs":[{"name":"input","shape":[1,2,2,1],"datatype":"FP32","data":[1,null,3,4]}]}`, 400, "data element 1 is null; want a number"},
		{"BYTES", "m", `{"inputs":[{"name":"input","shape":[1,2,2,1],"datatype":"BYTES","data":[1,2,3,4]}]}`, 400, "BYTES"},
		{"unknown datatype", "m", `{"inputs":[{"name":"input","shape":[1,2,2,1],"datatype":"FP8","data":[1,2,3,4]}]}`, 400, `unknown datatype "FP8"`},
		{"overflowing number", "m", `{"inputs":[{"name":"input","shape":[1,2,2,1],"datatype":"FP32","data":[1e999,2,3,4]}]}`, 400, "data element 0"},
		{"float32 overflow", "m", `{"inputs":[{"name":"input","shape":[1,2,2,1],"datatype":"FP32","data":[1e300,2,3,4]}]}`, 400, "1e300 is outside FP32's range"},
		{"FP64 beyond float32", "m", `{"inputs":[{"name":"input","shape":[1,2,2,1],"datatype":"FP64","data":[1,-1e300,3,4]}]}`, 400, "data element 1: -1e300 is outside float32's range"},
		{"FP16 overflow", "m", `{"inputs":[{"name":"input","shape":[1,2,2,1],"datatype":"FP16","data":[1,2,70000,4]}]}`, 400, "70000 is outside FP16's range"},
		{"UINT8 negative", "m", `{"inputs":[{"name":"input","shape":[1,2,2,1],"datatype":"UINT8","data":[-1,2,3,4]}]}`, 400, "-1 is outside UINT8's range [0, 255]"},
		{"UINT8 too large", "m", `{"inputs":[{"name":"input","shape":[1,2,2,1],"datatype":"UINT8","data":[1,256,3,4]}]}`, 400, "256 is outside UINT8's range"},
		{"INT8 too large", "m", `{"inputs":[{"name":"input","shape":[1,2,2,1],"datatype":"INT8","data":[300,2,3,4]}]}`, 400, "300 is outside INT8's range"},
		{"INT32 fraction", "m", `{"inputs":[{"name":"input","shape":[1,2,2,1],"datatype":"INT32","data":[1.5,2,3,4]}]}`, 400, "1.5 is not an integer"},
		{"BOOL number", "m", `{"inputs":[{"name":"input","shape":[1,2,2,1],"datatype":"BOOL","data":[2,0,1,1]}]}`, 400, "2 is outside BOOL's range"},
		{"UINT64 past 2^64", "m", `{"inputs":[{"name":"input","shape":[1,2,2,1],"datatype":"UINT64","data":[18446744073709551621,2,3,4]}]}`, 400, "18446744073709551621 is not an integer in UINT64's range"},
		{"INT64 past 2^63", "m", `{"inputs":[{"name":"input","shape":[1,2,2,1],"datatype":"INT64","data":[9223372036854775808,2,3,4]}]}`, 400, "9223372036854775808 is outside INT64's range"},
		{"trailing garbage", "m", `{"inputs":[` + good + `]} xyz`, 400, "more after the request object"},
		{"binary data without its header", "m", `{"inputs":[` + good + `]}` + "\x00\x00\x80\x3f", 400, "Inference-Header-Content-Length header"},
		{"batch over max", "m", `{"inputs":[{"name":"input","shape":[5,2,2,1],"datatype":"FP32","data":[` + strings.Repeat("1,", 19) + `1]}]}`, 400, "--max-batch 4"},
		{"empty batch", "m", `{"inputs":[{"name":"input","shape":[0,2,2,1],"datatype":"FP32","data":[]}]}`, 400, "empty"},
		{"ragged nesting", "m", `{"inputs":[{"name":"input","shape":[1,2,2,1],"datatype":"FP32","data":[[[[1,2]],[[3],[4]]]]}]}`, 400, "the shape [1 2 2 1] wants"},
		{"nested too shallow", "m", `{"inputs":[{"name":"input","shape":[1,2,2,1],"datatype":"FP32","data":[[1,2],[3,4]]}]}`, 400, "nests 4 deep"},
		{"flat and nested mixed", "m", `{"inputs":[{"name":"input","shape":[1,2,2,1],"datatype":"FP32","data":[1,[2,3],4]}]}`, 400, "mixes numbers and arrays"},
		{"null element", "m", `{"inputs":[{"name":"input","shape":[1,2,2,1],"datatype":"FP32","data":[1,null,3,4]}]}`, 400, "element 1 is null"},
		// The shape is compared with the model's before the data is
		// decoded: 2^28 declared elements cost nothing.
		{"huge shape, little data", "m", `{"inputs":[{"name":"input","shape":[268435456],"datatype":"FP32","data":[1]}]}`, 400, "does not match the model's"},
		{"classification", "m", `{"inputs":[` + good + `],"outputs":[{"name":"logits","parameters":{"classification":3}}]}`, 400, `parameter "classification"`},
		{"shared memory", "m", `{"inputs":[{"name":"input","shape":[1,2,2,1],"datatype":"FP32","parameters":{"shared_memory_region":"r"},"data":[1,2,3,4]}]}`, 400, `parameter "shared_memory_region"`},
		{"unknown output", "m", `{"inputs":[` + good + `],"outputs":[{"name":"boxes"}]}`, 400, `unknown output "boxes"`},
		{"output twice", "m", `{"inputs":[` + good + `],"outputs":[{"name":"logits"},{"name":"logits"}]}`, 400, `output "logits" is requested twice`},
		{"bad timeout", "m", `{"parameters":{"timeout":"soon"},"inputs":[` + good + `]}`, 400, `"timeout"`},
		{"unknown model", "nope", `{"inputs":[` + good + `]}`, 404, `unknown model "nope"`},
		{"unknown version", "m/versions/9", `{"inputs":[` + good + `]}`, 404, `no version "9"`},
	}
	for _, c := range cases {
		code, _, b := post(t, ts.url+"/v2/models/"+c.path+"/infer", "application/json", []byte(c.body))
		var e struct{ Error string }
		if err := json.Unmarshal(b, &e); err != nil || code != c.status || !strings.Contains(e.Error, c.says) {
			t.Errorf("%s: %d %s; want %d naming %q", c.name, code, b, c.status, c.says)
		}
	}
	// Binary extension errors.
	bin := []struct {
		name, hdr, length string
		raw               []byte
		says              string
	}{
		{"length past body", `{}`, "99", nil, "not a length"},
		{"size past data", `{"inputs":[{"name":"input","shape":[1,2,2,1],"datatype":"FP32","parameters":{"binary_data_size":16}}]}`, "", make([]byte, 8), "more than the 8 bytes"},
		{"size mismatch", `{"inputs":[{"name":"input","shape":[1,2,2,1],"datatype":"FP32","parameters":{"binary_data_size":8}}]}`, "", make([]byte, 8), "want 16 bytes"},
		{"trailing bytes", `{"inputs":[{"name":"input","shape":[1,2,2,1],"datatype":"FP32","parameters":{"binary_data_size":16}}]}`, "", make([]byte, 20), "no input claims"},
		{"BOOL byte 2", `{"inputs":[{"name":"input","shape":[1,2,2,1],"datatype":"BOOL","parameters":{"binary_data_size":4}}]}`, "", []byte{0, 1, 2, 1}, "BOOL element 2 is the byte 2"},
	}
	for _, c := range bin {
		l := c.length
		if l == "" {
			l = fmt.Sprint(len(c.hdr))
		}
		code, _, b := post(t, ts.url+"/v2/models/m/infer", "application/octet-stream", append([]byte(c.hdr), c.raw...), headerInferenceLength, l)
		if code != 400 || !strings.Contains(string(b), c.says) {
			t.Errorf("binary %s: %d %s; want 400 naming %q", c.name, code, b, c.says)
		}
	}
	code, _, b := post(t, ts.url+"/v2/models/m/infer", "application/json", inferJSON([]int{1, 2, 2, 1}, []float32{1, 2, 3, 4}, ""), HeaderTimeout, "whenever")
	if code != 400 || !strings.Contains(string(b), HeaderTimeout) {
		t.Errorf("bad %s header: %d %s", HeaderTimeout, code, b)
	}
	// Every refusal of a request for the served model counts as REJECTED,
	// whether the model or the request's parsing refused it; the unknown
	// model and version are counted nowhere.
	rejected := len(bin) + 1
	for _, c := range cases {
		if c.path == "m" {
			rejected++
		}
	}
	_, mb := get(t, ts.url+"/metrics")
	want := fmt.Sprintf(`nv_inference_request_failure{model="m",reason="REJECTED",version="1"} %d`+"\n", rejected)
	if !strings.Contains(string(mb), want) {
		t.Errorf("metrics lack %q", want)
	}
	// None ran the model: a request refused for its outputs was counted a
	// success too when they were checked after the inference.
	if want := `nv_inference_request_success{model="m",version="1"} 0` + "\n"; !strings.Contains(string(mb), want) {
		t.Errorf("metrics lack %q", want)
	}
	serving(t, ts, "m")
}

// TestUncleanPaths: a path with an empty, . or .. segment is a JSON 404,
// not ServeMux's redirect to the cleaned path, which names another
// resource (/v2/models//ready is the metadata of a model called "ready").
func TestUncleanPaths(t *testing.T) {
	ts := start(t, Config{}, map[string]Backend{"m": newFake()})
	for _, p := range []string{"/v2/models//ready", "/v2/models/m/versions//ready", "/v2/models/m/./ready", "/v2/models/x/../m/ready"} {
		req, err := http.NewRequest(http.MethodGet, ts.url+p, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.URL.Opaque = p // sent as it is, not cleaned by the client
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var e struct{ Error string }
		if resp.StatusCode != http.StatusNotFound || json.Unmarshal(b, &e) != nil || !strings.Contains(e.Error, "segment") {
			t.Errorf("GET %s: %d %s; want a JSON 404 naming the segment", p, resp.StatusCode, b)
		}
	}
	if code, b := get(t, ts.url+"/v2/models/m/ready"); code != http.StatusOK {
		t.Errorf("GET /v2/models/m/ready: %d %s", code, b)
	}
}

// TestUnloadDropsMetrics: an unloaded version's series leave /metrics
// (a repository whose versions come and go exported each forever).
func TestUnloadDropsMetrics(t *testing.T) {
	ts := start(t, Config{}, map[string]Backend{"m": newFake()})
	if err := ts.Add(context.Background(), "m", "2", newFake()); err != nil {
		t.Fatal(err)
	}
	if code, _, b := post(t, ts.url+"/v2/models/m/versions/2/infer", "application/json", inferJSON([]int{1, 2, 2, 1}, []float32{1, 2, 3, 4}, "")); code != 200 {
		t.Fatalf("infer: %d %s", code, b)
	}
	_, mb := get(t, ts.url+"/metrics")
	if !strings.Contains(string(mb), `nv_inference_count{model="m",version="2"} 1`) {
		t.Fatalf("metrics lack version 2's count:\n%s", mb)
	}
	if err := ts.Unload("m", "2"); err != nil {
		t.Fatal(err)
	}
	_, mb = get(t, ts.url+"/metrics")
	if strings.Contains(string(mb), `version="2"`) {
		t.Errorf("metrics still hold version 2 after Unload:\n%s", mb)
	}
	if !strings.Contains(string(mb), `nv_inference_count{model="m",version="1"} 0`) {
		t.Errorf("metrics lost version 1 with version 2")
	}
}

// TestUnloadNotServed: Unload of a version the server does not serve is
// an error naming it (it did nothing, silently), and leaves the served
// versions alone.
func TestUnloadNotServed(t *testing.T) {
	ts := start(t, Config{}, map[string]Backend{"m": newFake()})
	if err := ts.Add(context.Background(), "m", "2", newFake()); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, version, want string }{
		{"nope", "1", "model nope version 1: serve: not served"},
		{"m", "3", "model m version 3: serve: not served (versions served: 1, 2)"},
	} {
		if err := ts.Unload(c.name, c.version); !errors.Is(err, ErrNotServed) || err.Error() != c.want {
			t.Errorf("Unload(%q, %q) = %v, want %q", c.name, c.version, err, c.want)
		}
	}
	if err := ts.Unload("m", "2"); err != nil {
		t.Fatalf("Unload of a served version: %v", err)
	}
	if err := ts.Unload("m", "2"); !errors.Is(err, ErrNotServed) {
		t.Errorf("Unload of a version unloaded already = %v, want ErrNotServed", err)
	}
	if code, b := get(t, ts.url+"/v2/models/m/versions/1/ready"); code != http.StatusOK {
		t.Errorf("version 1 after the Unloads: %d %s", code, b)
	}
}

// TestUnknownModelWhateverTheBody checks that the model and version are
// resolved before the body is read: an unknown one is 404 naming it, over
// REST (v2 infer, :classify, :segment) whatever the body holds, rather
// than a complaint about the body (gRPC: TestGRPCUnknownModelFirst).
func TestUnknownModelWhateverTheBody(t *testing.T) {
	seg := newFake()
	seg.task, seg.classes = models.Segment, 2 // its Forward answers two classes per pixel
	ts := start(t, Config{}, map[string]Backend{"m": newFake(), "seg": seg})
	bodies := map[string]string{"empty object": `{}`, "malformed": `{"inputs":[`, "empty": ``, "no inputs": `{"inputs":[]}`}
	for path, says := range map[string]string{
		"nosuch":            `unknown model "nosuch"`,
		"m/versions/99":     `model "m" has no version "99"`,
		"nosuch/versions/1": `unknown model "nosuch"`,
	} {
		for name, body := range bodies {
			code, _, b := post(t, ts.url+"/v2/models/"+path+"/infer", "application/json", []byte(body))
			var e struct{ Error string }
			if err := json.Unmarshal(b, &e); err != nil || code != http.StatusNotFound || !strings.Contains(e.Error, says) {
				t.Errorf("v2 %s, %s body: %d %s; want 404 naming %q", path, name, code, b, says)
			}
		}
		// Nor do a bad binary header length or Request-Timeout come first.
		code, _, b := post(t, ts.url+"/v2/models/"+path+"/infer", "application/octet-stream", []byte(`{}`), headerInferenceLength, "99", HeaderTimeout, "whenever")
		var e struct{ Error string }
		if err := json.Unmarshal(b, &e); err != nil || code != http.StatusNotFound || !strings.Contains(e.Error, says) {
			t.Errorf("v2 %s, bad headers: %d %s; want 404 naming %q", path, code, b, says)
		}
	}
	for path, says := range map[string]string{
		"nosuch:classify":         `unknown model "nosuch"`,
		"m/versions/99:classify":  `model "m" has no version "99"`,
		"nosuch:segment":          `unknown model "nosuch"`,
		"seg/versions/99:segment": `model "seg" has no version "99"`,
	} {
		for ctype, body := range map[string]string{"image/png": "not an image", "multipart/form-data": "no boundary", "multipart/form-data; boundary=x": "not a form", "application/json": ""} {
			code, _, b := post(t, ts.url+"/v1/models/"+path+"?top=0", ctype, []byte(body), HeaderTimeout, "whenever")
			var e struct{ Error string }
			if err := json.Unmarshal(b, &e); err != nil || code != http.StatusNotFound || !strings.Contains(e.Error, says) {
				t.Errorf("%s, %s body %q: %d %s; want 404 naming %q", path, ctype, body, code, b, says)
			}
		}
	}
	serving(t, ts, "m")
}

// TestHealthAndMetadata checks the v2 health, readiness and metadata
// routes, and that readiness waits for the warm-up batch.
func TestHealthAndMetadata(t *testing.T) {
	ts := start(t, Config{}, map[string]Backend{"m": newFake()})
	for path, want := range map[string]int{
		"/v2/health/live": 200, "/v2/health/ready": 200, "/v2/models/m/ready": 200, "/v2/models/m/versions/1/ready": 200,
		"/v2/models/x/ready": 404, "/v2/models/m/versions/2/ready": 404, "/v2": 200, "/": 200, "/nothing": 404,
	} {
		if code, b := get(t, ts.url+path); code != want {
			t.Errorf("GET %s: %d %s, want %d", path, code, b, want)
		}
	}
	// Routes that do not exist, and existing ones asked with another
	// method, answer JSON errors like every other refusal.
	for path, want := range map[string]int{"/nothing": 404, "/v2/models/m/infer": 405, "/v1/models/m:classify": 405} {
		code, b := get(t, ts.url+path)
		var e struct{ Error string }
		if err := json.Unmarshal(b, &e); code != want || err != nil || e.Error == "" {
			t.Errorf("GET %s: %d %q, want %d with a JSON error", path, code, b, want)
		}
	}
	code, b := get(t, ts.url+"/v2/models/m")
	var md modelMetadata
	if err := json.Unmarshal(b, &md); code != 200 || err != nil {
		t.Fatalf("metadata: %d %s %v", code, b, err)
	}
	if md.Name != "m" || fmt.Sprint(md.Versions) != "[1]" || len(md.Inputs) != 1 || fmt.Sprint(md.Inputs[0]) != "{input FP32 [-1 2 2 1]}" ||
		fmt.Sprint(md.Outputs) != "[{logits FP32 [-1 3]} {probabilities FP32 [-1 3]}]" || md.Residual.Info.Task != models.Classify {
		t.Errorf("metadata %+v", md)
	}

	// A model whose warm-up is held: the server is live, not ready.
	slow := newFake()
	slow.gate = make(chan struct{})
	added := make(chan error, 1)
	go func() { added <- ts.Add(context.Background(), "slow", "1", slow) }()
	for slow.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	if code, _ := get(t, ts.url+"/v2/health/ready"); code != http.StatusBadRequest {
		t.Errorf("ready during a warm-up: %d, want 400", code)
	}
	if code, _ := get(t, ts.url+"/v2/health/live"); code != 200 {
		t.Errorf("live during a warm-up: %d", code)
	}
	// The loading model's own routes say so: not ready, not unknown
	// (they answered 404 "unknown model" until it was served).
	for _, path := range []string{"/v2/models/slow/ready", "/v2/models/slow/versions/1/ready"} {
		if code, b := get(t, ts.url+path); code != http.StatusBadRequest || !strings.Contains(string(b), `"ready":false`) || !strings.Contains(string(b), "loading") {
			t.Errorf("GET %s during its warm-up: %d %s, want 400, ready false, loading", path, code, b)
		}
	}
	if code, _, b := post(t, ts.url+"/v2/models/slow/infer", "application/json", inferJSON([]int{1, 2, 2, 1}, []float32{1, 2, 3, 4}, "")); code != http.StatusServiceUnavailable || !strings.Contains(string(b), "loading") {
		t.Errorf("infer during its warm-up: %d %s, want 503 naming the load", code, b)
	}
	if code, b := get(t, ts.url+"/v2/models/slow/versions/2/ready"); code != http.StatusNotFound {
		t.Errorf("another version of the loading model: %d %s, want 404", code, b)
	}
	close(slow.gate)
	if err := <-added; err != nil {
		t.Fatal(err)
	}
	if code, _ := get(t, ts.url+"/v2/health/ready"); code != 200 {
		t.Errorf("ready after the warm-up: %d", code)
	}

	// Replacing a served version keeps the server ready: the old one
	// answers until the new one has warmed up.
	next := newFake()
	next.gate = make(chan struct{})
	go func() { added <- ts.Add(context.Background(), "m", "1", next) }()
	for next.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	if code, _ := get(t, ts.url+"/v2/health/ready"); code != 200 {
		t.Errorf("ready while a served version is replaced: %d, want 200", code)
	}
	serving(t, ts, "m")
	close(next.gate)
	if err := <-added; err != nil {
		t.Fatal(err)
	}
}

// TestBatching sends concurrent requests to a slow model and checks that
// they were coalesced and each answered with its own output.
func TestBatching(t *testing.T) {
	f := newFake()
	f.delay = 30 * time.Millisecond
	ts := start(t, Config{MaxBatch: 8, MaxDelay: 20 * time.Millisecond}, map[string]Backend{"m": f})
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := float32(i)
			code, _, b := post(t, ts.url+"/v2/models/m/infer", "application/json", inferJSON([]int{1, 2, 2, 1}, []float32{v, v, v, v}, `,"outputs":[{"name":"logits"}]`))
			if code != 200 {
				errs <- fmt.Errorf("request %d: %d %s", i, code, b)
				return
			}
			if got := decodeInfer(t, b).Outputs[0].Data; got[2] != 3*4*v {
				errs <- fmt.Errorf("request %d got another's answer: %v", i, got)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if m := f.maxBatch(); m < 2 || m > 8 {
		t.Errorf("largest batch %d; want 2..8 (coalesced, bounded)", m)
	}
	_, b := get(t, ts.url+"/metrics")
	for _, want := range []string{`nv_inference_request_success{model="m",version="1"} 16`, `nv_inference_count{model="m",version="1"} 16`, `residual_batch_size_bucket{model="m",version="1",le="8"}`, "nv_inference_queue_duration_us", "nv_inference_compute_infer_duration_us", `residual_request_duration_seconds_count{model="m",protocol="http",version="1"} 16`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// TestAdmission checks that a request whose deadline cannot be met is
// refused at once with 429, and that a full queue refuses too.
func TestAdmission(t *testing.T) {
	f := newFake()
	f.delay = 300 * time.Millisecond
	// Every batch after the warm-up waits for the gate, so that "at once"
	// is checked as "before any batch ran", not with a clock that a loaded
	// machine can miss (a bound of 250 ms on the refusal's round trip).
	gate := make(chan struct{})
	f.gate = gate
	go func() { gate <- struct{}{} }() // the warm-up
	ts := start(t, Config{MaxBatch: 1, MaxQueue: 2}, map[string]Backend{"m": f})
	released := false
	defer func() {
		if !released {
			close(gate)
		}
	}()
	// The warm-up measured ~300 ms per image; with work queued, a 50 ms
	// deadline cannot be met.
	busy := make(chan int, 3)
	for range 3 {
		go func() {
			code, _, _ := post(t, ts.url+"/v2/models/m/infer", "application/json", inferJSON([]int{1, 2, 2, 1}, []float32{1, 2, 3, 4}, ""))
			busy <- code
		}()
	}
	for ts.Server.models["m"]["1"].bt.queued.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	code, h, b := post(t, ts.url+"/v2/models/m/infer", "application/json", inferJSON([]int{1, 2, 2, 1}, []float32{1, 2, 3, 4}, ""), HeaderTimeout, "50ms")
	if code != http.StatusTooManyRequests || !strings.Contains(string(b), "cannot be met") || h.Get("Retry-After") == "" {
		t.Errorf("deadline that cannot be met: %d %s", code, b)
	}
	// Triton's timeout parameter (µs) works the same way.
	code, _, b = post(t, ts.url+"/v2/models/m/infer", "application/json", inferJSON([]int{1, 2, 2, 1}, []float32{1, 2, 3, 4}, `,"parameters":{"timeout":50000}`))
	if code != http.StatusTooManyRequests {
		t.Errorf("timeout parameter: %d %s", code, b)
	}
	// Both refusals came at admission: the model is held on its gate, so a
	// request queued instead would have waited out its 50 ms and had a
	// 504, not the 429s checked above.
	close(gate)
	released = true
	ok, full := 0, 0
	for range 3 {
		switch c := <-busy; c {
		case 200:
			ok++
		case 429:
			full++
		default:
			t.Errorf("queued request: status %d", c)
		}
	}
	if ok < 2 {
		t.Errorf("%d of the 3 queued requests answered; want at least 2 (one runs, two queue)", ok)
	}
	serving(t, ts, "m")
	_, mb := get(t, ts.url+"/metrics")
	if !strings.Contains(string(mb), `nv_inference_request_failure{model="m",reason="OVERLOADED",version="1"}`) {
		t.Error("overload refusals not counted in nv_inference_request_failure")
	}
	// A deadline that has passed by admission is a 504, whatever the
	// load: 429 would tell the client to retry (it was 429 or 504 by
	// timing).
	code, _, b = post(t, ts.url+"/v2/models/m/infer", "application/json", inferJSON([]int{1, 2, 2, 1}, []float32{1, 2, 3, 4}, ""), HeaderTimeout, "1ns")
	if code != http.StatusGatewayTimeout || !strings.Contains(string(b), "passed before it was queued") {
		t.Errorf("a deadline already passed: %d %s; want 504", code, b)
	}
}

// TestPanicRecovered checks that a model panic answers 500 and the server
// keeps serving, over REST and for the image routes.
func TestPanicRecovered(t *testing.T) {
	ts := start(t, Config{}, map[string]Backend{"m": newFake()})
	code, _, b := post(t, ts.url+"/v2/models/m/infer", "application/json", inferJSON([]int{1, 2, 2, 1}, []float32{666, 0, 0, 0}, ""))
	if code != 500 || !strings.Contains(string(b), "panicked") {
		t.Errorf("panicking model: %d %s", code, b)
	}
	serving(t, ts, "m")
	if !strings.Contains(ts.logs.String(), "model panicked") {
		t.Error("panic not logged")
	}
}

func pngBytes(t testing.TB, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestClassifyRoute checks :classify with a raw PNG body, a multipart
// form, and a WebP of the same pixels (PIL-written, lossless): the same
// top-k, in order, with the probabilities of the model's softmax.
func TestClassifyRoute(t *testing.T) {
	net := newResNet(t)
	ts := start(t, Config{}, map[string]Backend{"resnet": net})
	pngb, err := os.ReadFile("testdata/ring.png")
	if err != nil {
		t.Fatal(err)
	}
	webp, err := os.ReadFile("testdata/ring.webp")
	if err != nil {
		t.Fatal(err)
	}
	img, _ := decodeImage(pngb, 1<<20)
	x, _ := net.Preprocess(img)
	probs := softmaxLast(net.net.Forward(ag.Constant(x)).Data).Data
	want := topK(probs, net.Info().Classes, 3)

	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	mw.WriteField("note", "ignored")
	fw, _ := mw.CreateFormFile("image", "ring.png")
	fw.Write(pngb)
	mw.Close()
	for name, req := range map[string][2]string{
		"raw PNG":   {"image/png", string(pngb)},
		"multipart": {mw.FormDataContentType(), form.String()},
		"WebP":      {"image/webp", string(webp)},
	} {
		code, _, b := post(t, ts.url+"/v1/models/resnet:classify?top=3", req[0], []byte(req[1]))
		var r ClassifyResponse
		if err := json.Unmarshal(b, &r); code != 200 || err != nil {
			t.Errorf("%s: %d %s", name, code, b)
			continue
		}
		if fmt.Sprint(r.Predictions) != fmt.Sprint(want) || r.Model != "resnet" {
			t.Errorf("%s: %+v, want %+v", name, r.Predictions, want)
		}
	}
	cmykTIFF, err := os.ReadFile(filepath.Join("..", "testdata", "pil", "tiff", "unsupported_cmyk.tif"))
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		path, ctype, body string
		status            int
		says              string
	}{
		"not an image":  {"resnet:classify", "image/png", "hello", 400, "not an image this server decodes (JPEG, PNG, GIF, BMP, WebP, TIFF, PBM, PGM or PPM)"},
		"empty body":    {"resnet:classify", "image/png", "", 400, "empty body"},
		"truncated PNG": {"resnet:classify", "image/png", string(pngb[:len(pngb)-40]), 400, "request body: corrupt png image"},
		"CMYK TIFF":     {"resnet:classify", "image/tiff", string(cmykTIFF), 400, "request body: a CMYK (separated) TIFF, which Go's TIFF decoder cannot read"},
		"no field":      {"resnet:classify", mw.FormDataContentType(), strings.Replace(form.String(), `name="image"`, `name="picture"`, 1), 400, "multipart form has no field"},
		"empty form":    {"resnet:classify", mw.FormDataContentType(), "--" + mw.Boundary() + "--\r\n", 400, "multipart form has no field"},
		"raw as form":   {"resnet:classify", mw.FormDataContentType(), string(pngb), 400, "not a valid multipart form: no boundary line"},
		"no boundary":   {"resnet:classify", "multipart/form-data", form.String(), 400, "not a valid multipart form: Content-Type has no boundary"},
		"bad params":    {"resnet:classify", "multipart/form-data; boundary", form.String(), 400, "not a valid multipart form: Content-Type"},
		"cut form":      {"resnet:classify", mw.FormDataContentType(), form.String()[:strings.Index(form.String(), "ignored")+7], 400, "not a valid multipart form: the body ends before the closing boundary"},
		"bad top":       {"resnet:classify?top=0", "image/png", string(pngb), 400, "top"},
		"wrong task":    {"resnet:segment", "image/png", string(pngb), 400, "cannot segment"},
		"bad action":    {"resnet:explain", "image/png", string(pngb), 404, "unknown action"},
		"no action":     {"resnet", "image/png", string(pngb), 404, "NAME:classify"},
		"unknown model": {"other:classify", "image/png", string(pngb), 404, "unknown model"},
	} {
		code, _, b := post(t, ts.url+"/v1/models/"+c.path, c.ctype, []byte(c.body))
		if code != c.status || !strings.Contains(string(b), c.says) {
			t.Errorf("%s: %d %s; want %d naming %q", name, code, b, c.status, c.says)
		}
	}
}

// TestFarTIFFRefused: a 5 KB TIFF whose header names an image directory
// 4 GB into the file is a 400, with under 64 MiB allocated in the whole
// process while it is served (image.DecodeConfig's stream made Go's TIFF
// decoder buffer the body up to that offset: 4 GB).
func TestFarTIFFRefused(t *testing.T) {
	ts := start(t, Config{}, map[string]Backend{"resnet": newFake()})
	body := append([]byte("II*\x00\x00\x00\xff\xff"), make([]byte, 5000)...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	code, _, b := post(t, ts.url+"/v1/models/resnet:classify", "image/tiff", body)
	runtime.ReadMemStats(&after)
	if code != 400 || !strings.Contains(string(b), "corrupt tiff header") {
		t.Errorf("%d %s; want 400 naming a corrupt TIFF header", code, b)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
		t.Errorf("%d bytes allocated to refuse a 5 KB body", alloc)
	}
}

// TestSegmentRoute checks :segment's mask: the fake segmenter marks pixels
// over 0.5 as class 1 on its 2×2 input, scaled back to the image's 6×4.
func TestSegmentRoute(t *testing.T) {
	f := newFake()
	f.task, f.classes = models.Segment, 2
	ts := start(t, Config{}, map[string]Backend{"unet": f})
	img := image.NewGray(image.Rect(0, 0, 6, 4))
	for y := range 4 {
		for x := 3; x < 6; x++ {
			img.SetGray(x, y, color.Gray{255}) // right half white
		}
	}
	code, h, b := post(t, ts.url+"/v1/models/unet:segment", "image/png", pngBytes(t, img))
	if code != 200 || h.Get("Content-Type") != "image/png" {
		t.Fatalf("segment: %d %s", code, b)
	}
	mask, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if mask.Bounds().Dx() != 6 || mask.Bounds().Dy() != 4 {
		t.Fatalf("mask is %v, want the image's 6×4", mask.Bounds())
	}
	for y := range 4 {
		for x := range 6 {
			want := uint8(0)
			if x >= 3 {
				want = 1
			}
			if got := mask.(*image.Gray).GrayAt(x, y).Y; got != want {
				t.Errorf("mask (%d,%d) = %d, want %d", x, y, got, want)
			}
		}
	}
	for _, q := range []string{"1", "true", "0", "false"} { // overlay (colour) or mask (grey)
		code, _, b = post(t, ts.url+"/v1/models/unet:segment?overlay="+q, "image/png", pngBytes(t, img))
		ov, err := png.Decode(bytes.NewReader(b))
		if code != 200 || err != nil || ov.Bounds().Dx() != 6 {
			t.Fatalf("overlay=%s: %d %v", q, code, err)
		}
		if _, grey := ov.(*image.Gray); grey != (q == "0" || q == "false") {
			t.Errorf("overlay=%s: a %T", q, ov)
		}
	}
	// The metadata gives the output's image size, which the input's
	// fixes (it said [-1,-1,-1,2]).
	var md struct{ Outputs []tensorMeta }
	if _, b := get(t, ts.url+"/v2/models/unet"); json.Unmarshal(b, &md) != nil || len(md.Outputs) != 2 || len(md.Outputs[0].Shape) != 4 || md.Outputs[0].Shape[1] < 1 || md.Outputs[0].Shape[3] != 2 {
		t.Errorf("U-Net metadata outputs: %s", b)
	}
	// A value it cannot read is refused (it gave the plain mask).
	if code, _, b = post(t, ts.url+"/v1/models/unet:segment?overlay=yes", "image/png", pngBytes(t, img)); code != http.StatusBadRequest || !strings.Contains(string(b), `overlay=\"yes\"`) {
		t.Errorf("overlay=yes: %d %s, want 400 naming it", code, b)
	}
}

// manyClasses is a segmenter of f.classes classes: the last where its
// input is over 0.5, else class 0.
type manyClasses struct{ *fakeBackend }

func (m manyClasses) Forward(_ context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	k := m.classes
	y := tensor.New(x.Shape[0], 2, 2, k)
	for i, v := range x.Data {
		if v > 0.5 {
			y.Data[i*k+k-1] = 1
		} else {
			y.Data[i*k] = 1
		}
	}
	return y, nil
}

// TestSegmentClassesOverMask: :segment of a model with more classes than
// a grey PNG's 256 values is a 400 saying so (it answered 200, every
// class from 255 on written as 255); 256 classes give their last as 255.
func TestSegmentClassesOverMask(t *testing.T) {
	big, most := newFake(), newFake()
	big.task, big.classes = models.Segment, 300
	most.task, most.classes = models.Segment, 256
	ts := start(t, Config{}, map[string]Backend{"big": manyClasses{big}, "most": manyClasses{most}})
	img := image.NewGray(image.Rect(0, 0, 2, 2))
	img.SetGray(1, 1, color.Gray{255})
	code, _, b := post(t, ts.url+"/v1/models/big:segment", "image/png", pngBytes(t, img))
	if code != http.StatusBadRequest || !strings.Contains(string(b), `model \"big\" has 300 classes; a grey PNG mask holds 256`) {
		t.Errorf("300 classes: %d %s, want 400 naming them", code, b)
	}
	code, _, b = post(t, ts.url+"/v1/models/most:segment", "image/png", pngBytes(t, img))
	if code != 200 {
		t.Fatalf("256 classes: %d %s", code, b)
	}
	mask, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if g, ok := mask.(*image.Gray); !ok || !slices.Equal(g.Pix, []uint8{0, 0, 0, 255}) {
		t.Errorf("256 classes: mask %v, want [0 0 0 255]", mask)
	}
}

// heldPreprocess is a backend whose Preprocess says so on entered, then
// waits for release: a request held between its model's lookup and its
// batch.
type heldPreprocess struct {
	Backend
	entered, release chan struct{}
}

func (h heldPreprocess) Preprocess(img image.Image) (*tensor.Tensor, error) {
	h.entered <- struct{}{}
	<-h.release
	return h.Backend.Preprocess(img)
}

// TestSegmentReplacedOverMask: a :segment request whose model version is
// replaced, while its image is read, by one of more than 256 classes is
// the 400 that model gets from the start: the classes were checked on the
// model looked up first, and the mask took the new one's classes modulo
// 256 (class 299 written as 43), with a 200.
func TestSegmentReplacedOverMask(t *testing.T) {
	small, big := newFake(), newFake()
	small.task, small.classes = models.Segment, 2
	big.task, big.classes = models.Segment, 300
	held := heldPreprocess{manyClasses{small}, make(chan struct{}), make(chan struct{})}
	ts := start(t, Config{}, map[string]Backend{"m": held})
	img := image.NewGray(image.Rect(0, 0, 2, 2))
	img.SetGray(1, 1, color.Gray{255})
	body := pngBytes(t, img)
	type answer struct {
		code int
		body []byte
		err  error
	}
	answered := make(chan answer, 1)
	go func() {
		resp, err := client.Post(ts.url+"/v1/models/m:segment", "image/png", bytes.NewReader(body))
		if err != nil {
			answered <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		answered <- answer{resp.StatusCode, b, err}
	}()
	select {
	case <-held.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the request did not reach the model's Preprocess within 10 s")
	}
	if err := ts.Add(context.Background(), "m", "1", manyClasses{big}); err != nil {
		close(held.release)
		t.Fatal(err)
	}
	close(held.release)
	a := <-answered
	if a.err != nil {
		t.Fatal(a.err)
	}
	if a.code != http.StatusBadRequest || !strings.Contains(string(a.body), `has 300 classes; a grey PNG mask holds 256`) {
		t.Errorf(":segment answered by a replacement of 300 classes: %d %q, want 400 naming them", a.code, a.body)
	}
}

// TestReadAll: the body arrives whole whatever length the client declared
// (exact, short, long, none), a declared length never makes a buffer
// beyond maxPreallocated before the bytes come, and a reader's error is
// returned with what was read.
func TestReadAll(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789"), 100_000) // 1 MB
	for _, declared := range []int64{-1, 0, 10, int64(len(body)), int64(len(body)) + 7, 1 << 40} {
		got, err := readAll(bytes.NewReader(body), declared)
		if err != nil || !bytes.Equal(got, body) {
			t.Errorf("declared %d: %d bytes, err %v; want the %d bytes", declared, len(got), err, len(body))
		}
	}
	bytePool = slicepool.Pool[byte]{} // no recycled buffer: this is about the preallocation
	got, err := readAll(strings.NewReader(""), 1<<40)
	// The pool's size classes hold up to a quarter more than asked.
	if limit := (maxPreallocated + 1) * 5 / 4; err != nil || len(got) != 0 || cap(got) > limit {
		t.Errorf("empty body declared 1 TB: %d bytes, cap %d, err %v; want none, cap ≤ %d", len(got), cap(got), err, limit)
	}
	boom := fmt.Errorf("connection reset")
	got, err = readAll(io.MultiReader(strings.NewReader("abc"), iotest.ErrReader(boom)), 3)
	if err != boom || string(got) != "abc" {
		t.Errorf("failing reader: %q, %v; want \"abc\", %v", got, err, boom)
	}
}

// TestHugeTimeoutParameter: Triton's "timeout" parameter (microseconds)
// beyond what a time.Duration holds is clamped, and the request answered
// (it overflowed into a deadline in the past: 429 at once).
func TestHugeTimeoutParameter(t *testing.T) {
	ts := start(t, Config{}, map[string]Backend{"m": newFake()})
	good := `{"name":"input","shape":[1,2,2,1],"datatype":"FP32","data":[1,2,3,4]}`
	for _, us := range []string{"18446744073709552", "9223372036854775"} {
		code, _, b := post(t, ts.url+"/v2/models/m/infer", "application/json", []byte(`{"parameters":{"timeout":`+us+`},"inputs":[`+good+`]}`))
		if code != 200 {
			t.Errorf("timeout %s µs: %d %s", us, code, b)
		}
	}
}

// TestNonFiniteOutputFromAnImage: a model that overflows on an image (its
// pixels are bounded, so the model did it) is a 500 naming the model (it
// was a 500 "json: unsupported value: NaN" from the encoder).
func TestNonFiniteOutputFromAnImage(t *testing.T) {
	f := newFake()
	f.scale = 3e38
	ts := start(t, Config{}, map[string]Backend{"m": f})
	img := image.NewGray(image.Rect(0, 0, 2, 2))
	for i := range img.Pix {
		img.Pix[i] = 255
	}
	code, _, b := post(t, ts.url+"/v1/models/m:classify", "image/png", pngBytes(t, img))
	if code != http.StatusInternalServerError || !strings.Contains(string(b), `model \"m\" computed a non-finite output`) {
		t.Errorf("classify: %d %s", code, b)
	}
}

// TestInferenceTypesRoundTrip: a request built with InferenceRequest,
// RequestInput and RequestOutput (flat and nested data, JSON and binary
// outputs) is served, and its answer decodes into InferenceResponse with
// the model's own logits and their softmax; the exported request types
// carry the JSON names of those the server decodes, field for field.
func TestInferenceTypesRoundTrip(t *testing.T) {
	fake := newFake()
	ts := start(t, Config{}, map[string]Backend{"m": fake})
	x := tensor.MustFromData([]float32{0.5, -1, 2, 0.25, 3, 1, -0.5, 0}, 2, 2, 2, 1)
	y, err := newFake().Forward(context.Background(), x)
	if err != nil {
		t.Fatal(err)
	}
	logits, probs := y.Data, softmaxLast(y).Data

	infer := func(req InferenceRequest) (http.Header, InferenceResponse, []byte) {
		t.Helper()
		body, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		code, h, b := post(t, ts.url+"/v2/models/m/versions/1/infer", "application/json", body)
		if code != http.StatusOK {
			t.Fatalf("request %s: %d %s", body, code, b)
		}
		js, rest := b, []byte(nil)
		if l := h.Get(headerInferenceLength); l != "" {
			n, err := strconv.Atoi(l)
			if err != nil || n > len(b) {
				t.Fatalf("%s %q for a %d-byte body", headerInferenceLength, l, len(b))
			}
			js, rest = b[:n], b[n:]
		}
		var r InferenceResponse
		if err := json.Unmarshal(js, &r); err != nil {
			t.Fatalf("response %q into InferenceResponse: %v", js, err)
		}
		// The protocol's names (InferenceResponse decodes what it
		// encodes, whatever its tags say).
		var top map[string]json.RawMessage
		var outs struct{ Outputs []map[string]json.RawMessage }
		if json.Unmarshal(js, &top) != nil || json.Unmarshal(js, &outs) != nil {
			t.Fatalf("response %q is not a JSON object", js)
		}
		for k := range top {
			if !slices.Contains([]string{"model_name", "model_version", "id", "parameters", "outputs"}, k) {
				t.Errorf("response member %q, not the protocol's: %s", k, js)
			}
		}
		for _, o := range outs.Outputs {
			for k := range o {
				if !slices.Contains([]string{"name", "shape", "datatype", "parameters", "data"}, k) {
					t.Errorf("output member %q, not the protocol's: %s", k, js)
				}
			}
		}
		return h, r, rest
	}

	_, r, _ := infer(InferenceRequest{
		ID:         "c1",
		Parameters: map[string]any{"timeout": 5_000_000},
		Inputs:     []RequestInput{{Name: "input", Shape: []int64{2, 2, 2, 1}, Datatype: "FP32", Data: x.Data}},
		Outputs:    []RequestOutput{{Name: "probabilities"}, {Name: "logits"}},
	})
	if r.ModelName != "m" || r.ModelVersion != "1" || r.ID != "c1" || len(r.Outputs) != 2 {
		t.Fatalf("response %+v", r)
	}
	for i, want := range []ResponseOutput{
		{Name: "probabilities", Shape: []int64{2, 3}, Datatype: "FP32", Data: probs},
		{Name: "logits", Shape: []int64{2, 3}, Datatype: "FP32", Data: logits},
	} {
		if got := r.Outputs[i]; got.Name != want.Name || !slices.Equal(got.Shape, want.Shape) || got.Datatype != want.Datatype || got.Parameters != nil || !slices.Equal(got.Data, want.Data) {
			t.Errorf("output %d: %+v; want %+v", i, got, want)
		}
	}

	// The same input nested as its shape, logits as binary data.
	nested := [][][][]float32{{{{0.5}, {-1}}, {{2}, {0.25}}}, {{{3}, {1}}, {{-0.5}, {0}}}}
	_, r, raw := infer(InferenceRequest{
		Inputs:  []RequestInput{{Name: "input", Shape: []int64{2, 2, 2, 1}, Datatype: "FP32", Data: nested}},
		Outputs: []RequestOutput{{Name: "logits", Parameters: map[string]any{"binary_data": true}}},
	})
	if len(r.Outputs) != 1 || r.ID != "" {
		t.Fatalf("binary response %+v", r)
	}
	o := r.Outputs[0]
	if o.Name != "logits" || !slices.Equal(o.Shape, []int64{2, 3}) || o.Data != nil || o.Parameters["binary_data_size"] != float64(4*len(logits)) || len(raw) != 4*len(logits) {
		t.Fatalf("binary logits %+v with %d bytes after the JSON", o, len(raw))
	}
	for i, v := range logits {
		if got := math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:])); got != v {
			t.Errorf("binary logit %d: %v, want %v", i, got, v)
		}
	}

	// The exported request types name their JSON as the server's decoding
	// types do.
	for _, p := range [][2]reflect.Type{
		{reflect.TypeFor[InferenceRequest](), reflect.TypeFor[inferRequest]()},
		{reflect.TypeFor[RequestInput](), reflect.TypeFor[inferInput]()},
		{reflect.TypeFor[RequestOutput](), reflect.TypeFor[inferOutputRequest]()},
	} {
		if p[0].NumField() != p[1].NumField() {
			t.Errorf("%v has %d fields, %v %d", p[0], p[0].NumField(), p[1], p[1].NumField())
			continue
		}
		for i := range p[0].NumField() {
			a, b := p[0].Field(i), p[1].Field(i)
			if a.Name != b.Name || a.Tag.Get("json") != b.Tag.Get("json") {
				t.Errorf("%v.%s `json:%q`; the server decodes %v.%s `json:%q`", p[0], a.Name, a.Tag.Get("json"), p[1], b.Name, b.Tag.Get("json"))
			}
		}
	}
}
