package api_test

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/fidlog/fidlog/api"
	"github.com/fidlog/fidlog/api/client"
	"github.com/fidlog/fidlog/changelog"
	"github.com/fidlog/fidlog/changelog/store"
	"github.com/fidlog/fidlog/mdt"
	changelogv1 "github.com/fidlog/fidlog/proto/lustre/changelog/v1"
	mdtv1 "github.com/fidlog/fidlog/proto/lustre/mdt/v1"
)

// viaCounter counts the calls a unary interceptor sees, by whether an
// Exec stream carried them (grpc.Method of the context is then Exec).
type viaCounter struct {
	mu    sync.Mutex
	exec  map[string]int
	unary map[string]int
}

func (v *viaCounter) interceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	m, _ := grpc.Method(ctx)
	v.mu.Lock()
	if m == mdtv1.NamespaceService_Exec_FullMethodName {
		v.exec[info.FullMethod]++
	} else {
		v.unary[info.FullMethod]++
	}
	v.mu.Unlock()
	return h(ctx, req)
}

// counts returns how many calls of method went through Exec and unary.
func (v *viaCounter) counts(method string) (viaExec, viaUnary int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.exec[method], v.unary[method]
}

// mkdirs makes n directories prefix0..prefix(n-1) concurrently.
func mkdirs(t *testing.T, ctx context.Context, c *client.Client, prefix string, n int) {
	t.Helper()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if _, err := c.Namespace.Mkdir(ctx, &mdtv1.MkdirRequest{Path: []byte(fmt.Sprintf("%s%d", prefix, i)), Mode: 0o755}); err != nil {
				t.Errorf("mkdir %s%d: %v", prefix, i, err)
			}
		})
	}
	wg.Wait()
}

// fakeServer serves ns, a stand-in NamespaceService, on a unix socket
// until the test ends and returns a client of it.
func fakeServer(t *testing.T, ns mdtv1.NamespaceServiceServer) *client.Client {
	t.Helper()
	gs := grpc.NewServer()
	mdtv1.RegisterNamespaceServiceServer(gs, ns)
	l, err := net.Listen("unix", filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(l)
	t.Cleanup(gs.Stop)
	c, err := client.Dial("unix:" + l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func newViaEnv(t *testing.T, opts ...func(*api.Options)) (*env, *viaCounter) {
	return newViaEnvFS(t, vfs.NewMem(), opts...)
}

func newViaEnvFS(t *testing.T, fs vfs.FS, opts ...func(*api.Options)) (*env, *viaCounter) {
	v := &viaCounter{exec: map[string]int{}, unary: map[string]int{}}
	opts = append([]func(*api.Options){func(o *api.Options) { o.UnaryInterceptors = append(o.UnaryInterceptors, v.interceptor) }}, opts...)
	return newEnvFS(t, fs, "db", opts...), v
}

// execOne sends one call over a raw Exec stream and returns its result.
func execOne(t *testing.T, st mdtv1.NamespaceService_ExecClient, id uint64, method string, req proto.Message, md ...string) *mdtv1.ExecResult {
	t.Helper()
	b, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	call := &mdtv1.ExecCall{Id: id, Method: method, Request: b}
	for i := 0; i+1 < len(md); i += 2 {
		call.Metadata = append(call.Metadata, &mdtv1.ExecMetadata{Key: md[i], Values: []string{md[i+1]}})
	}
	if err := st.Send(&mdtv1.ExecRequest{Calls: []*mdtv1.ExecCall{call}}); err != nil {
		t.Fatal(err)
	}
	resp, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetResults()) != 1 || resp.GetResults()[0].GetId() != id {
		t.Fatalf("results %v, want one for call %d", resp.GetResults(), id)
	}
	return resp.GetResults()[0]
}

func resultErr(t *testing.T, r *mdtv1.ExecResult) error {
	t.Helper()
	if len(r.GetStatus()) == 0 {
		return nil
	}
	var s spb.Status
	if err := proto.Unmarshal(r.GetStatus(), &s); err != nil {
		t.Fatal(err)
	}
	return status.ErrorProto(&s)
}

// TestExecMatchesUnary: every unary method of NamespaceService, sent over
// Exec, gets what the unary RPC gets: the same status, message and errno
// details for the same bad request (an empty one), through the same
// interceptors; a new method cannot be left out, the table is the
// service descriptor.
func TestExecMatchesUnary(t *testing.T) {
	e, v := newViaEnv(t)
	c := e.dial(e.sock, client.WithUnary())
	ctx := ctxT(t)
	st, err := mdtv1.NewNamespaceServiceClient(c.Conn()).Exec(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d := mdtv1.NamespaceService_ServiceDesc
	for i, m := range d.Methods {
		method := "/" + d.ServiceName + "/" + m.MethodName
		req := execRequestOf(t, m.MethodName)
		var resp proto.Message
		unaryErr := c.Conn().Invoke(ctx, method, req, responseOf(t, m.MethodName))
		r := execOne(t, st, uint64(i+1), method, req)
		execErr := resultErr(t, r)
		if status.Code(unaryErr) != status.Code(execErr) || status.Convert(unaryErr).Message() != status.Convert(execErr).Message() ||
			client.ErrnoOf(unaryErr) != client.ErrnoOf(execErr) || client.Reason(unaryErr) != client.Reason(execErr) {
			t.Errorf("%s: unary %v (errno %d), exec %v (errno %d)", m.MethodName, unaryErr, client.ErrnoOf(unaryErr), execErr, client.ErrnoOf(execErr))
		}
		if execErr == nil {
			resp = responseOf(t, m.MethodName)
			if err := proto.Unmarshal(r.GetResponse(), resp); err != nil {
				t.Errorf("%s: response: %v", m.MethodName, err)
			}
		}
		if v.exec[method] != 1 || v.unary[method] != 1 {
			t.Errorf("%s: interceptors saw %d exec and %d unary calls, want 1 and 1", m.MethodName, v.exec[method], v.unary[method])
		}
	}
	for _, bad := range []string{"/lustre.mdt.v1.NamespaceService/Nope", mdtv1.NamespaceService_Exec_FullMethodName, changelogv1.ChangelogService_Clear_FullMethodName, ""} {
		err := resultErr(t, execOne(t, st, 1000, bad, &changelogv1.ClearRequest{Device: device, User: "cl1"}))
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "'"+bad+"'") {
			t.Errorf("method %q: %v, want INVALID_ARGUMENT naming it", bad, err)
		}
	}
}

// execRequestOf returns an empty request of method name.
func execRequestOf(t *testing.T, name string) proto.Message {
	return messageOf(t, name, "Request")
}

func responseOf(t *testing.T, name string) proto.Message {
	return messageOf(t, name, "Response")
}

func messageOf(t *testing.T, name, suffix string) proto.Message {
	t.Helper()
	fd := mdtv1.File_lustre_mdt_v1_namespace_proto
	sd := fd.Services().ByName("NamespaceService")
	md := sd.Methods().ByName(protoreflect.Name(name))
	if md == nil {
		t.Fatalf("no method %s", name)
	}
	desc := md.Input()
	if suffix == "Response" {
		desc = md.Output()
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByName(desc.FullName())
	if err != nil {
		t.Fatal(err)
	}
	return mt.New().Interface()
}

// TestExecIdentity: a call over Exec acts as its own metadata says, not
// as the stream's: its records carry its uid, gid and job id.
func TestExecIdentity(t *testing.T) {
	e, _ := newViaEnv(t)
	c := e.dial(e.sock, client.WithUnary())
	ctx := ctxT(t)
	register(t, c, "", "ALL")
	st, err := mdtv1.NewNamespaceServiceClient(c.Conn()).Exec(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r := execOne(t, st, 1, mdtv1.NamespaceService_Mkdir_FullMethodName, &mdtv1.MkdirRequest{Path: []byte("d"), Mode: 0o777})
	if err := resultErr(t, r); err != nil {
		t.Fatal(err)
	}
	r = execOne(t, st, 2, mdtv1.NamespaceService_Create_FullMethodName, &mdtv1.CreateRequest{Path: []byte("d/f"), Mode: 0o644},
		api.MDUID, "1000", api.MDGID, "100", api.MDJobID, "touch.1000")
	if err := resultErr(t, r); err != nil {
		t.Fatal(err)
	}
	var got *changelog.Record
	err = c.Read(ctx, &changelogv1.ReadRequest{Device: device}, func(rs []*changelog.Record, _ *changelogv1.ReadResponse) error {
		for _, x := range rs {
			if x.Type == changelog.CLCreate {
				got = x
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got == nil || got.UID != 1000 || got.GID != 100 || got.JobID != "touch.1000" {
		t.Fatalf("CREAT record %+v, want u=1000:100 j=touch.1000", got)
	}
	// A malformed identity is refused as the unary call refuses it.
	r = execOne(t, st, 3, mdtv1.NamespaceService_Create_FullMethodName, &mdtv1.CreateRequest{Path: []byte("d/g"), Mode: 0o644}, api.MDUID, "x")
	if err := resultErr(t, r); status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "invalid id 'x'") {
		t.Fatalf("uid x: %v", err)
	}
	if _, err := c.Namespace.Stat(ctx, &mdtv1.StatRequest{Path: []byte("d/g")}); status.Code(err) != codes.NotFound {
		t.Fatalf("d/g after a refused create: %v", err)
	}
}

// TestExecBatches: concurrent calls of one client share Exec messages
// (the server reads ExecRequests of more than one call), and each gets its
// own answer.
func TestExecBatches(t *testing.T) {
	var rc recvCounter
	e, v := newViaEnv(t, rc.option)
	c := e.local()
	ctx := ctxT(t)
	if _, err := c.Namespace.Mkdir(ctx, &mdtv1.MkdirRequest{Path: []byte("d"), Mode: 0o755}); err != nil {
		t.Fatal(err)
	}
	const writers, each = 32, 20
	var wg sync.WaitGroup
	var failed atomic.Int32
	// A request larger than the server takes fails alone (as unary),
	// not the stream with the other writers' calls on it.
	big, err := c.Namespace.Open(ctx, &mdtv1.OpenRequest{Path: []byte("d/big"), Flags: uint32(mdtv1.OpenFlag_OPEN_FLAG_WRITE | mdtv1.OpenFlag_OPEN_FLAG_CREAT), Mode: 0o600})
	if err != nil {
		t.Fatal(err)
	}
	wg.Go(func() {
		for range 5 {
			_, err := c.Namespace.Write(ctx, &mdtv1.WriteRequest{Handle: big.GetHandle(), Data: make([]byte, api.MaxRecvMsgSize+1)})
			if status.Code(err) != codes.ResourceExhausted {
				t.Errorf("write of %d bytes: %v, want RESOURCE_EXHAUSTED", api.MaxRecvMsgSize+1, err)
			}
		}
	})
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				p := fmt.Sprintf("d/f%d-%d", w, i)
				r, err := c.Namespace.Create(ctx, &mdtv1.CreateRequest{Path: []byte(p), Mode: 0o600, Exclusive: true})
				if err != nil || r.GetAttr().GetMode()&0o777 != 0o600 {
					t.Errorf("create %s: %v %v", p, r, err)
					failed.Add(1)
				}
				// EEXIST comes back as from a unary call.
				_, err = c.Namespace.Create(ctx, &mdtv1.CreateRequest{Path: []byte(p), Mode: 0o600, Exclusive: true})
				if client.ErrnoOf(err) != 17 {
					t.Errorf("second create %s: %v, want EEXIST", p, err)
				}
			}
		})
	}
	wg.Wait()
	viaExec, viaUnary := v.counts(mdtv1.NamespaceService_Create_FullMethodName)
	t.Logf("creates via Exec %d, unary %d", viaExec, viaUnary)
	if viaExec+viaUnary != 2*writers*each || viaExec < writers*each {
		t.Fatalf("creates via Exec %d, unary %d: want most of %d over Exec", viaExec, viaUnary, 2*writers*each)
	}
	msgs, calls, most := rc.msgs.Load(), rc.calls.Load(), rc.maxCalls.Load()
	t.Logf("%d calls in %d ExecRequests on %d streams, at most %d in one", calls, msgs, rc.streams.Load(), most)
	if calls < int64(viaExec) || most < 2 {
		t.Fatalf("%d calls in %d ExecRequests, at most %d in one: want calls sharing messages", calls, msgs, most)
	}
	rd, err := c.Namespace.Readdir(ctx, &mdtv1.ReaddirRequest{Path: []byte("d")})
	if err != nil || len(rd.GetEntries()) != writers*each+1 {
		t.Fatalf("readdir: %d entries, %v", len(rd.GetEntries()), err)
	}
}

// TestExecFallback: against a server without Exec the client's calls go
// unary, and succeed.
func TestExecFallback(t *testing.T) {
	ns := &oldNamespace{release: make(chan struct{})}
	c := fakeServer(t, ns)
	ctx := ctxT(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			_, err := c.Namespace.Stat(ctx, &mdtv1.StatRequest{Path: []byte("x")})
			errs <- err
		})
	}
	// Every call reaches the server (the first unary, the rest over Exec,
	// refused UNIMPLEMENTED, then unary) before the first is answered, so
	// the fallback is exercised rather than eight lone unary calls.
	waitFor(t, "8 Stat calls at the server", func() bool { return ns.calls.Load() == 8 })
	close(ns.release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("stat: %v", err)
		}
	}
	if n := ns.calls.Load(); n != 8 {
		t.Errorf("server saw %d Stat calls, want 8", n)
	}
}

type oldNamespace struct {
	mdtv1.UnimplementedNamespaceServiceServer
	release chan struct{}
	calls   atomic.Int32
}

func (o *oldNamespace) Stat(ctx context.Context, _ *mdtv1.StatRequest) (*mdtv1.StatResponse, error) {
	o.calls.Add(1)
	<-o.release
	return &mdtv1.StatResponse{}, nil
}

// TestExecDrain: a server shutting down ends its open Exec streams with
// UNAVAILABLE once their calls are answered, instead of waiting for the
// client to hang up.
func TestExecDrain(t *testing.T) {
	e := newEnv(t, func(o *api.Options) { o.ShutdownTimeout = time.Hour })
	c := e.dial(e.sock, client.WithUnary())
	ctx := ctxT(t)
	st, err := mdtv1.NewNamespaceServiceClient(c.Conn()).Exec(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := resultErr(t, execOne(t, st, 1, mdtv1.NamespaceService_Mkdir_FullMethodName, &mdtv1.MkdirRequest{Path: []byte("d"), Mode: 0o755})); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		e.srv.Shutdown(context.Background())
		close(done)
	}()
	if _, err := st.Recv(); status.Code(err) != codes.Unavailable {
		t.Fatalf("stream after drain: %v, want UNAVAILABLE", err)
	}
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Shutdown waits for an idle Exec stream")
	}
}

// recvCounter is a server stream interceptor that counts Exec streams and
// the calls in each ExecRequest the server reads.
type recvCounter struct {
	streams  atomic.Int32
	msgs     atomic.Int64
	calls    atomic.Int64
	maxCalls atomic.Int64 // the most calls one ExecRequest carried
	withMD   atomic.Int64 // calls that carried their metadata
}

func (rc *recvCounter) option(o *api.Options) {
	o.ServerOptions = append(o.ServerOptions, grpc.ChainStreamInterceptor(rc.interceptor))
}

func (rc *recvCounter) interceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if info.FullMethod != mdtv1.NamespaceService_Exec_FullMethodName {
		return h(srv, ss)
	}
	rc.streams.Add(1)
	return h(srv, &countingStream{ServerStream: ss, rc: rc})
}

type countingStream struct {
	grpc.ServerStream
	rc *recvCounter
}

func (s *countingStream) RecvMsg(m any) error {
	err := s.ServerStream.RecvMsg(m)
	if req, ok := m.(*mdtv1.ExecRequest); ok && err == nil {
		n := int64(len(req.GetCalls()))
		for _, c := range req.GetCalls() {
			if len(c.GetMetadata()) > 0 {
				s.rc.withMD.Add(1)
			}
		}
		s.rc.msgs.Add(1)
		s.rc.calls.Add(n)
		for {
			old := s.rc.maxCalls.Load()
			if n <= old || s.rc.maxCalls.CompareAndSwap(old, n) {
				break
			}
		}
	}
	return err
}

// TestExecDurable: a create answered OK over Exec is durable when its
// answer arrives: its record's index is at or below the log's durable
// watermark read right after the answer, and a crash while the writers
// run (a clone of what was synced, nothing unsynced) keeps the files and
// records of the creates answered before it.
func TestExecDurable(t *testing.T) {
	fs := vfs.NewCrashableMem()
	e, v := newViaEnvFS(t, fs)
	c := e.local()
	ctx := ctxT(t)
	register(t, c, "", "ALL")
	if _, err := c.Namespace.Mkdir(ctx, &mdtv1.MkdirRequest{Path: []byte("d"), Mode: 0o755}); err != nil {
		t.Fatal(err)
	}
	const writers, each = 16, 20
	var (
		mu    sync.Mutex
		acked = map[string]changelog.Index{} // name: durable watermark when answered
		wg    sync.WaitGroup
	)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				name := fmt.Sprintf("f%d-%d", w, i)
				_, err := c.Namespace.Create(ctx, &mdtv1.CreateRequest{Path: []byte("d/" + name), Mode: 0o600, Exclusive: true})
				durable := e.m.Log().Durable()
				if err != nil {
					t.Errorf("create %s: %v", name, err)
					return
				}
				mu.Lock()
				acked[name] = durable
				mu.Unlock()
			}
		})
	}
	// A crash while the writers run: what was answered before it began
	// must survive.
	waitFor(t, "half the creates answered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= writers*each/2
	})
	mu.Lock()
	before := maps.Clone(acked)
	mu.Unlock()
	crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
	wg.Wait()
	viaExec, _ := v.counts(mdtv1.NamespaceService_Create_FullMethodName)
	if viaExec < writers*each/2 {
		t.Fatalf("%d of %d creates over Exec: want most", viaExec, writers*each)
	}
	if len(acked) != writers*each {
		t.Fatalf("%d creates answered, want %d", len(acked), writers*each)
	}
	rd, err := c.Namespace.Readdir(ctx, &mdtv1.ReaddirRequest{Path: []byte("d")})
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, de := range rd.GetEntries() {
		names[string(de.GetName())] = true
	}
	for name := range acked {
		if !names[name] {
			t.Fatalf("create of %s answered, not in d", name)
		}
	}
	// The watermark when each was answered.
	recs, _, err := e.m.Log().Read(ctx, store.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	created := map[string]changelog.Index{}
	for _, r := range recs {
		if r.Type == changelog.CLCreate {
			created[r.Name] = r.Index
		}
	}
	for name, durable := range acked {
		idx, ok := created[name]
		if !ok {
			t.Fatalf("create of %s answered, no CREAT record", name)
		}
		if idx > durable {
			t.Fatalf("create of %s answered when the durable watermark was %d, its record is %d", name, durable, idx)
		}
	}
	// What the crash kept.
	m2, err := mdt.Open("db", &mdt.Options{FS: crashed, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	recs, _, err = m2.Log().Read(ctx, store.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kept := map[string]bool{}
	for _, r := range recs {
		if r.Type == changelog.CLCreate {
			kept[r.Name] = true
		}
	}
	for name := range before {
		if _, err := m2.Stat(ctx, mdt.Cred{Local: true}, "d/"+name); err != nil || !kept[name] {
			t.Fatalf("create of %s answered before a crash: stat after it %v, CREAT record kept %v", name, err, kept[name])
		}
	}
	t.Logf("%d creates over Exec; %d answered before the crash, %d records kept", viaExec, len(before), len(kept))
}

// statBlocker holds the Stat calls of paths starting with prefix in a
// unary interceptor until release (or until the call's context ends).
type statBlocker struct {
	prefix  string
	release chan struct{}
	once    sync.Once
	arrived atomic.Int32 // held calls that reached the interceptor
	viaExec atomic.Int32 // of which an Exec stream carried
}

func newStatBlocker(t *testing.T, prefix string) *statBlocker {
	b := &statBlocker{prefix: prefix, release: make(chan struct{})}
	t.Cleanup(b.open)
	return b
}

func (b *statBlocker) open() { b.once.Do(func() { close(b.release) }) }

func (b *statBlocker) option(o *api.Options) {
	o.UnaryInterceptors = append(o.UnaryInterceptors, b.interceptor)
}

func (b *statBlocker) interceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if r, ok := req.(*mdtv1.StatRequest); ok && strings.HasPrefix(string(r.GetPath()), b.prefix) {
		if m, _ := grpc.Method(ctx); m == mdtv1.NamespaceService_Exec_FullMethodName {
			b.viaExec.Add(1)
		}
		b.arrived.Add(1)
		select {
		case <-b.release:
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
	return h(ctx, req)
}

// cutProxy forwards unix socket connections to a server's socket until
// cut closes those open.
type cutProxy struct {
	l     net.Listener
	addr  string // unix:PATH target
	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	dir, err := os.MkdirTemp("", "px")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", filepath.Join(dir, "p.sock"))
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{l: l, addr: "unix:" + l.Addr().String()}
	p.wg.Go(func() {
		for {
			a, err := l.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("unix", strings.TrimPrefix(target, "unix:"))
			if err != nil {
				a.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, a, b)
			p.mu.Unlock()
			for _, d := range [][2]net.Conn{{a, b}, {b, a}} {
				p.wg.Go(func() {
					io.Copy(d[0], d[1])
					d[0].Close()
					d[1].Close()
				})
			}
		}
	})
	t.Cleanup(func() {
		l.Close()
		p.cut()
		p.wg.Wait()
		os.RemoveAll(dir)
	})
	return p
}

// cut closes every connection open through the proxy.
func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// statHeld runs n concurrent Stat calls of hold<i> and returns their
// errors once all have returned; ctx bounds them.
func statHeld(ctx context.Context, c *client.Client, n int) <-chan []error {
	done := make(chan []error, 1)
	go func() {
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				_, errs[i] = c.Namespace.Stat(ctx, &mdtv1.StatRequest{Path: []byte(fmt.Sprintf("hold%d", i))})
			})
		}
		wg.Wait()
		done <- errs
	}()
	return done
}

// TestExecStreamBreak: when an Exec stream breaks with calls in flight
// (the connection closed, the server stopped, the stream ended with an
// error), each of them returns UNAVAILABLE naming the cause (it may or
// may not have been applied, as a unary call on a broken connection),
// nothing hangs, and later calls use a new stream.
func TestExecStreamBreak(t *testing.T) {
	const n = 8
	mkHeld := func(t *testing.T, c *client.Client) {
		for i := range n {
			if _, err := c.Namespace.Mkdir(ctxT(t), &mdtv1.MkdirRequest{Path: []byte(fmt.Sprintf("hold%d", i)), Mode: 0o755}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// wantBroken checks the calls' errors: the first call went unary, the
	// others over Exec.
	wantBroken := func(t *testing.T, errs <-chan []error, cause string) {
		t.Helper()
		for i, err := range <-errs {
			if status.Code(err) != codes.Unavailable || !strings.Contains(status.Convert(err).Message(), cause) {
				t.Errorf("call %d in flight when the stream broke: %v, want UNAVAILABLE naming %q", i, err, cause)
			}
		}
	}
	// hold makes n Stat calls that b holds at the server, the first unary
	// and the others over Exec; errs gets their errors once they return.
	hold := func(t *testing.T, b *statBlocker, c *client.Client) (ctx context.Context, errs <-chan []error) {
		t.Helper()
		mkHeld(t, c)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		t.Cleanup(cancel)
		errs = statHeld(ctx, c, n)
		waitFor(t, "the held calls at the server", func() bool { return b.arrived.Load() == n })
		if got := b.viaExec.Load(); got != n-1 {
			t.Fatalf("%d of %d calls over Exec, want %d", got, n, n-1)
		}
		return ctx, errs
	}
	t.Run("connection closed", func(t *testing.T) {
		b := newStatBlocker(t, "hold")
		var rc recvCounter
		e, v := newViaEnv(t, b.option, rc.option)
		p := newCutProxy(t, e.sock)
		c := e.dial(p.addr)
		ctx, errs := hold(t, b, c)
		p.cut()
		wantBroken(t, errs, "")
		// The client recovers: concurrent calls go over a new stream.
		mkdirs(t, ctx, c, "after", n)
		viaExec, _ := v.counts(mdtv1.NamespaceService_Mkdir_FullMethodName)
		if viaExec == 0 || rc.streams.Load() != 2 {
			t.Errorf("after the break %d mkdirs over Exec on %d streams in all, want some on a second stream", viaExec, rc.streams.Load())
		}
	})
	t.Run("server stopped", func(t *testing.T) {
		b := newStatBlocker(t, "hold")
		e := newEnv(t, b.option)
		c := e.local()
		ctx, errs := hold(t, b, c)
		stopped := make(chan struct{})
		go func() {
			e.srv.Stop()
			close(stopped)
		}()
		wantBroken(t, errs, "")
		select {
		case <-stopped:
		case <-ctx.Done():
			t.Fatal("Stop did not return")
		}
	})
	t.Run("client closed", func(t *testing.T) {
		// Closing one's own client ends its calls as it ends unary ones:
		// CANCELED, the connection is closing.
		b := newStatBlocker(t, "hold")
		e := newEnv(t, b.option)
		c, err := client.Dial(e.sock)
		if err != nil {
			t.Fatal(err)
		}
		_, errs := hold(t, b, c)
		c.Close()
		for i, err := range <-errs {
			if status.Code(err) != codes.Canceled {
				t.Errorf("call %d in flight when its client closed: %v, want CANCELED as a unary call", i, err)
			}
		}
	})
	t.Run("stream failed", func(t *testing.T) {
		// A server whose Exec ends with an error other than UNAVAILABLE
		// once it has read the calls.
		fs := &failingExec{read: n - 1, release: make(chan struct{})}
		c := fakeServer(t, fs)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		first, done := make(chan error, 1), make(chan error, n-1)
		// The first call goes unary and waits for release.
		go func() {
			_, err := c.Namespace.Stat(ctx, &mdtv1.StatRequest{Path: []byte("first")})
			first <- err
		}()
		waitFor(t, "the first call at the server", func() bool { return fs.stats.Load() == 1 })
		for range n - 1 {
			go func() {
				_, err := c.Namespace.Stat(ctx, &mdtv1.StatRequest{Path: []byte("x")})
				if status.Code(err) != codes.Unavailable || !strings.Contains(status.Convert(err).Message(), "Internal: exec broke") {
					err = fmt.Errorf("call in flight when the stream failed: %v, want UNAVAILABLE naming the stream's error", err)
				} else {
					err = nil
				}
				done <- err
			}()
		}
		for range n - 1 {
			if err := <-done; err != nil {
				t.Error(err)
			}
		}
		close(fs.release)
		if err := <-first; err != nil {
			t.Errorf("unary call: %v", err)
		}
	})
}

// failingExec is a NamespaceService whose Exec reads read calls, then
// fails with INTERNAL; its Stat waits for release.
type failingExec struct {
	mdtv1.UnimplementedNamespaceServiceServer
	read    int
	release chan struct{}
	stats   atomic.Int32
}

func (f *failingExec) Stat(ctx context.Context, _ *mdtv1.StatRequest) (*mdtv1.StatResponse, error) {
	f.stats.Add(1)
	select {
	case <-f.release:
	case <-ctx.Done():
	}
	return &mdtv1.StatResponse{}, nil
}

func (f *failingExec) Exec(st mdtv1.NamespaceService_ExecServer) error {
	for n := 0; n < f.read; {
		req, err := st.Recv()
		if err != nil {
			return err
		}
		n += len(req.GetCalls())
	}
	return status.Error(codes.Internal, "exec broke")
}

// TestExecCancel: a call over Exec whose context is cancelled returns
// CANCELED at once, while the stream's other calls in flight complete and
// the stream carries later calls. The server still runs the call: once
// sent it cannot be cancelled.
func TestExecCancel(t *testing.T) {
	b := newStatBlocker(t, "hold")
	var rc recvCounter
	e, v := newViaEnv(t, b.option, rc.option)
	c := e.local()
	ctx := ctxT(t)
	const n = 5
	for i := range n {
		if _, err := c.Namespace.Mkdir(ctx, &mdtv1.MkdirRequest{Path: []byte(fmt.Sprintf("hold%d", i)), Mode: 0o755}); err != nil {
			t.Fatal(err)
		}
	}
	// hold0 goes unary, hold1..hold4 over Exec; hold4 is cancelled.
	others := make(chan error, n-1)
	stat := func(ctx context.Context, i int, errs chan<- error) {
		_, err := c.Namespace.Stat(ctx, &mdtv1.StatRequest{Path: []byte(fmt.Sprintf("hold%d", i))})
		errs <- err
	}
	go stat(ctx, 0, others)
	waitFor(t, "hold0 at the server", func() bool { return b.arrived.Load() == 1 })
	for i := 1; i < n-1; i++ {
		go stat(ctx, i, others)
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cancelled := make(chan error, 1)
	go stat(cctx, n-1, cancelled)
	waitFor(t, "all calls at the server", func() bool { return b.arrived.Load() == n })
	if got := b.viaExec.Load(); got != n-1 {
		t.Fatalf("%d of %d calls over Exec, want %d", got, n, n-1)
	}
	cancel()
	select {
	case err := <-cancelled:
		if status.Code(err) != codes.Canceled {
			t.Fatalf("cancelled call: %v, want CANCELED", err)
		}
	case <-ctx.Done():
		t.Fatal("the cancelled call did not return")
	}
	b.open()
	for range n - 1 {
		if err := <-others; err != nil {
			t.Errorf("call in flight with a cancelled one: %v", err)
		}
	}
	mkdirs(t, ctx, c, "after", 8)
	viaExec, _ := v.counts(mdtv1.NamespaceService_Mkdir_FullMethodName)
	if viaExec == 0 || rc.streams.Load() != 1 {
		t.Errorf("after the cancel %d mkdirs over Exec on %d streams in all, want some on the first stream", viaExec, rc.streams.Load())
	}
}

// TestExecMetadataSets: a call names metadata an earlier call of the same
// stream defined (metadata_id) instead of carrying it; a redefinition
// replaces the set; an undefined id, or one over 4096, is INVALID_ARGUMENT
// naming it and runs nothing; sets do not outlive their stream.
func TestExecMetadataSets(t *testing.T) {
	e, _ := newViaEnv(t)
	c := e.dial(e.sock, client.WithUnary())
	ctx := ctxT(t)
	register(t, c, "", "ALL")
	if _, err := c.Namespace.Mkdir(ctx, &mdtv1.MkdirRequest{Path: []byte("d"), Mode: 0o777}); err != nil {
		t.Fatal(err)
	}
	st, err := mdtv1.NewNamespaceServiceClient(c.Conn()).Exec(ctx)
	if err != nil {
		t.Fatal(err)
	}
	call := func(st mdtv1.NamespaceService_ExecClient, id uint64, name string, mdID uint32, md ...string) error {
		t.Helper()
		b, err := proto.Marshal(&mdtv1.CreateRequest{Path: []byte("d/" + name), Mode: 0o644})
		if err != nil {
			t.Fatal(err)
		}
		x := &mdtv1.ExecCall{Id: id, Method: mdtv1.NamespaceService_Create_FullMethodName, Request: b, MetadataId: mdID}
		for i := 0; i+1 < len(md); i += 2 {
			x.Metadata = append(x.Metadata, &mdtv1.ExecMetadata{Key: md[i], Values: []string{md[i+1]}})
		}
		if err := st.Send(&mdtv1.ExecRequest{Calls: []*mdtv1.ExecCall{x}}); err != nil {
			t.Fatal(err)
		}
		resp, err := st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		return resultErr(t, resp.GetResults()[0])
	}
	steps := []struct {
		name string
		id   uint32
		md   []string
	}{
		{"a", 5, []string{api.MDUID, "1000", api.MDGID, "100", api.MDJobID, "a.1000"}},
		{"b", 5, nil},
		{"c", 5, []string{api.MDUID, "2000", api.MDGID, "200", api.MDJobID, "c.2000"}},
		{"e", 5, nil},
		{"f", 0, []string{api.MDUID, "3000", api.MDGID, "300", api.MDJobID, "f.3000"}},
		{"g", 5, nil},
	}
	for i, s := range steps {
		if err := call(st, uint64(i+1), s.name, s.id, s.md...); err != nil {
			t.Fatalf("create %s: %v", s.name, err)
		}
	}
	if err := call(st, 10, "h", 6); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "metadata_id 6") {
		t.Fatalf("undefined metadata_id: %v", err)
	}
	if err := call(st, 11, "i", 4097, api.MDUID, "1000"); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "4097") {
		t.Fatalf("metadata_id 4097: %v", err)
	}
	// A malformed identity in a set is refused for every call naming it.
	for i, md := range [][]string{{api.MDUID, "x"}, nil} {
		if err := call(st, uint64(12+i), "k", 7, md...); status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "invalid id 'x'") {
			t.Fatalf("set 7 with uid x, call %d: %v", i, err)
		}
	}
	st2, err := mdtv1.NewNamespaceServiceClient(c.Conn()).Exec(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := call(st2, 1, "j", 5); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("metadata_id of another stream: %v", err)
	}
	for _, n := range []string{"h", "i", "j", "k"} {
		if _, err := c.Namespace.Stat(ctx, &mdtv1.StatRequest{Path: []byte("d/" + n)}); status.Code(err) != codes.NotFound {
			t.Fatalf("d/%s after a refused create: %v", n, err)
		}
	}
	want := map[string]string{"a": "1000:100 a.1000", "b": "1000:100 a.1000", "c": "2000:200 c.2000", "e": "2000:200 c.2000", "f": "3000:300 f.3000", "g": "2000:200 c.2000"}
	got := map[string]string{}
	err = c.Read(ctx, &changelogv1.ReadRequest{Device: device}, func(rs []*changelog.Record, _ *changelogv1.ReadResponse) error {
		for _, x := range rs {
			if x.Type == changelog.CLCreate {
				got[string(x.Name)] = fmt.Sprintf("%d:%d %s", x.UID, x.GID, x.JobID)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("identities of the CREAT records %v, want %v", got, want)
	}
}

// TestExecClientMetadataSets: concurrent callers with a few identities
// through the client's Exec stream each get their own identity on their
// records, while most calls name their identity's set instead of
// carrying it.
func TestExecClientMetadataSets(t *testing.T) {
	var rc recvCounter
	e, via := newViaEnv(t, rc.option)
	c := e.local()
	ctx := ctxT(t)
	register(t, c, "", "ALL")
	if _, err := c.Namespace.Mkdir(ctx, &mdtv1.MkdirRequest{Path: []byte("d"), Mode: 0o777}); err != nil {
		t.Fatal(err)
	}
	const writers, each = 16, 20
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			id := client.Identity{UID: uint32(1000 + w%4), GID: uint32(100 + w%4), JobID: fmt.Sprintf("job.%d", w%4)}
			for i := range each {
				p := fmt.Sprintf("d/w%d-%d", w, i)
				if _, err := c.Namespace.Create(id.Context(ctx), &mdtv1.CreateRequest{Path: []byte(p), Mode: 0o644}); err != nil {
					t.Errorf("create %s: %v", p, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	n := 0
	err := c.Read(ctx, &changelogv1.ReadRequest{Device: device}, func(rs []*changelog.Record, _ *changelogv1.ReadResponse) error {
		for _, x := range rs {
			if x.Type != changelog.CLCreate {
				continue
			}
			var w, i int
			if _, err := fmt.Sscanf(string(x.Name), "w%d-%d", &w, &i); err != nil {
				return err
			}
			if x.UID != uint64(1000+w%4) || x.GID != uint64(100+w%4) || x.JobID != fmt.Sprintf("job.%d", w%4) {
				return fmt.Errorf("record of %s: u=%d:%d j=%s, want u=%d:%d j=job.%d", x.Name, x.UID, x.GID, x.JobID, 1000+w%4, 100+w%4, w%4)
			}
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != writers*each {
		t.Fatalf("%d CREAT records, want %d", n, writers*each)
	}
	execCalls, _ := via.counts(mdtv1.NamespaceService_Create_FullMethodName)
	if execCalls < writers*each/2 {
		t.Fatalf("only %d of %d creates went through Exec", execCalls, writers*each)
	}
	// Each stream defines each identity once.
	if got, most := rc.withMD.Load(), int64(4*rc.streams.Load()); got > most {
		t.Fatalf("%d calls carried their metadata over %d streams; 4 identities need at most %d", got, rc.streams.Load(), most)
	}
}
