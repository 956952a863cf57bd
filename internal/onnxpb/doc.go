// Package onnxpb is the ONNX protobuf schema (onnx.proto from ONNX 1.12,
// Apache-2.0, Copyright ONNX Project Contributors) compiled to Go with
// protoc-gen-go. Regenerate with `go generate` (needs protoc and
// protoc-gen-go v1.36).
package onnxpb

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go_opt=Monnx.proto=github.com/residual-nn/residual/internal/onnxpb onnx.proto
