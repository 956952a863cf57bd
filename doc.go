// Package residual is a pure-Go library and command-line tool for residual
// networks: it builds, trains, analyses and runs ResNets and U-Nets on an
// ordinary CPU.
//
// The packages:
//
//	tensor             float32 tensors (images NHWC), layout conversion, seeded RNG
//	autograd           reverse-mode differentiation: the differentiable operations
//	nn                 layers with parameters, initialisation, torchvision-style names
//	optim              SGD, Adam, AdamW, parameter groups, learning-rate schedules
//	models/mlp         residual multilayer perceptrons
//	checkpoint         residual's checkpoints: weights, optimizer state, typed metadata
//	infer              classify and segment images from Go programs, concurrently
//	interop/onnx       running ONNX graphs on the engine
//	distributed        data-parallel training: communicators (MPI with -tags mpi), gradient buckets, sampler
//	internal/kernels   the numeric kernels behind the operations
//	cmd/residual       the command-line tool
package residual
