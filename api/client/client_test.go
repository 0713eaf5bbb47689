package client

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"

	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
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
		if got := c.Conn().Target(); got != tc.want {
			t.Errorf("Dial(%q) target %q, want %q", tc.target, got, tc.want)
		}
		c.Close()
	}
	if _, err := Dial("x:1", WithJobID(string(make([]byte, 32)))); err == nil {
		t.Error("a 32-byte job id was accepted")
	}
}
