package onnx

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/residual-nn/residual/internal/onnxpb"
	"github.com/residual-nn/residual/internal/protosize"
	"github.com/residual-nn/residual/limits"
)

// unmarshalModel decodes a serialised ModelProto once its wire format has
// shown what decoding it would allocate (decodedSize): proto.Unmarshal
// makes a Go struct of a few hundred bytes for each message, so a file of
// empty nodes (2 bytes each) asks for about 90 times its size, and one
// within the size Load accepts, for hundreds of gigabytes.
func unmarshalModel(b []byte) (*onnxpb.ModelProto, error) {
	var mp onnxpb.ModelProto
	if err := decodedSize(b, mp.ProtoReflect().Descriptor()); err != nil {
		return nil, err
	}
	if err := proto.Unmarshal(b, &mp); err != nil {
		return nil, fmt.Errorf("not a valid model: %w", err)
	}
	return &mp, nil
}

// decodedSize returns an error naming the bound exceeded if decoding b, a
// serialised message of descriptor md, would take more than
// limits.HeaderBytes for its messages, more than limits.TotalBytes for
// its data (strings, bytes and lists of numbers, as Go stores them: a
// one-byte varint of a packed int64 list takes 8), more
// than the memory available for both (limits.CheckMemory), or nests deeper
// than limits.Nesting (package protosize estimates it from the wire
// format).
func decodedSize(b []byte, md protoreflect.MessageDescriptor) error {
	s, err := protosize.Of(b, md, limits.Nesting)
	if errors.Is(err, protosize.ErrTooDeep) {
		return fmt.Errorf("the model's messages nest deeper than limits.Nesting (%d)", limits.Nesting)
	}
	if err != nil {
		return fmt.Errorf("not a valid model: %w", err)
	}
	if s.Structure > limits.HeaderBytes {
		return fmt.Errorf("the model's %d messages would take %d MB decoded, more than limits.HeaderBytes (%d MB)",
			s.Messages, s.Structure>>20, limits.HeaderBytes>>20)
	}
	if s.Data > limits.TotalBytes {
		return fmt.Errorf("the model's tensors and strings would take %d MB decoded, more than limits.TotalBytes (%d MB)",
			s.Data>>20, limits.TotalBytes>>20)
	}
	return limits.CheckMemory("decoding the model", s.Structure+s.Data)
}
