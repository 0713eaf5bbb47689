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
	"os"
	"strconv"
	"strings"
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

// EnvServer names the environment variable Dial reads when its target is
// empty.
const EnvServer = "MDT_SERVER"

// DefaultTarget is the server Dial uses when neither a target nor
// MDT_SERVER is given: mdtd's default TCP address.
const DefaultTarget = "127.0.0.1:7988"

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

type options struct {
	uid, gid   uint32
	groups     []uint32
	jobid      string
	tls        *tls.Config
	dialOpts   []grpc.DialOption
	keepalive  time.Duration
	hasIDs     bool
	hasGroups  bool
	hasJobID   bool
	noKeepPing bool
}

// Option configures Dial.
type Option func(*options)

// WithUID sets the uid sent with every request (lustre-uid; default 0).
func WithUID(uid uint32) Option { return func(o *options) { o.uid, o.hasIDs = uid, true } }

// WithGID sets the primary gid sent with every request (lustre-gid;
// default 0).
func WithGID(gid uint32) Option { return func(o *options) { o.gid, o.hasIDs = gid, true } }

// WithGroups sets the supplementary groups sent with every request.
func WithGroups(groups ...uint32) Option {
	return func(o *options) { o.groups, o.hasGroups = groups, true }
}

// WithJobID sets the job id recorded in changelog records (at most 31
// bytes).
func WithJobID(jobid string) Option {
	return func(o *options) { o.jobid, o.hasJobID = jobid, jobid != "" }
}

// WithTLS secures a TCP connection; without it the connection is
// plaintext. Ignored for unix: targets.
func WithTLS(c *tls.Config) Option { return func(o *options) { o.tls = c } }

// WithDialOptions adds gRPC dial options.
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(o *options) { o.dialOpts = append(o.dialOpts, opts...) }
}

// WithKeepalive sets the keepalive ping interval of idle connections
// (default 30 s; the server allows no less than 5 s, and asks for >= 10 s).
// 0 disables pings.
func WithKeepalive(d time.Duration) Option {
	return func(o *options) { o.keepalive, o.noKeepPing = d, d == 0 }
}

// Client is a connection to one mdtd server. Its service stubs may be used
// directly; every call carries the identity given to Dial.
type Client struct {
	conn *grpc.ClientConn

	Changelog changelogv1.ChangelogServiceClient
	Namespace mdtv1.NamespaceServiceClient
	Params    paramsv1.ParamsServiceClient
	Nodemap   nodemapv1.NodemapServiceClient
	Health    healthgrpc.HealthClient
}

// Dial connects to target: "host:port" or "unix:PATH" (an empty target
// means $MDT_SERVER, else DefaultTarget). The connection is made lazily;
// the first call reports a server that cannot be reached (UNAVAILABLE).
func Dial(target string, opts ...Option) (*Client, error) {
	o := options{keepalive: 30 * time.Second}
	for _, f := range opts {
		f(&o)
	}
	if target == "" {
		target = os.Getenv(EnvServer)
	}
	if target == "" {
		target = DefaultTarget
	}
	if len(o.jobid) > changelog.MaxJobID {
		return nil, fmt.Errorf("client: job id '%s' is longer than %d bytes", o.jobid, changelog.MaxJobID)
	}
	md := metadata.MD{}
	if o.hasIDs {
		md.Set(mdUID, strconv.FormatUint(uint64(o.uid), 10))
		md.Set(mdGID, strconv.FormatUint(uint64(o.gid), 10))
	}
	if o.hasGroups && len(o.groups) > 0 {
		gs := make([]string, len(o.groups))
		for i, g := range o.groups {
			gs[i] = strconv.FormatUint(uint64(g), 10)
		}
		md.Set(mdGroups, strings.Join(gs, ","))
	}
	if o.hasJobID {
		md.Set(mdJobID, o.jobid)
	}
	creds := insecure.NewCredentials()
	if o.tls != nil && !strings.HasPrefix(target, "unix:") {
		creds = credentials.NewTLS(o.tls)
	}
	dopts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxRecvMsgSize)),
		grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, inv grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			return inv(withMD(ctx, md), method, req, reply, cc, opts...)
		}),
		grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, st grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			return st(withMD(ctx, md), desc, cc, method, opts...)
		}),
	}
	if !o.noKeepPing {
		dopts = append(dopts, grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: o.keepalive, Timeout: 10 * time.Second, PermitWithoutStream: true}))
	}
	dopts = append(dopts, o.dialOpts...)
	conn, err := grpc.NewClient(target, dopts...)
	if err != nil {
		return nil, fmt.Errorf("client: %s: %w", target, err)
	}
	return &Client{
		conn:      conn,
		Changelog: changelogv1.NewChangelogServiceClient(conn),
		Namespace: mdtv1.NewNamespaceServiceClient(conn),
		Params:    paramsv1.NewParamsServiceClient(conn),
		Nodemap:   nodemapv1.NewNodemapServiceClient(conn),
		Health:    healthgrpc.NewHealthClient(conn),
	}, nil
}

func withMD(ctx context.Context, md metadata.MD) context.Context {
	if len(md) == 0 {
		return ctx
	}
	out, _ := metadata.FromOutgoingContext(ctx)
	return metadata.NewOutgoingContext(ctx, metadata.Join(md, out))
}

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
func Records(msg *changelogv1.ReadResponse) ([]*changelog.Record, error) {
	if len(msg.GetRawRecords()) > 0 {
		out := make([]*changelog.Record, len(msg.GetRawRecords()))
		for i, b := range msg.GetRawRecords() {
			r, err := changelog.Decode(b)
			if err != nil {
				return nil, fmt.Errorf("client: record %d of batch: %w", i, err)
			}
			out[i] = r
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
		Name: r.GetName(), SFID: FIDFromPB(r.GetSfid()), SPFID: FIDFromPB(r.GetSpfid()), SName: r.GetSname(),
		JobID: r.GetJobid(), ExtraFlags: r.GetExtraFlags(), UID: r.GetUid(), GID: r.GetGid(),
		NID: r.GetNid(), OpenFlags: r.GetOpenFlags(), XattrName: r.GetXattrName(),
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
	return r.GetPaths(), err
}

// Path2Fid returns the FID of path.
func (c *Client) Path2Fid(ctx context.Context, path string) (fid.FID, error) {
	r, err := c.Namespace.Path2Fid(ctx, &mdtv1.Path2FidRequest{Path: path})
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
