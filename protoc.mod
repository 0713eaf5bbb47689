// Code generators for the wire contract (protoc-gen-go, protoc-gen-go-grpc),
// kept out of the main module graph. Not in tools.mod: buf there needs a newer
// google.golang.org/protobuf than the runtime this project builds against, and
// the generator must match the runtime (.ci/proto-check checks it).
// Used by buf.gen.yaml as: go tool -modfile=../protoc.mod protoc-gen-go
// Update with: go get -modfile=protoc.mod -tool MODULE/cmd/...@VERSION
// Never run `go mod tidy` on this file.
module github.com/fidlog/fidlog/protoc

go 1.26.8

tool (
	google.golang.org/grpc/cmd/protoc-gen-go-grpc
	google.golang.org/protobuf/cmd/protoc-gen-go
)

require (
	google.golang.org/grpc/cmd/protoc-gen-go-grpc v1.6.2 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)
