package client

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/spf13/pflag"

	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func withInfo(c codes.Code, reason string, md map[string]string) error {
	st, _ := status.New(c, "x").WithDetails(&errdetails.ErrorInfo{Domain: "fidlog", Reason: reason, Metadata: md})
	return st.Err()
}

func TestErrnoOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want syscall.Errno
	}{
		{nil, 0},
		{withInfo(codes.NotFound, "ENOENT", map[string]string{"errno": "2"}), syscall.ENOENT},
		{withInfo(codes.InvalidArgument, "ENAMETOOLONG", map[string]string{"errno": "36"}), syscall.ENAMETOOLONG},
		{withInfo(codes.FailedPrecondition, "USER_EVICTED", map[string]string{"errno": "2", "user": "cl1"}), syscall.ENOENT},
		{status.Error(codes.PermissionDenied, "no"), syscall.EACCES},
		{status.Error(codes.Unavailable, "down"), syscall.ECONNREFUSED},
		{status.Error(codes.Internal, "?"), syscall.EIO},
		{fmt.Errorf("wrapped: %w", context.Canceled), syscall.ECANCELED},
		{errors.New("plain"), syscall.EIO},
	} {
		if got := ErrnoOf(tc.err); got != tc.want {
			t.Errorf("ErrnoOf(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
	ev := withInfo(codes.FailedPrecondition, "USER_EVICTED", map[string]string{"errno": "2", "user": "cl1-x"})
	if u, ok := IsEvicted(ev); !ok || u != "cl1-x" || Reason(ev) != "USER_EVICTED" {
		t.Errorf("IsEvicted = %q %v", u, ok)
	}
}

func TestDialTarget(t *testing.T) {
	t.Setenv(EnvServer, "unix:/nonexistent/mdtd.sock")
	for _, tc := range []struct{ target, want string }{
		{"", "unix:/nonexistent/mdtd.sock"},
		{"127.0.0.1:1", "127.0.0.1:1"},
	} {
		c, err := Dial(tc.target, WithUID(1), WithGroups(1, 2), WithJobID("j"))
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Target(); got != tc.want {
			t.Errorf("Dial(%q) target %q, want %q", tc.target, got, tc.want)
		}
		c.Close()
	}
	if _, err := Dial("x:1", WithJobID(string(make([]byte, 32)))); err == nil {
		t.Error("a 32-byte job id was accepted")
	}
}

func TestIdentityContext(t *testing.T) {
	dial := Identity{UID: 7, GID: 8, Groups: []uint32{9, 10}, JobID: "dial.7"}.md()
	// A per-call identity replaces the dial-level one key by key, groups
	// included (a call without groups must not inherit the dialer's).
	ctx := withMD(Identity{UID: 1000, GID: 1000}.Context(context.Background()), dial)
	md, _ := metadata.FromOutgoingContext(ctx)
	for k, want := range map[string]string{mdUID: "1000", mdGID: "1000", mdGroups: "", mdJobID: "dial.7"} {
		if got := md.Get(k); len(got) != 1 || got[0] != want {
			t.Errorf("%s = %q, want [%q]", k, got, want)
		}
	}
	md, _ = metadata.FromOutgoingContext(withMD(context.Background(), dial))
	if got := md.Get(mdGroups); len(got) != 1 || got[0] != "9,10" {
		t.Errorf("groups %q", got)
	}
}

func TestTLSFiles(t *testing.T) {
	if _, err := (TLSFiles{Cert: "c.pem"}).Config(); err == nil || !strings.Contains(err.Error(), "go together") {
		t.Errorf("cert without key: %v", err)
	}
	if _, err := (TLSFiles{CA: "/nonexistent/ca.pem"}).Config(); err == nil || !strings.Contains(err.Error(), "/nonexistent/ca.pem") {
		t.Errorf("missing CA: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(bad, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := (TLSFiles{CA: bad}).Config(); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("bad CA: %v", err)
	}
	t.Setenv(EnvTLSCA, bad)
	if _, err := Dial("127.0.0.1:1"); err == nil {
		t.Error("Dial ignored MDT_TLS_CA")
	}
	c, err := Dial("unix:/nonexistent.sock") // TLS does not apply to the socket
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	var f Flags
	fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
	f.Register(fs)
	if err := fs.Parse([]string{"--server", "unix:/x.sock", "--tls-ca", "a", "--tls-cert", "b", "--tls-key", "c"}); err != nil {
		t.Fatal(err)
	}
	if f.Target() != "unix:/x.sock" || f.TLS != (TLSFiles{"a", "b", "c"}) {
		t.Errorf("flags %+v", f)
	}
}
