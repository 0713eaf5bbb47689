package api_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fidlog/fidlog/api"
	"github.com/fidlog/fidlog/api/client"
	"github.com/fidlog/fidlog/mdt"
	changelogv1 "github.com/fidlog/fidlog/proto/lustre/changelog/v1"
	mdtv1 "github.com/fidlog/fidlog/proto/lustre/mdt/v1"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const device = "lustre-MDT0000"

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// env is a real MDT (in-memory Pebble FS) served by a real api.Server on a
// unix socket and on loopback TCP.
type env struct {
	t    testing.TB
	m    *mdt.MDT
	srv  *api.Server
	sock string // unix:PATH target
	tcp  string // host:port target
	wg   sync.WaitGroup
	once sync.Once
}

func newEnv(t testing.TB, opts ...func(*api.Options)) *env {
	t.Helper()
	return newEnvFS(t, vfs.NewMem(), "db", opts...)
}

func newEnvFS(t testing.TB, fs vfs.FS, dbdir string, opts ...func(*api.Options)) *env {
	t.Helper()
	// t.TempDir paths can exceed the 107-byte socket path limit.
	dir, err := os.MkdirTemp("", "api")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	m, err := mdt.Open(dbdir, &mdt.Options{FS: fs, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	o := api.Options{Logger: quietLogger(), HeartbeatInterval: time.Minute, Insecure: true}
	for _, f := range opts {
		f(&o)
	}
	srv, err := api.New(m, o)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, m: m, srv: srv}
	sock := filepath.Join(dir, "s.sock")
	ul, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.sock, e.tcp = "unix:"+sock, tl.Addr().String()
	for _, l := range []net.Listener{ul, tl} {
		e.wg.Go(func() {
			// A Stop that comes before Serve started makes Serve return
			// ErrServerStopped: not a failure.
			if err := srv.Serve(l); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				t.Errorf("serve %s: %v", l.Addr(), err)
			}
		})
	}
	t.Cleanup(e.stop)
	return e
}

// stop stops the server and closes the MDT; it may be called early.
func (e *env) stop() {
	e.once.Do(func() {
		e.srv.Stop()
		e.wg.Wait()
		if err := e.m.Close(); err != nil {
			e.t.Errorf("close mdt: %v", err)
		}
	})
}

func (e *env) dial(target string, opts ...client.Option) *client.Client {
	e.t.Helper()
	c, err := client.Dial(target, opts...)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	return c
}

// local dials the unix socket (the local administrator).
func (e *env) local() *client.Client { return e.dial(e.sock) }

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// wantStatus checks a failed call's code, ErrorInfo reason and errno, and
// that the message contains each of msgs.
func wantStatus(t testing.TB, err error, code codes.Code, reason string, errno syscall.Errno, msgs ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("call succeeded, want %v %s", code, reason)
	}
	st, ok := status.FromError(err)
	if !ok {
		t.Fatalf("not a status: %v", err)
	}
	if st.Code() != code {
		t.Errorf("code %v, want %v (%v)", st.Code(), code, err)
	}
	ei, ok := client.ErrorInfo(err)
	if !ok {
		t.Fatalf("no ErrorInfo in %v", err)
	}
	if ei.GetDomain() != "fidlog" || ei.GetReason() != reason {
		t.Errorf("ErrorInfo %s/%s, want fidlog/%s (%v)", ei.GetDomain(), ei.GetReason(), reason, err)
	}
	if got := client.ErrnoOf(err); got != errno {
		t.Errorf("errno %d, want %d", got, errno)
	}
	for _, m := range msgs {
		if !strings.Contains(st.Message(), m) {
			t.Errorf("message %q does not name %q", st.Message(), m)
		}
	}
}

// register registers a consumer and fails the test on error.
func register(t testing.TB, c *client.Client, name, mask string) *changelogv1.RegisterResponse {
	t.Helper()
	r, err := c.Register(ctxT(t), device, name, mask)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// touch creates n files dir/prefix<i>.
func touch(t testing.TB, c *client.Client, dir, prefix string, n int) {
	t.Helper()
	ctx := ctxT(t)
	for i := range n {
		if _, err := c.Namespace.Create(ctx, &mdtv1.CreateRequest{Path: []byte(dir + "/" + prefix + strconv.Itoa(i)), Mode: 0644}); err != nil {
			t.Fatal(err)
		}
	}
}

// waitFor polls cond until it holds or the test times out.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var errStop = errors.New("stop")
