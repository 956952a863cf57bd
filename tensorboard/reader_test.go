package tensorboard

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"google.golang.org/protobuf/encoding/protowire"
)

// The test reader decodes event files into the JSON shape that
// testdata/read_events.py prints, so that the Go writer, this reader and
// the independent Python reader can be compared field by field.

type jsonFile struct {
	Records int         `json:"records"`
	Bytes   int         `json:"bytes"`
	Events  []jsonEvent `json:"events"`
}

type jsonEvent struct {
	WallTime    float64     `json:"wall_time"`
	Step        int64       `json:"step"`
	FileVersion string      `json:"file_version,omitempty"`
	SessionLog  string      `json:"session_log,omitempty"`
	Values      []jsonValue `json:"values,omitempty"`
}

type jsonValue struct {
	Tag         string     `json:"tag"`
	SimpleValue *jsonFloat `json:"simple_value,omitempty"`
	Image       *jsonImage `json:"image,omitempty"`
}

type jsonImage struct {
	Height     int32  `json:"height"`
	Width      int32  `json:"width"`
	Colorspace int32  `json:"colorspace"`
	PNGBytes   int    `json:"png_bytes"`
	PNGSHA256  string `json:"png_sha256"`
	// Filled by the Python reader only (PIL's decoding).
	PILMode       string `json:"pil_mode,omitempty"`
	PILFirstPixel []int  `json:"pil_first_pixel_rgba,omitempty"`
}

// jsonFloat is a float32 value that JSON holds as a number or, when not
// finite, as "nan", "inf" or "-inf".
type jsonFloat float64

func (f *jsonFloat) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		switch s {
		case "nan":
			*f = jsonFloat(math.NaN())
		case "inf":
			*f = jsonFloat(math.Inf(1))
		case "-inf":
			*f = jsonFloat(math.Inf(-1))
		default:
			return fmt.Errorf("bad float %q", s)
		}
		return nil
	}
	v, err := strconv.ParseFloat(string(b), 64)
	*f = jsonFloat(v)
	return err
}

// same reports whether two float32 values are equal, NaN equal to NaN.
func (f jsonFloat) same(g jsonFloat) bool {
	a, b := float32(f), float32(g)
	return a == b || a != a && b != b
}

// readEvents parses an event file strictly: both CRCs of every record,
// no trailing bytes, no field that the writer does not write.
func readEvents(blob []byte) (*jsonFile, error) {
	out := &jsonFile{Bytes: len(blob)}
	for off := 0; off < len(blob); out.Records++ {
		n := out.Records
		if len(blob)-off < 12 {
			return nil, fmt.Errorf("record %d: truncated header at byte %d", n, off)
		}
		head := blob[off : off+8]
		if binary.LittleEndian.Uint32(blob[off+8:]) != maskedCRC(head) {
			return nil, fmt.Errorf("record %d: bad length CRC", n)
		}
		length := binary.LittleEndian.Uint64(head)
		start := off + 12
		if length > uint64(len(blob)-start) || len(blob)-start-int(length) < 4 {
			return nil, fmt.Errorf("record %d: length %d runs past the end", n, length)
		}
		data := blob[start : start+int(length)]
		if binary.LittleEndian.Uint32(blob[start+int(length):]) != maskedCRC(data) {
			return nil, fmt.Errorf("record %d: bad data CRC", n)
		}
		ev, err := decodeEvent(data)
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", n, err)
		}
		out.Events = append(out.Events, ev)
		off = start + int(length) + 4
	}
	return out, nil
}

// fields calls f for each field of the protobuf message b.
func fields(b []byte, f func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var v []byte
		var x uint64
		switch typ {
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var y uint32
			y, n = protowire.ConsumeFixed32(b)
			x = uint64(y)
		case protowire.Fixed64Type:
			x, n = protowire.ConsumeFixed64(b)
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		default:
			return fmt.Errorf("field %d: wire type %d", num, typ)
		}
		if n < 0 {
			return fmt.Errorf("field %d: %w", num, protowire.ParseError(n))
		}
		b = b[n:]
		if err := f(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}

func decodeEvent(b []byte) (jsonEvent, error) {
	var ev jsonEvent
	err := fields(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch {
		case num == eventWallTime && typ == protowire.Fixed64Type:
			ev.WallTime = math.Float64frombits(x)
		case num == eventStep && typ == protowire.VarintType:
			ev.Step = int64(x)
		case num == eventFileVersion && typ == protowire.BytesType:
			ev.FileVersion = string(v)
		case num == eventSessionLog && typ == protowire.BytesType:
			return fields(v, func(num protowire.Number, typ protowire.Type, _ []byte, x uint64) error {
				if num != sessionLogStatus || typ != protowire.VarintType || x != sessionStart {
					return fmt.Errorf("session_log: field %d (%d) unexpected", num, x)
				}
				ev.SessionLog = "START"
				return nil
			})
		case num == eventSummary && typ == protowire.BytesType:
			return fields(v, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
				if num != summaryValue || typ != protowire.BytesType {
					return fmt.Errorf("summary: field %d unexpected", num)
				}
				val, err := decodeValue(v)
				ev.Values = append(ev.Values, val)
				return err
			})
		default:
			return fmt.Errorf("event: field %d of wire type %d unexpected", num, typ)
		}
		return nil
	})
	return ev, err
}

func decodeValue(b []byte) (jsonValue, error) {
	var val jsonValue
	err := fields(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch {
		case num == valueTag && typ == protowire.BytesType:
			val.Tag = string(v)
		case num == valueSimpleValue && typ == protowire.Fixed32Type:
			f := jsonFloat(math.Float32frombits(uint32(x)))
			val.SimpleValue = &f
		case num == valueImage && typ == protowire.BytesType:
			img := &jsonImage{}
			val.Image = img
			return fields(v, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
				switch {
				case num == imageHeight && typ == protowire.VarintType:
					img.Height = int32(x)
				case num == imageWidth && typ == protowire.VarintType:
					img.Width = int32(x)
				case num == imageColorspace && typ == protowire.VarintType:
					img.Colorspace = int32(x)
				case num == imageEncoded && typ == protowire.BytesType:
					img.PNGBytes = len(v)
					sum := sha256.Sum256(v)
					img.PNGSHA256 = hex.EncodeToString(sum[:])
				default:
					return fmt.Errorf("image: field %d unexpected", num)
				}
				return nil
			})
		default:
			return fmt.Errorf("value: field %d of wire type %d unexpected", num, typ)
		}
		return nil
	})
	return val, err
}
