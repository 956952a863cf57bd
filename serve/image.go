package serve

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // decoders of the image routes
	"image/png"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"

	_ "golang.org/x/image/webp"

	"github.com/residual-nn/residual/data/imagefile"
	"github.com/residual-nn/residual/data/transform"
	"github.com/residual-nn/residual/infer"
	"github.com/residual-nn/residual/limits"
	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/tensor"
)

// decodeImage decodes an image after checking its header's size
// against limits.CheckImage and maxPixels, so that a decompression bomb is
// refused (413) before any pixel is allocated; a corrupt image is a 400.
// decodedFormats names the image formats the server decodes (those
// package data registers, as training reads them).
const decodedFormats = "JPEG, PNG, GIF, BMP, WebP, TIFF, PBM, PGM or PPM"

func decodeImage(b []byte, maxPixels int) (img image.Image, err error) {
	if len(b) == 0 {
		return nil, badRequest("empty body: send an image file's bytes (%s), or a multipart form field \"image\"", decodedFormats)
	}
	cfg, format, err := imagefile.DecodeConfig(b)
	if errors.Is(err, image.ErrFormat) {
		return nil, badRequest("the body is not an image this server decodes (%s)", decodedFormats)
	}
	if err != nil {
		// Named by what it is (a CMYK TIFF, an arithmetic-coded JPEG), as
		// the folder scan names it: data's header check, which fails
		// before any pixel is decoded.
		if _, derr := imagefile.Decode(b, "request body"); derr != nil {
			return nil, badRequest("%s", strings.TrimPrefix(derr.Error(), "data: "))
		}
		return nil, badRequest("unreadable image header: %v", err)
	}
	if err := limits.CheckImage(format+" image", cfg.Width, cfg.Height); err != nil {
		return nil, tooLarge("%v", err)
	}
	if px := int64(cfg.Width) * int64(cfg.Height); px > int64(maxPixels) {
		return nil, tooLarge("%s image of %d×%d = %d pixels is over the server's limit of %d (--max-pixels): refused before decoding", format, cfg.Width, cfg.Height, px, maxPixels)
	}
	// Decoded as training decodes a file: EXIF orientation applied, lossy
	// WebP's colours converted as libwebp does, decoder panics recovered.
	img, err = imagefile.Decode(b, "request body")
	if err != nil {
		return nil, badRequest("%s", strings.TrimPrefix(err.Error(), "data: "))
	}
	return img, nil
}

// imageBody returns the image bytes of a request: the raw body, or the
// multipart form field "image".
func imageBody(r *http.Request) ([]byte, error) {
	ct := r.Header.Get("Content-Type")
	mt, params, perr := mime.ParseMediaType(ct)
	if mt != "multipart/form-data" {
		return readBody(r)
	}
	const invalid = "the body is not a valid multipart form: "
	if perr != nil {
		return nil, badRequest(invalid+"Content-Type %q: %v", ct, perr)
	}
	boundary := params["boundary"]
	if boundary == "" {
		return nil, badRequest(invalid+"Content-Type has no boundary parameter (%q)", ct)
	}
	mr := multipart.NewReader(r.Body, boundary)
	for parts := 0; ; parts++ {
		p, err := mr.NextPart()
		// Only a bare io.EOF is the form's closing boundary; the parser
		// wraps the EOF of a body that ends before it.
		if err == io.EOF {
			return nil, badRequest("multipart form has no field %q", "image")
		}
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return nil, tooLarge("request body is over the server's limit of %d bytes (--max-body)", mb.Limit)
		}
		if isTimeout(err) {
			return nil, readTimeout(err)
		}
		if errors.Is(err, io.EOF) && parts == 0 {
			return nil, badRequest(invalid+"no boundary line %q before the body ends (%v)", "--"+boundary, err)
		}
		if errors.Is(err, io.EOF) {
			return nil, badRequest(invalid+"the body ends before the closing boundary line %q (%v)", "--"+boundary+"--", err)
		}
		if err != nil {
			return nil, badRequest(invalid+"%v", err)
		}
		if p.FormName() != "image" {
			continue
		}
		b, err := io.ReadAll(p)
		if errors.As(err, &mb) {
			return nil, tooLarge("request body is over the server's limit of %d bytes (--max-body)", mb.Limit)
		}
		if isTimeout(err) {
			return nil, readTimeout(err)
		}
		if err != nil {
			return nil, badRequest("multipart field image: %v", err)
		}
		return b, nil
	}
}

// Guess is one class of a classification answer.
type Guess struct {
	// Class is the output's index; Label its name in ModelInfo.Classes
	// ("" where the model names fewer classes than it has outputs).
	Class int    `json:"class"`
	Label string `json:"label"`
	// Probability is the softmax of the logits at Class, in [0, 1].
	Probability float64 `json:"probability"`
}

// ClassifyResponse is the answer of POST /v1/models/NAME:classify: the
// model and version that answered, and the most probable classes, most
// probable first.
type ClassifyResponse struct {
	Model       string  `json:"model"`
	Version     string  `json:"version"`
	Predictions []Guess `json:"predictions"`
}

// handleImage is POST /v1/models/NAME:classify (top-k JSON, ?top=K,
// default 5) and NAME:segment (a PNG: the grey mask of class indices, or
// with ?overlay=1 the image with the mask blended in colour), with the
// image as the raw body or the multipart field "image".
func (s *Server) handleImage(w http.ResponseWriter, r *http.Request) {
	if err := s.image(w, r); err != nil {
		writeError(w, err)
	}
}

func (s *Server) image(w http.ResponseWriter, r *http.Request) (err error) {
	name, act, err := splitAction(r.PathValue("action"))
	action := models.Task(act)
	if err != nil {
		return err
	}
	version := ""
	if n := r.PathValue("name"); n != "" {
		name, version = n, name
	}
	defer func() { s.countFailure(name, version, err) }()
	if action != models.Classify && action != models.Segment {
		return notFound("unknown action %q: want classify or segment", action)
	}
	m, err := s.lookup(name, version)
	if err != nil {
		return err
	}
	if m.info.Task != action {
		return badRequest("model %q is a %s model; it cannot %s", name, m.info.Task, action)
	}
	if action == models.Segment {
		if err := maskable(m, name); err != nil {
			return err // before its image is read and the model runs
		}
	}
	overlay := false
	if action == models.Segment && r.URL.Query().Has("overlay") {
		q := r.URL.Query().Get("overlay")
		if overlay, err = strconv.ParseBool(q); err != nil {
			return badRequest("query overlay=%q: want 1 or 0 (true or false)", q)
		}
	}
	top := 5
	if action == models.Classify && r.URL.Query().Has("top") {
		top, err = strconv.Atoi(r.URL.Query().Get("top"))
		if err != nil || top < 1 {
			return badRequest("query top=%q: want a positive integer", r.URL.Query().Get("top"))
		}
	}
	ctx, cancel, err := s.requestContext(r, 0)
	if err != nil {
		return err
	}
	defer cancel()
	b, err := imageBody(r)
	if err != nil {
		return err
	}
	var img image.Image
	var x *tensor.Tensor
	err = s.decodeSlot(ctx, func() (err error) {
		if img, err = decodeImage(b, s.cfg.MaxImagePixels); err == nil {
			x, err = preprocess(m.backend, img)
		}
		return err
	})
	if err != nil {
		return err
	}
	y, m, err := s.infer(ctx, "http", name, version, x)
	if err != nil {
		return err
	}
	if i := finite(y.Data); i >= 0 {
		// An image's pixels are bounded: the model overflowed by itself.
		// The model ran and was counted a success, as the tensor routes
		// count a non-finite output; not a failure too.
		return counted{internal("model %q computed a non-finite output at %d from an image (weights of extreme magnitude?)", m.name, i)}
	}
	if action == models.Classify {
		writeJSON(w, http.StatusOK, ClassifyResponse{Model: m.name, Version: m.version, Predictions: topK(softmaxLast(y).Data, m.info.Classes, top)})
		return nil
	}
	if err := maskable(m, name); err != nil {
		// m is the model that ran, which may have replaced the one
		// checked above since: its y has m's classes. It ran and was
		// counted a success, as for a non-finite output.
		return counted{err}
	}
	// The mask is as large as the image: scaling it, the overlay and the
	// PNG cost a 4096² image more than its decoding did (seconds and
	// 200 MB with the overlay), so they take a decoding slot too — not
	// the sending, which a client that does not read would stretch to the
	// write timeout, holding the slot from everyone else.
	var answer []byte
	err = s.decodeSlot(ctx, func() (err error) {
		answer, err = encodeMask(ctx, img, y, overlay)
		return err
	})
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Content-Length", fmt.Sprint(len(answer)))
	w.Write(answer)
	return nil
}

// decodeSlot runs f holding one of the server's decoding slots, waiting
// for one until ctx ends, and gives the slot back however f ends: a panic
// in f, which the middleware recovers to answer 500, kept its slot for
// ever, and once every slot was kept each image request waited out its
// deadline.
func (s *Server) decodeSlot(ctx context.Context, f func() error) error {
	select {
	case s.decoding <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.decoding }()
	return f()
}

// preprocess calls the backend's Preprocess, turning its panics and errors
// into 400s.
func preprocess(b Backend, img image.Image) (x *tensor.Tensor, err error) {
	defer func() {
		if p := recover(); p != nil {
			x, err = nil, internal("preprocessing panicked: %v", p)
		}
	}()
	x, err = b.Preprocess(img)
	if err != nil {
		return nil, badRequest("preprocessing the image: %v", err)
	}
	return x, nil
}

// topK returns the k most probable classes of one row of probabilities.
func topK(probs []float32, classes []string, k int) []Guess {
	idx := tensor.TopK(probs, k)
	gs := make([]Guess, len(idx))
	for j, i := range idx {
		gs[j] = Guess{Class: i, Probability: float64(probs[i])}
		if i < len(classes) {
			gs[j].Label = classes[i]
		}
	}
	return gs
}

// maskable refuses (400) a segmentation model of more classes than a
// grey PNG mask holds (infer.MaskClasses), as residual segment does.
func maskable(m *model, name string) error {
	if n := len(m.info.Classes); n > infer.MaskClasses {
		return badRequest("model %q has %d classes; a grey PNG mask holds %d (POST /v2/models/%s/infer answers the logits)", name, n, infer.MaskClasses, name)
	}
	return nil
}

// encodeMask returns a segmentation's answer: logits [1,H',W',K] become a
// mask of class indices scaled (nearest neighbour) to the image's size,
// as a grey PNG or blended over the image. It stops, with ctx's error,
// when ctx ends (the client gone).
func encodeMask(ctx context.Context, img image.Image, y *tensor.Tensor, overlay bool) ([]byte, error) {
	if len(y.Shape) != 4 || y.Shape[0] != 1 {
		return nil, internal("segmentation model returned shape %v; want [1 H W classes]", y.Shape)
	}
	mh, mw, k := y.Shape[1], y.Shape[2], y.Shape[3]
	b := img.Bounds()
	h, wd := b.Dy(), b.Dx()
	mask := make([]uint8, h*wd)
	for py := range h {
		if py%256 == 0 {
			if err := ctx.Err(); err != nil { // the client is gone
				return nil, err
			}
		}
		sy := py * mh / h
		for px := range wd {
			best := tensor.ArgMax(y.Data[(sy*mw+px*mw/wd)*k:][:k])
			mask[py*wd+px] = uint8(best) // < MaskClasses: image checked the model that ran
		}
	}
	var out image.Image = infer.MaskImage(mask, h, wd)
	if overlay {
		o, err := infer.Overlay(transform.Pixels(img, 3), mask, h, wd, 3)
		if err != nil {
			return nil, internal("%v", err)
		}
		out = o
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	// BestSpeed: the default compression took 3 s of a 4096² overlay;
	// a mask is mostly runs that compress well either way.
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	if err := enc.Encode(&buf, out); err != nil {
		return nil, internal("encoding the mask: %v", err)
	}
	return buf.Bytes(), nil
}
