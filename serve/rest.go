package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc/codes"

	"github.com/residual-nn/residual/tensor"
)

// Header names of the REST API.
const (
	// HeaderTimeout sets a REST request's deadline: a Go duration ("250ms",
	// "2s") or a number of seconds ("0.25"). gRPC clients use their
	// deadline (grpc-timeout) instead. The v2 infer route also honours
	// Triton's "timeout" request parameter (microseconds).
	HeaderTimeout = "Request-Timeout"
	// headerInferenceLength is Triton's binary tensor extension: the
	// length of the JSON header that precedes the binary tensor data.
	headerInferenceLength = "Inference-Header-Content-Length"
)

// maxRequestTimeout bounds Triton's "timeout" parameter, whose
// microseconds beyond it would overflow a time.Duration (a huge timeout
// became a deadline in the past). The server's Config.Timeout applies only
// to requests that set no deadline.
const maxRequestTimeout = 24 * time.Hour

// timeoutParameter returns the duration of Triton's "timeout" parameter
// (us microseconds, ≥ 0), at most maxRequestTimeout.
func timeoutParameter(us int64) time.Duration {
	return time.Duration(min(us, int64(maxRequestTimeout/time.Microsecond))) * time.Microsecond
}

// serverName and serverVersion answer the v2 server metadata request.
const (
	serverName    = "residual"
	serverVersion = "1"
)

// Handler returns the HTTP API: the Open Inference Protocol under /v2, the
// image routes under /v1, /metrics and the web page at /. Every request is
// logged, bounded by Config.MaxBodyBytes and recovered from panics.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v2/health/live", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]bool{"live": true})
	})
	mux.HandleFunc("GET /v2/health/ready", func(w http.ResponseWriter, r *http.Request) {
		ready := s.Ready()
		// The protocol answers "not ready" with a 4xx status.
		writeJSON(w, map[bool]int{true: http.StatusOK, false: http.StatusBadRequest}[ready], map[string]bool{"ready": ready})
	})
	mux.HandleFunc("GET /v2", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"name": serverName, "version": serverVersion, "extensions": []string{"binary_tensor_data"}})
	})
	mux.HandleFunc("GET /v2/models/{name}", s.handleMetadata)
	mux.HandleFunc("GET /v2/models/{name}/versions/{version}", s.handleMetadata)
	mux.HandleFunc("GET /v2/models/{name}/ready", s.handleModelReady)
	mux.HandleFunc("GET /v2/models/{name}/versions/{version}/ready", s.handleModelReady)
	mux.HandleFunc("POST /v2/models/{name}/infer", s.handleInfer)
	mux.HandleFunc("POST /v2/models/{name}/versions/{version}/infer", s.handleInfer)
	mux.HandleFunc("GET /v1/models", s.handleList)
	mux.HandleFunc("POST /v1/models/{action}", s.handleImage)
	mux.HandleFunc("POST /v1/models/{name}/versions/{action}", s.handleImage)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /{$}", serveIndex)
	return s.middleware(jsonMisses(mux))
}

// jsonMisses answers what mux has no route for with JSON errors, as every
// other error: 405 with an Allow header for a known path asked with
// another method, else 404 (ServeMux's own answers are plain text).
func jsonMisses(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Path; p != cleanPath(p) {
			// ServeMux would redirect to the cleaned path: another
			// resource (/v2/models//ready is model "ready"'s metadata).
			writeError(w, notFound("no route %s %s: the path has an empty, . or .. segment", r.Method, p))
			return
		}
		if _, pattern := mux.Handler(r); pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		var allow []string
		for _, m := range []string{http.MethodGet, http.MethodPost} {
			probe := r.Clone(r.Context())
			probe.Method = m
			if _, pattern := mux.Handler(probe); pattern != "" {
				allow = append(allow, m)
			}
		}
		if len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			writeError(w, methodNotAllowed("%s %s: the route takes %s", r.Method, r.URL.Path, strings.Join(allow, " or ")))
			return
		}
		writeError(w, notFound("no route %s %s (the Open Inference Protocol is under /v2, the image routes under /v1/models)", r.Method, r.URL.Path))
	})
}

// cleanPath is path.Clean keeping a trailing slash, as ServeMux cleans
// the paths it routes.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c
}

// statusWriter records what a handler wrote, for the request log.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// middleware bounds the body, recovers panics (500, the server keeps
// serving) and logs each request with log/slog.
func (s *Server) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		w.Header().Set("X-Content-Type-Options", "nosniff")
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.Error("handler panicked", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				if sw.status == 0 {
					writeError(sw, internal("internal error: handler panicked: %v", p))
				}
			}
			lvl := slog.LevelInfo
			if sw.status >= 500 {
				lvl = slog.LevelError
			}
			s.log.LogAttrs(r.Context(), lvl, "request",
				slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Int("status", sw.status),
				slog.Int64("bytes", sw.bytes), slog.Duration("duration", time.Since(start)), slog.String("remote", r.RemoteAddr))
		}()
		if r.ContentLength > s.cfg.MaxBodyBytes {
			// Refused from the header, before reading any of the body; the
			// server closes the connection rather than drain it.
			writeError(sw, tooLarge("request body of %d bytes is over the server's limit of %d (--max-body)", r.ContentLength, s.cfg.MaxBodyBytes))
			return
		}
		r.Body = http.MaxBytesReader(sw, r.Body, s.cfg.MaxBodyBytes)
		next.ServeHTTP(sw, r)
	})
}

// readBody reads a bounded request body, mapping the limit to 413.
func readBody(r *http.Request) ([]byte, error) {
	b, err := readAll(r.Body, r.ContentLength)
	var mb *http.MaxBytesError
	switch {
	case errors.As(err, &mb):
		return nil, tooLarge("request body is over the server's limit of %d bytes (--max-body)", mb.Limit)
	case isTimeout(err):
		return nil, readTimeout(err)
	case err != nil:
		return nil, badRequest("reading the request body: %v", err)
	}
	return b, nil
}

// readTimeout is the 408 for a body that did not arrive in time.
func readTimeout(err error) error {
	return &apiError{http.StatusRequestTimeout, codes.DeadlineExceeded, "REJECTED", fmt.Sprintf("the request body did not arrive within the server's read timeout: %v", err)}
}

// isTimeout reports whether err is a network timeout (the server's read
// deadline passing while a body arrives).
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// maxPreallocated bounds the buffer readAll sizes from a declared length
// before any byte has arrived: a client claiming --max-body bytes and
// sending none must not make the server allocate them (200 idle uploads
// declaring 32 MB reserved 800 MB of heap when this was 4 MB).
const maxPreallocated = 64 << 10

// readAll is io.ReadAll starting with room for the declared length
// (ContentLength; −1 when unknown), up to maxPreallocated, and growing to
// at most twice what has arrived, or to the declared length when that is
// less: a 600 KB ResNet-50 request arrives in four growths, each paid for
// by bytes received.
func readAll(r io.Reader, declared int64) ([]byte, error) {
	b := getBytes(int(min(max(declared, 511), maxPreallocated)) + 1) // +1: room to see EOF
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return b, err
		}
		if len(b) == cap(b) {
			size := 2 * len(b)
			if declared > int64(len(b)) {
				size = int(min(declared, int64(size))) + 1
			}
			nb := getBytes(size)[:len(b)]
			copy(nb, b)
			putBytes(b)
			b = nb
		}
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"encoding the response: `+jsonEscape(err.Error())+`"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

func jsonEscape(s string) string {
	b, _ := json.Marshal(s)
	return string(b[1 : len(b)-1])
}

// writeError answers {"error": message} with the error's status.
func writeError(w http.ResponseWriter, err error) {
	ae := classify(err)
	if ae.status == http.StatusTooManyRequests || ae.status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, ae.status, map[string]string{"error": ae.msg})
}

// requestContext applies the Request-Timeout header (or d if it is set
// and the header is not) and the server's default deadline.
func (s *Server) requestContext(r *http.Request, d time.Duration) (context.Context, context.CancelFunc, error) {
	if h := r.Header.Get(HeaderTimeout); h != "" {
		v, err := time.ParseDuration(h)
		if err != nil {
			f, ferr := strconv.ParseFloat(h, 64)
			if ferr != nil || f <= 0 || f > 1e6 {
				return nil, nil, badRequest("header %s: %q is neither a duration (250ms; at most 2562047h) nor a positive number of seconds (at most 1e6)", HeaderTimeout, h)
			}
			v = time.Duration(f * float64(time.Second))
		}
		if v <= 0 {
			return nil, nil, badRequest("header %s: %q is not positive", HeaderTimeout, h)
		}
		d = v
	}
	ctx, cancel := s.withTimeout(r.Context(), d)
	return ctx, cancel, nil
}

// tensorMeta is a tensor's metadata in the v2 protocol.
type tensorMeta struct {
	Name     string  `json:"name"`
	Datatype string  `json:"datatype"`
	Shape    []int64 `json:"shape"`
}

// modelMetadata is the v2 model metadata response, plus residual's
// description of the model (ignored by v2 clients).
type modelMetadata struct {
	Name     string       `json:"name"`
	Versions []string     `json:"versions"`
	Platform string       `json:"platform"`
	Inputs   []tensorMeta `json:"inputs"`
	Outputs  []tensorMeta `json:"outputs"`
	Residual struct {
		Version  string    `json:"version"`
		Ready    bool      `json:"ready"`
		MaxBatch int       `json:"max_batch_size"`
		Info     ModelInfo `json:"info"`
	} `json:"residual"`
}

func (s *Server) metadata(m *model) modelMetadata {
	s.mu.RLock()
	vs := versions(s.models[m.name])
	s.mu.RUnlock()
	// The input's image size is fixed, so the output's is (a U-Net's
	// [H', W', classes], as its warm-up answered).
	out := []int64{-1}
	for _, d := range m.outShape {
		out = append(out, int64(d))
	}
	md := modelMetadata{
		Name: m.name, Versions: vs, Platform: "residual",
		Inputs:  []tensorMeta{{inputName, datatypeF32, []int64{-1, int64(m.info.Height), int64(m.info.Width), int64(m.info.Channels)}}},
		Outputs: []tensorMeta{{logitsName, datatypeF32, out}, {probsName, datatypeF32, out}},
	}
	md.Residual.Version, md.Residual.Ready, md.Residual.MaxBatch, md.Residual.Info = m.version, m.ready.Load(), s.cfg.MaxBatch, m.info
	return md
}

func (s *Server) handleMetadata(w http.ResponseWriter, r *http.Request) {
	m, err := s.lookup(r.PathValue("name"), r.PathValue("version"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.metadata(m))
}

func (s *Server) handleModelReady(w http.ResponseWriter, r *http.Request) {
	_, err := s.lookup(r.PathValue("name"), r.PathValue("version"))
	if err != nil {
		ae := classify(err)
		status := ae.status
		if status == http.StatusServiceUnavailable {
			status = http.StatusBadRequest // the protocol's "false"
		}
		writeJSON(w, status, map[string]any{"ready": false, "error": ae.msg})
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ready": true})
}

// handleList answers every model's metadata (for the web page).
func (s *Server) handleList(w http.ResponseWriter, r *http.Request) {
	list := []modelMetadata{}
	for _, m := range s.modelList() {
		list = append(list, s.metadata(m))
	}
	writeJSON(w, http.StatusOK, map[string]any{"models": list})
}

// InferenceRequest is the Open Inference Protocol's (KServe v2)
// inference request JSON object, the body of POST
// /v2/models/NAME[/versions/V]/infer, for a Go client to encode; its
// fields and JSON names are the protocol's. residual's models take one
// input, "input" (an NHWC batch), and answer "logits" and
// "probabilities" (softmax over the last dimension), both unless Outputs
// names the ones wanted. The server decodes a request with bounds of its
// own (at most 64 inputs, outputs or dimensions, 256 parameter values,
// Config.MaxBodyBytes), not with this type.
type InferenceRequest struct {
	// ID, if set, is echoed in the response.
	ID string `json:"id,omitempty"`
	// Parameters: "timeout" (the request's deadline in microseconds,
	// Triton's) and "binary_data_output" (true: the outputs as binary
	// data after the JSON, Triton's binary tensor extension, unless
	// their own "binary_data" says false; SERVING.md).
	Parameters map[string]any `json:"parameters,omitempty"`
	Inputs     []RequestInput `json:"inputs"`
	// Outputs, if given, are the outputs to answer, in this order.
	Outputs []RequestOutput `json:"outputs,omitempty"`
}

// RequestInput is an input tensor of an InferenceRequest (the protocol's
// request input object).
type RequestInput struct {
	// Name is the model's input, "input".
	Name string `json:"name"`
	// Shape is [N, H, W, C], the model's metadata giving H, W and C.
	Shape []int64 `json:"shape"`
	// Datatype is FP32, or another numeric datatype of the protocol
	// (FP16 only as binary data; the values are converted to float32,
	// and an integer datatype takes only integers in its range).
	Datatype string `json:"datatype"`
	// Parameters: "binary_data_size" for data sent as binary after the
	// JSON (then Data is nil).
	Parameters map[string]any `json:"parameters,omitempty"`
	// Data is the tensor's elements in row-major order, flat
	// ([]float32 for FP32) or nested as Shape is.
	Data any `json:"data,omitempty"`
}

// RequestOutput names an output an InferenceRequest wants ("logits" or
// "probabilities"; the protocol's request output object).
type RequestOutput struct {
	Name string `json:"name"`
	// Parameters: "binary_data" (true: this output as binary data after
	// the JSON).
	Parameters map[string]any `json:"parameters,omitempty"`
}

// InferenceResponse is the Open Inference Protocol's (KServe v2)
// inference response JSON object, which the server answers an inference
// request with and a Go client decodes; its fields and JSON names are
// the protocol's. A response with binary outputs is this object's JSON,
// Inference-Header-Content-Length bytes, followed by their data.
type InferenceResponse struct {
	ModelName    string `json:"model_name"`
	ModelVersion string `json:"model_version"`
	// ID is the request's.
	ID string `json:"id,omitempty"`
	// Parameters is the response's (the server sets none).
	Parameters map[string]any   `json:"parameters,omitempty"`
	Outputs    []ResponseOutput `json:"outputs"`
}

// ResponseOutput is an output tensor of an InferenceResponse (the
// protocol's response output object): "logits" or "probabilities",
// [N, classes] for a classifier and [N, H', W', classes] for a
// segmenter, in FP32.
type ResponseOutput struct {
	Name     string  `json:"name"`
	Shape    []int64 `json:"shape"`
	Datatype string  `json:"datatype"`
	// Parameters: "binary_data_size" of an output sent as binary data
	// (then Data is empty).
	Parameters map[string]any `json:"parameters,omitempty"`
	// Data is the tensor's elements, flat in row-major order.
	Data []float32 `json:"data,omitempty"`
}

// v2 request bodies (JSON) as the server decodes them: the JSON names of
// InferenceRequest's, with lists and parameters of bounded types
// (jsonList, jsonParams) that count their JSON before decoding it:
// decoded as plain slices and maps, a 10 MB body of empty inputs
// ({"inputs":[{},{},…]}) allocated 1.5 GB; the data is left raw for
// decodeJSONData, which checks it against the shape.
type (
	inferInput struct {
		Name       string          `json:"name"`
		Shape      jsonList[int64] `json:"shape"`
		Datatype   string          `json:"datatype"`
		Parameters jsonParams      `json:"parameters,omitempty"`
		Data       json.RawMessage `json:"data,omitempty"`
	}
	inferOutputRequest struct {
		Name       string     `json:"name"`
		Parameters jsonParams `json:"parameters,omitempty"`
	}
	inferRequest struct {
		ID         string                       `json:"id,omitempty"`
		Parameters jsonParams                   `json:"parameters,omitempty"`
		Inputs     jsonList[inferInput]         `json:"inputs"`
		Outputs    jsonList[inferOutputRequest] `json:"outputs,omitempty"`
	}
)

// param reads a numeric or boolean parameter (JSON numbers decode as
// float64).
func paramInt(p map[string]any, key string) (int64, bool, error) {
	v, ok := p[key]
	if !ok {
		return 0, false, nil
	}
	f, isNum := v.(float64)
	if !isNum || f < 0 || f != float64(int64(f)) {
		return 0, true, badRequest("parameter %q must be a non-negative integer, got %#v", key, v)
	}
	return int64(f), true, nil
}

func paramBool(p map[string]any, key string) (bool, error) {
	v, ok := p[key]
	if !ok {
		return false, nil
	}
	b, isBool := v.(bool)
	if !isBool {
		return false, badRequest("parameter %q must be a boolean, got %#v", key, v)
	}
	return b, nil
}

// handleInfer is POST /v2/models/NAME[/versions/V]/infer: JSON tensors,
// or Triton's binary tensor extension (a JSON header of
// Inference-Header-Content-Length bytes followed by the binary inputs).
func (s *Server) handleInfer(w http.ResponseWriter, r *http.Request) {
	if err := s.infer2(w, r); err != nil {
		s.countFailure(r.PathValue("name"), r.PathValue("version"), err)
		writeError(w, err)
	}
}

func (s *Server) infer2(w http.ResponseWriter, r *http.Request) error {
	// The model and version first: a request for one that is not served
	// is a 404 naming it, whatever its body (Server.infer looks it up
	// again, in case it was replaced or removed meanwhile).
	m0, err := s.lookup(r.PathValue("name"), r.PathValue("version"))
	if err != nil {
		return err
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	defer putBytes(body) // nothing decoded from it keeps its memory
	header, rest := body, []byte(nil)
	if h := r.Header.Get(headerInferenceLength); h != "" {
		n, err := strconv.Atoi(h)
		if err != nil || n < 0 || n > len(body) {
			return badRequest("header %s: %q is not a length within the %d-byte body", headerInferenceLength, h, len(body))
		}
		header, rest = body[:n], body[n:]
	}
	var req inferRequest
	dec := json.NewDecoder(bytes.NewReader(header))
	if err := dec.Decode(&req); err != nil {
		return badRequest("malformed inference request JSON: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		hint := ""
		if r.Header.Get(headerInferenceLength) == "" {
			hint = fmt.Sprintf(" (a request with binary data after its JSON gives the JSON's length in the %s header)", headerInferenceLength)
		}
		return badRequest("malformed inference request JSON: more after the request object ends at byte %d%s", dec.InputOffset(), hint)
	}
	if len(req.Inputs) != 1 {
		return badRequest("request has %d inputs; the model takes one, %q", len(req.Inputs), inputName)
	}
	in := req.Inputs[0]
	if in.Name != inputName {
		return badRequest("unknown input %q; the model's input is %q", clip(in.Name), inputName)
	}
	n, dims, err := checkShape("input "+inputName, in.Shape)
	if err != nil {
		return err
	}
	// The shape against the model's before the data is decoded: a few
	// bytes declaring 2^28 elements must not cost their decoding (and
	// Server.infer checks again, against the version that runs it).
	if err := m0.checkShape(dims); err != nil {
		return err
	}
	// The outputs and parameters too, so that a request the server will
	// refuse does not run the model first.
	if err := checkParameters("request", req.Parameters); err != nil {
		return err
	}
	if err := checkParameters("input "+in.Name, in.Parameters); err != nil {
		return err
	}
	binAll, err := paramBool(req.Parameters, "binary_data_output")
	if err != nil {
		return err
	}
	var want []string
	binary := map[string]bool{}
	for _, o := range req.Outputs {
		if err := checkParameters(fmt.Sprintf("output %q", clip(o.Name)), o.Parameters); err != nil {
			return err
		}
		b, err := paramBool(o.Parameters, "binary_data")
		if err != nil {
			return err
		}
		want = append(want, o.Name)
		binary[o.Name] = b || binAll && o.Parameters["binary_data"] == nil
	}
	if err := checkOutputs(want); err != nil {
		return err
	}
	timeout, _, err := paramInt(req.Parameters, "timeout")
	if err != nil {
		return err
	}
	var data []float32
	size, isBinary, err := paramInt(in.Parameters, "binary_data_size")
	switch {
	case err != nil:
		return err
	case isBinary:
		if in.Data != nil {
			return badRequest("input %q has both binary_data_size and data", in.Name)
		}
		if size > int64(len(rest)) {
			return badRequest("input %q: binary_data_size %d is more than the %d bytes after the JSON header", in.Name, size, len(rest))
		}
		data, err = decodeRaw("input "+in.Name, in.Datatype, rest[:size], n)
		rest = rest[size:]
	default:
		if in.Data == nil {
			return badRequest("input %q has no data (nor binary_data_size)", in.Name)
		}
		data, err = decodeJSONData("input "+in.Name, in.Datatype, in.Data, dims, n)
	}
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return badRequest("%d bytes of binary data after the inputs that no input claims", len(rest))
	}
	ctx, cancel, err := s.requestContext(r, timeoutParameter(timeout))
	if err != nil {
		return err
	}
	defer cancel()
	x := tensor.MustFromData(data, dims...)
	y, m, err := s.infer(ctx, "http", r.PathValue("name"), r.PathValue("version"), x)
	if err != nil {
		// A request that gave up may still be queued with x: x is left
		// to the collector.
		return err
	}
	defer putFloats(data) // answered: the batch that read x has run
	names, ts, err := outputs(y, want)
	if err != nil {
		return counted{err} // checked above; the model ran and was counted
	}
	resp := InferenceResponse{ModelName: m.name, ModelVersion: m.version, ID: req.ID}
	var raw [][]byte
	for i, name := range names {
		o := ResponseOutput{Name: name, Shape: shape64(ts[i].Shape), Datatype: datatypeF32}
		if binary[name] || len(want) == 0 && binAll {
			b := rawBytes(ts[i])
			o.Parameters = map[string]any{"binary_data_size": len(b)}
			raw = append(raw, b)
		} else {
			if i := finite(ts[i].Data); i >= 0 {
				// A checkpoint's weights are finite (checkpoint.Load refuses
				// others), so for the models residual loads the input most
				// likely drove the output there: a client error.
				// The inference itself succeeded and was counted so.
				return counted{badRequest("output %q holds a non-finite value at %d (inputs of extreme magnitude overflow the model, unless its own weights do), which JSON cannot carry; request it with binary_data", name, i)}
			}
			o.Data = ts[i].Data
		}
		resp.Outputs = append(resp.Outputs, o)
	}
	if len(raw) == 0 {
		writeJSON(w, http.StatusOK, resp)
		return nil
	}
	js, err := json.Marshal(resp)
	if err != nil {
		return internal("encoding the response: %v", err)
	}
	total := len(js)
	for _, b := range raw {
		total += len(b)
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set(headerInferenceLength, strconv.Itoa(len(js)))
	w.Header().Set("Content-Length", strconv.Itoa(total))
	w.WriteHeader(http.StatusOK)
	w.Write(js)
	for _, b := range raw {
		w.Write(b)
	}
	return nil
}

// splitAction splits "NAME:classify" into its parts.
func splitAction(s string) (name, action string, err error) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return "", "", notFound("route /v1/models/%s: want /v1/models/NAME:classify or NAME:segment", s)
	}
	return s[:i], s[i+1:], nil
}
