// Package torch loads PyTorch state dicts — torchvision's weights saved
// with torch.save (.pth/.pt: the zip of pickles, or the legacy format) or
// as safetensors — as residual tensors in PyTorch's layouts, ready for
// nn.LoadTorchState.
//
// Pickles are interpreted with github.com/nlpodyssey/gopickle, which runs
// the pickle opcodes in Go and never executes code. gopickle resolves
// collections.OrderedDict, copy_reg._reconstructor and __builtin__.object
// itself, in Go; this package resolves the other globals a state dict
// needs (torch storage classes and the tensor rebuild functions) and
// refuses any other by name, as PyTorch's weights_only loading does. The
// two gopickle resolves beyond OrderedDict build no tensor: a pickle that
// uses them is refused, as no state dict or with gopickle's error when it
// calls them.
//
// Everything else — the zip archive, the legacy stream, the storages and
// the tensors' sizes, strides and offsets — is read here, and checked
// before anything is allocated: each pickle's lengths against its bytes
// and limits.HeaderBytes (readPickle), each storage against its zip entry
// and limits.TotalBytes, each tensor against limits.TensorElements and the
// storage it views, and all the tensors together against the storages: a
// tensor may not hold more values than its storage, and the distinct views
// of the storages may not hold more than twice their values in all (plus
// 4 MB of float32, for small state dicts that share more; checkDecoded),
// nor more than the memory available. Names that view the same values (a
// tied weight saved under several keys: the same storage, offset, size
// and stride) are one view, decoded once into one tensor that they
// share. What a file decodes to is thus at most 8 float32 bytes per byte
// of its storages, plus 4 MB, and its storages hold no more bytes than
// the file where they are stored, up to 1032 times more where they are
// deflated. Storage data is read with io.ReadFull and checked against the
// archive's CRC, so a truncated or corrupt file is an error, never zeros;
// deflate-compressed entries are read like stored ones.
package torch

import (
	"archive/zip"
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/big"
	"path/filepath"
	"strings"

	"github.com/nlpodyssey/gopickle/types"

	"github.com/residual-nn/residual/limits"
	"github.com/residual-nn/residual/safetensors"
	"github.com/residual-nn/residual/tensor"
)

// storageDtypes maps torch's storage classes to the safetensors dtype of
// their values (whose decoder this package shares).
var storageDtypes = map[string]string{
	"FloatStorage": "F32", "DoubleStorage": "F64", "HalfStorage": "F16", "BFloat16Storage": "BF16",
	"LongStorage": "I64", "IntStorage": "I32", "ShortStorage": "I16", "CharStorage": "I8",
	"ByteStorage": "U8", "BoolStorage": "BOOL",
}

// storageClass is what the pickle's torch.XStorage globals resolve to.
type storageClass struct{ dtype string }

// storage is a persistent reference to a block of values: a zip entry
// (data/<key>) or a legacy file's storage record.
type storage struct {
	class storageClass
	key   string
	numel int64
	data  []byte // the raw values, once read
}

// bytes returns the size of the storage's values.
func (st *storage) bytes() int64 {
	size, _ := safetensors.DtypeSize(st.class.dtype)
	return st.numel * int64(size)
}

// tensorRef is what torch._utils._rebuild_tensor_v2 returns: a checked
// view of a storage, converted to a tensor once the storage is read.
type tensorRef struct {
	st     *storage
	offset int
	size   []int
	stride []int
}

// rebuildTensor is torch._utils._rebuild_tensor_v2(storage, offset, size,
// stride, requires_grad, backward_hooks[, metadata]).
type rebuildTensor struct{}

func (rebuildTensor) Call(args ...any) (any, error) {
	if len(args) < 4 {
		return nil, fmt.Errorf("_rebuild_tensor_v2 called with %d arguments, want at least 4", len(args))
	}
	st, ok := args[0].(*storage)
	if !ok {
		return nil, fmt.Errorf("_rebuild_tensor_v2: a %T where a storage belongs", args[0])
	}
	offset, ok := args[1].(int)
	if !ok || offset < 0 {
		return nil, fmt.Errorf("_rebuild_tensor_v2: storage offset %v is not a non-negative integer", args[1])
	}
	size, err := intTuple("size", args[2])
	if err != nil {
		return nil, err
	}
	stride, err := intTuple("stride", args[3])
	if err != nil {
		return nil, err
	}
	if len(size) != len(stride) {
		return nil, fmt.Errorf("size %v and stride %v differ in rank", size, stride)
	}
	if err := limits.CheckElements("tensor", size...); err != nil {
		return nil, err
	}
	// The offset is checked first, whatever the size: an empty tensor's
	// offset is sliced at too. offset ≤ numel ≤ limits.TotalBytes, and
	// each step below is checked before it is added, so nothing overflows.
	if int64(offset) > st.numel {
		return nil, fmt.Errorf("storage offset %d lies beyond its %d-value storage", offset, st.numel)
	}
	n := int64(tensor.NumElements(size))
	if n > st.numel {
		return nil, fmt.Errorf("tensor of size %v holds %d values, its storage only %d (expanded views are not supported)", size, n, st.numel)
	}
	if n > 0 { // the last element must lie inside the storage
		if int64(offset) == st.numel {
			return nil, fmt.Errorf("size %v at offset %d starts past the end of its %d-value storage", size, offset, st.numel)
		}
		last := int64(offset) // < st.numel
		for i, d := range size {
			s := int64(stride[i])
			if s < 0 || s > st.numel {
				return nil, fmt.Errorf("stride %v outside its %d-value storage", stride, st.numel)
			}
			if s > 0 && int64(d-1) > (st.numel-1-last)/s {
				return nil, fmt.Errorf("size %v, stride %v at offset %d reach past the end of a %d-value storage", size, stride, offset, st.numel)
			}
			last += int64(d-1) * s
		}
	}
	return &tensorRef{st: st, offset: offset, size: size, stride: stride}, nil
}

// rebuildParameter is torch._utils._rebuild_parameter(data, requires_grad,
// backward_hooks): an nn.Parameter saved whole is its tensor.
type rebuildParameter struct{}

func (rebuildParameter) Call(args ...any) (any, error) {
	if len(args) < 1 {
		return nil, fmt.Errorf("_rebuild_parameter called without arguments")
	}
	if _, ok := args[0].(*tensorRef); !ok {
		return nil, fmt.Errorf("_rebuild_parameter: a %T where a tensor belongs", args[0])
	}
	return args[0], nil
}

// maxRank bounds a tensor's rank (PyTorch's own bound is 64).
const maxRank = 64

func intTuple(what string, v any) ([]int, error) {
	t, ok := v.(*types.Tuple)
	if !ok {
		return nil, fmt.Errorf("tensor %s is a %T, not a tuple", what, v)
	}
	if t.Len() > maxRank {
		return nil, fmt.Errorf("tensor %s has rank %d, more than %d", what, t.Len(), maxRank)
	}
	out := make([]int, t.Len())
	for i := range out {
		d, ok := t.Get(i).(int)
		if !ok || d < 0 {
			return nil, fmt.Errorf("tensor %s %v: entry %d is not a non-negative integer", what, *t, i)
		}
		out[i] = d
	}
	return out, nil
}

// findClass resolves the globals a state dict needs and refuses any other
// by name. The pickle reader resolves collections.OrderedDict,
// copy_reg._reconstructor and __builtin__.object itself, before asking
// this.
func findClass(module, name string) (any, error) {
	switch module + "." + name {
	case "torch._utils._rebuild_tensor_v2":
		return rebuildTensor{}, nil
	case "torch._utils._rebuild_parameter":
		return rebuildParameter{}, nil
	}
	if dt, ok := storageDtypes[name]; ok && module == "torch" {
		return storageClass{dt}, nil
	}
	hint := ""
	if module == "__main__" || strings.HasPrefix(module, "torch.nn.") || strings.HasPrefix(module, "torchvision.") {
		// A module class: torch.save(model) pickles the whole module.
		hint = " (a whole model, saved with torch.save(model)? save model.state_dict() instead, and import that)"
	}
	return nil, fmt.Errorf("the pickle names %s.%s, which a state dict does not need; refusing to load it%s", module, name, hint)
}

// storages collects the storages a pickle refers to, by key.
type storages struct {
	byKey map[string]*storage
	bytes int64 // their declared data, in all
}

// ref returns the storage named by a persistent id
// ("storage", class, key, location, numel[, view]).
func (s *storages) ref(pid any, legacy bool) (any, error) {
	t, ok := pid.(*types.Tuple)
	if !ok || t.Len() < 5 || t.Get(0) != "storage" {
		return nil, fmt.Errorf("persistent id %v is not a storage reference", pid)
	}
	class, ok1 := t.Get(1).(storageClass)
	key, ok2 := t.Get(2).(string)
	numel, ok3 := t.Get(4).(int)
	if !ok1 || !ok2 || !ok3 || numel < 0 {
		return nil, fmt.Errorf("storage reference %v: want (storage class, key, location, size)", *t)
	}
	if legacy && t.Len() > 5 && t.Get(5) != nil {
		return nil, fmt.Errorf("storage %q is a view of another storage, which legacy files rarely hold; re-save with a current PyTorch", key)
	}
	if st, ok := s.byKey[key]; ok {
		if st.class != class || st.numel != int64(numel) {
			return nil, fmt.Errorf("storage %q is referred to as both %d %s and %d %s values", key, st.numel, st.class.dtype, numel, class.dtype)
		}
		return st, nil
	}
	size, _ := safetensors.DtypeSize(class.dtype)
	if int64(numel) > limits.TotalBytes/int64(size) || s.bytes+int64(numel)*int64(size) > limits.TotalBytes {
		return nil, fmt.Errorf("storage %q of %d %s values: the storages exceed %d bytes (limits.TotalBytes)", key, numel, class.dtype, limits.TotalBytes)
	}
	s.bytes += int64(numel) * int64(size)
	st := &storage{class: class, key: key, numel: int64(numel)}
	s.byKey[key] = st
	return st, nil
}

// LoadStateDict reads a state dict from a .safetensors file or a
// torch.save file (.pth, .pt, .bin) and returns its tensors by name as
// float32 (integer entries such as num_batches_tracked converted). Names
// of a torch.save file that view the same values (a tied weight) map to
// the same tensor, as they share one storage in PyTorch.
func LoadStateDict(path string) (map[string]*tensor.Tensor, error) {
	if strings.EqualFold(filepath.Ext(path), ".safetensors") {
		f, err := safetensors.Read(path)
		if err != nil {
			return nil, err
		}
		return f.Tensors, nil
	}
	// Opened without waiting for a writer: a FIFO would block os.Open
	// itself, beyond any signal's reach; it is refused below.
	f, err := limits.OpenNoWait(path)
	if err != nil {
		return nil, fmt.Errorf("torch: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("torch: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("torch: %s is not a regular file", path)
	}
	if st.Size() > limits.TotalBytes+limits.HeaderBytes {
		return nil, fmt.Errorf("torch: %s has %d bytes, more than a state dict may (limits.TotalBytes + limits.HeaderBytes)", path, st.Size())
	}
	out, err := decode(f, st.Size())
	if err != nil {
		return nil, fmt.Errorf("torch: %s: %w", path, err)
	}
	return out, nil
}

// decode reads a torch.save file of size bytes: the zip format or the
// legacy one, told apart by how they begin.
func decode(r io.ReaderAt, size int64) (map[string]*tensor.Tensor, error) {
	head := make([]byte, len(legacyMagic))
	n, _ := r.ReadAt(head, 0)
	switch {
	case n >= 4 && string(head[:4]) == "PK\x03\x04":
		return loadZip(r, size)
	case n == len(legacyMagic) && bytes.Equal(head, legacyMagic):
		c := &counter{r: io.NewSectionReader(r, 0, size)}
		br := bufio.NewReader(c)
		return loadLegacy(br, func() int64 { return size - (c.n - int64(br.Buffered())) })
	}
	return nil, fmt.Errorf("neither a torch.save zip archive nor a legacy torch.save file (%d bytes read)", n)
}

// legacyMagic is how torch.save's legacy (non-zip) format begins: the
// pickled (protocol 2) magic number 0x1950a86a20f9469cfc6c.
var legacyMagic = []byte{0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19}

// loadZip reads torch.save's zip format: <prefix>/data.pkl holds the
// pickled dict, <prefix>/data/<key> each storage's raw little-endian
// values.
func loadZip(f io.ReaderAt, size int64) (map[string]*tensor.Tensor, error) {
	zr, err := zip.NewReader(f, size)
	if err != nil {
		return nil, fmt.Errorf("bad zip archive: %w", err)
	}
	entries := map[string]*zip.File{}
	var pkl *zip.File
	prefix := ""
	for _, zf := range zr.File {
		entries[zf.Name] = zf
		dir, base := pathSplit(zf.Name)
		switch base {
		case "constants.pkl":
			return nil, fmt.Errorf("a TorchScript archive (%s), not a state dict; save model.state_dict()", zf.Name)
		case "data.pkl":
			if pkl != nil {
				return nil, fmt.Errorf("two pickles (%s and %s) in one archive", pkl.Name, zf.Name)
			}
			pkl, prefix = zf, dir
		}
	}
	if pkl == nil {
		return nil, fmt.Errorf("no data.pkl in the archive")
	}
	if bo, ok := entries[prefix+"byteorder"]; ok {
		b, err := readEntry(bo, 0, 16)
		if err != nil {
			return nil, err
		}
		if string(b) != "little" {
			return nil, fmt.Errorf("byte order %q; only little-endian files are supported", b)
		}
	}
	b, err := readEntry(pkl, 0, limits.HeaderBytes)
	if err != nil {
		return nil, err
	}
	p, err := readPickle(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", pkl.Name, err)
	}
	ss := &storages{byKey: map[string]*storage{}}
	obj, err := unpickle(p, findClass, func(pid any) (any, error) { return ss.ref(pid, false) })
	if err != nil {
		return nil, fmt.Errorf("%s: %w", pkl.Name, err)
	}
	refs, err := stateDict(obj)
	if err != nil {
		return nil, err
	}
	if err := checkDecoded(refs, ss); err != nil {
		return nil, err
	}
	// Every storage's entry is found and its declared size checked before
	// the memory they take is: a file that lacks them says so.
	storageEntries := map[*storage]*zip.File{}
	for _, st := range ss.byKey {
		zf, ok := entries[prefix+"data/"+st.key]
		if !ok {
			return nil, fmt.Errorf("storage %q has no entry %sdata/%s in the archive", st.key, prefix, st.key)
		}
		if err := checkEntry(zf, st.bytes(), st.bytes()); err != nil {
			return nil, fmt.Errorf("storage %q: %w", st.key, err)
		}
		storageEntries[st] = zf
	}
	if err := checkMemory(refs, ss); err != nil {
		return nil, err
	}
	for st, zf := range storageEntries {
		if st.data, err = readEntry(zf, st.bytes(), st.bytes()); err != nil {
			return nil, fmt.Errorf("storage %q: %w", st.key, err)
		}
	}
	return convertAll(refs)
}

// pathSplit splits a zip entry name at its last slash (the slash stays
// with the folder).
func pathSplit(name string) (dir, base string) {
	i := strings.LastIndexByte(name, '/')
	return name[:i+1], name[i+1:]
}

// readEntry reads a whole zip entry of exactly want bytes (any size up to
// limit when want is 0), checking its declared size before allocating
// (checkEntry) and its CRC after reading.
func readEntry(zf *zip.File, want, limit int64) ([]byte, error) {
	if err := checkEntry(zf, want, limit); err != nil {
		return nil, err
	}
	n := zf.UncompressedSize64
	rc, err := zf.Open()
	if err != nil {
		return nil, fmt.Errorf("entry %s: %w", zf.Name, err)
	}
	defer rc.Close()
	b := make([]byte, n)
	if m, err := io.ReadFull(rc, b); err != nil {
		return nil, fmt.Errorf("entry %s truncated: %d of %d bytes (%v)", zf.Name, m, n, err)
	}
	// Reading on to the end makes the zip reader check the CRC (and that
	// no data follows what the header declared).
	if m, err := rc.Read(make([]byte, 1)); m != 0 || err != io.EOF {
		if err == nil || err == io.EOF {
			err = fmt.Errorf("more data than the %d bytes declared", n)
		}
		return nil, fmt.Errorf("entry %s: %w", zf.Name, err)
	}
	return b, nil
}

// checkEntry checks that a zip entry declares exactly want bytes (any
// size up to limit when want is 0), and a size its stored bytes can give.
func checkEntry(zf *zip.File, want, limit int64) error {
	n := zf.UncompressedSize64
	if (want > 0 && n != uint64(want)) || n > uint64(limit) {
		if want > 0 {
			return fmt.Errorf("entry %s holds %d bytes, the pickle describes %d", zf.Name, n, want)
		}
		return fmt.Errorf("entry %s holds %d bytes, more than %d", zf.Name, n, limit)
	}
	// The declared size must be one the stored bytes can give: equal to
	// them when stored, within deflate's ratio (at most 1032:1) when
	// compressed, so that a header cannot make this allocate what the file
	// does not hold.
	switch c := zf.CompressedSize64; zf.Method {
	case zip.Store:
		if c != n {
			return fmt.Errorf("entry %s is stored with %d bytes but declares %d", zf.Name, c, n)
		}
	case zip.Deflate:
		if n > 1032*c+64 {
			return fmt.Errorf("entry %s declares %d bytes, more than its %d compressed bytes can hold", zf.Name, n, c)
		}
	}
	return nil
}

// loadLegacy reads torch.save's format before PyTorch 1.6: pickles of
// the magic number, the protocol version and the system's description,
// the pickled dict, the list of storage keys, then for each key an 8-byte
// value count and the raw values.
func loadLegacy(r *bufio.Reader, remaining func() int64) (map[string]*tensor.Tensor, error) {
	next := func(what string, load func(any) (any, error)) (any, error) {
		p, err := readPickle(r)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		obj, err := unpickle(p, findClass, load)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		return obj, nil
	}
	magic, err := next("magic number", nil)
	if err != nil {
		return nil, err
	}
	if m, ok := magic.(*big.Int); !ok || m.Text(16) != "1950a86a20f9469cfc6c" {
		return nil, fmt.Errorf("bad magic number %v", magic)
	}
	version, err := next("protocol version", nil)
	if err != nil {
		return nil, err
	}
	if version != 1001 {
		return nil, fmt.Errorf("protocol version %v, want 1001", version)
	}
	sys, err := next("system description", nil)
	if err != nil {
		return nil, err
	}
	if d, ok := sys.(*types.Dict); ok {
		if le, found := d.Get("little_endian"); found && le != true {
			return nil, fmt.Errorf("written on a big-endian machine; only little-endian files are supported")
		}
	}
	ss := &storages{byKey: map[string]*storage{}}
	obj, err := next("state dict", func(pid any) (any, error) { return ss.ref(pid, true) })
	if err != nil {
		return nil, err
	}
	refs, err := stateDict(obj)
	if err != nil {
		return nil, err
	}
	if err := checkDecoded(refs, ss); err != nil {
		return nil, err
	}
	keys, err := next("storage keys", nil)
	if err != nil {
		return nil, err
	}
	list, ok := keys.(*types.List)
	if !ok || list.Len() != len(ss.byKey) {
		return nil, fmt.Errorf("the storage key list %v does not name the %d storages the state dict uses", keys, len(ss.byKey))
	}
	// The storages, each after its 8-byte count, must fit in what is left
	// of the file before the memory they take is checked.
	if need, left := ss.bytes+8*int64(list.Len()), remaining(); need > left {
		return nil, fmt.Errorf("storages truncated: %d bytes with their counts, the file has %d left", need, left)
	}
	if err := checkMemory(refs, ss); err != nil {
		return nil, err
	}
	for i := range list.Len() {
		key, _ := list.Get(i).(string)
		st, ok := ss.byKey[key]
		if !ok || st.data != nil {
			return nil, fmt.Errorf("storage key %v is unknown or repeated", list.Get(i))
		}
		var count [8]byte
		if _, err := io.ReadFull(r, count[:]); err != nil {
			return nil, fmt.Errorf("storage %q: truncated before its size", key)
		}
		if c := binary.LittleEndian.Uint64(count[:]); c != uint64(st.numel) {
			return nil, fmt.Errorf("storage %q holds %d values, the pickle describes %d", key, c, st.numel)
		}
		if n, left := st.bytes(), remaining(); n > left {
			return nil, fmt.Errorf("storage %q truncated: %d bytes, the file has %d left", key, n, left)
		}
		st.data = make([]byte, st.bytes())
		if m, err := io.ReadFull(r, st.data); err != nil {
			return nil, fmt.Errorf("storage %q truncated: %d of %d bytes", key, m, len(st.data))
		}
	}
	return convertAll(refs)
}

// counter counts the bytes read through it.
type counter struct {
	r io.Reader
	n int64
}

func (c *counter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// named is one entry of a state dict.
type named struct {
	name string
	t    *tensorRef
}

// stateDict checks that the unpickled object is a dict of tensors by name.
func stateDict(obj any) ([]named, error) {
	entries, ok := dictEntries(obj)
	if !ok {
		return nil, fmt.Errorf("holds a %T, not a state dict (save model.state_dict(), not the model)", obj)
	}
	if err := wrappedStateDict(entries); err != nil {
		return nil, err
	}
	var out []named
	for _, e := range entries {
		name, ok := e[0].(string)
		if !ok {
			return nil, fmt.Errorf("a key of type %T, not a parameter name", e[0])
		}
		t, ok := e[1].(*tensorRef)
		if !ok {
			return nil, fmt.Errorf("%q is a %s, not a tensor (a state dict maps parameter names to tensors)", name, pyType(e[1]))
		}
		out = append(out, named{name, t})
	}
	return out, nil
}

// sharedValues is what the distinct views of a state dict may hold
// beyond twice the values of the storages they view (see checkDecoded).
const sharedValues = 1 << 20

// checkDecoded bounds what the tensors decode to, before any storage is
// read. Tensors may view the same storage, and each may hold as many
// values as its storage, so the values of the distinct views (viewKey:
// names that view the same values are decoded once, into one tensor) are
// bounded by the storages' values: at most twice them, plus sharedValues
// (4 MB of float32) for small state dicts that share more. A tied weight
// saved under any number of names is one view; a weight and views of its
// parts (the rows of a fused projection) hold twice its values. Without
// this, a 16 kB deflated file of 16 views of one 16 MB storage, each at
// its own offset, decoded to 1 GB. The values must also fit within
// limits.TotalBytes as float32; checkMemory bounds them by the memory
// available once the storages are known to be in the file.
func checkDecoded(refs []named, ss *storages) error {
	values := viewValues(refs)
	if values > limits.TotalBytes/4 {
		return fmt.Errorf("the tensors hold more than %d bytes of float32 values (limits.TotalBytes)", limits.TotalBytes)
	}
	var stored int64
	for _, st := range ss.byKey {
		stored += st.numel // each ≤ limits.TotalBytes, as are their bytes in all
	}
	if values > 2*stored+sharedValues {
		return fmt.Errorf("the tensors' distinct views hold %d values, more than twice the %d values of the storages they view (plus %d): more views of the same values than a state dict has", values, stored, sharedValues)
	}
	return nil
}

// checkMemory refuses a state dict whose storages and float32 tensors
// need more memory than is available (limits.CheckMemory), once the file
// is known to hold the storages.
func checkMemory(refs []named, ss *storages) error {
	return limits.CheckMemory("the state dict's storages and tensors", ss.bytes+4*viewValues(refs))
}

// viewKey identifies the values a tensorRef views: names whose views have
// the same key share one tensor.
type viewKey struct {
	st     *storage
	offset int
	shape  string // the size and the stride
}

func (r *tensorRef) key() viewKey { return viewKey{r.st, r.offset, fmt.Sprint(r.size, r.stride)} }

// viewValues returns the values of the refs' distinct views: what they
// decode to. Each view holds at most limits.TensorElements values and
// there are fewer views than bytes of pickle (limits.HeaderBytes), so the
// sum does not overflow.
func viewValues(refs []named) int64 {
	seen := map[viewKey]bool{}
	var values int64
	for _, n := range refs {
		if k := n.t.key(); !seen[k] {
			seen[k] = true
			values += int64(tensor.NumElements(n.t.size))
		}
	}
	return values
}

// dictEntries returns the key-value pairs of an unpickled dict, in order,
// and whether obj is one.
func dictEntries(obj any) ([][2]any, bool) {
	var out [][2]any
	switch d := obj.(type) {
	case *types.OrderedDict:
		for e := d.List.Front(); e != nil; e = e.Next() {
			entry := e.Value.(*types.OrderedDictEntry)
			out = append(out, [2]any{entry.Key, entry.Value})
		}
	case *types.Dict:
		for _, e := range *d {
			out = append(out, [2]any{e.Key, e.Value})
		}
	default:
		return nil, false
	}
	return out, true
}

// wrappedStateDict returns an error naming the state dict inside a
// training checkpoint ({"epoch": 3, "model_state_dict": {…},
// "optimizer_state_dict": {…}}, as PyTorch's tutorials save one): the
// entries whose values are dicts of tensors, whichever order they come in.
// It returns nil for a dict holding no dict.
func wrappedStateDict(entries [][2]any) error {
	var dicts, states []string
	for _, e := range entries {
		inner, ok := dictEntries(e[1])
		if !ok {
			continue
		}
		name := fmt.Sprint(e[0])
		dicts = append(dicts, name)
		tensors := len(inner) > 0
		for _, ie := range inner {
			if _, ok := ie[1].(*tensorRef); !ok {
				tensors = false
				break
			}
		}
		if tensors {
			states = append(states, name)
		}
	}
	switch {
	case len(dicts) == 0:
		return nil
	case len(states) == 0:
		return fmt.Errorf("the file holds a dict of dicts (%q), none of them a state dict of tensors: save model.state_dict() alone and import that", dicts)
	}
	return fmt.Errorf("the file holds a checkpoint that wraps a state dict (in %q): save the state dict alone (torch.save(ckpt[%q], \"weights.pth\")) and import that", states, states[0])
}

// pyType names an unpickled value's Python type, for errors.
func pyType(v any) string {
	switch v.(type) {
	case nil:
		return "None"
	case string:
		return "str"
	case int, int64, *big.Int:
		return "int"
	case float64:
		return "float"
	case bool:
		return "bool"
	case *types.List, []any:
		return "list"
	case *types.Tuple:
		return "tuple"
	}
	return fmt.Sprintf("%T", v)
}

// convertAll converts every distinct view once the storages are read:
// names that view the same values share its tensor.
func convertAll(refs []named) (map[string]*tensor.Tensor, error) {
	out := make(map[string]*tensor.Tensor, len(refs))
	views := map[viewKey]*tensor.Tensor{}
	for _, r := range refs {
		if _, dup := out[r.name]; dup {
			return nil, fmt.Errorf("%q appears twice", r.name)
		}
		k := r.t.key()
		if views[k] == nil {
			views[k] = r.t.convert()
		}
		out[r.name] = views[k]
	}
	return out, nil
}

// convert copies the (possibly strided) view out of its storage, whose
// bounds rebuildTensor checked.
func (r *tensorRef) convert() *tensor.Tensor {
	out := tensor.New(r.size...)
	dt := r.st.class.dtype
	size, _ := safetensors.DtypeSize(dt)
	if contiguous(r.size, r.stride) {
		safetensors.DecodeValues(out.Data, r.st.data[r.offset*size:], dt)
		return out
	}
	idx := make([]int, len(r.size))
	for i := range out.Data {
		off := r.offset
		for a, v := range idx {
			off += v * r.stride[a]
		}
		safetensors.DecodeValues(out.Data[i:i+1], r.st.data[off*size:], dt)
		for a := len(idx) - 1; a >= 0; a-- {
			if idx[a]++; idx[a] < r.size[a] {
				break
			}
			idx[a] = 0
		}
	}
	return out
}

// contiguous reports whether stride is the row-major stride of size
// (dimensions of size 1 may have any stride).
func contiguous(size, stride []int) bool {
	want := 1
	for i := len(size) - 1; i >= 0; i-- {
		if size[i] != 1 && stride[i] != want {
			return false
		}
		want *= size[i]
	}
	return true
}
