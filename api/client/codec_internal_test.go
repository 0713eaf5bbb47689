package client

import (
	"bytes"
	"testing"
	"unsafe"

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
		// Decoded by hand, not by the protobuf fallback (which copies):
		// a non-empty record is a slice of the message it came in.
		if len(r) > 0 && !aliases(rawWire, r) {
			t.Errorf("raw record %d was copied, not sliced from the message (protobuf fallback?)", i)
		}
	}
	// Other messages use protobuf.
	in := &changelogv1.GetStateResponse{CurrentIndex: 5}
	var out changelogv1.GetStateResponse
	if err := newCodec().Unmarshal(mem.BufferSlice{mem.SliceBuffer(mustMarshal(t, in))}, &out); err != nil || out.GetCurrentIndex() != 5 {
		t.Fatalf("GetStateResponse: %v %v", &out, err)
	}
}

// aliases reports whether sub lies inside buf's memory.
func aliases(buf, sub []byte) bool {
	return len(sub) > 0 && len(buf) > 0 &&
		uintptr(unsafe.Pointer(&sub[0])) >= uintptr(unsafe.Pointer(&buf[0])) &&
		uintptr(unsafe.Pointer(&sub[len(sub)-1])) <= uintptr(unsafe.Pointer(&buf[len(buf)-1]))
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCodecSplitBuffers: gRPC hands a message over in several buffers
// (one per HTTP/2 data frame); the decoder gives what protobuf gives
// wherever the buffers split it (inside a tag, a length, a record).
func TestCodecSplitBuffers(t *testing.T) {
	in := &changelogv1.ReadResponse{DurableIndex: 1 << 40, FirstIndex: 300, NextIndex: 1<<40 + 1}
	for i := range 40 {
		in.RawRecords = append(in.RawRecords, bytes.Repeat([]byte{byte(i)}, i*7%200))
	}
	wire := mustMarshal(t, in)
	for _, size := range []int{1, 2, 3, 7, 64, 129, len(wire) - 1} {
		var data mem.BufferSlice
		for p := wire; len(p) > 0; p = p[min(size, len(p)):] {
			data = append(data, mem.SliceBuffer(p[:min(size, len(p))]))
		}
		var got changelogv1.ReadResponse
		if err := newCodec().Unmarshal(data, &got); err != nil {
			t.Fatalf("buffers of %d bytes: %v", size, err)
		}
		if !proto.Equal(&got, in) {
			t.Fatalf("buffers of %d bytes: decoded %v, want %v", size, &got, in)
		}
		for i, r := range got.RawRecords {
			if cap(r) != len(r) {
				t.Fatalf("buffers of %d bytes: raw record %d has capacity %d beyond its length %d", size, i, cap(r), len(r))
			}
		}
	}
}

// TestCodecKeepsBuffers: the records alias gRPC's pooled buffers, so the
// codec must keep those buffers from going back to the pool (and being
// overwritten by the next message) when gRPC frees the message.
func TestCodecKeepsBuffers(t *testing.T) {
	in := &changelogv1.ReadResponse{RawRecords: [][]byte{bytes.Repeat([]byte("a"), 3000), bytes.Repeat([]byte("b"), 3000)}, NextIndex: 3}
	pool := &countingPool{}
	var data mem.BufferSlice
	// One buffer per record, the last with next_index too.
	for i, r := range in.RawRecords {
		b := protowire.AppendBytes(protowire.AppendTag(*pool.Get(0), fRaw, protowire.BytesType), r)
		if i == len(in.RawRecords)-1 {
			b = protowire.AppendVarint(protowire.AppendTag(b, fNext, protowire.VarintType), in.NextIndex)
		}
		data = append(data, mem.NewBuffer(&b, pool))
	}
	var got changelogv1.ReadResponse
	if err := newCodec().Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	data.Free() // what gRPC does once Unmarshal returns
	if pool.puts != 0 {
		t.Fatalf("%d buffers the records alias went back to the pool", pool.puts)
	}
	if !proto.Equal(&got, in) {
		t.Fatal("records changed")
	}
	// A message with only heartbeat fields aliases nothing and keeps
	// nothing.
	hb := mustMarshal(t, &changelogv1.ReadResponse{Heartbeat: true, DurableIndex: 5})
	b := append(*pool.Get(0), hb...)
	data = mem.BufferSlice{mem.NewBuffer(&b, pool)}
	if err := newCodec().Unmarshal(data, &got); err != nil || !got.Heartbeat {
		t.Fatalf("heartbeat: %v %v", &got, err)
	}
	data.Free()
	if pool.puts != 1 {
		t.Fatalf("the heartbeat's buffer was not released (%d puts)", pool.puts)
	}
}

// countingPool hands out 4 KiB buffers (above gRPC's pooling threshold)
// and counts those given back.
type countingPool struct{ puts int }

func (p *countingPool) Get(int) *[]byte { b := make([]byte, 0, 4096); return &b }
func (p *countingPool) Put(b *[]byte)   { p.puts++ }
