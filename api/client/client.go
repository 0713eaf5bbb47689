// Package client is the Go client of an mdtd server: a connection that
// carries the caller's Lustre identity with every request, helpers for the
// changelog, namespace, params and nodemap services, a Follow loop for
// changelog consumers, and ErrnoOf to turn a failed call into the errno a
// Lustre tool exits with.
package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"syscall"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/fidlog/fidlog/changelog"
	"github.com/fidlog/fidlog/fid"
	changelogv1 "github.com/fidlog/fidlog/proto/lustre/changelog/v1"
	commonv1 "github.com/fidlog/fidlog/proto/lustre/common/v1"
	mdtv1 "github.com/fidlog/fidlog/proto/lustre/mdt/v1"
	nodemapv1 "github.com/fidlog/fidlog/proto/lustre/nodemap/v1"
	paramsv1 "github.com/fidlog/fidlog/proto/lustre/params/v1"
)

// Metadata keys of the caller's identity (proto/README.md).
const (
	mdUID    = "lustre-uid"
	mdGID    = "lustre-gid"
	mdGroups = "lustre-groups"
	mdJobID  = "lustre-jobid"
)

// MaxRecvMsgSize is the largest message the client accepts (a stream batch
// is capped at about 1 MiB by the server).
const MaxRecvMsgSize = 16 << 20

// StreamWindow and ConnWindow are the HTTP/2 flow-control windows a client
// grants the server per stream and per connection (fixed, see Dial).
const (
	StreamWindow = 2 << 20
	ConnWindow   = 8 << 20
)

type options struct {
	id         Identity
	hasIDs     bool
	tls        *tls.Config
	tlsFiles   TLSFiles
	hasTLS     bool
	dialOpts   []grpc.DialOption
	keepalive  time.Duration
	noKeepPing bool
	unary      bool
}

// Option configures Dial.
type Option func(*options)

// WithIdentity sets the identity sent with every request. Without it (and
// without WithUID/WithGID) a client sends this process's real uid and gid
// over TCP, as a Lustre client kernel does, and nothing on the unix
// socket, where the server asks the kernel (root and the server's own uid
// then act as uid 0, everyone else as itself).
func WithIdentity(id Identity) Option { return func(o *options) { o.id, o.hasIDs = id, true } }

// WithUID sets the uid sent with every request (lustre-uid).
func WithUID(uid uint32) Option { return func(o *options) { o.id.UID, o.hasIDs = uid, true } }

// WithGID sets the primary gid sent with every request (lustre-gid).
func WithGID(gid uint32) Option { return func(o *options) { o.id.GID, o.hasIDs = gid, true } }

// WithGroups sets the supplementary groups sent with every request.
func WithGroups(groups ...uint32) Option {
	return func(o *options) { o.id.Groups = groups }
}

// WithJobID sets the job id recorded in changelog records (at most 31
// bytes).
func WithJobID(jobid string) Option {
	return func(o *options) { o.id.JobID = jobid }
}

// WithTLS secures a TCP connection with c; without it (and without
// WithTLSFiles or MDT_TLS_* in the environment) the connection is
// plaintext. Ignored for unix: targets, where the kernel tells the server
// who the caller is.
func WithTLS(c *tls.Config) Option { return func(o *options) { o.tls, o.hasTLS = c, true } }

// WithTLSFiles secures a TCP connection with the PEM files f; fields left
// empty are taken from MDT_TLS_CA, MDT_TLS_CERT and MDT_TLS_KEY. If no
// file is named at all the connection is plaintext. Ignored for unix:
// targets.
func WithTLSFiles(f TLSFiles) Option {
	return func(o *options) { o.tlsFiles, o.hasTLS = f.orEnv(), true }
}

// WithDialOptions adds gRPC dial options.
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(o *options) { o.dialOpts = append(o.dialOpts, opts...) }
}

// WithUnary makes every NamespaceService call a unary RPC of its own.
// By default calls made while others are in flight share the messages of
// one Exec stream (see the proto's Exec); the results are the same.
func WithUnary() Option { return func(o *options) { o.unary = true } }

// WithKeepalive sets the keepalive ping interval of idle connections
// (default 30 s; the server allows no less than 5 s, and asks for >= 10 s).
// 0 disables pings.
func WithKeepalive(d time.Duration) Option {
	return func(o *options) { o.keepalive, o.noKeepPing = d, d == 0 }
}

// Client is a connection to one mdtd server. Its service stubs may be used
// directly; every call carries the identity given to Dial unless its
// context carries another (Identity.Context).
type Client struct {
	conn   *grpc.ClientConn
	target string
	dial   *dialState

	Changelog changelogv1.ChangelogServiceClient
	Namespace mdtv1.NamespaceServiceClient
	Params    paramsv1.ParamsServiceClient
	Nodemap   nodemapv1.NodemapServiceClient
	Health    healthgrpc.HealthClient
}

// Dial prepares a connection to target: "host:port" or "unix:PATH" (an
// empty target means $MDT_SERVER, else DefaultTarget: see ResolveTarget).
// TCP connections use TLS when WithTLS or WithTLSFiles (or MDT_TLS_CA,
// MDT_TLS_CERT, MDT_TLS_KEY) say so. The connection is made lazily: the
// first call reports a server that cannot be reached (UNAVAILABLE, which
// Client.Err turns into a *ConnError).
func Dial(target string, opts ...Option) (*Client, error) {
	o := options{keepalive: 30 * time.Second}
	for _, f := range opts {
		f(&o)
	}
	target = ResolveTarget(target)
	network, addr := splitTarget(target)
	if addr == "" {
		return nil, &ConnError{Target: target, Errno: syscall.EINVAL, Err: errors.New("empty address")}
	}
	if len(o.id.JobID) > changelog.MaxJobID {
		return nil, fmt.Errorf("client: job id '%s' is longer than %d bytes", o.id.JobID, changelog.MaxJobID)
	}
	var md metadata.MD
	switch {
	case o.hasIDs:
		md = o.id.md()
	case network == "tcp":
		p := ProcessIdentity()
		o.id.UID, o.id.GID = p.UID, p.GID
		md = o.id.md()
	default:
		md = metadata.MD{}
		if len(o.id.Groups) > 0 {
			md = o.id.md()
			delete(md, mdUID)
			delete(md, mdGID)
		}
		if o.id.JobID != "" {
			md.Set(mdJobID, o.id.JobID)
		}
	}
	creds := insecure.NewCredentials()
	if network == "tcp" {
		tc := o.tls
		if tc == nil {
			files := o.tlsFiles
			if !o.hasTLS {
				files = TLSFilesFromEnv()
			}
			if !files.IsZero() {
				var err error
				if tc, err = files.Config(); err != nil {
					return nil, &ConnError{Target: target, Errno: syscall.EINVAL, Err: err}
				}
			}
		}
		if tc != nil {
			creds = credentials.NewTLS(tc)
		}
	}
	ds := &dialState{}
	dialer := func(ctx context.Context, _ string) (net.Conn, error) {
		var d net.Dialer
		nc, err := d.DialContext(ctx, network, addr)
		ds.set(err)
		return nc, err
	}
	dopts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithContextDialer(dialer),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxRecvMsgSize), grpc.ForceCodecV2(newCodec())),
		grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, inv grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			return inv(withMD(ctx, md), method, req, reply, cc, opts...)
		}),
		grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, st grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			return st(withMD(ctx, md), desc, cc, method, opts...)
		}),
	}
	if network == "unix" {
		dopts = append(dopts, grpc.WithAuthority("localhost"))
	}
	// Fixed flow-control windows, large enough for a stream message (1
	// MiB of records) in flight while the previous one is read. With
	// gRPC's default dynamic window every response's data frame made the
	// client send a window update and a BDP ping (and the server a ping
	// ack): one more wake-up of both sides' writers per RPC.
	dopts = append(dopts, grpc.WithInitialWindowSize(StreamWindow), grpc.WithInitialConnWindowSize(ConnWindow))
	if !o.noKeepPing {
		dopts = append(dopts, grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: o.keepalive, Timeout: 10 * time.Second, PermitWithoutStream: true}))
	}
	dopts = append(dopts, o.dialOpts...)
	conn, err := grpc.NewClient("passthrough:///"+addr, dopts...)
	if err != nil {
		return nil, &ConnError{Target: target, Errno: syscall.ENOTCONN, Err: err}
	}
	ec := &execConn{cc: conn, md: md}
	ec.unary.Store(o.unary)
	return &Client{
		conn:      conn,
		target:    target,
		dial:      ds,
		Changelog: changelogv1.NewChangelogServiceClient(conn),
		Namespace: mdtv1.NewNamespaceServiceClient(ec),
		Params:    paramsv1.NewParamsServiceClient(conn),
		Nodemap:   nodemapv1.NewNodemapServiceClient(conn),
		Health:    healthgrpc.NewHealthClient(conn),
	}, nil
}

// withMD adds the keys of md that ctx's outgoing metadata does not set.
func withMD(ctx context.Context, md metadata.MD) context.Context {
	out, ok := metadata.FromOutgoingContext(ctx)
	if !ok {
		return metadata.NewOutgoingContext(ctx, md)
	}
	merged := out.Copy()
	completeMD(merged, md)
	return metadata.NewOutgoingContext(ctx, merged)
}

// completeMD adds to out the keys of md it does not set.
func completeMD(out, md metadata.MD) {
	for k, v := range md {
		if _, set := out[k]; !set {
			out[k] = v
		}
	}
}

// Target is the server this client talks to, as resolved by Dial.
func (c *Client) Target() string { return c.target }

// Conn returns the underlying connection.
func (c *Client) Conn() *grpc.ClientConn { return c.conn }

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Healthy reports whether the server says it is SERVING.
func (c *Client) Healthy(ctx context.Context) error {
	r, err := c.Health.Check(ctx, &healthgrpc.HealthCheckRequest{})
	if err != nil {
		return err
	}
	if r.GetStatus() != healthgrpc.HealthCheckResponse_SERVING {
		return fmt.Errorf("client: server is %s", r.GetStatus())
	}
	return nil
}

// Register registers a changelog consumer (lctl changelog_register).
func (c *Client) Register(ctx context.Context, device, name, mask string) (*changelogv1.RegisterResponse, error) {
	return c.Changelog.Register(ctx, &changelogv1.RegisterRequest{Device: device, Name: name, Mask: mask})
}

// Deregister removes a consumer by id ("1", "cl1", "cl1-x").
func (c *Client) Deregister(ctx context.Context, device, id string) (*changelogv1.DeregisterResponse, error) {
	return c.Changelog.Deregister(ctx, &changelogv1.DeregisterRequest{Device: device, Selector: &changelogv1.DeregisterRequest_Id{Id: id}})
}

// DeregisterName removes a consumer by its registered name.
func (c *Client) DeregisterName(ctx context.Context, device, name string) (*changelogv1.DeregisterResponse, error) {
	return c.Changelog.Deregister(ctx, &changelogv1.DeregisterRequest{Device: device, Selector: &changelogv1.DeregisterRequest_Name{Name: name}})
}

// Clear acknowledges records up to end (0: the current index) for user
// ("cl<ID>[-name]").
func (c *Client) Clear(ctx context.Context, device, user string, end changelog.Index) (*changelogv1.ClearResponse, error) {
	return c.Changelog.Clear(ctx, &changelogv1.ClearRequest{Device: device, User: user, EndRecord: uint64(end)})
}

// Users lists the consumers.
func (c *Client) Users(ctx context.Context, device string) (*changelogv1.ListUsersResponse, error) {
	return c.Changelog.ListUsers(ctx, &changelogv1.ListUsersRequest{Device: device})
}

// State returns the changelog's indices.
func (c *Client) State(ctx context.Context, device string) (*changelogv1.GetStateResponse, error) {
	return c.Changelog.GetState(ctx, &changelogv1.GetStateRequest{Device: device})
}

// Read streams records per r and calls fn with each batch, decoded
// (raw) or converted (structured), and the message it came in. It returns
// nil when the stream ends normally, fn's error, or the stream's error.
func (c *Client) Read(ctx context.Context, r *changelogv1.ReadRequest, fn func([]*changelog.Record, *changelogv1.ReadResponse) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := c.Changelog.Read(ctx, r)
	if err != nil {
		return err
	}
	for {
		msg, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		recs, err := Records(msg)
		if err != nil {
			return err
		}
		if err := fn(recs, msg); err != nil {
			return err
		}
	}
}

// Records returns the records of a Read message, decoding raw records.
// The checkpoints and the anchor of a chain read are left out (read them
// from RawRecords with changelog.KindOf).
func Records(msg *changelogv1.ReadResponse) ([]*changelog.Record, error) {
	if len(msg.GetRawRecords()) > 0 {
		out := make([]*changelog.Record, 0, len(msg.GetRawRecords()))
		for i, b := range msg.GetRawRecords() {
			if k := changelog.KindOf(b); k == changelog.ItemCheckpoint || k == changelog.ItemAnchor {
				continue
			}
			r, err := changelog.Decode(b)
			if err != nil {
				return nil, fmt.Errorf("client: record %d of batch: %w", i, err)
			}
			out = append(out, r)
		}
		return out, nil
	}
	out := make([]*changelog.Record, len(msg.GetRecords()))
	for i, r := range msg.GetRecords() {
		out[i] = RecordFromPB(r)
	}
	return out, nil
}

// FIDFromPB converts a wire FID (nil is the zero FID).
func FIDFromPB(f *commonv1.Fid) fid.FID {
	return fid.FID{Seq: f.GetSeq(), Oid: f.GetOid(), Ver: f.GetVer()}
}

// FIDToPB converts a FID to its wire form.
func FIDToPB(f fid.FID) *commonv1.Fid { return &commonv1.Fid{Seq: f.Seq, Oid: f.Oid, Ver: f.Ver} }

// RecordFromPB converts a structured record.
func RecordFromPB(r *changelogv1.Record) *changelog.Record {
	return &changelog.Record{
		Index: changelog.Index(r.GetIndex()), Type: changelog.Type(r.GetType()), Flags: uint16(r.GetFlags()),
		Time: time.Unix(0, r.GetTimeNs()), TFID: FIDFromPB(r.GetTfid()), PFID: FIDFromPB(r.GetPfid()),
		Name: string(r.GetName()), SFID: FIDFromPB(r.GetSfid()), SPFID: FIDFromPB(r.GetSpfid()), SName: string(r.GetSname()),
		JobID: r.GetJobid(), ExtraFlags: r.GetExtraFlags(), UID: r.GetUid(), GID: r.GetGid(),
		NID: r.GetNid(), OpenFlags: r.GetOpenFlags(), XattrName: r.GetXattrName(),
		Hash: changelog.Hash(append(r.GetHash(), make([]byte, changelog.HashSize)...)[:changelog.HashSize]),
	}
}

// GetParams returns the parameters matching the patterns (lctl get_param).
func (c *Client) GetParams(ctx context.Context, patterns ...string) ([]*paramsv1.Param, error) {
	r, err := c.Params.GetParams(ctx, &paramsv1.GetParamsRequest{Patterns: patterns})
	return r.GetParams(), err
}

// SetParam sets the parameters name matches (lctl set_param).
func (c *Client) SetParam(ctx context.Context, name, value string) ([]*paramsv1.Param, error) {
	r, err := c.Params.SetParam(ctx, &paramsv1.SetParamRequest{Name: name, Value: value})
	return r.GetParams(), err
}

// Fid2Path returns the paths of f (every link when link < 0).
func (c *Client) Fid2Path(ctx context.Context, f fid.FID, link int) ([]string, error) {
	req := &mdtv1.Fid2PathRequest{Fid: FIDToPB(f)}
	if link >= 0 {
		l := uint32(link)
		req.Link = &l
	}
	r, err := c.Namespace.Fid2Path(ctx, req)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(r.GetPaths()))
	for i, p := range r.GetPaths() {
		out[i] = string(p)
	}
	return out, nil
}

// Path2Fid returns the FID of path.
func (c *Client) Path2Fid(ctx context.Context, path string) (fid.FID, error) {
	r, err := c.Namespace.Path2Fid(ctx, &mdtv1.Path2FidRequest{Path: []byte(path)})
	return FIDFromPB(r.GetFid()), err
}

// ErrorInfo returns the google.rpc.ErrorInfo a failed call carries.
func ErrorInfo(err error) (*errdetails.ErrorInfo, bool) {
	st, ok := status.FromError(err)
	if !ok {
		return nil, false
	}
	for _, d := range st.Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok {
			return ei, true
		}
	}
	return nil, false
}

// Message returns the server's message of a failed call (it names the
// offending value), or err's own text if err carries no status.
func Message(err error) string {
	if st, ok := status.FromError(err); ok {
		return st.Message()
	}
	return err.Error()
}

// Reason returns the stable reason of a failed call ("ENOENT",
// "USER_EVICTED", ...), or "" if it carries none.
func Reason(err error) string {
	ei, _ := ErrorInfo(err)
	return ei.GetReason()
}

// IsEvicted reports whether err says a changelog consumer was evicted,
// and its display name.
func IsEvicted(err error) (string, bool) {
	ei, ok := ErrorInfo(err)
	if !ok || ei.GetReason() != "USER_EVICTED" {
		return "", false
	}
	return ei.GetMetadata()["user"], true
}

// Unavailable reports whether a call failed because the server could not
// be reached or went away (a restart, a connection cut): a follower may
// reconnect and resume.
func Unavailable(err error) bool {
	st, ok := status.FromError(err)
	return ok && st.Code() == codes.Unavailable
}

// ErrnoOf returns the errno a failed call stands for: the "errno" of its
// ErrorInfo, else one derived from the status code (ECONNREFUSED for an
// unreachable server). nil is 0; a non-status error is EIO, a cancelled
// or timed-out context ECANCELED or ETIMEDOUT.
func ErrnoOf(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	if ei, ok := ErrorInfo(err); ok {
		if n, err := strconv.Atoi(ei.GetMetadata()["errno"]); err == nil && n > 0 {
			return syscall.Errno(n)
		}
	}
	switch {
	case errors.Is(err, context.Canceled):
		return syscall.ECANCELED
	case errors.Is(err, context.DeadlineExceeded):
		return syscall.ETIMEDOUT
	}
	st, ok := status.FromError(err)
	if !ok {
		return syscall.EIO
	}
	switch st.Code() {
	case codes.NotFound:
		return syscall.ENOENT
	case codes.AlreadyExists:
		return syscall.EEXIST
	case codes.PermissionDenied, codes.Unauthenticated:
		return syscall.EACCES
	case codes.InvalidArgument:
		return syscall.EINVAL
	case codes.OutOfRange:
		return syscall.ERANGE
	case codes.ResourceExhausted:
		return syscall.ENOSPC
	case codes.Unavailable:
		return syscall.ECONNREFUSED
	case codes.Canceled:
		return syscall.ECANCELED
	case codes.DeadlineExceeded:
		return syscall.ETIMEDOUT
	case codes.Unimplemented:
		return syscall.EOPNOTSUPP
	}
	return syscall.EIO
}
