// Package tensorboard writes TensorBoard event files: the scalars (loss,
// learning rate, accuracy) and images (the training curves) that
// `tensorboard --logdir DIR` shows, in the format TensorFlow and PyTorch's
// SummaryWriter write.
//
// A file is a sequence of TFRecords (a little-endian uint64 length, its
// masked CRC-32C, the data, the data's masked CRC-32C), each holding one
// tensorboard.Event protobuf (event.proto): first file_version
// "brain.Event:2", then events with a wall time, a step and a Summary
// whose values are scalars (simple_value) or PNG images (Summary.Image).
// The protobufs are encoded by hand with protowire; the field numbers are
// those of TensorBoard's tensorboard/compat/proto/event.proto and
// summary.proto. The package's tests compare its output with what the
// protobuf library, given those .proto files, parses and re-serializes.
//
// The tags a training run writes are TagLoss and TagLR every step (see
// Writer.TrainStep) and the per-epoch metrics under EpochPrefix (see
// Writer.Metrics), all against the global training step so that the
// charts share their x axis and a resumed run replaces what a crashed one
// wrote after its checkpoint (Writer.SessionStart).
//
// NewWriter starts an event file in a run folder; Scalar, Scalars, Metrics
// and Image append events, Flush makes them visible and Close ends the
// file.
package tensorboard

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/residual-nn/residual/internal/pngheader"
	"github.com/residual-nn/residual/internal/typednil"
	"github.com/residual-nn/residual/limits"
)

// Tags of a training run's charts.
const (
	// TagLoss is the training loss of each step (one batch).
	TagLoss = "train/loss"
	// TagLR is the learning rate of each step's update (of the first
	// parameter group).
	TagLR = "train/lr"
	// EpochPrefix prefixes the per-epoch metrics: epoch/train_loss,
	// epoch/val_acc, … (the names of metrics.jsonl).
	EpochPrefix = "epoch/"
	// CurvesPrefix prefixes the images of the training curves:
	// curves/loss, curves/accuracy, curves/step_loss.
	CurvesPrefix = "curves/"
)

// Colorspace values of Summary.Image.
const (
	colorGray = 1
	colorRGB  = 3
	colorRGBA = 4
)

// A Writer appends events to one event file. Input it refuses (an empty
// tag, a file that is not a PNG) is an error that leaves it usable; a
// failed write is an error naming the file that every later call
// returns too, as the Writer writes nothing more.
//
// Events are buffered: call Flush when the events should become visible
// to a running TensorBoard (after each epoch), and Close at the end;
// events are also flushed when FlushInterval has passed. A Writer is for
// one goroutine at a time.
type Writer struct {
	path  string
	file  *os.File // nil when writing to a caller's io.Writer
	buf   *bufio.Writer
	clock func() time.Time
	rec   []byte // scratch for one record
	err   error

	lastFlush time.Time // by the real clock, not clock
}

// FlushInterval is how long events may wait in a Writer's buffer: an
// event written this long after the last flush flushes the buffer, so
// that a running TensorBoard follows a long epoch. It is PyTorch's and
// TensorFlow's default (flush_secs=120).
const FlushInterval = 2 * time.Minute

// FileName returns the name TensorBoard expects for an event file
// started at t by process pid on host:
// events.out.tfevents.<Unix seconds>.<host>.<pid>.
func FileName(t time.Time, host string, pid int) string {
	return fmt.Sprintf("events.out.tfevents.%010d.%s.%d", t.Unix(), host, pid)
}

// NewWriter creates dir if needed and a new event file in it (named by
// FileName, with a numeric suffix if that name is taken), and writes the
// file-version event. A run folder with several files (a resumed run)
// is shown by TensorBoard as one run.
func NewWriter(dir string) (*Writer, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("tensorboard: %w", err)
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	now := time.Now()
	base := filepath.Join(dir, FileName(now, host, os.Getpid()))
	path := base
	var f *os.File
	for i := 1; ; i++ {
		f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			break
		}
		if !errors.Is(err, os.ErrExist) || i > 100 {
			return nil, fmt.Errorf("tensorboard: %w", err)
		}
		path = base + "." + strconv.Itoa(i)
	}
	w := newWriter(f, path, time.Now)
	w.file = f
	if err := w.Flush(); err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	return w, nil
}

// RemoveEventFiles deletes the event files (events.out.tfevents.*) in dir,
// not below it: what a run folder held from an earlier run that a fresh
// run replaces. A missing dir is not an error.
func RemoveEventFiles(dir string) error {
	files, err := filepath.Glob(filepath.Join(dir, "events.out.tfevents.*"))
	if err != nil {
		return fmt.Errorf("tensorboard: %w", err)
	}
	for _, f := range files {
		if err := os.Remove(f); err != nil {
			return fmt.Errorf("tensorboard: %w", err)
		}
	}
	return nil
}

// NewWriterTo writes events to w instead of a file, taking each event's
// wall time from clock (time.Now if nil): for tests that need the same
// bytes every run, and for callers with their own storage. It writes the
// file-version event into its buffer; Flush sends it to w. With a nil w
// every call returns an error saying so.
func NewWriterTo(w io.Writer, clock func() time.Time) *Writer {
	if clock == nil {
		clock = time.Now
	}
	if typednil.Is(w) {
		return &Writer{path: "event stream", err: errors.New("tensorboard: NewWriterTo: no io.Writer (nil)"), clock: clock}
	}
	return newWriter(w, "event stream", clock)
}

func newWriter(dst io.Writer, path string, clock func() time.Time) *Writer {
	w := &Writer{path: path, buf: bufio.NewWriterSize(dst, 64<<10), clock: clock, lastFlush: time.Now()}
	ev := appendEventHead(nil, w.clock(), 0)
	ev = protowireString(ev, eventFileVersion, fileVersion)
	w.write(ev)
	return w
}

// Path returns the event file's path ("event stream" for NewWriterTo).
func (w *Writer) Path() string { return w.path }

// write frames one encoded Event as a record into the buffer.
func (w *Writer) write(event []byte) error {
	if w.err != nil {
		return w.err
	}
	w.rec = appendRecord(w.rec[:0], event)
	if _, err := w.buf.Write(w.rec); err != nil {
		w.err = fmt.Errorf("tensorboard: writing %s: %w", w.path, err)
		return w.err
	}
	if time.Since(w.lastFlush) >= FlushInterval {
		return w.Flush()
	}
	return nil
}

// summaryEvent encodes an Event at step holding the Summary values.
func (w *Writer) summaryEvent(step int64, values []byte) error {
	if w.err != nil {
		return w.err
	}
	ev := appendEventHead(nil, w.clock(), step)
	ev = appendMessage(ev, eventSummary, values)
	return w.write(ev)
}

// checkTag refuses an empty tag, which TensorBoard cannot chart.
func checkTag(tag string) error {
	if tag == "" {
		return errors.New("tensorboard: empty tag")
	}
	return nil
}

// Scalar writes value for tag at step. TensorBoard stores it as a float32;
// NaN and ±Inf are written as they are (TensorBoard shows them as gaps).
func (w *Writer) Scalar(tag string, step int64, value float64) error {
	return w.Scalars(step, []string{tag}, []float64{value})
}

// Scalars writes one event at step holding values[i] for tags[i].
func (w *Writer) Scalars(step int64, tags []string, values []float64) error {
	if len(tags) != len(values) {
		return fmt.Errorf("tensorboard: tags and values differ in number (%d and %d)", len(tags), len(values))
	}
	if len(tags) == 0 {
		return errors.New("tensorboard: no values to write")
	}
	var vals []byte
	for i, tag := range tags {
		if err := checkTag(tag); err != nil {
			return err
		}
		vals = appendScalarValue(vals, tag, float32(values[i]))
	}
	return w.summaryEvent(step, vals)
}

// TrainStep writes a training step's loss and learning rate (TagLoss and
// TagLR) in one event. step counts the updates made, the first being 1.
func (w *Writer) TrainStep(step int64, loss, lr float64) error {
	return w.Scalars(step, []string{TagLoss, TagLR}, []float64{loss, lr})
}

// Metrics writes every number of v's JSON object (a struct with JSON
// tags such as train.Metrics, or a map) as a scalar tagged prefix+key,
// in one event at step, keys in sorted order; skip lists keys left out
// (the step itself, say). Fields that are not numbers are ignored, and
// so are ones the JSON leaves out (omitempty). With prefix EpochPrefix
// the tags are those of metrics.jsonl: epoch/train_loss, epoch/val_acc, …
func (w *Writer) Metrics(prefix string, step int64, v any, skip ...string) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("tensorboard: metrics: %w", err)
	}
	var fields map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&fields); err != nil {
		return fmt.Errorf("tensorboard: metrics: %T is not a JSON object: %w", v, err)
	}
	var tags []string
	var values []float64
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		n, ok := fields[k].(json.Number)
		if !ok || slices.Contains(skip, k) {
			continue
		}
		f, err := n.Float64()
		if err != nil {
			return fmt.Errorf("tensorboard: metrics: field %q: %w", k, err)
		}
		tags, values = append(tags, prefix+k), append(values, f)
	}
	if len(tags) == 0 {
		return fmt.Errorf("tensorboard: metrics: %T has no numeric fields", v)
	}
	return w.Scalars(step, tags, values)
}

// ImagePNG writes an encoded PNG image for tag at step. Its size and
// colorspace come from the PNG header, which must be valid and within
// limits.CheckImage's bounds.
func (w *Writer) ImagePNG(tag string, step int64, encoded []byte) error {
	if err := checkTag(tag); err != nil {
		return err
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(encoded))
	if width, height, ok := pngheader.Overflowed(encoded, err); ok { // too large for the decoder's int: named by the limit
		if err := limits.CheckImage("tensorboard: image "+strconv.Quote(tag), width, height); err != nil {
			return err
		}
	}
	if err != nil {
		return fmt.Errorf("tensorboard: image %q: not a PNG: %w", tag, err)
	}
	if err := limits.CheckImage("tensorboard: image "+strconv.Quote(tag), cfg.Width, cfg.Height); err != nil {
		return err
	}
	var vals []byte
	vals = appendImageValue(vals, tag, int32(cfg.Height), int32(cfg.Width), colorspace(cfg.ColorModel), encoded)
	return w.summaryEvent(step, vals)
}

// Image encodes img as PNG and writes it for tag at step. A nil img is an
// error.
func (w *Writer) Image(tag string, step int64, img image.Image) error {
	if err := checkTag(tag); err != nil {
		return err
	}
	if typednil.Is(img) {
		return fmt.Errorf("tensorboard: image %q is nil", tag)
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		return fmt.Errorf("tensorboard: image %q: %w", tag, err)
	}
	return w.ImagePNG(tag, step, b.Bytes())
}

// ImageFile writes the PNG file at path (a plot) for tag at step. The
// file may be at most limits.TotalBytes long.
func (w *Writer) ImageFile(tag string, step int64, path string) error {
	f, err := limits.OpenNoWait(path)
	if err != nil {
		return fmt.Errorf("tensorboard: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limits.TotalBytes+1))
	if err != nil {
		return fmt.Errorf("tensorboard: reading %s: %w", path, err)
	}
	if int64(len(b)) > limits.TotalBytes {
		return fmt.Errorf("tensorboard: %s is over %d bytes (limits.TotalBytes)", path, limits.TotalBytes)
	}
	if err := w.ImagePNG(tag, step, b); err != nil {
		return fmt.Errorf("%w (%s)", err, path)
	}
	return nil
}

// SessionStart marks that training starts, or resumes from a checkpoint,
// with step the first step still to come (1 for a fresh run, the
// checkpoint's step + 1 on resuming). When a later file in the run folder
// starts a session again, TensorBoard drops the points at steps ≥ its step
// that earlier files hold, so that what a run logged after its last
// checkpoint and before a crash is replaced by what the resumed run logs,
// and what it logged up to the checkpoint stays. Call it once, right after
// NewWriter.
func (w *Writer) SessionStart(step int64) error {
	var sl []byte
	sl = protowireVarint(sl, sessionLogStatus, sessionStart)
	ev := appendEventHead(nil, w.clock(), step)
	ev = appendMessage(ev, eventSessionLog, sl)
	return w.write(ev)
}

// Flush writes the buffered events to the file (or io.Writer), where a
// running TensorBoard sees them.
func (w *Writer) Flush() error {
	if w.err != nil {
		return w.err
	}
	if err := w.buf.Flush(); err != nil {
		w.err = fmt.Errorf("tensorboard: writing %s: %w", w.path, err)
	}
	w.lastFlush = time.Now()
	return w.err
}

// Close flushes the events and closes the file; the Writer is then
// unusable. Closing a Writer from NewWriterTo flushes it and leaves the
// io.Writer open.
func (w *Writer) Close() error {
	err := w.Flush()
	if w.file != nil {
		if cerr := w.file.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("tensorboard: closing %s: %w", w.path, cerr)
		}
		w.file = nil
	}
	if w.err == nil {
		w.err = fmt.Errorf("tensorboard: %s is closed", w.path)
	}
	return err
}

// colorspace maps a PNG's color model (from png.DecodeConfig) to
// Summary.Image's colorspace. PNG decodes gray as Gray or Gray16, RGB as
// RGBA or RGBA64, and anything with an alpha channel (gray+alpha too) as
// NRGBA or NRGBA64; a palette is RGBA when one of its colors is not
// opaque.
func colorspace(m color.Model) int32 {
	switch m {
	case color.GrayModel, color.Gray16Model:
		return colorGray
	case color.RGBAModel, color.RGBA64Model:
		return colorRGB
	}
	if p, ok := m.(color.Palette); ok {
		for _, c := range p {
			if _, _, _, a := c.RGBA(); a != 0xffff {
				return colorRGBA
			}
		}
		return colorRGB
	}
	return colorRGBA
}
