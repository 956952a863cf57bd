package tensorboard

import (
	"encoding/binary"
	"hash/crc32"
	"math"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// castagnoli is the CRC-32C table TFRecord checksums use.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// maskedCRC is TFRecord's checksum: the CRC-32C of b, rotated right by 15
// bits and offset by a constant, so that a CRC stored inside data whose
// own CRC is computed does not cancel out.
func maskedCRC(b []byte) uint32 {
	c := crc32.Checksum(b, castagnoli)
	return (c>>15 | c<<17) + 0xa282ead8
}

// appendRecord frames data as one TFRecord: the length as a little-endian
// uint64, the masked CRC-32C of those 8 bytes, the data, and the masked
// CRC-32C of the data.
func appendRecord(dst, data []byte) []byte {
	var head [12]byte
	binary.LittleEndian.PutUint64(head[:8], uint64(len(data)))
	binary.LittleEndian.PutUint32(head[8:], maskedCRC(head[:8]))
	dst = append(dst, head[:]...)
	dst = append(dst, data...)
	return binary.LittleEndian.AppendUint32(dst, maskedCRC(data))
}

// Field numbers of the messages written, from TensorBoard's
// tensorboard/compat/proto/event.proto and summary.proto (package
// tensorboard, the same numbers as TensorFlow's tensorflow.Event).
const (
	eventWallTime    = 1 // double
	eventStep        = 2 // int64
	eventFileVersion = 3 // string, oneof what
	eventSummary     = 5 // Summary, oneof what
	eventSessionLog  = 7 // SessionLog, oneof what

	sessionLogStatus = 1 // enum SessionStatus
	sessionStart     = 1 // SessionStatus.START

	summaryValue = 1 // repeated Summary.Value

	valueTag         = 1 // string
	valueSimpleValue = 2 // float, oneof value
	valueImage       = 4 // Summary.Image, oneof value

	imageHeight     = 1 // int32
	imageWidth      = 2 // int32
	imageColorspace = 3 // int32
	imageEncoded    = 4 // bytes
)

// fileVersion is the first event of every file; TensorBoard reads files
// of version 2 and later with restart handling by SessionLog.START.
const fileVersion = "brain.Event:2"

// appendEventHead appends an Event's wall_time and step the way a protobuf
// serializer does: fields in number order, proto3 zero values left out.
func appendEventHead(b []byte, wall time.Time, step int64) []byte {
	if secs := wallSeconds(wall); secs != 0 {
		b = protowire.AppendTag(b, eventWallTime, protowire.Fixed64Type)
		b = protowire.AppendFixed64(b, math.Float64bits(secs))
	}
	if step != 0 {
		b = protowire.AppendTag(b, eventStep, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(step))
	}
	return b
}

// wallSeconds is an Event's wall_time: seconds since the Unix epoch with
// the fraction (microseconds survive in a float64 until the year 2255).
func wallSeconds(t time.Time) float64 {
	return float64(t.UnixMicro()) / 1e6
}

// appendMessage appends field num holding the message msg.
func appendMessage(b []byte, num protowire.Number, msg []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, msg)
}

// appendScalarValue appends a Summary.Value with simple_value. The value
// is in a oneof, so it is written even when zero.
func appendScalarValue(b []byte, tag string, v float32) []byte {
	var val []byte
	val = protowire.AppendTag(val, valueTag, protowire.BytesType)
	val = protowire.AppendString(val, tag)
	val = protowire.AppendTag(val, valueSimpleValue, protowire.Fixed32Type)
	val = protowire.AppendFixed32(val, math.Float32bits(v))
	return appendMessage(b, summaryValue, val)
}

// appendImageValue appends a Summary.Value with a Summary.Image.
func appendImageValue(b []byte, tag string, height, width, colorspace int32, encoded []byte) []byte {
	var img []byte
	for _, f := range []struct {
		num protowire.Number
		v   int32
	}{{imageHeight, height}, {imageWidth, width}, {imageColorspace, colorspace}} {
		if f.v != 0 {
			img = protowire.AppendTag(img, f.num, protowire.VarintType)
			img = protowire.AppendVarint(img, uint64(f.v))
		}
	}
	if len(encoded) > 0 {
		img = protowire.AppendTag(img, imageEncoded, protowire.BytesType)
		img = protowire.AppendBytes(img, encoded)
	}
	var val []byte
	val = protowire.AppendTag(val, valueTag, protowire.BytesType)
	val = protowire.AppendString(val, tag)
	val = appendMessage(val, valueImage, img)
	return appendMessage(b, summaryValue, val)
}

// protowireString appends field num holding the string s.
func protowireString(b []byte, num protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// protowireVarint appends field num holding the varint v.
func protowireVarint(b []byte, num protowire.Number, v uint64) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}
