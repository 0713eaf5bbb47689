package api

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	"github.com/fidlog/fidlog/mdt"
	changelogv1 "github.com/fidlog/fidlog/proto/lustre/changelog/v1"
	mdtv1 "github.com/fidlog/fidlog/proto/lustre/mdt/v1"
	nodemapv1 "github.com/fidlog/fidlog/proto/lustre/nodemap/v1"
	paramsv1 "github.com/fidlog/fidlog/proto/lustre/params/v1"
)

// Defaults of Options.
const (
	DefaultHeartbeatInterval = 5 * time.Second
	DefaultBatchRecords      = 8192
	MaxBatchRecords          = 65536
	DefaultBatchBytes        = 1 << 20
	DefaultShutdownTimeout   = 10 * time.Second
	DefaultFollowLinger      = -1
	// MaxRecvMsgSize bounds a request: the largest is a Setxattr with a
	// 64 KiB value, so 4 MiB leaves ample room.
	MaxRecvMsgSize = 4 << 20
	// ServerStreamWindow and ServerConnWindow are the HTTP/2 flow-control
	// windows for what clients send (requests are small).
	ServerStreamWindow = 1 << 20
	ServerConnWindow   = 4 << 20
)

// Options configure a Server. The zero value is usable after
// EnsureDefaults.
type Options struct {
	// Logger receives the server's messages; default slog.Default().
	Logger *slog.Logger
	// Clock returns the wall time (idle seconds, RPC latency); default
	// time.Now.
	Clock func() time.Time
	// HeartbeatInterval is how long a follow stream stays silent before it
	// sends a heartbeat; default DefaultHeartbeatInterval.
	HeartbeatInterval time.Duration
	// BatchRecords is the number of records per stream message when the
	// request does not say; default DefaultBatchRecords. Requests are
	// capped at MaxBatchRecords.
	BatchRecords int
	// BatchBytes caps the encoded records of one stream message (a
	// message may exceed it by at most one record); default
	// DefaultBatchBytes.
	BatchBytes int
	// FollowLinger is how long a follow stream woken by a commit waits for
	// more commits before it sends less than a full batch (reference
	// performance.md 4.4); default DefaultFollowLinger, which is off
	// (negative: send at once). Off by default because timer wake-ups are
	// coarse (~1 ms) on idle machines, which more than doubled follow
	// latency in mdbench T3 (p50 418 µs without, 1.2 ms with a 200 µs
	// linger); under load, batches form anyway while a Send is in flight.
	FollowLinger time.Duration
	// ShutdownTimeout bounds the graceful part of Shutdown when its
	// context has no deadline; default DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// TLS, if set, secures TCP listeners with mutual TLS: it must require
	// and verify client certificates (ClientAuth
	// tls.RequireAndVerifyClientCert with ClientCAs). An authenticated
	// node asserts its users' uids as a Lustre client kernel does.
	// Unix socket listeners never use TLS: the kernel tells who the peer
	// is (SO_PEERCRED).
	TLS *tls.Config
	// Insecure allows TCP listeners without TLS: every TCP client may
	// assert any identity. Without TLS or Insecure, Serve refuses TCP.
	Insecure bool
	// OnRPC, if set, is called after each unary RPC with its full method
	// name, duration and resulting status error (nil on success).
	OnRPC func(method string, d time.Duration, err error)
	// UnaryInterceptors wrap every unary RPC and every call carried by a
	// NamespaceService Exec stream, outermost first, outside the Server's
	// own (metrics see every call, also those refused by authorization).
	// Interceptors given in ServerOptions instead see an Exec stream as
	// one RPC.
	UnaryInterceptors []grpc.UnaryServerInterceptor
	// ServerOptions are given to every gRPC server before the Server's
	// own: their interceptors are the outermost (metrics see every call,
	// also those refused by authorization).
	ServerOptions []grpc.ServerOption
}

// EnsureDefaults fills unset options and returns o (a new Options if o is
// nil).
func (o *Options) EnsureDefaults() *Options {
	if o == nil {
		o = &Options{}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.HeartbeatInterval == 0 {
		o.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if o.BatchRecords == 0 {
		o.BatchRecords = DefaultBatchRecords
	}
	if o.BatchBytes == 0 {
		o.BatchBytes = DefaultBatchBytes
	}
	if o.ShutdownTimeout == 0 {
		o.ShutdownTimeout = DefaultShutdownTimeout
	}
	if o.FollowLinger == 0 {
		o.FollowLinger = DefaultFollowLinger
	}
	return o
}

// Validate reports every problem with o at once.
func (o *Options) Validate() error {
	var errs []error
	if o.HeartbeatInterval < 0 {
		errs = append(errs, fmt.Errorf("api: heartbeat interval %v is negative", o.HeartbeatInterval))
	}
	if o.BatchRecords < 0 || o.BatchRecords > MaxBatchRecords {
		errs = append(errs, fmt.Errorf("api: batch records %d is not in 1..%d", o.BatchRecords, MaxBatchRecords))
	}
	if o.BatchBytes < 0 {
		errs = append(errs, fmt.Errorf("api: batch bytes %d is negative", o.BatchBytes))
	}
	if o.ShutdownTimeout < 0 {
		errs = append(errs, fmt.Errorf("api: shutdown timeout %v is negative", o.ShutdownTimeout))
	}
	if o.TLS != nil && (o.TLS.ClientAuth != tls.RequireAndVerifyClientCert || o.TLS.ClientCAs == nil) {
		errs = append(errs, errors.New("api: TLS must require and verify client certificates (ClientAuth RequireAndVerifyClientCert, ClientCAs set)"))
	}
	if o.TLS != nil && o.Insecure {
		errs = append(errs, errors.New("api: TLS and Insecure exclude each other"))
	}
	return errors.Join(errs...)
}

// Server serves the gRPC services of one MDT (changelog, namespace,
// params, nodemap, health, reflection) on any number of listeners. The
// caller owns the MDT and closes it after the Server has stopped.
type Server struct {
	m      *mdt.MDT
	opts   Options
	health *health.Server
	owner  uint32 // the uid the server runs as: a local administrator

	local *grpc.Server // unix sockets: peer credentials
	tcp   *grpc.Server // TCP: mutual TLS, or plaintext with Insecure; nil with neither

	draining  chan struct{} // closed by Drain
	drainOnce sync.Once

	// unaryChain is every unary interceptor, outermost first
	// (Options.UnaryInterceptors, then unaryInterceptor); Exec runs its
	// calls through it.
	unaryChain  grpc.UnaryServerInterceptor
	execWorkers *workers

	mu struct {
		sync.Mutex
		next    uint64
		streams map[uint64]context.CancelCauseFunc // open Read streams
	}
}

// New returns a Server for m. It serves nothing until Serve.
func New(m *mdt.MDT, opts Options) (*Server, error) {
	o := *opts.EnsureDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	s := &Server{m: m, opts: o, health: health.NewServer(), draining: make(chan struct{}), owner: uint32(os.Geteuid())}
	s.mu.streams = make(map[uint64]context.CancelCauseFunc)
	s.unaryChain = chainUnary(append(slices.Clone(o.UnaryInterceptors), s.unaryInterceptor))
	s.execWorkers = newWorkers(streamWorkers)
	s.local = s.newGRPC(peerCreds{})
	switch {
	case o.TLS != nil:
		s.tcp = s.newGRPC(credentials.NewTLS(o.TLS))
	case o.Insecure:
		s.tcp = s.newGRPC(insecure.NewCredentials())
	}
	for _, name := range []string{"",
		changelogv1.ChangelogService_ServiceDesc.ServiceName,
		mdtv1.NamespaceService_ServiceDesc.ServiceName,
		paramsv1.ParamsService_ServiceDesc.ServiceName,
		nodemapv1.NodemapService_ServiceDesc.ServiceName,
	} {
		s.health.SetServingStatus(name, healthgrpc.HealthCheckResponse_SERVING)
	}
	return s, nil
}

// streamWorkers is the number of reused handler goroutines per gRPC server.
const streamWorkers = 256

func (s *Server) newGRPC(creds credentials.TransportCredentials) *grpc.Server {
	opts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(append(slices.Clone(s.opts.UnaryInterceptors), s.unaryInterceptor)...),
		grpc.ChainStreamInterceptor(s.streamInterceptor),
		// Clients ping idle follow streams; allow it well below their
		// interval (clients are told >= 10 s) and without streams.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.MaxRecvMsgSize(MaxRecvMsgSize),
		grpc.WriteBufferSize(256 << 10),
		grpc.ReadBufferSize(64 << 10),
		// Stop waits for handlers, so no handler outlives the Server.
		grpc.WaitForHandlers(true),
		grpc.Creds(creds),
		// Handlers run on reused goroutines whose stacks have already
		// grown to what a namespace operation needs (Pebble reads are
		// deep); a fresh goroutine per RPC spent 12-18 % of the CPU of
		// creates over gRPC growing and copying its stack. Beyond this
		// many RPCs in flight gRPC starts a goroutine per RPC again.
		grpc.NumStreamWorkers(streamWorkers),
		// Raw Read batches are sent in the wire form they are built in
		// (wire.go); every other message goes through protobuf.
		grpc.ForceServerCodecV2(newServerCodec()),
		// Announce write RPCs as soon as their headers are read (before
		// they wait for a handler goroutine and the CPU): see hold.go.
		grpc.InTapHandle(s.announceWriter),
		// Fixed flow-control windows: with gRPC's default dynamic
		// window each request's data frame made the server send a BDP
		// ping (and the client a window update and a ping ack), waking
		// both sides' writers once more per RPC.
		grpc.InitialWindowSize(ServerStreamWindow),
		grpc.InitialConnWindowSize(ServerConnWindow),
	}
	opts = append(append([]grpc.ServerOption(nil), s.opts.ServerOptions...), opts...)
	gs := grpc.NewServer(opts...)
	changelogv1.RegisterChangelogServiceServer(gs, &changelogService{s: s})
	mdtv1.RegisterNamespaceServiceServer(gs, &namespaceService{s: s})
	paramsv1.RegisterParamsServiceServer(gs, &paramsService{s: s})
	nodemapv1.RegisterNodemapServiceServer(gs, &nodemapService{s: s})
	healthgrpc.RegisterHealthServer(gs, s.health)
	reflection.Register(gs)
	return gs
}

// GetServiceInfo describes the services and methods the Server serves
// (it is a reflection.ServiceInfoProvider: metrics can be initialised per
// method before the first call).
func (s *Server) GetServiceInfo() map[string]grpc.ServiceInfo { return s.local.GetServiceInfo() }

// ErrNoTransportSecurity is returned by Serve for a TCP listener when
// Options has neither TLS nor Insecure.
var ErrNoTransportSecurity = errors.New("api: a TCP listener needs mutual TLS (Options.TLS) or Options.Insecure")

// Serve accepts connections on lis until the Server stops; it returns nil
// after Shutdown or Stop. On a unix socket listener the kernel says who
// each caller is (see identify); a TCP listener uses mutual TLS
// (Options.TLS) or, with Options.Insecure, plaintext, and is refused with
// neither. Serve may be called for several listeners at once.
func (s *Server) Serve(lis net.Listener) error {
	if lis.Addr().Network() == "unix" {
		return s.local.Serve(lis)
	}
	if s.tcp == nil {
		return errors.Join(fmt.Errorf("%w (listener %s)", ErrNoTransportSecurity, lis.Addr()), lis.Close())
	}
	return s.tcp.Serve(lis)
}

// Drain marks the server as shutting down: health turns NOT_SERVING, new
// Read streams are refused and open ones end with UNAVAILABLE. Unary RPCs
// still complete. Drain is idempotent.
func (s *Server) Drain() {
	s.drainOnce.Do(func() {
		close(s.draining)
		s.health.Shutdown()
		s.mu.Lock()
		for _, cancel := range s.mu.streams {
			cancel(ErrDraining)
		}
		s.mu.Unlock()
	})
}

// Shutdown drains, then stops gracefully: it waits for in-flight RPCs
// until ctx ends (or Options.ShutdownTimeout, if ctx has no deadline),
// then closes every connection. When it returns every handler has
// returned.
func (s *Server) Shutdown(ctx context.Context) {
	s.Drain()
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.opts.ShutdownTimeout)
		defer cancel()
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	for _, gs := range s.servers() {
		wg.Go(gs.GracefulStop)
	}
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.opts.Logger.Warn("shutdown_forced", "err", context.Cause(ctx))
		for _, gs := range s.servers() {
			gs.Stop()
		}
		<-done
	}
	s.execWorkers.stop()
}

// Stop drains and closes every connection at once, cancelling in-flight
// RPCs; it returns when every handler has returned.
func (s *Server) Stop() {
	s.Drain()
	for _, gs := range s.servers() {
		gs.Stop()
	}
	s.execWorkers.stop()
}

func (s *Server) servers() []*grpc.Server {
	if s.tcp != nil {
		return []*grpc.Server{s.local, s.tcp}
	}
	return []*grpc.Server{s.local}
}

// Streams returns the number of open Read streams.
func (s *Server) Streams() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.mu.streams)
}

// beginStream registers a Read stream: the returned context ends when the
// client goes away or the server drains (cause ErrDraining). done must be
// called when the stream ends.
func (s *Server) beginStream(ctx context.Context) (context.Context, func(), error) {
	ctx, cancel := context.WithCancelCause(ctx)
	s.mu.Lock()
	select {
	case <-s.draining:
		s.mu.Unlock()
		cancel(nil)
		return nil, nil, ErrDraining
	default:
	}
	id := s.mu.next
	s.mu.next++
	s.mu.streams[id] = cancel
	s.mu.Unlock()
	return ctx, func() {
		s.mu.Lock()
		delete(s.mu.streams, id)
		s.mu.Unlock()
		cancel(nil)
	}, nil
}

// checkDevice validates the device a request names.
func (s *Server) checkDevice(dev string) error {
	if dev == s.m.Device() {
		return nil
	}
	if dev == "" {
		return argError("missing device (this server serves '%s')", s.m.Device())
	}
	return fmt.Errorf("%w '%s' (this server serves '%s')", ErrUnknownDevice, dev, s.m.Device())
}
