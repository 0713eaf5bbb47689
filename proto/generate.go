// Package proto holds the wire contract of fidlog: the .proto sources under
// lustre/<area>/v1 (a buf module, see buf.yaml at the repository root) and
// the Go code generated from them beside each file. It contains no code of
// its own; it exists so that `go generate ./proto` regenerates everything.
//
// The generated *.pb.go and *_grpc.pb.go files are committed and never
// edited by hand. buf runs from tools.mod and the protoc-gen-go and
// protoc-gen-go-grpc plugins from protoc.mod, both kept apart from the main
// module; protoc.mod pins the plugins to the runtime the project builds
// against, so the generated code matches it.
package proto

//go:generate go tool -modfile=../tools.mod buf generate --template ../buf.gen.yaml --output .. ..
