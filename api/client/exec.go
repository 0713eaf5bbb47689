package client

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	mdtv1 "github.com/fidlog/fidlog/proto/lustre/mdt/v1"
)

// execConn sends NamespaceService calls over the service's Exec stream
// when the client has other calls in flight, so that concurrent calls
// share messages: a unary RPC costs about as much CPU as a create does
// in the server (mdbench T1c). A call alone goes unary: the stream would
// add a hand-off to its receiving goroutine on each side and batch
// nothing. Errors are those of the unary call: the server runs each call
// through the unary RPC's own path, and a call's status travels with its
// result. A call in flight when its stream breaks gets UNAVAILABLE naming
// the stream's error, as a unary call whose connection breaks: it may
// have run (CANCELED if the client closed its own connection, as unary).
// A call whose context ends returns at once, but the server still runs it
// (a sent call cannot be cancelled; its timeout bounds it) and the
// stream's other calls go on.
type execConn struct {
	cc *grpc.ClientConn
	// md is the identity the client's unary interceptor adds to calls
	// whose context does not set it.
	md metadata.MD
	// alone counts calls in flight (unary or not).
	inFlight atomic.Int64
	// unary is set when the server has no Exec (an older server), or by
	// WithUnary.
	unary atomic.Bool

	mu  sync.Mutex
	cur *execStream
}

const nsPrefix = "/" + "lustre.mdt.v1.NamespaceService" + "/"

// execMaxBatchBytes is where a request batch is cut (a call may pass it
// once): well under the server's MaxRecvMsgSize.
const execMaxBatchBytes = 1 << 20

func (c *execConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	n := c.inFlight.Add(1)
	defer c.inFlight.Add(-1)
	if n == 1 || !plainCall(opts) || c.unary.Load() || !strings.HasPrefix(method, nsPrefix) || method == mdtv1.NamespaceService_Exec_FullMethodName {
		return c.cc.Invoke(ctx, method, args, reply, opts...)
	}
	in, ok1 := args.(proto.Message)
	out, ok2 := reply.(proto.Message)
	if !ok1 || !ok2 {
		return c.cc.Invoke(ctx, method, args, reply, opts...)
	}
	req, err := proto.Marshal(in)
	if err != nil {
		return status.Errorf(codes.Internal, "exec: marshal %s: %v", method, err)
	}
	if len(req) > execMaxBatchBytes {
		// A request the server might refuse as too large fails alone
		// as a unary call, not the whole stream.
		return c.cc.Invoke(ctx, method, args, reply, opts...)
	}
	// The call's metadata as the unary interceptor would send it (withMD),
	// without a context for it: the context's (a copy), completed by the
	// client's identity.
	md, key := c.md, ""
	if out, ok := metadata.FromOutgoingContext(ctx); ok {
		completeMD(out, c.md)
		md, key = out, mdKey(out)
	}
	call := &mdtv1.ExecCall{Method: method, Request: req}
	if dl, ok := ctx.Deadline(); ok {
		call.TimeoutUs = max(1, time.Until(dl).Microseconds())
	}
	if err := ctx.Err(); err != nil {
		return status.FromContextError(err).Err()
	}
	r, err := c.stream().do(ctx, call, md, key)
	if err != nil {
		if status.Code(err) == codes.Unimplemented {
			// No Exec on this server: nothing was run.
			c.unary.Store(true)
			return c.cc.Invoke(ctx, method, args, reply, opts...)
		}
		return err
	}
	if len(r.GetStatus()) > 0 {
		var st spb.Status
		if err := proto.Unmarshal(r.GetStatus(), &st); err != nil {
			return status.Errorf(codes.Internal, "exec: status of %s: %v", method, err)
		}
		return status.ErrorProto(&st)
	}
	if err := proto.Unmarshal(r.GetResponse(), out); err != nil {
		return status.Errorf(codes.Internal, "exec: response of %s: %v", method, err)
	}
	return nil
}

// plainCall says whether opts ask nothing an Exec call cannot give (the
// generated stubs always pass grpc.StaticMethod).
func plainCall(opts []grpc.CallOption) bool {
	for _, o := range opts {
		if _, ok := o.(grpc.StaticMethodCallOption); !ok {
			return false
		}
	}
	return true
}

func (c *execConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return c.cc.NewStream(ctx, desc, method, opts...)
}

// stream returns the open Exec stream, opening one if there is none.
func (c *execConn) stream() *execStream {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur != nil && !c.cur.broken() {
		return c.cur
	}
	c.cur = c.open()
	return c.cur
}

// open starts an Exec stream. A failure to start it is the stream's
// error, reported to its calls.
func (c *execConn) open() *execStream {
	s := &execStream{calls: map[uint64]chan *mdtv1.ExecResult{}, closing: func() bool { return c.cc.GetState() == connectivity.Shutdown }}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	cs, err := mdtv1.NewNamespaceServiceClient(c.cc).Exec(ctx)
	if err != nil {
		s.fail(err)
		return s
	}
	s.cs = cs
	go s.receive()
	return s
}

// execStream is the client side of one Exec stream.
type execStream struct {
	cs     mdtv1.NamespaceService_ExecClient
	cancel context.CancelFunc
	dead   atomic.Bool
	// closing says whether the client's own connection is closed: its
	// calls then end CANCELED, as unary calls do.
	closing func() bool

	mu      sync.Mutex
	next    uint64
	calls   map[uint64]chan *mdtv1.ExecResult
	queue   []*mdtv1.ExecCall
	sending bool
	err     error
	// mdIDs are the metadata sets defined on the stream (ExecCall
	// metadata_id), by mdKey: a call whose metadata was sent before
	// names it instead of carrying it.
	mdIDs map[string]uint32
}

// execMaxMetadataSets is how many metadata sets a stream defines (the
// server accepts ids up to 4096); past it calls carry their metadata.
const execMaxMetadataSets = 4096

// mdKey is an unambiguous key of md's keys and values.
func mdKey(md metadata.MD) string {
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b []byte
	for _, k := range keys {
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		b = binary.AppendUvarint(b, uint64(len(md[k])))
		for _, v := range md[k] {
			b = binary.AppendUvarint(b, uint64(len(v)))
			b = append(b, v...)
		}
	}
	return string(b)
}

func (s *execStream) broken() bool { return s.dead.Load() }

// do sends call with metadata md (key: its mdKey) and waits for its
// result, or for ctx.
func (s *execStream) do(ctx context.Context, call *mdtv1.ExecCall, md metadata.MD, key string) (*mdtv1.ExecResult, error) {
	ch := make(chan *mdtv1.ExecResult, 1)
	s.mu.Lock()
	if s.err != nil {
		err := s.err
		s.mu.Unlock()
		return nil, err
	}
	s.next++
	call.Id = s.next
	// The first call with this metadata carries it and defines its id
	// (calls are sent in queue order, so the definition goes first).
	if id, ok := s.mdIDs[key]; ok {
		call.MetadataId = id
	} else if len(md) > 0 {
		call.Metadata = make([]*mdtv1.ExecMetadata, 0, len(md))
		for k, v := range md {
			call.Metadata = append(call.Metadata, &mdtv1.ExecMetadata{Key: k, Values: v})
		}
		if len(s.mdIDs) < execMaxMetadataSets {
			if s.mdIDs == nil {
				s.mdIDs = make(map[string]uint32)
			}
			call.MetadataId = uint32(len(s.mdIDs) + 1)
			s.mdIDs[key] = call.MetadataId
		}
	}
	s.calls[call.Id] = ch
	s.queue = append(s.queue, call)
	if s.sending {
		s.mu.Unlock()
	} else {
		s.sending = true
		// Let the goroutines that are runnable queue their calls
		// first (gRPC's own writer batches frames the same way); with
		// nothing else to run this returns at once.
		s.mu.Unlock()
		runtime.Gosched()
		s.mu.Lock()
		s.sendLocked()
	}
	select {
	case r := <-ch:
		if r == nil {
			s.mu.Lock()
			err := s.err
			s.mu.Unlock()
			return nil, err
		}
		return r, nil
	case <-ctx.Done():
		s.mu.Lock()
		delete(s.calls, call.Id)
		s.mu.Unlock()
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

// sendLocked sends the queued calls, those queued meanwhile included, in
// batches; s.mu is held on entry and released on return.
func (s *execStream) sendLocked() {
	for len(s.queue) > 0 && s.err == nil {
		n, size := 0, 0
		for n < len(s.queue) && (n == 0 || size < execMaxBatchBytes) {
			size += len(s.queue[n].Request) + 64
			n++
		}
		batch := s.queue[:n:n]
		s.queue = s.queue[n:]
		s.mu.Unlock()
		err := s.cs.Send(&mdtv1.ExecRequest{Calls: batch})
		s.mu.Lock()
		if err != nil && !errors.Is(err, io.EOF) {
			s.failLocked(err)
		}
		// io.EOF: the stream ended; receive reports why.
	}
	s.sending = false
	s.mu.Unlock()
}

// receive delivers results until the stream ends.
func (s *execStream) receive() {
	for {
		resp, err := s.cs.Recv()
		if err != nil {
			s.fail(err)
			return
		}
		s.mu.Lock()
		for _, r := range resp.GetResults() {
			if ch, ok := s.calls[r.GetId()]; ok {
				delete(s.calls, r.GetId())
				ch <- r
			}
		}
		s.mu.Unlock()
	}
}

func (s *execStream) fail(err error) {
	s.mu.Lock()
	s.failLocked(err)
	s.mu.Unlock()
}

// failLocked ends the stream: its calls in flight get UNAVAILABLE naming
// err, later calls open a new stream. Whether a call in flight was run is
// unknown, as for a unary call whose connection breaks (UNAVAILABLE too);
// the stream's own error (INTERNAL, RESOURCE_EXHAUSTED, CANCELED when the
// client closes...) is no answer to the call. UNIMPLEMENTED stays: the
// server has no Exec and ran nothing (Invoke goes unary).
func (s *execStream) failLocked(err error) {
	if s.err != nil {
		return
	}
	switch st := status.Convert(err); {
	case errors.Is(err, io.EOF) || st.Code() == codes.OK:
		err = status.Error(codes.Unavailable, "exec stream ended")
	case st.Code() == codes.Unavailable || st.Code() == codes.Unimplemented:
		// As it is.
	case st.Code() == codes.Canceled && s.closing != nil && s.closing():
		// The client closed its connection: as its unary calls.
	default:
		err = status.Errorf(codes.Unavailable, "exec stream ended: %s: %s", st.Code(), st.Message())
	}
	s.err = err
	s.dead.Store(true)
	for id, ch := range s.calls {
		delete(s.calls, id)
		ch <- nil
	}
	s.queue = nil
	if s.cancel != nil {
		s.cancel()
	}
}
