// Package residual is a pure-Go library and command-line tool for residual
// networks: it builds, trains, analyses and runs ResNets and U-Nets on an
// ordinary CPU.
//
// The packages, from the command line down (imports point down):
//
//	cmd/residual        the command-line tool
//	serve               an inference server: Open Inference Protocol (REST, gRPC), image routes, batching, metrics
//	serve/inferencepb   the Open Inference Protocol's gRPC service and client, compiled by protoc
//	train               the training loop, resume, metrics, curves, evaluation
//	experiments         the experiments on why residual networks work
//	bench               the benchmarks behind 'residual bench'
//	bench/serveload     a load generator for the server: open-loop rates or closed-loop clients, loopback only
//	bench/fashionfolder Fashion-MNIST written as a folder of mixed-size PNG and JPEG photos (the README's fine-tuning data)
//	bench/ddp/ddpbench  a data-parallel training step timed: step, all-reduce and the share the overlap hides
//	bench/ddp/linkemu   a user-space netem: two network namespaces joined by a link of a rate and a delay
//	infer               classify and segment images from Go programs, concurrently
//	checkpoint          residual's checkpoints: weights, optimizer state, typed metadata
//	interop/onnx        ONNX export (by tracing) and an evaluator of ONNX graphs
//	interop/torch       PyTorch state dicts (.pth through a bounded unpickler, safetensors)
//	interop/keras       Keras ResNets in the TensorFlow.js layers format
//	distributed         data-parallel training: communicators (MPI with -tags mpi), gradient buckets, sampler
//	tensorboard         TensorBoard event files (scalars, images)
//	data                data sets, image folders, segmentation masks, augmentation, the prefetching loader
//	data/transform      torchvision's image transforms on 8-bit pixels, byte for byte as PIL computes them
//	data/imagefile      image files (JPEG, PNG, GIF, BMP, WebP, TIFF, PNM) decoded as PIL reads them, bounded
//	quant               int8 post-training quantization: calibration, per-channel weights, the int8 graph
//	models              the zoo from config values behind one interface; models/resnet, models/unet, models/mlp
//	optim               SGD, Adam, AdamW, parameter groups, schedules, gradient clipping, weight averages
//	nn                  layers with parameters, initialisation, torchvision-style names, batch-norm folding, freezing
//	autograd            reverse-mode differentiation: the operations, and where they fuse (fuse.go)
//	safetensors         the safetensors format
//	limits              the bounds applied to every untrusted input
//	tensor              float32 tensors (images NHWC), layout conversion, seeded RNG
//	internal/kernels    the numeric kernels behind the operations (Go assembly, AVX-512/AVX2)
//
// and the internal packages:
//
//	internal/kernels/gen         the generator of the kernels' tiled assembly (go generate)
//	internal/kernels/kernelstest the helpers with which the kernels' tests compare float32 with float64
//	internal/fixture             the golden fixtures of outside references and their comparisons
//	internal/atomicfile          files written whole or not at all (a synced temporary file, then a rename)
//	internal/fifotest            named pipes for the tests of readers that must not wait on one
//	internal/onnxpb              ONNX's protobuf schema, compiled by protoc-gen-go
//	internal/protosize           what decoding a protobuf message would allocate, read from its wire format
//	internal/bmp                 Windows and OS/2 bitmaps (16-bit, RLE and bitfields too), decoded as PIL decodes them
//	internal/pnm                 the Netpbm image formats (PBM, PGM, PPM), decoded as PIL decodes them
//	internal/pngheader           a PNG's header: its size where Go's decoder refuses it as past its int, its depth and colour type
//	internal/slicepool           slices recycled by size class (the kernels' scratch, the server's request buffers)
//	internal/typednil            whether an interface value is nil or holds a nil pointer (checks at API boundaries)
package residual
