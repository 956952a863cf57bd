package serve

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"runtime/debug"
	"slices"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
	"google.golang.org/protobuf/proto"

	"github.com/residual-nn/residual/internal/protosize"
	"github.com/residual-nn/residual/limits"
	"github.com/residual-nn/residual/serve/inferencepb"
	"github.com/residual-nn/residual/tensor"
)

// NewGRPC returns a gRPC server with the Open Inference Protocol's
// inference.GRPCInferenceService registered, its messages bounded by
// Config.MaxBodyBytes on the wire (at most gRPC's 2 GiB − 1) and by 8 times
// that decoded
// (a message refused is answered RESOURCE_EXHAUSTED, one that does not
// parse INVALID_ARGUMENT), at most 100 calls at once on a connection, a
// connection's handshake bounded by Config.ReadHeaderTimeout and an idle
// one closed after Config.IdleTimeout, a call given at most
// Config.WriteTimeout, panics recovered (INTERNAL) and calls logged. The
// client's deadline (grpc-timeout) is the request's; without one the
// server's Config.Timeout applies. opts are applied after the server's own
// options, so one of the same kind replaces the server's (a codec its
// decoded bound, a MaxRecvMsgSize its wire bound); grpc.InTapHandle, which
// the server sets, cannot be given again (grpc.NewServer panics). Serve it
// on a listener of your own, or let Run do it.
func (s *Server) NewGRPC(opts ...grpc.ServerOption) *grpc.Server {
	wire := min(s.cfg.MaxBodyBytes, math.MaxInt32) // 8× a larger bound could overflow
	opts = append([]grpc.ServerOption{
		grpc.MaxRecvMsgSize(int(wire)),
		grpc.ForceServerCodecV2(boundedCodec{encoding.GetCodecV2(grpcproto.Name), 8 * wire}),
		grpc.MaxConcurrentStreams(maxGRPCStreams),
		grpc.ConnectionTimeout(s.cfg.ReadHeaderTimeout),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: s.cfg.IdleTimeout}),
		grpc.InTapHandle(s.boundStream),
		grpc.ChainUnaryInterceptor(s.grpcInterceptor),
	}, opts...)
	g := grpc.NewServer(opts...)
	desc := inferencepb.GRPCInferenceService_ServiceDesc // a copy, its handlers wrapped
	desc.Methods = slices.Clone(desc.Methods)
	for i, m := range desc.Methods {
		desc.Methods[i].Handler = s.refuseBadMessage("/"+desc.ServiceName+"/"+m.MethodName, m.Handler)
	}
	g.RegisterService(&desc, &grpcService{s: s})
	return g
}

// refuseBadMessage wraps a generated method handler so that a request
// message the server will not decode is answered with the status that says
// why — RESOURCE_EXHAUSTED for one that would take too much decoded,
// INVALID_ARGUMENT for one that does not parse — and logged, as every
// other call is (grpc-go decodes the message before any interceptor runs).
// grpc-go makes any error of a codec INTERNAL ("failed to unmarshal the
// received message"; a codec's *status.Status error is wrapped, not passed
// on) and writes that status itself before the handler returns, so the
// message is decoded as a grpcRequest, for which boundedCodec records its
// refusal and reports none; the handler returns it.
func (s *Server) refuseBadMessage(method string, h grpc.MethodHandler) grpc.MethodHandler {
	return func(srv any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
		return h(srv, ctx, func(v any) error {
			m, ok := v.(proto.Message)
			if !ok {
				return dec(v)
			}
			r := &grpcRequest{Message: m}
			err := dec(r)
			if err == nil && r.refused != nil {
				ae := classify(r.refused)
				err = status.Error(ae.code, ae.msg)
			}
			if err != nil {
				s.log.LogAttrs(ctx, slog.LevelInfo, "grpc", slog.String("method", method), slog.String("code", status.Code(err).String()),
					slog.String("err", status.Convert(err).Message()))
			}
			return err
		}, ic)
	}
}

// grpcRequest is what refuseBadMessage has grpc-go decode a request
// into: the request's message (embedded, so that a stats handler's
// InPayload.Payload is still a proto.Message) and, when boundedCodec
// refuses it, why.
type grpcRequest struct {
	proto.Message
	refused error
}

// boundStream gives every gRPC call at most Config.WriteTimeout from its
// headers to its answer, as http.Server's WriteTimeout gives a REST
// request: grpc-go has no read timeout, and a client that declared a large
// message, sent part of it and stopped held its stream (and the memory of
// what it sent) for as long as its own deadline, or for ever. The message
// is read under this context, so the stream ends when it does.
func (s *Server) boundStream(ctx context.Context, _ *tap.Info) (context.Context, error) {
	_, client := ctx.Deadline() // grpc-go has set the client's grpc-timeout
	ctx = context.WithValue(ctx, clientDeadline{}, client)
	ctx, cancel := context.WithTimeout(ctx, s.cfg.WriteTimeout)
	context.AfterFunc(ctx, cancel) // the stream's end cancels ctx; this frees its timer
	return ctx, nil
}

// maxGRPCStreams bounds the calls one gRPC connection runs at once (each
// may buffer a message of Config.MaxBodyBytes): grpc-go's default is
// 2^32−1; 100 is HTTP/2's recommended minimum and what most servers use.
const maxGRPCStreams = 100

// grpcInterceptor recovers panics, applies the default deadline, maps
// errors to status codes and logs each call.
func (s *Server) grpcInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	start := time.Now()
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("grpc handler panicked", "method", info.FullMethod, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			resp, err = nil, status.Errorf(codes.Internal, "internal error: handler panicked: %v", p)
		}
		code := status.Code(err)
		lvl := slog.LevelInfo
		if code == codes.Internal || code == codes.Unknown {
			lvl = slog.LevelError
		}
		s.log.LogAttrs(ctx, lvl, "grpc", slog.String("method", info.FullMethod), slog.String("code", code.String()), slog.Duration("duration", time.Since(start)))
	}()
	ctx, cancel := s.grpcTimeout(ctx)
	defer cancel()
	resp, err = handler(ctx, req)
	if err != nil {
		if _, ok := status.FromError(err); !ok || status.Code(err) == codes.Unknown {
			ae := classify(err)
			err = status.Error(ae.code, ae.msg)
		}
	}
	return resp, err
}

// clientDeadline is the context key under which boundStream records
// whether the call's client gave a deadline (grpc-timeout).
type clientDeadline struct{}

// grpcTimeout gives a call Config.Timeout unless its client gave a
// deadline: the bound boundStream puts on every stream is not one (it
// kept the default from applying, every call getting WriteTimeout).
func (s *Server) grpcTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if client, ok := ctx.Value(clientDeadline{}).(bool); ok && !client {
		return context.WithTimeout(ctx, s.cfg.Timeout)
	}
	return s.withTimeout(ctx, 0)
}

type grpcService struct {
	inferencepb.UnimplementedGRPCInferenceServiceServer
	s *Server
}

func (g *grpcService) ServerLive(context.Context, *inferencepb.ServerLiveRequest) (*inferencepb.ServerLiveResponse, error) {
	return &inferencepb.ServerLiveResponse{Live: true}, nil
}

func (g *grpcService) ServerReady(context.Context, *inferencepb.ServerReadyRequest) (*inferencepb.ServerReadyResponse, error) {
	return &inferencepb.ServerReadyResponse{Ready: g.s.Ready()}, nil
}

func (g *grpcService) ModelReady(_ context.Context, r *inferencepb.ModelReadyRequest) (*inferencepb.ModelReadyResponse, error) {
	_, err := g.s.lookup(r.GetName(), r.GetVersion())
	if err != nil && classify(err).code == codes.NotFound {
		return nil, err
	}
	return &inferencepb.ModelReadyResponse{Ready: err == nil}, nil
}

func (g *grpcService) ServerMetadata(context.Context, *inferencepb.ServerMetadataRequest) (*inferencepb.ServerMetadataResponse, error) {
	return &inferencepb.ServerMetadataResponse{Name: serverName, Version: serverVersion}, nil
}

func (g *grpcService) ModelMetadata(_ context.Context, r *inferencepb.ModelMetadataRequest) (*inferencepb.ModelMetadataResponse, error) {
	m, err := g.s.lookup(r.GetName(), r.GetVersion())
	if err != nil {
		return nil, err
	}
	md := g.s.metadata(m)
	conv := func(ts []tensorMeta) []*inferencepb.ModelMetadataResponse_TensorMetadata {
		var out []*inferencepb.ModelMetadataResponse_TensorMetadata
		for _, t := range ts {
			out = append(out, &inferencepb.ModelMetadataResponse_TensorMetadata{Name: t.Name, Datatype: t.Datatype, Shape: t.Shape})
		}
		return out
	}
	return &inferencepb.ModelMetadataResponse{Name: md.Name, Versions: md.Versions, Platform: md.Platform, Inputs: conv(md.Inputs), Outputs: conv(md.Outputs)}, nil
}

// ModelInfer runs one request. The input comes as typed contents or as
// raw_input_contents; outputs are answered as raw_output_contents FP32
// (what Triton's clients read), in the order requested.
func (g *grpcService) ModelInfer(ctx context.Context, r *inferencepb.ModelInferRequest) (_ *inferencepb.ModelInferResponse, err error) {
	defer func() { g.s.countFailure(r.GetModelName(), r.GetModelVersion(), err) }()
	// The model and version first: NOT_FOUND whatever the inputs hold.
	m0, err := g.s.lookup(r.GetModelName(), r.GetModelVersion())
	if err != nil {
		return nil, err
	}
	if len(r.GetInputs()) != 1 {
		return nil, badRequest("request has %d inputs; the model takes one, %q", len(r.GetInputs()), inputName)
	}
	in := r.GetInputs()[0]
	if in.GetName() != inputName {
		return nil, badRequest("unknown input %q; the model's input is %q", clip(in.GetName()), inputName)
	}
	n, dims, err := checkShape("input "+inputName, in.GetShape())
	if err != nil {
		return nil, err
	}
	// The shape and the outputs before the data is decoded and the model
	// runs (Server.infer checks the shape again, against the version
	// that runs it).
	if err := m0.checkShape(dims); err != nil {
		return nil, err
	}
	if err := checkParameters("request", r.GetParameters()); err != nil {
		return nil, err
	}
	// Triton's "timeout" parameter (microseconds), as over REST: a
	// deadline of its own, the sooner of it and the call's.
	if p, ok := r.GetParameters()["timeout"]; ok {
		us, isInt := p.GetParameterChoice().(*inferencepb.InferParameter_Int64Param)
		if !isInt || us.Int64Param < 0 {
			return nil, badRequest("parameter \"timeout\" must be a non-negative int64_param (microseconds), got %v", p)
		}
		if us.Int64Param > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, timeoutParameter(us.Int64Param))
			defer cancel()
		}
	}
	if err := checkParameters("input "+in.GetName(), in.GetParameters()); err != nil {
		return nil, err
	}
	var want []string
	for _, o := range r.GetOutputs() {
		if err := checkParameters(fmt.Sprintf("output %q", clip(o.GetName())), o.GetParameters()); err != nil {
			return nil, err
		}
		want = append(want, o.GetName())
	}
	if err := checkOutputs(want); err != nil {
		return nil, err
	}
	var data []float32
	switch raw := r.GetRawInputContents(); {
	case len(raw) > 1:
		return nil, badRequest("%d raw_input_contents for one input", len(raw))
	case len(raw) == 1:
		if in.GetContents() != nil {
			return nil, badRequest("input %q has both contents and raw_input_contents", in.GetName())
		}
		data, err = decodeRaw("input "+inputName, in.GetDatatype(), raw[0], n)
	default:
		data, err = typedContents(in.GetDatatype(), in.GetContents(), n)
	}
	if err != nil {
		return nil, err
	}
	y, m, err := g.s.infer(ctx, "grpc", r.GetModelName(), r.GetModelVersion(), tensor.MustFromData(data, dims...))
	if err != nil {
		return nil, err // a request that gave up may still be queued with data
	}
	defer putFloats(data) // answered: the batch that read it has run
	names, ts, err := outputs(y, want)
	if err != nil {
		return nil, counted{err} // checked above; the model ran and was counted
	}
	resp := &inferencepb.ModelInferResponse{ModelName: m.name, ModelVersion: m.version, Id: r.GetId()}
	for i, name := range names {
		resp.Outputs = append(resp.Outputs, &inferencepb.ModelInferResponse_InferOutputTensor{Name: name, Datatype: datatypeF32, Shape: shape64(ts[i].Shape)})
		resp.RawOutputContents = append(resp.RawOutputContents, rawBytes(ts[i]))
	}
	return resp, nil
}

// typedContents converts the typed contents field of a datatype to
// float32, checking the element count.
func typedContents(dt string, c *inferencepb.InferTensorContents, n int) ([]float32, error) {
	if _, err := elemSize(dt); err != nil {
		return nil, err
	}
	if c == nil {
		return nil, badRequest("input %q has neither contents nor raw_input_contents", inputName)
	}
	// The field the datatype names, and no other (another was ignored,
	// or, alone, reported as 0 elements of the datatype).
	fields := map[string]int{"bool_contents": len(c.GetBoolContents()), "int_contents": len(c.GetIntContents()),
		"int64_contents": len(c.GetInt64Contents()), "uint_contents": len(c.GetUintContents()),
		"uint64_contents": len(c.GetUint64Contents()), "fp32_contents": len(c.GetFp32Contents()),
		"fp64_contents": len(c.GetFp64Contents()), "bytes_contents": len(c.GetBytesContents())}
	own := map[string]string{"BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
		"INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
		"UINT64": "uint64_contents", "FP32": "fp32_contents", "FP64": "fp64_contents"}[dt]
	for _, f := range slices.Sorted(maps.Keys(fields)) {
		if own != "" && f != own && fields[f] > 0 {
			return nil, badRequest("input %q: datatype %s is sent in contents.%s, but the request fills contents.%s", inputName, dt, own, f)
		}
	}
	var out []float32
	add := func(count int, at func(i int) float64) error {
		if count != n {
			return badRequest("input %q: %d %s elements, its shape declares %d", inputName, count, dt, n)
		}
		r, integer := intRanges[dt]
		out = make([]float32, n)
		for i := range out {
			v := at(i)
			switch {
			case integer && (v < r[0] || v > r[1]):
				return badRequest("input %q: element %d: %v is outside %s's range [%g, %g]", inputName, i, v, dt, r[0], r[1])
			case dt == "FP64" && math.Abs(v) > math.MaxFloat32 && !math.IsInf(v, 0):
				return badRequest("input %q: element %d: %v is outside float32's range, in which the model computes", inputName, i, v)
			}
			out[i] = float32(v)
		}
		return nil
	}
	var err error
	switch dt {
	case "BOOL":
		v := c.GetBoolContents()
		err = add(len(v), func(i int) float64 {
			if v[i] {
				return 1
			}
			return 0
		})
	case "INT8", "INT16", "INT32":
		v := c.GetIntContents()
		err = add(len(v), func(i int) float64 { return float64(v[i]) })
	case "INT64":
		v := c.GetInt64Contents()
		err = add(len(v), func(i int) float64 { return float64(v[i]) })
	case "UINT8", "UINT16", "UINT32":
		v := c.GetUintContents()
		err = add(len(v), func(i int) float64 { return float64(v[i]) })
	case "UINT64":
		v := c.GetUint64Contents()
		err = add(len(v), func(i int) float64 { return float64(v[i]) })
	case "FP32":
		v := c.GetFp32Contents()
		err = add(len(v), func(i int) float64 { return float64(v[i]) })
	case "FP64":
		v := c.GetFp64Contents()
		err = add(len(v), func(i int) float64 { return v[i] })
	case "FP16":
		return nil, badRequest("input %q: FP16 has no typed contents; send it as raw_input_contents", inputName)
	}
	return out, err
}

// boundedCodec is grpc-go's protobuf codec with a request's decoded size
// bounded before it is decoded (package protosize reads the wire format):
// its messages by maxGRPCStructure, its strings, bytes and numbers by data
// (8 × the wire's bound: any packed list of numbers fits, as none
// takes more than 8 bytes a byte). proto.Unmarshal makes a Go struct
// of a hundred bytes or more for each message, 2 bytes on the wire when
// empty: a 32 MB request of empty input tensors would have taken gigabytes.
type boundedCodec struct {
	encoding.CodecV2
	data int64
}

// maxGRPCStructure bounds a request's messages decoded: an inference
// request has a few (its inputs, outputs and parameters).
const maxGRPCStructure = 4 << 20

// Unmarshal decodes a message within the codec's bounds. A grpcRequest
// refused is recorded in it and no error returned (see refuseBadMessage);
// any other message's refusal is an error, which grpc-go answers INTERNAL.
func (c boundedCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if r, ok := v.(*grpcRequest); ok {
		r.refused = c.decode(data, r.Message)
		return nil
	}
	if m, ok := v.(proto.Message); ok {
		return c.decode(data, m)
	}
	return c.CodecV2.Unmarshal(data, v)
}

// decode decodes data into m unless it would take more than the codec's
// bounds decoded (tooLarge) or does not parse (badRequest).
func (c boundedCodec) decode(data mem.BufferSlice, m proto.Message) error {
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	b, name := buf.ReadOnlyData(), m.ProtoReflect().Descriptor().Name()
	size, err := protosize.Of(b, m.ProtoReflect().Descriptor(), limits.Nesting)
	switch {
	case err != nil:
		return badRequest("a %s that does not parse: %v", name, err)
	case size.Structure > maxGRPCStructure:
		return tooLarge("a %s of %d messages, which would take %d MB decoded (at most %d MB)", name, size.Messages, size.Structure>>20, maxGRPCStructure>>20)
	case size.Data > c.data:
		return tooLarge("a %s whose contents would take %d MB decoded (at most %d MB, 8 × --max-body)", name, size.Data>>20, c.data>>20)
	}
	if err := proto.Unmarshal(b, m); err != nil {
		return badRequest("a %s that does not parse: %v", name, err)
	}
	return nil
}
