package api

import (
	"math/bits"
	"sync"

	"google.golang.org/grpc/encoding"
	gproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"

	changelogv1 "github.com/fidlog/fidlog/proto/lustre/changelog/v1"
)

// A raw Read batch is built in its wire form while the log is scanned:
// each stored record is copied once, from Pebble's block straight into a
// pooled buffer that becomes the gRPC message, which the transport frees
// back to the pool once written. Built as a ReadResponse, every record was
// copied into an arena allocated per message (zeroed by the runtime), then
// again by protobuf into a buffer gRPC takes from its own pool (and
// zeroes): catch-up profiles put 40 % of the server's CPU in those copies
// and clears (memmove, memclrNoHeapPointers) against 45 % in the scan.

// ReadResponse field numbers, taken from its descriptor
// (lustre/changelog/v1/changelog.proto) as api/client's codec takes them.
var (
	wireRaw     = readResponseField("raw_records")
	wireDurable = readResponseField("durable_index")
	wireFirst   = readResponseField("first_index")
	wireNext    = readResponseField("next_index")
)

// readResponseField returns the number of ReadResponse's field name (a
// field renamed in the proto fails at init, not on the wire).
func readResponseField(name protoreflect.Name) protowire.Number {
	return (&changelogv1.ReadResponse{}).ProtoReflect().Descriptor().Fields().ByName(name).Number()
}

// wireResponse is a ReadResponse in its wire form (serverCodec sends it as
// is). Only raw records, durable_index, first_index and next_index are
// set.
type wireResponse struct {
	buf     *[]byte // from wirePool; the transport returns it
	records int     // raw_records entries (records, anchor, checkpoints)
}

// newWireResponse starts a message with room for about size bytes.
func newWireResponse(size int) *wireResponse {
	buf := wirePool.Get(size)
	*buf = (*buf)[:0]
	return &wireResponse{buf: buf}
}

// add appends one raw record.
func (w *wireResponse) add(raw []byte) {
	b := protowire.AppendTag(*w.buf, wireRaw, protowire.BytesType)
	*w.buf = protowire.AppendBytes(b, raw)
	w.records++
}

// varint appends a varint field, omitted when 0 as protobuf does.
func (w *wireResponse) varint(n protowire.Number, v uint64) {
	if v == 0 {
		return
	}
	b := protowire.AppendTag(*w.buf, n, protowire.VarintType)
	*w.buf = protowire.AppendVarint(b, v)
}

// free returns an unsent message's buffer.
func (w *wireResponse) free() {
	wirePool.Put(w.buf)
	w.buf = nil
}

// wireBuffers is a mem.BufferPool of byte slices in power-of-two size
// classes. Unlike gRPC's default pool it does not clear what it hands
// out: a message is written from offset 0 before anything reads it.
type wireBuffers struct {
	classes [wireMaxShift - wireMinShift + 1]sync.Pool
}

// Size classes: 4 KiB to 4 MiB (a batch is capped at about BatchBytes
// plus one record).
const (
	wireMinShift = 12
	wireMaxShift = 22
)

var wirePool = &wireBuffers{}

// Get returns a buffer of length n (capacity rounded up to a class).
func (p *wireBuffers) Get(n int) *[]byte {
	shift := max(bits.Len(uint(max(n, 1)-1)), wireMinShift)
	if shift > wireMaxShift {
		b := make([]byte, n)
		return &b
	}
	if b, ok := p.classes[shift-wireMinShift].Get().(*[]byte); ok {
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n, 1<<shift)
	return &b
}

// Put keeps b for reuse if its capacity is one of the classes (a buffer
// that outgrew its class by append lands in the class below its size).
func (p *wireBuffers) Put(b *[]byte) {
	c := cap(*b)
	shift := bits.Len(uint(c)) - 1
	if shift < wireMinShift || shift > wireMaxShift {
		return
	}
	*b = (*b)[: 0 : 1<<shift]
	p.classes[shift-wireMinShift].Put(b)
}

// serverCodec is gRPC's proto codec, except that a wireResponse is sent as
// the bytes it holds.
type serverCodec struct{ encoding.CodecV2 }

func newServerCodec() serverCodec { return serverCodec{encoding.GetCodecV2(gproto.Name)} }

func (c serverCodec) Marshal(v any) (mem.BufferSlice, error) {
	if w, ok := v.(*wireResponse); ok {
		buf := w.buf
		w.buf = nil
		return mem.BufferSlice{mem.NewBuffer(buf, wirePool)}, nil
	}
	return c.CodecV2.Marshal(v)
}
