// Package proto holds the wire contract of fidlog: the .proto sources under
// lustre/<area>/v1 (a buf module, see buf.yaml at the repository root) and
// the Go code generated from them beside each file. It contains no code of
// its own; it exists so that `go generate ./proto` regenerates everything.
//
// The generated *.pb.go and *_grpc.pb.go files are committed and never
// edited by hand. buf runs from tools.mod, kept apart from the main module;
// the protoc-gen-go and protoc-gen-go-grpc plugins are the main module's
// pinned tools, so the generated code matches the runtime it builds against.
package proto

//go:generate go tool -modfile=../tools.mod buf generate --template ../buf.gen.yaml --output .. ..
