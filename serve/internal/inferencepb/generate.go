// Package inferencepb holds the Go code protoc generates from
// inference.proto, the Open Inference Protocol's gRPC service
// (inference.GRPCInferenceService). Regenerate with protoc and the two
// plugins on PATH (go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
// and google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2):
//
//	go generate ./serve/internal/inferencepb
package inferencepb

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative inference.proto
