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

// protosize's estimate bounds what proto.Unmarshal allocates,
// as the Go runtime measures it (TotalAlloc), on the shapes that amplify
// most (empty messages: about 90×; packed one-byte int64s: 8×) and on an
// exported ResNet (tensor data, a few hundred nodes); and it is not so
// loose that real models come near the bounds: within 3× and 1 MB.
func TestDecodedSizeBoundsUnmarshal(t *testing.T) {
	exported, err := Export(build(t, exportCases(t)[0].cfg), []int{1, 32, 32, 3})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		b    []byte
	}{{"65,536 empty nodes", emptyNodes(1 << 16)}, {"1M packed int64 zeros", smallInt64s(1 << 20)},
		{"1M unpacked int64 zeros", unpackedInt64s(1 << 20)}, {"an exported ResNet", exported}} {
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
// whose packed integers would exceed limits.TotalBytes, and one nested
// past limits.Nesting.
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
	}{{"empty nodes", "limits.HeaderBytes", nodes}, {"packed ints", "limits.TotalBytes", ints}, {"nested graphs", "limits.Nesting", deep}} {
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
