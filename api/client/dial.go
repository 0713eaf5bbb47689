package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/spf13/pflag"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Environment variables the client reads when the corresponding flag or
// option is not given (a flag given on the command line wins).
const (
	// EnvServer names the server: "host:port" or "unix:PATH".
	EnvServer = "MDT_SERVER"
	// EnvTLSCA, EnvTLSCert and EnvTLSKey name PEM files for mutual TLS
	// over TCP: the CA that signed the server's certificate, and this
	// client's certificate and key.
	EnvTLSCA   = "MDT_TLS_CA"
	EnvTLSCert = "MDT_TLS_CERT"
	EnvTLSKey  = "MDT_TLS_KEY"
)

// The well-known unix socket paths of a default mdtd. A server run as
// root serves on DefaultSocket (/run is writable only by root, so no
// other user can put a socket there first); a server that cannot create
// DefaultSocket (not root) serves on FallbackSocket, which any local user
// could have created first: use it for trials, not for an audit trail
// others rely on.
const (
	DefaultSocket  = "/run/fidlog/mdtd.sock"
	FallbackSocket = "/tmp/fidlog-mdtd.sock"
)

// DefaultTarget is the server Dial uses when neither a target nor
// MDT_SERVER is given and no socket exists at FallbackSocket instead (see
// ResolveTarget).
const DefaultTarget = "unix:" + DefaultSocket

// ResolveTarget returns the server a client talks to: target if not
// empty, else $MDT_SERVER, else the default mdtd's socket: DefaultSocket,
// or FallbackSocket if only that one exists.
func ResolveTarget(target string) string {
	if target != "" {
		return target
	}
	if v := os.Getenv(EnvServer); v != "" {
		return v
	}
	if !isSocket(DefaultSocket) && isSocket(FallbackSocket) {
		return "unix:" + FallbackSocket
	}
	return DefaultTarget
}

func isSocket(path string) bool {
	fi, err := os.Lstat(path)
	return err == nil && fi.Mode()&os.ModeSocket != 0
}

// splitTarget returns the network and address of a target: "unix:PATH"
// (or "unix://PATH") is a unix socket, anything else a TCP host:port.
func splitTarget(target string) (network, addr string) {
	if p, ok := strings.CutPrefix(target, "unix:"); ok {
		return "unix", strings.TrimPrefix(p, "//")
	}
	return "tcp", target
}

// TLSFiles names the PEM files of a mutual TLS client: CA verifies the
// server's certificate (empty: the system roots), Cert and Key are this
// client's certificate and key, which a server started with
// --tls-client-ca requires. The zero TLSFiles means plaintext.
type TLSFiles struct {
	CA, Cert, Key string
}

// IsZero reports whether no file is named.
func (f TLSFiles) IsZero() bool { return f == TLSFiles{} }

// TLSFilesFromEnv returns the files named by MDT_TLS_CA, MDT_TLS_CERT and
// MDT_TLS_KEY.
func TLSFilesFromEnv() TLSFiles {
	return TLSFiles{CA: os.Getenv(EnvTLSCA), Cert: os.Getenv(EnvTLSCert), Key: os.Getenv(EnvTLSKey)}
}

// orEnv fills each empty field from the environment.
func (f TLSFiles) orEnv() TLSFiles {
	e := TLSFilesFromEnv()
	if f.CA == "" {
		f.CA = e.CA
	}
	if f.Cert == "" {
		f.Cert = e.Cert
	}
	if f.Key == "" {
		f.Key = e.Key
	}
	return f
}

// Config loads the files into a client tls.Config (TLS 1.2 or later).
// Cert and Key go together.
func (f TLSFiles) Config() (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.CA != "" {
		pem, err := os.ReadFile(f.CA)
		if err != nil {
			return nil, fmt.Errorf("client: TLS CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("client: TLS CA '%s' holds no PEM certificate", f.CA)
		}
		c.RootCAs = pool
	}
	switch {
	case f.Cert != "" && f.Key != "":
		cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			return nil, fmt.Errorf("client: TLS certificate '%s' and key '%s': %w", f.Cert, f.Key, err)
		}
		c.Certificates = []tls.Certificate{cert}
	case f.Cert != "" || f.Key != "":
		return nil, fmt.Errorf("client: a TLS certificate (%q) and key (%q) go together", f.Cert, f.Key)
	}
	return c, nil
}

// Flags are the connection flags every client command shares: --server,
// --tls-ca, --tls-cert and --tls-key. Register them on a cobra command's
// persistent flags, then Dial.
//
//	var f client.Flags
//	f.Register(root.PersistentFlags())
//	...
//	c, err := f.Dial(client.WithJobID("export"))
type Flags struct {
	Server string
	TLS    TLSFiles
}

// Register adds the flags to fs.
func (f *Flags) Register(fs *pflag.FlagSet) {
	fs.StringVar(&f.Server, "server", "", "MDT server: host:port or unix:PATH (env "+EnvServer+", default "+DefaultTarget+", else unix:"+FallbackSocket+")")
	fs.StringVar(&f.TLS.CA, "tls-ca", "", "CA certificate (PEM) that signed the server's certificate (env "+EnvTLSCA+")")
	fs.StringVar(&f.TLS.Cert, "tls-cert", "", "client certificate (PEM) for mutual TLS (env "+EnvTLSCert+")")
	fs.StringVar(&f.TLS.Key, "tls-key", "", "client key (PEM) for mutual TLS (env "+EnvTLSKey+")")
}

// Target is the server the flags select (see ResolveTarget).
func (f *Flags) Target() string { return ResolveTarget(f.Server) }

// Dial dials the server the flags select, with TLS from the flags or the
// environment, and opts.
func (f *Flags) Dial(opts ...Option) (*Client, error) {
	return Dial(f.Server, append([]Option{WithTLSFiles(f.TLS)}, opts...)...)
}

// Identity is what a request says about its sender (gRPC metadata
// lustre-uid, lustre-gid, lustre-groups, lustre-jobid). Who may assert
// what depends on the transport: on the unix socket only a root process
// may assert an identity other than its own; over TCP an authenticated
// node asserts the uids of its users.
type Identity struct {
	UID, GID uint32
	Groups   []uint32
	JobID    string
}

// ProcessIdentity is this process's real uid and gid.
func ProcessIdentity() Identity {
	return Identity{UID: uint32(os.Getuid()), GID: uint32(os.Getgid())}
}

// md returns the identity as metadata.
func (id Identity) md() metadata.MD {
	md := metadata.MD{}
	md.Set(mdUID, strconv.FormatUint(uint64(id.UID), 10))
	md.Set(mdGID, strconv.FormatUint(uint64(id.GID), 10))
	gs := make([]string, len(id.Groups))
	for i, g := range id.Groups {
		gs[i] = strconv.FormatUint(uint64(g), 10)
	}
	// Always set, so that a per-call identity without groups does not
	// inherit the groups given to Dial.
	md.Set(mdGroups, strings.Join(gs, ","))
	if id.JobID != "" {
		md.Set(mdJobID, id.JobID)
	}
	return md
}

// Context returns ctx carrying id: calls made with it send id instead of
// the identity given to Dial (a mount daemon forwards each caller's
// identity this way).
func (id Identity) Context(ctx context.Context) context.Context {
	out, _ := metadata.FromOutgoingContext(ctx)
	out = out.Copy()
	for k, v := range id.md() {
		out[k] = v
	}
	return metadata.NewOutgoingContext(ctx, out)
}

// ConnError reports that the server could not be reached.
type ConnError struct {
	Target string
	// Errno is ECONNREFUSED when nothing listens at Target (or the socket
	// file does not exist), EACCES when the socket's mode keeps the caller
	// out, else ENOTCONN.
	Errno syscall.Errno
	Err   error
}

func (e *ConnError) Error() string {
	return fmt.Sprintf("cannot connect to MDT server '%s': %v", e.Target, e.Err)
}

func (e *ConnError) Unwrap() error { return e.Err }

// dialState remembers the last dial failure, to explain UNAVAILABLE.
type dialState struct {
	mu  sync.Mutex
	err error
}

func (d *dialState) set(err error) {
	d.mu.Lock()
	d.err = err
	d.mu.Unlock()
}

func (d *dialState) get() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.err
}

// Err turns an error from a call into a *ConnError when the call failed
// because the server could not be reached (no ErrorInfo, UNAVAILABLE);
// other errors come back as they are.
func (c *Client) Err(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.Unavailable {
		return err
	}
	if _, ok := ErrorInfo(err); ok {
		return err
	}
	dialErr := c.dial.get()
	if dialErr == nil {
		return &ConnError{Target: c.target, Errno: syscall.ENOTCONN, Err: errors.New(st.Message())}
	}
	return &ConnError{Target: c.target, Errno: connErrno(dialErr), Err: unwrapOpError(dialErr)}
}

// connErrno is the errno of a failed dial: ECONNREFUSED when nothing
// listens (or the socket file does not exist), EACCES when the socket's
// or its directory's mode keeps the caller out (as connect(2) says),
// else ENOTCONN.
func connErrno(dialErr error) syscall.Errno {
	switch {
	case errors.Is(dialErr, syscall.ECONNREFUSED) || errors.Is(dialErr, syscall.ENOENT):
		return syscall.ECONNREFUSED
	case errors.Is(dialErr, syscall.EACCES) || errors.Is(dialErr, syscall.EPERM):
		return syscall.EACCES
	}
	return syscall.ENOTCONN
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
