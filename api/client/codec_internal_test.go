package client

import (
	"testing"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	changelogv1 "github.com/fidlog/fidlog/proto/lustre/changelog/v1"
)

// TestCodecReadResponse: the hand decoder gives exactly what protobuf
// gives for every shape of ReadResponse, falls back to protobuf for
// fields it does not know, and clips each raw record's capacity.
func TestCodecReadResponse(t *testing.T) {
	unknown := protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 5)
	raw := &changelogv1.ReadResponse{RawRecords: [][]byte{[]byte("first record"), {}, []byte("third")}, DurableIndex: 9, FirstIndex: 1, NextIndex: 4}
	rawWire, _ := proto.Marshal(raw)
	for name, wire := range map[string][]byte{
		"raw":        rawWire,
		"heartbeat":  mustMarshal(t, &changelogv1.ReadResponse{Heartbeat: true, DurableIndex: 3, FirstIndex: 2, NextIndex: 4}),
		"structured": mustMarshal(t, &changelogv1.ReadResponse{Records: []*changelogv1.Record{{Index: 7, TypeName: "01CREAT", Name: []byte("x")}}, NextIndex: 8}),
		"empty":      nil,
		"unknown":    append(append([]byte(nil), rawWire...), unknown...),
		"truncated":  rawWire[:len(rawWire)-3],
	} {
		var want changelogv1.ReadResponse
		wantErr := proto.Unmarshal(wire, &want)
		var got changelogv1.ReadResponse
		got.NextIndex = 42 // a reused message is reset
		err := newCodec().Unmarshal(mem.BufferSlice{mem.SliceBuffer(wire)}, &got)
		if (err != nil) != (wantErr != nil) {
			t.Errorf("%s: error %v, protobuf says %v", name, err, wantErr)
			continue
		}
		if err == nil && !proto.Equal(&got, &want) {
			t.Errorf("%s: decoded %v, protobuf gives %v", name, &got, &want)
		}
	}
	var got changelogv1.ReadResponse
	if err := newCodec().Unmarshal(mem.BufferSlice{mem.SliceBuffer(rawWire)}, &got); err != nil {
		t.Fatal(err)
	}
	for i, r := range got.RawRecords {
		if cap(r) != len(r) {
			t.Errorf("raw record %d: capacity %d beyond its length %d (an append would overwrite the next)", i, cap(r), len(r))
		}
	}
	// Other messages use protobuf.
	in := &changelogv1.GetStateResponse{CurrentIndex: 5}
	var out changelogv1.GetStateResponse
	if err := newCodec().Unmarshal(mem.BufferSlice{mem.SliceBuffer(mustMarshal(t, in))}, &out); err != nil || out.GetCurrentIndex() != 5 {
		t.Fatalf("GetStateResponse: %v %v", &out, err)
	}
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
