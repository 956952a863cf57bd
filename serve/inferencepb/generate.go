// Package inferencepb holds the Go code protoc generates from
// inference.proto, the Open Inference Protocol's gRPC service
// (inference.GRPCInferenceService): the server's side, and the client a Go
// program calls residual serve (or any KServe v2 or Triton server) with,
// NewGRPCInferenceServiceClient. The protobuf registry refuses two Go
// packages generated for the same proto package (inference): a program
// that links this one — any program that imports package serve — uses it
// rather than stubs of its own from KServe's grpc_predict_v2.proto.
// Regenerate with protoc and the two plugins on PATH (go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
// and google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2):
//
//	go generate ./serve/inferencepb
package inferencepb

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative inference.proto
