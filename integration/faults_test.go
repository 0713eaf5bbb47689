package integration

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fidlog/fidlog/api/client"
	changelogv1 "github.com/fidlog/fidlog/proto/lustre/changelog/v1"
	mdtv1 "github.com/fidlog/fidlog/proto/lustre/mdt/v1"
	paramsv1 "github.com/fidlog/fidlog/proto/lustre/params/v1"
)

// errnoOf is the errno the server put in the error (-1 for none).
func errnoOf(err error) int {
	if err == nil {
		return -1
	}
	return int(client.ErrnoOf(err))
}

func setParam(t *testing.T, c *Conn, name, value string) {
	t.Helper()
	p := paramsv1.NewParamsServiceClient(c.ClientConn)
	if _, err := p.SetParam(c.Ctx(context.Background()), &paramsv1.SetParamRequest{Name: name, Value: value}); err != nil {
		t.Fatalf("set_param %s=%s: %v", name, value, err)
	}
}

func currentIndex(t *testing.T, c *Conn) uint64 {
	t.Helper()
	gs, err := c.CL.GetState(c.Ctx(context.Background()), &changelogv1.GetStateRequest{Device: device})
	if err != nil {
		t.Fatal(err)
	}
	return gs.GetCurrentIndex()
}

// TestLogFullFailsCleanly: with the retained-records cap reached and space
// GC off, operations fail with ENOSPC, the namespace is unchanged, no index
// moves; after a clear everything works again with no gap (ONTAP's
// guaranteed auditing: no operation succeeds without its record).
func TestLogFullFailsCleanly(t *testing.T) {
	s := StartServer(t, shortTempDir(t))
	c := Dial(t, s, 0, 0)
	ctx := c.Ctx(context.Background())
	reg, err := c.CL.Register(ctx, &changelogv1.RegisterRequest{Device: device})
	if err != nil {
		t.Fatal(err)
	}
	setParam(t, c, "mdd."+device+".changelog_free_space_gc", "0")
	setParam(t, c, "mdd."+device+".changelog_max_records", "20")
	var i int
	for i = 0; i < 100; i++ {
		_, err = c.NS.Create(ctx, &mdtv1.CreateRequest{Path: []byte(fmt.Sprintf("f%d", i)), Mode: 0o644})
		if err != nil {
			break
		}
	}
	if i != 20 {
		t.Fatalf("%d creates succeeded before the log was full, want 20 (err %v)", i, err)
	}
	if st, _ := status.FromError(err); st.Code() != codes.ResourceExhausted || errnoOf(err) != 28 {
		t.Fatalf("create with a full log: %v (errno %d), want RESOURCE_EXHAUSTED/ENOSPC", err, errnoOf(err))
	}
	cur := currentIndex(t, c)
	// Every kind of operation that needs a record fails and changes nothing.
	for _, op := range []struct {
		name string
		do   func() error
	}{
		{"mkdir", func() error {
			_, err := c.NS.Mkdir(ctx, &mdtv1.MkdirRequest{Path: []byte("d"), Mode: 0o755})
			return err
		}},
		{"unlink", func() error { _, err := c.NS.Unlink(ctx, &mdtv1.UnlinkRequest{Path: []byte("f0")}); return err }},
		{"rename", func() error {
			_, err := c.NS.Rename(ctx, &mdtv1.RenameRequest{SrcPath: []byte("f1"), DstPath: []byte("g1")})
			return err
		}},
	} {
		if err := op.do(); errnoOf(err) != 28 {
			t.Errorf("%s with a full log: %v, want ENOSPC", op.name, err)
		}
	}
	for _, p := range []string{"f20", "d", "g1"} {
		if _, err := c.NS.Stat(ctx, &mdtv1.StatRequest{Path: []byte(p)}); errnoOf(err) != 2 {
			t.Errorf("%s exists after a failed operation: %v", p, err)
		}
	}
	for _, p := range []string{"f0", "f1"} {
		if _, err := c.NS.Stat(ctx, &mdtv1.StatRequest{Path: []byte(p)}); err != nil {
			t.Errorf("%s lost after a failed operation: %v", p, err)
		}
	}
	if got := currentIndex(t, c); got != cur {
		t.Fatalf("current index moved from %d to %d on failed operations", cur, got)
	}
	// Space comes back with a clear; the next record follows with no gap.
	if _, err := c.CL.Clear(ctx, &changelogv1.ClearRequest{Device: device, User: reg.GetDisplayName()}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.NS.Create(ctx, &mdtv1.CreateRequest{Path: []byte("f20"), Mode: 0o644}); err != nil {
		t.Fatalf("create after clear: %v", err)
	}
	if got := currentIndex(t, c); got != cur+1 {
		t.Fatalf("current index %d after recovery, want %d", got, cur+1)
	}
}

// TestBadInputKeepsServing sends malformed names, garbage bytes, oversized
// messages and vanishing streams; every request gets a clear error, nothing
// is recorded, and the server keeps serving.
func TestBadInputKeepsServing(t *testing.T) {
	s := StartServer(t, shortTempDir(t))
	c := Dial(t, s, 0, 0)
	ctx := c.Ctx(context.Background())
	if _, err := c.CL.Register(ctx, &changelogv1.RegisterRequest{Device: device, Mask: "ALL"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.NS.Mkdir(ctx, &mdtv1.MkdirRequest{Path: []byte("d"), Mode: 0o755}); err != nil {
		t.Fatal(err)
	}
	cur := currentIndex(t, c)
	long := strings.Repeat("x", 256)
	for _, tc := range []struct {
		path  string
		errno int
	}{
		{"d/.", 22}, {"d/..", 22}, {"d/a\x00b", 22}, {"d/" + long, 36},
	} {
		_, err := c.NS.Create(ctx, &mdtv1.CreateRequest{Path: []byte(tc.path), Mode: 0o644})
		if errnoOf(err) != tc.errno {
			t.Errorf("create %q: %v (errno %d), want errno %d", tc.path, err, errnoOf(err), tc.errno)
		}
		if err != nil && tc.errno == 36 && !strings.Contains(err.Error(), "xxxx") {
			t.Errorf("error %q does not name the bad value", err)
		}
	}
	// Bad indices and users.
	if _, err := c.CL.Clear(ctx, &changelogv1.ClearRequest{Device: device, User: "cl1", EndRecord: 1 << 40}); errnoOf(err) != 22 || !strings.Contains(err.Error(), strconv.FormatUint(1<<40, 10)) {
		t.Errorf("clear past current: %v", err)
	}
	if _, err := c.CL.Clear(ctx, &changelogv1.ClearRequest{Device: device, User: "cl77"}); errnoOf(err) != 2 || !strings.Contains(err.Error(), "cl77") {
		t.Errorf("clear unknown user: %v", err)
	}
	if _, err := c.CL.Clear(ctx, &changelogv1.ClearRequest{Device: "nosuch-MDT0009", User: "cl1"}); errnoOf(err) != 2 || !strings.Contains(err.Error(), "nosuch-MDT0009") {
		t.Errorf("unknown device: %v", err)
	}
	if _, err := c.CL.Register(ctx, &changelogv1.RegisterRequest{Device: device, Mask: "CREATE"}); errnoOf(err) != 22 || !strings.Contains(err.Error(), "CREATE") {
		t.Errorf("bad mask: %v", err)
	}
	// Garbage on the TCP port.
	for range 3 {
		nc, err := net.Dial("tcp", s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = nc.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n\x00\xff\xfe garbage \x16\x03\x01"))
		_ = nc.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 512)
		_, _ = nc.Read(buf)
		nc.Close()
	}
	// An oversized message is refused by the transport, not by a crash.
	big := make([]byte, 8<<20)
	if _, err := c.NS.Setxattr(ctx, &mdtv1.SetxattrRequest{Path: []byte("d"), Name: "user.big", Value: big}); err == nil {
		t.Error("an 8 MiB xattr was accepted")
	}
	// Clients that vanish mid-stream.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			sctx, cancel := context.WithCancel(ctx)
			st, err := c.CL.Read(sctx, &changelogv1.ReadRequest{Device: device, Follow: true})
			if err == nil {
				_, _ = st.Recv()
			}
			cancel()
		})
	}
	wg.Wait()
	c2 := Dial(t, s, 0, 0)
	st, err := c2.CL.Read(c2.Ctx(context.Background()), &changelogv1.ReadRequest{Device: device, Follow: true})
	if err == nil {
		_, _ = st.Recv()
	}
	c2.Close()

	if got := currentIndex(t, c); got != cur {
		t.Fatalf("bad input recorded something: current index %d -> %d", cur, got)
	}
	// Still serving, and still recording.
	if _, err := c.NS.Create(ctx, &mdtv1.CreateRequest{Path: []byte("d/ok"), Mode: 0o644}); err != nil {
		t.Fatalf("server not serving after bad input: %v\n%s", err, s.Logs())
	}
	if got := currentIndex(t, c); got <= cur {
		t.Fatalf("create after bad input not recorded (index %d)", got)
	}
	if err := s.Stop(); err != nil {
		var ee interface{ ExitCode() int }
		if !errors.As(err, &ee) || ee.ExitCode() != 0 {
			t.Fatalf("mdtd exit after SIGTERM: %v\n%s", err, s.Logs())
		}
	}
}
