package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	mdtv1 "github.com/fidlog/fidlog/proto/lustre/mdt/v1"
)

// Exec carries unary NamespaceService calls over one stream (the proto's
// Exec). A unary RPC costs about 21 µs of CPU on client and server
// together even when it does nothing (mdbench T1c's no-op row: a fresh
// HTTP/2 stream, its headers and HPACK, and a read and a write system call
// on each side per call); a client with many calls in flight sends them
// in shared messages here and reads their results in shared messages.
//
// Each call goes through exactly what its unary RPC goes through: it is
// announced to the group commit if it writes (hold.go), then the method's
// generated handler runs with the server's unary interceptors (the
// Options' ones and unaryInterceptor: identity, authorization, error
// mapping, OnRPC), in a context that carries the stream's peer and the
// call's own metadata.

// Limits of one Exec stream.
const (
	// execMaxInFlight bounds the calls of one stream that are running:
	// beyond it the stream stops reading until one finishes.
	execMaxInFlight = 1024
	// execBatchBytes is where a response batch is cut (a result may pass
	// it once): well under the clients' MaxRecvMsgSize.
	execBatchBytes = 1 << 20
	// execMaxMetadataID bounds ExecCall.metadata_id, so the sets one
	// stream keeps.
	execMaxMetadataID = 4096
)

// execMethods are the unary methods of NamespaceService by full name.
var execMethods = func() map[string]grpc.MethodDesc {
	m := map[string]grpc.MethodDesc{}
	d := mdtv1.NamespaceService_ServiceDesc
	for _, md := range d.Methods {
		m["/"+d.ServiceName+"/"+md.MethodName] = md
	}
	return m
}()

func (ns *namespaceService) Exec(stream mdtv1.NamespaceService_ExecServer) error {
	return ns.s.exec(ns, stream)
}

// execStream is the server side of one Exec stream.
type execStream struct {
	s      *Server
	srv    *namespaceService
	stream mdtv1.NamespaceService_ExecServer
	// base is the stream's context without its metadata: calls add
	// their own.
	base context.Context

	slots   chan struct{} // one per running call
	running sync.WaitGroup
	// mdsets are the metadata sets the client defined (metadata_id), as
	// incoming contexts on base; read and written by the reading loop
	// only.
	mdsets map[uint32]context.Context

	mu struct {
		sync.Mutex
		pending []*mdtv1.ExecResult
		sending bool
		err     error // the first failed Send: later results are dropped
	}
}

func (s *Server) exec(srv *namespaceService, stream mdtv1.NamespaceService_ExecServer) error {
	ctx := stream.Context()
	e := &execStream{
		s: s, srv: srv, stream: stream,
		base:  metadata.NewIncomingContext(ctx, metadata.MD{}),
		slots: make(chan struct{}, execMaxInFlight),
	}
	// Recv blocks and cannot be interrupted but by the end of the stream,
	// which comes when this handler returns: a goroutine reads, so that a
	// drain can end the stream while the client is quiet.
	type recv struct {
		req *mdtv1.ExecRequest
		err error
	}
	reqs := make(chan recv)
	readerDone := make(chan struct{})
	defer close(readerDone)
	go func() {
		for {
			req, err := stream.Recv()
			select {
			case reqs <- recv{req, err}:
			case <-readerDone:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	var err error
loop:
	for {
		select {
		case r := <-reqs:
			if r.err != nil {
				if !errors.Is(r.err, io.EOF) && ctx.Err() == nil {
					err = r.err
				}
				break loop
			}
			for _, call := range r.req.GetCalls() {
				select {
				case e.slots <- struct{}{}:
				case <-ctx.Done():
					break loop
				}
				e.running.Add(1)
				// A write is announced to the group commit as soon as
				// it is read, as the transport's tap announces a unary
				// one (hold.go).
				var w *writer
				if writeMethods[call.GetMethod()] {
					w = &writer{l: s.m.Log(), stop: func() bool { return true }}
					w.l.Expect()
				}
				mctx, merr := e.metadata(call)
				s.execWorkers.run(func() { e.run(call, mctx, merr, w) })
			}
		case <-s.draining:
			err = ErrDraining
			break loop
		case <-ctx.Done():
			break loop
		}
	}
	// Every call read is answered before the stream ends.
	e.running.Wait()
	if err != nil {
		return s.finish(mdtv1.NamespaceService_Exec_FullMethodName, err)
	}
	return nil
}

// metadata returns the incoming context of call's metadata (its own, or
// the set its metadata_id names) on the stream's base context. Called in
// the order the calls were read, so a set is defined before its uses.
func (e *execStream) metadata(call *mdtv1.ExecCall) (context.Context, error) {
	id := call.GetMetadataId()
	if id > execMaxMetadataID {
		return nil, status.Errorf(codes.InvalidArgument, "exec: metadata_id %d is over %d", id, execMaxMetadataID)
	}
	if id != 0 && len(call.GetMetadata()) == 0 {
		if ctx, ok := e.mdsets[id]; ok {
			return ctx, nil
		}
		return nil, status.Errorf(codes.InvalidArgument, "exec: metadata_id %d was not defined on this stream", id)
	}
	meta := make(metadata.MD, len(call.GetMetadata()))
	for _, kv := range call.GetMetadata() {
		k := strings.ToLower(kv.GetKey())
		meta[k] = append(meta[k], kv.GetValues()...)
	}
	ctx := metadata.NewIncomingContext(e.base, meta)
	if id != 0 {
		// Its calls share the identity, parsed once.
		ctx = withParsedIdentity(ctx, meta)
		if e.mdsets == nil {
			e.mdsets = make(map[uint32]context.Context)
		}
		e.mdsets[id] = ctx
	}
	return ctx, nil
}

// run runs one call and queues its result.
func (e *execStream) run(call *mdtv1.ExecCall, mctx context.Context, merr error, w *writer) {
	defer func() {
		<-e.slots
		e.running.Done()
	}()
	r := &mdtv1.ExecResult{Id: call.GetId()}
	resp, err := e.call(call, mctx, merr, w)
	if err == nil {
		r.Response, err = proto.Marshal(resp.(proto.Message))
	}
	if err != nil {
		st, _ := status.FromError(toStatus(err))
		r.Response = nil
		r.Status, _ = proto.Marshal(st.Proto())
	}
	e.deliver(r)
}

// call runs call's method as its unary RPC would run, in mctx (its
// metadata, or merr); w is its announcement as a writer, if it is one.
func (e *execStream) call(call *mdtv1.ExecCall, mctx context.Context, merr error, w *writer) (any, error) {
	if w != nil {
		// unaryInterceptor ends it once the handler has returned; a
		// call refused before that ends it here.
		defer w.handled()
	}
	md, ok := execMethods[call.GetMethod()]
	if !ok {
		return nil, status.Errorf(codes.InvalidArgument, "exec: '%s' is not a unary method of %s", call.GetMethod(), mdtv1.NamespaceService_ServiceDesc.ServiceName)
	}
	if merr != nil {
		return nil, merr
	}
	ctx := mctx
	if t := call.GetTimeoutUs(); t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(t)*time.Microsecond)
		defer cancel()
	} else if t < 0 {
		return nil, status.Errorf(codes.InvalidArgument, "exec: negative timeout_us %d", t)
	}
	if w != nil {
		ctx = context.WithValue(ctx, writerKey{}, w)
	}
	dec := func(v any) error {
		m, ok := v.(proto.Message)
		if !ok {
			return fmt.Errorf("exec: %T is not a protobuf message", v)
		}
		if err := proto.Unmarshal(call.GetRequest(), m); err != nil {
			return status.Errorf(codes.InvalidArgument, "exec: request of %s: %v", call.GetMethod(), err)
		}
		return nil
	}
	return md.Handler(e.srv, ctx, dec, e.s.unaryChain)
}

// deliver queues r and sends what is queued unless a send is already in
// progress, whose sender then sends r too: results that finish while a
// message is being sent leave together in the next one.
func (e *execStream) deliver(r *mdtv1.ExecResult) {
	e.mu.Lock()
	e.mu.pending = append(e.mu.pending, r)
	if e.mu.sending {
		e.mu.Unlock()
		return
	}
	e.mu.sending = true
	// Let the other calls of the same group commit, woken by the same
	// fsync, queue their results first; with nothing else to run this
	// returns at once.
	e.mu.Unlock()
	runtime.Gosched()
	e.mu.Lock()
	for len(e.mu.pending) > 0 && e.mu.err == nil {
		batch, n := e.mu.pending, 0
		size := 0
		for n < len(batch) && (n == 0 || size < execBatchBytes) {
			size += len(batch[n].Response) + len(batch[n].Status)
			n++
		}
		e.mu.pending = batch[n:]
		e.mu.Unlock()
		err := e.stream.Send(&mdtv1.ExecResponse{Results: batch[:n]})
		e.mu.Lock()
		if err != nil {
			e.mu.err = err
		}
	}
	if e.mu.err != nil {
		e.mu.pending = nil
	}
	e.mu.sending = false
	e.mu.Unlock()
}

// chainUnary composes interceptors, the first outermost.
func chainUnary(ics []grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		next := h
		for i := len(ics) - 1; i >= 0; i-- {
			ic, inner := ics[i], next
			next = func(ctx context.Context, req any) (any, error) { return ic(ctx, req, info, inner) }
		}
		return next(ctx, req)
	}
}

// workers runs functions on reused goroutines, whose stacks have already
// grown to what a namespace operation needs (see streamWorkers).
type workers struct {
	work chan func()
	idle atomic.Int32
	max  int32
	once sync.Once
	done chan struct{}
}

func newWorkers(maxIdle int32) *workers {
	return &workers{work: make(chan func()), max: maxIdle, done: make(chan struct{})}
}

// run runs f on an idle worker, or on a new one.
func (w *workers) run(f func()) {
	select {
	case w.work <- f:
	default:
		go w.loop(f)
	}
}

func (w *workers) loop(f func()) {
	for {
		f()
		if w.idle.Add(1) > w.max {
			w.idle.Add(-1)
			return
		}
		select {
		case f = <-w.work:
			w.idle.Add(-1)
		case <-w.done:
			return
		}
	}
}

// stop ends the idle workers; run must not be called after it.
func (w *workers) stop() { w.once.Do(func() { close(w.done) }) }
