package onnx

import (
	"runtime"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/residual-nn/residual/internal/onnxpb"
	"github.com/residual-nn/residual/internal/protosize"
	"github.com/residual-nn/residual/limits"
)

// allocated is the bytes f allocates (runtime.MemStats.TotalAlloc).
func allocated(f func()) int64 {
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	f()
	runtime.ReadMemStats(&m1)
	return int64(m1.TotalAlloc - m0.TotalAlloc)
}

// emptyNodes is a ModelProto whose graph holds n empty nodes: 2 bytes each
// on the wire, a NodeProto struct each once decoded.
func emptyNodes(n int) []byte {
	g := make([]byte, 0, 2*n)
	for range n {
		g = protowire.AppendTag(g, 1, protowire.BytesType) // GraphProto.node
		g = protowire.AppendVarint(g, 0)
	}
	b := protowire.AppendTag(nil, 7, protowire.BytesType) // ModelProto.graph
	b = protowire.AppendBytes(b, g)
	return b
}

// smallInt64s is a ModelProto with one initializer of n int64 zeros,
// packed: 1 byte each on the wire, 8 in Go.
func smallInt64s(n int) []byte {
	dt := int32(onnxpb.TensorProto_INT64)
	b, err := proto.Marshal(&onnxpb.ModelProto{Graph: &onnxpb.GraphProto{Initializer: []*onnxpb.TensorProto{
		{Name: strPtr("w"), Dims: []int64{int64(n)}, DataType: &dt, Int64Data: make([]int64, n)}}}})
	if err != nil {
		panic(err)
	}
	return b
}

// unpackedInt64s is smallInt64s with each number tagged on its own (2
// bytes each), as an old writer may have written it.
func unpackedInt64s(n int) []byte {
	t := make([]byte, 0, 2*n)
	for range n {
		t = protowire.AppendTag(t, 7, protowire.VarintType) // TensorProto.int64_data
		t = protowire.AppendVarint(t, 0)
	}
	g := protowire.AppendBytes(protowire.AppendTag(nil, 5, protowire.BytesType), t) // GraphProto.initializer
	return protowire.AppendBytes(protowire.AppendTag(nil, 7, protowire.BytesType), g)
}

// wrap puts a TensorProto's bytes into a ModelProto's graph as its one
// initializer.
func wrapTensor(t []byte) []byte {
	g := protowire.AppendBytes(protowire.AppendTag(nil, 5, protowire.BytesType), t) // GraphProto.initializer
	return protowire.AppendBytes(protowire.AppendTag(nil, 7, protowire.BytesType), g)
}

// chunkedFloats is an initializer whose float_data is n packed chunks of
// one float each: protobuf-go reallocates the list at each chunk to its
// length so far, n²/2 floats in all.
func chunkedFloats(n int) []byte {
	t := make([]byte, 0, 6*n)
	for range n {
		t = protowire.AppendBytes(protowire.AppendTag(t, 4, protowire.BytesType), []byte{0, 0, 0, 0}) // TensorProto.float_data
	}
	return wrapTensor(t)
}

// alternating is an initializer whose int64_data alternates a packed
// chunk of one number and an unpacked one: each append after a chunk
// copies the list.
func alternating(n int) []byte {
	var t []byte
	for range n / 2 {
		t = protowire.AppendBytes(protowire.AppendTag(t, 7, protowire.BytesType), []byte{0}) // TensorProto.int64_data, packed
		t = protowire.AppendVarint(protowire.AppendTag(t, 7, protowire.VarintType), 0)
	}
	return wrapTensor(t)
}

// emptyInputs is a node with n empty input names.
func emptyInputs(n int) []byte {
	var nd []byte
	for range n {
		nd = protowire.AppendBytes(protowire.AppendTag(nd, 1, protowire.BytesType), nil) // NodeProto.input
	}
	g := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), nd) // GraphProto.node
	return protowire.AppendBytes(protowire.AppendTag(nil, 7, protowire.BytesType), g)
}

// mergedTensors is a node attribute whose tensor (AttributeProto.t, a
// singular field) comes n times with one float each: decoding merges them
// into one tensor, its float_data reallocated at each.
func mergedTensors(n int) []byte {
	var a []byte
	for range n {
		t := protowire.AppendBytes(protowire.AppendTag(nil, 4, protowire.BytesType), []byte{0, 0, 0, 0})
		a = protowire.AppendBytes(protowire.AppendTag(a, 5, protowire.BytesType), t) // AttributeProto.t
	}
	nd := protowire.AppendBytes(protowire.AppendTag(nil, 5, protowire.BytesType), a) // NodeProto.attribute
	g := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), nd)
	return protowire.AppendBytes(protowire.AppendTag(nil, 7, protowire.BytesType), g)
}

// wrongWireType is a model whose ir_version (a varint) comes n times as
// a fixed64: protobuf-go keeps each as an unknown field's bytes.
func wrongWireType(n int) []byte {
	var b []byte
	for range n {
		b = protowire.AppendFixed64(protowire.AppendTag(b, 1, protowire.Fixed64Type), 0) // ModelProto.ir_version
	}
	return b
}

// unknownFields is a model with n unknown fields of 1 kB each.
func unknownFields(n int) []byte {
	var b []byte
	for range n {
		b = protowire.AppendBytes(protowire.AppendTag(b, 999, protowire.BytesType), make([]byte, 1000))
	}
	return b
}

// oneofSwitches is a value info whose shape's one dimension alternates n
// times between dim_value and dim_param (a oneof): each switch allocates
// the case's wrapper.
func oneofSwitches(n int) []byte {
	var d []byte
	for i := range n {
		if i%2 == 0 {
			d = protowire.AppendVarint(protowire.AppendTag(d, 1, protowire.VarintType), 7) // Dimension.dim_value
		} else {
			d = protowire.AppendBytes(protowire.AppendTag(d, 2, protowire.BytesType), nil) // Dimension.dim_param
		}
	}
	shape := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), d)      // TensorShapeProto.dim
	tensor := protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), shape) // TypeProto.Tensor.shape
	typ := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), tensor)   // TypeProto.tensor_type
	vi := protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), typ)       // ValueInfoProto.type
	g := protowire.AppendBytes(protowire.AppendTag(nil, 11, protowire.BytesType), vi)        // GraphProto.input
	return protowire.AppendBytes(protowire.AppendTag(nil, 7, protowire.BytesType), g)        // ModelProto.graph
}

// protosize's estimate bounds what proto.Unmarshal allocates,
// as the Go runtime measures it (TotalAlloc), on the shapes that amplify
// most (empty messages: about 90×; packed one-byte int64s: 8×; a list in
// many packed chunks, or in chunks alternating with unpacked numbers,
// grows as the square of its chunks, also through a singular message
// that decoding merges; a list of empty strings; a known field of another
// wire type and unknown fields, kept as bytes that append grows; a oneof
// switching case, a wrapper each time) and on an exported ResNet
// (tensor data, a few hundred nodes); and it is not so loose that real
// models come near the bounds: within 3× and 1 MB.
func TestDecodedSizeBoundsUnmarshal(t *testing.T) {
	exported, err := Export(build(t, exportCases(t)[0].cfg), []int{1, 32, 32, 3})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		b    []byte
	}{{"65,536 empty nodes", emptyNodes(1 << 16)}, {"1M packed int64 zeros", smallInt64s(1 << 20)},
		{"1M unpacked int64 zeros", unpackedInt64s(1 << 20)}, {"an exported ResNet", exported},
		{"5,000 packed chunks of one float", chunkedFloats(5000)}, {"5,000 packed and unpacked int64s alternating", alternating(5000)},
		{"1M empty input names", emptyInputs(1 << 20)}, {"a tensor attribute given 5,000 times", mergedTensors(5000)},
		{"100,000 ir_versions as fixed64", wrongWireType(100000)}, {"2,000 unknown fields of 1 kB", unknownFields(2000)},
		{"a dimension switching its oneof 100,000 times", oneofSwitches(100000)}} {
		var mp onnxpb.ModelProto
		size, err := protosize.Of(c.b, mp.ProtoReflect().Descriptor(), limits.Nesting)
		if err != nil {
			t.Fatal(err)
		}
		est := size.Structure + size.Data
		got := allocated(func() {
			if err := proto.Unmarshal(c.b, &mp); err != nil {
				t.Fatal(err)
			}
		})
		t.Logf("%s: %d bytes on the wire, %d messages, estimate %d, allocated %d", c.name, len(c.b), size.Messages, est, got)
		if est < got || est > 3*got+1<<20 {
			t.Errorf("%s: estimate %d bytes for %d allocated; want between 1× and 3× + 1 MB", c.name, est, got)
		}
	}
}

// A 2 MB file of empty nodes, which decoded asked for 186 MB (and a file
// within Load's size bound for hundreds of GB), is refused before it is
// decoded by Parse, Describe and ImportInt8, naming the bound; so is one
// whose packed integers would exceed limits.TotalBytes, one nested past
// limits.Nesting, and a 1.2 MB list of 200,000 packed chunks, which would
// take 80 GB of reallocations.
func TestDecodingBounded(t *testing.T) {
	nodes := emptyNodes(1 << 20)
	defer func(n int64) { limits.TotalBytes = n }(limits.TotalBytes)
	limits.TotalBytes = 4 << 20
	ints := smallInt64s(1 << 20) // 8 MB decoded
	// Nodes holding attributes holding graphs holding nodes …, three
	// messages a level, one level past limits.Nesting.
	var node []byte
	for range limits.Nesting/3 + 1 {
		graph := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), node) // GraphProto.node
		attr := protowire.AppendBytes(protowire.AppendTag(nil, 6, protowire.BytesType), graph) // AttributeProto.g
		node = protowire.AppendBytes(protowire.AppendTag(nil, 5, protowire.BytesType), attr)   // NodeProto.attribute
	}
	graph := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), node)
	deep := protowire.AppendBytes(protowire.AppendTag(nil, 7, protowire.BytesType), graph) // ModelProto.graph
	for _, c := range []struct {
		name, want string
		b          []byte
	}{{"empty nodes", "limits.HeaderBytes", nodes}, {"packed ints", "limits.TotalBytes", ints}, {"nested graphs", "limits.Nesting", deep},
		{"packed chunks", "limits.TotalBytes", chunkedFloats(200000)}} {
		for _, f := range []struct {
			name string
			run  func([]byte) error
		}{
			{"Parse", func(b []byte) error { _, err := Parse(b); return err }},
			{"Describe", func(b []byte) error { _, err := Describe(b); return err }},
			{"ImportInt8", func(b []byte) error { _, err := ImportInt8(b, nil, nil); return err }},
		} {
			var err error
			a := allocated(func() { err = f.run(c.b) })
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s of %s: %v; want an error naming %s", f.name, c.name, err, c.want)
			}
			if a > 1<<20 {
				t.Errorf("%s of %s allocated %d bytes before refusing it", f.name, c.name, a)
			}
		}
	}
}
