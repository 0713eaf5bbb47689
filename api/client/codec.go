package client

import (
	"google.golang.org/grpc/encoding"
	gproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	changelogv1 "github.com/fidlog/fidlog/proto/lustre/changelog/v1"
)

// codec is gRPC's proto codec, except that a ReadResponse carrying raw
// records is decoded by hand, without copying: every raw record is a
// slice of the buffer gRPC read it into (capacity clipped to the record),
// and the codec keeps a reference to each buffer it slices so that gRPC
// never reuses it; a record split across two buffers is copied. Catch-up
// profiles put a third of the client's CPU in protobuf's per-record
// copies, and then, with one copy of each message, 14 % in allocating,
// clearing and filling that copy (makeslice, memclrNoHeapPointers,
// BufferSlice.CopyTo). A message with any other field (structured records,
// unknown fields) goes through protobuf.
type codec struct{ encoding.CodecV2 }

func newCodec() codec { return codec{encoding.GetCodecV2(gproto.Name)} }

// ReadResponse field numbers, taken from its descriptor
// (lustre/changelog/v1/changelog.proto) as the server's wire form takes
// them.
var (
	fRaw       = readResponseField("raw_records")
	fDurable   = readResponseField("durable_index")
	fFirst     = readResponseField("first_index")
	fNext      = readResponseField("next_index")
	fHeartbeat = readResponseField("heartbeat")
)

// readResponseField returns the number of ReadResponse's field name (a
// field renamed in the proto fails at init, not on the wire).
func readResponseField(name protoreflect.Name) protowire.Number {
	return (&changelogv1.ReadResponse{}).ProtoReflect().Descriptor().Fields().ByName(name).Number()
}

func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	msg, ok := v.(*changelogv1.ReadResponse)
	if !ok {
		return c.CodecV2.Unmarshal(data, v)
	}
	r := sliceReader{bufs: data}
	if r.decode(msg) {
		// gRPC frees data when this returns: keep what msg aliases.
		for i, used := range r.used {
			if used {
				data[i].Ref()
			}
		}
		return nil
	}
	return proto.Unmarshal(data.Materialize(), msg)
}

// sliceReader reads the fields of a message spread over gRPC's buffers.
type sliceReader struct {
	bufs mem.BufferSlice
	i    int    // buffer of cur
	cur  []byte // what is left of bufs[i]
	used []bool // buffers a record aliases
}

// more reports whether bytes are left, moving to the next non-empty buffer.
func (r *sliceReader) more() bool {
	for len(r.cur) == 0 {
		if r.i >= len(r.bufs) {
			return false
		}
		r.cur = r.bufs[r.i].ReadOnlyData()
		r.i++
	}
	return true
}

// varint reads a varint.
func (r *sliceReader) varint() (uint64, bool) {
	if !r.more() {
		return 0, false
	}
	if v, n := protowire.ConsumeVarint(r.cur); n > 0 {
		r.cur = r.cur[n:]
		return v, true
	}
	// Split across buffers (or malformed): byte by byte.
	var v uint64
	for shift := uint(0); shift < 64; shift += 7 {
		if !r.more() {
			return 0, false
		}
		b := r.cur[0]
		r.cur = r.cur[1:]
		v |= uint64(b&0x7f) << shift
		if b < 0x80 {
			return v, true
		}
	}
	return 0, false
}

// bytes reads n bytes: a slice of the current buffer if they are all in
// it, else a copy.
func (r *sliceReader) bytes(n uint64) ([]byte, bool) {
	if n == 0 {
		return []byte{}, true
	}
	if !r.more() {
		return nil, false
	}
	if n <= uint64(len(r.cur)) {
		v := r.cur[:n:n]
		r.cur = r.cur[n:]
		if r.used == nil {
			r.used = make([]bool, len(r.bufs))
		}
		r.used[r.i-1] = true
		return v, true
	}
	if n > uint64(r.bufs.Len()) {
		return nil, false
	}
	out := make([]byte, 0, n)
	for uint64(len(out)) < n {
		if !r.more() {
			return nil, false
		}
		k := min(uint64(len(r.cur)), n-uint64(len(out)))
		out = append(out, r.cur[:k]...)
		r.cur = r.cur[k:]
	}
	return out, true
}

// decode decodes the message into msg if it holds only the fields it
// knows. It returns false (msg unspecified) otherwise.
func (r *sliceReader) decode(msg *changelogv1.ReadResponse) bool {
	msg.Reset()
	if size := r.bufs.Len(); size > 0 {
		// Records are ~100-200 bytes; append grows it if they are smaller.
		msg.RawRecords = make([][]byte, 0, size/96+1)
	}
	for r.more() {
		tag, ok := r.varint()
		if !ok || tag>>3 > uint64(protowire.MaxValidNumber) {
			return false
		}
		num, typ := protowire.Number(tag>>3), protowire.Type(tag&7)
		switch {
		case num == fRaw && typ == protowire.BytesType:
			n, ok := r.varint()
			if !ok {
				return false
			}
			v, ok := r.bytes(n)
			if !ok {
				return false
			}
			msg.RawRecords = append(msg.RawRecords, v)
		case (num == fDurable || num == fFirst || num == fNext || num == fHeartbeat) && typ == protowire.VarintType:
			v, ok := r.varint()
			if !ok {
				return false
			}
			switch num {
			case fDurable:
				msg.DurableIndex = v
			case fFirst:
				msg.FirstIndex = v
			case fNext:
				msg.NextIndex = v
			case fHeartbeat:
				msg.Heartbeat = protowire.DecodeBool(v)
			}
		default:
			return false
		}
	}
	if len(msg.RawRecords) == 0 {
		msg.RawRecords = nil
	}
	return true
}
