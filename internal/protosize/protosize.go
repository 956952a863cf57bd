// Package protosize estimates, from a serialised protocol buffer's wire
// format alone, what decoding it with proto.Unmarshal would allocate: a
// message of a few bytes on the wire becomes a Go struct of a hundred or
// more, a packed one-byte varint an 8-byte int64. A reader of untrusted
// messages (ONNX files, gRPC requests) checks the estimate against its
// bounds before it decodes.
package protosize

import (
	"errors"
	"fmt"
	"reflect"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// Size is what decoding a message would allocate, in bytes.
type Size struct {
	// Messages counts the message values, the outermost included.
	Messages int64
	// Structure is the messages' Go structs (and unknown fields), twice
	// their sizes summed (the spare capacity of the slices append grows):
	// what a message of a few bytes on the wire makes a hundred times
	// larger.
	Structure int64
	// Data is strings, bytes and lists of numbers as Go stores them, with
	// what growing the lists takes: an unpacked list's elements (and a
	// list of strings' headers) unpackedGrowth times; a packed list's
	// elements once if in one chunk, but a list in many chunks is
	// reallocated at each to exactly its length so far (protobuf-go), so
	// that its cost grows as the square of its chunks.
	Data int64
}

// ErrTooDeep is what Of returns for messages nested deeper than its bound.
var ErrTooDeep = errors.New("protosize: messages nested too deep")

// Of walks b, a serialised message of descriptor md, and returns what
// decoding it would allocate; an error for bytes that are not the wire
// format (a truncated field, a bad tag: what proto.Unmarshal refuses too)
// or nest messages deeper than maxDepth (ErrTooDeep). Unknown fields count
// as the bytes they are kept in.
func Of(b []byte, md protoreflect.MessageDescriptor, maxDepth int) (Size, error) {
	w := walk{sizes: map[protoreflect.FullName]int64{}, maxDepth: maxDepth}
	if err := w.message(b, md, 1, &fields{}); err != nil {
		return Size{}, err
	}
	return Size{Messages: w.messages, Structure: 2 * w.structure, Data: w.data}, nil
}

// unpackedGrowth bounds what append allocates in all, over the copies it
// leaves behind, for each element of a list decoded one number at a time
// (an unpacked repeated field, proto2's default, which onnx.proto's dims
// and ints use): a large slice grows by a quarter, so the copies sum to
// 5 times the last capacity, itself up to 1.25 times the length, and
// rounding to the allocator's size classes adds a little.
const unpackedGrowth = 7

// walk sums what decoding a message would allocate.
type walk struct {
	messages, structure, data int64
	sizes                     map[protoreflect.FullName]int64 // Go struct sizes by message name
	maxDepth                  int
	// scratch holds, by depth, the fields of the list element being
	// walked there, reused from one element to the next: a state each
	// would allocate a million times for a million nodes.
	scratch []*fields
}

// fresh returns an empty fields for a list element at depth.
func (w *walk) fresh(depth int) *fields {
	for len(w.scratch) <= depth {
		w.scratch = append(w.scratch, &fields{})
	}
	f := w.scratch[depth]
	*f = fields{}
	return f
}

// fields is what a message's fields have decoded so far: the elements of
// each list (a packed chunk reallocates the list to exactly its length
// plus the chunk's), and the state of each singular message field, which
// proto.Unmarshal merges when the field comes again.
type fields struct {
	lists map[protowire.Number]*list
	kids  map[protowire.Number]*fields
}

// list is a list field's length so far, and whether a packed chunk made
// its capacity its length.
type list struct {
	n     int64
	exact bool
}

func (f *fields) list(num protowire.Number) *list { return entry(&f.lists, num) }

func (f *fields) kid(num protowire.Number) *fields { return entry(&f.kids, num) }

// entry returns m's value for num, made (and the map too) the first time.
func entry[T any](m *map[protowire.Number]*T, num protowire.Number) *T {
	if *m == nil {
		*m = map[protowire.Number]*T{}
	}
	v := (*m)[num]
	if v == nil {
		v = new(T)
		(*m)[num] = v
	}
	return v
}

// message adds one message's costs, its nested messages' included; f is
// what its fields hold already (a singular message field's earlier
// occurrences, which decoding merges into one).
func (w *walk) message(b []byte, md protoreflect.MessageDescriptor, depth int, f *fields) error {
	if depth > w.maxDepth {
		return fmt.Errorf("%w: deeper than %d", ErrTooDeep, w.maxDepth)
	}
	w.messages++
	w.structure += w.structSize(md)
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return fmt.Errorf("%s field %d: %w", md.Name(), num, protowire.ParseError(n))
		}
		val := b[:n]
		b = b[n:]
		fd := md.Fields().ByNumber(num)
		if fd == nil || !wireOK(fd, typ) {
			// An unknown field, or a known one of another wire type:
			// appended, tag and value, to the message's unknown bytes,
			// which append grows.
			w.structure += unknownGrowth * int64(protowire.SizeTag(num)+n)
			continue
		}
		if fd.ContainingOneof() != nil && !fd.ContainingOneof().IsSynthetic() {
			w.structure += 8 // the wrapper each occurrence allocates
		}
		k, length := fd.Kind(), typ == protowire.BytesType
		v, _ := protowire.ConsumeBytes(val)
		switch {
		case k == protoreflect.MessageKind && length:
			w.structure += 8 // the pointer to it
			var kid *fields
			if fd.IsList() || fd.IsMap() { // an element (an entry) is a message of its own
				kid = w.fresh(depth + 1)
			} else {
				kid = f.kid(num)
			}
			if err := w.message(v, fd.Message(), depth+1, kid); err != nil {
				return err
			}
		case (k == protoreflect.StringKind || k == protoreflect.BytesKind) && length:
			header := int64(16)
			if k == protoreflect.BytesKind {
				header = 24
			}
			if fd.IsList() { // append grows the list of headers
				header *= unpackedGrowth
			}
			w.data += header
			if len(v) > 0 { // copied, never aliased
				w.data += rounded(int64(len(v)))
			}
		case k == protoreflect.GroupKind: // no group in the schemas read here: its bytes, as unknown
			w.structure += unknownGrowth * int64(protowire.SizeTag(num)+n)
		case length && fd.IsList(): // a packed chunk: the list reallocated to its length plus the chunk's
			l, c := f.list(num), packedCount(v, k)
			if c > 0 {
				l.n += c
				l.exact = true
				w.data += rounded(l.n * scalarSize(k))
			}
		case fd.IsList(): // one number of an unpacked list, which append grows
			l := f.list(num)
			if l.exact { // full after a packed chunk: append copies it into a larger one
				w.data += rounded(grown(l.n) * scalarSize(k))
				l.exact = false
			}
			l.n++
			w.data += unpackedGrowth * scalarSize(k)
		}
	}
	return nil
}

// unknownGrowth is what a byte of a message's unknown fields is charged
// as structure (which is doubled): protobuf-go appends each field's tag
// and value to one slice, whose copies as append grows it sum to about 5
// times its length (5.2 measured).
const unknownGrowth = 4

// wireOK reports whether protobuf-go decodes a field of fd's kind from
// wire type typ; another wire type makes the field unknown.
func wireOK(fd protoreflect.FieldDescriptor, typ protowire.Type) bool {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.StringKind, protoreflect.BytesKind:
		return typ == protowire.BytesType
	case protoreflect.GroupKind:
		return typ == protowire.StartGroupType
	case protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind, protoreflect.FloatKind:
		return typ == protowire.Fixed32Type || (fd.IsList() && typ == protowire.BytesType)
	case protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind, protoreflect.DoubleKind:
		return typ == protowire.Fixed64Type || (fd.IsList() && typ == protowire.BytesType)
	}
	return typ == protowire.VarintType || (fd.IsList() && typ == protowire.BytesType)
}

// grown is the capacity append gives a full slice of n elements
// (runtime.growslice: twice below 256 elements, then a quarter more and
// 192).
func grown(n int64) int64 {
	if n < 256 {
		return 2*n + 1
	}
	return n + (n+3*256)/4
}

// rounded is an allocation of b bytes as the allocator makes it: its size
// classes round a request up by at most an eighth, and the smallest
// requests up to 16 bytes.
func rounded(b int64) int64 { return b + b/8 + 16 }

// structSize is the size of the Go struct a message decodes to (256 bytes
// for one not registered, more than any of onnx.proto's).
func (w *walk) structSize(md protoreflect.MessageDescriptor) int64 {
	if s, ok := w.sizes[md.FullName()]; ok {
		return s
	}
	s := int64(256)
	if mt, err := protoregistry.GlobalTypes.FindMessageByName(md.FullName()); err == nil {
		if t := reflect.TypeOf(mt.Zero().Interface()); t.Kind() == reflect.Pointer {
			s = int64(t.Elem().Size())
		}
	}
	w.sizes[md.FullName()] = s
	return s
}

// packedCount is the number of numbers in a packed list's bytes (for
// varints, the bytes that end one; a truncated last varint counts too).
func packedCount(v []byte, k protoreflect.Kind) int64 {
	switch k {
	case protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind, protoreflect.FloatKind:
		return int64(len(v)) / 4
	case protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind, protoreflect.DoubleKind:
		return int64(len(v)) / 8
	}
	var n int64
	for _, c := range v {
		if c < 0x80 {
			n++
		}
	}
	return n
}

// scalarSize is the bytes a number of kind k takes in a Go slice.
func scalarSize(k protoreflect.Kind) int64 {
	switch k {
	case protoreflect.BoolKind:
		return 1
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Uint32Kind, protoreflect.EnumKind,
		protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind, protoreflect.FloatKind:
		return 4
	}
	return 8
}
