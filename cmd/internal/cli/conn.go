package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	changelogv1 "github.com/fidlog/fidlog/proto/lustre/changelog/v1"
	mdtv1 "github.com/fidlog/fidlog/proto/lustre/mdt/v1"
	nodemapv1 "github.com/fidlog/fidlog/proto/lustre/nodemap/v1"
	paramsv1 "github.com/fidlog/fidlog/proto/lustre/params/v1"
)

// DefaultServer is the address mdtd listens on by default.
const DefaultServer = "127.0.0.1:7988"

// ServerEnv names the environment variable that gives the server when
// --server is not on the command line.
const ServerEnv = "MDT_SERVER"

// AddServerFlag registers the persistent --server flag on cmd.
func AddServerFlag(cmd *cobra.Command, target *string) {
	cmd.PersistentFlags().StringVar(target, "server", "",
		"MDT server: host:port or unix:PATH (env "+ServerEnv+", default "+DefaultServer+")")
}

// ResolveServer picks the server: the flag if given, else $MDT_SERVER,
// else DefaultServer.
func ResolveServer(flag string) string {
	if flag != "" {
		return flag
	}
	if v, ok := os.LookupEnv(ServerEnv); ok && v != "" {
		return v
	}
	return DefaultServer
}

// ConnError reports that the server could not be reached.
type ConnError struct {
	Target string
	Errno  int // ECONNREFUSED or ENOTCONN
	Err    error
}

func (e *ConnError) Error() string {
	return fmt.Sprintf("cannot connect to MDT server '%s': %v", e.Target, e.Err)
}

func (e *ConnError) Unwrap() error { return e.Err }

// Identity is what a request says about its sender (gRPC metadata
// lustre-uid, lustre-gid, lustre-groups, lustre-jobid).
type Identity struct {
	UID, GID uint32
	Groups   []uint32
	JobID    string
}

// CallerIdentity is the identity of this process: its real uid and gid.
func CallerIdentity() Identity {
	return Identity{UID: uint32(os.Getuid()), GID: uint32(os.Getgid())}
}

// Context returns ctx with the identity attached as outgoing metadata.
func (id Identity) Context(ctx context.Context) context.Context {
	kv := []string{
		"lustre-uid", strconv.FormatUint(uint64(id.UID), 10),
		"lustre-gid", strconv.FormatUint(uint64(id.GID), 10),
	}
	if len(id.Groups) > 0 {
		g := make([]string, len(id.Groups))
		for i, v := range id.Groups {
			g[i] = strconv.FormatUint(uint64(v), 10)
		}
		kv = append(kv, "lustre-groups", strings.Join(g, ","))
	}
	if id.JobID != "" {
		kv = append(kv, "lustre-jobid", id.JobID)
	}
	return metadata.AppendToOutgoingContext(ctx, kv...)
}

// Conn is a connection to one mdtd.
type Conn struct {
	Target string
	cc     *grpc.ClientConn

	mu      sync.Mutex
	dialErr error // last dial failure, to explain UNAVAILABLE
}

// Dial prepares a connection to target ("host:port" or "unix:PATH"). It
// does not connect: the first call does, and a failure to connect comes
// back from that call; pass it through Conn.Err.
func Dial(target string) (*Conn, error) {
	network, addr := "tcp", target
	if p, ok := strings.CutPrefix(target, "unix:"); ok {
		network, addr = "unix", strings.TrimPrefix(p, "//")
	}
	if addr == "" {
		return nil, &ConnError{Target: target, Errno: EINVAL, Err: errors.New("empty address")}
	}
	c := &Conn{Target: target}
	dialer := func(ctx context.Context, _ string) (net.Conn, error) {
		var d net.Dialer
		nc, err := d.DialContext(ctx, network, addr)
		c.mu.Lock()
		c.dialErr = err
		c.mu.Unlock()
		return nc, err
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(dialer),
		// The server permits pings every 10 s or more; follow streams stay
		// alive across idle periods.
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 20 * time.Second}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16 << 20)),
	}
	if network == "unix" {
		opts = append(opts, grpc.WithAuthority("localhost"))
	}
	cc, err := grpc.NewClient("passthrough:///"+addr, opts...)
	if err != nil {
		return nil, &ConnError{Target: target, Errno: ENOTCONN, Err: err}
	}
	c.cc = cc
	return c, nil
}

// Close closes the connection.
func (c *Conn) Close() error { return c.cc.Close() }

// Err turns an error from a call into a *ConnError when the call failed
// because the server could not be reached; other errors come back as they
// are.
func (c *Conn) Err(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.Unavailable || ErrorInfo(err) != nil {
		return err
	}
	c.mu.Lock()
	dialErr := c.dialErr
	c.mu.Unlock()
	if dialErr == nil {
		return &ConnError{Target: c.Target, Errno: ENOTCONN, Err: errors.New(st.Message())}
	}
	n := ENOTCONN
	if errors.Is(dialErr, syscall.ECONNREFUSED) || errors.Is(dialErr, syscall.ENOENT) {
		n = ECONNREFUSED
	}
	return &ConnError{Target: c.Target, Errno: n, Err: unwrapOpError(dialErr)}
}

func unwrapOpError(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		var se *os.SyscallError
		if errors.As(oe.Err, &se) {
			return se.Err
		}
		return oe.Err
	}
	return err
}

// Changelog returns a ChangelogService client.
func (c *Conn) Changelog() changelogv1.ChangelogServiceClient {
	return changelogv1.NewChangelogServiceClient(c.cc)
}

// Namespace returns a NamespaceService client.
func (c *Conn) Namespace() mdtv1.NamespaceServiceClient { return mdtv1.NewNamespaceServiceClient(c.cc) }

// Params returns a ParamsService client.
func (c *Conn) Params() paramsv1.ParamsServiceClient { return paramsv1.NewParamsServiceClient(c.cc) }

// Nodemap returns a NodemapService client.
func (c *Conn) Nodemap() nodemapv1.NodemapServiceClient {
	return nodemapv1.NewNodemapServiceClient(c.cc)
}
