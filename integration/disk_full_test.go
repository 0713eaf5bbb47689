package integration

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	changelogv1 "github.com/fidlog/fidlog/proto/lustre/changelog/v1"
	mdtv1 "github.com/fidlog/fidlog/proto/lustre/mdt/v1"
)

// tmpfsDir mounts a tmpfs of size bytes at a new directory (root only;
// skips loudly otherwise).
func tmpfsDir(t *testing.T, size int64) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIP (loud): filling a disk needs root to mount a small tmpfs; CI runs as root")
	}
	dir := shortTempDir(t)
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		t.Skipf("SKIP (loud): cannot mount a tmpfs at %s: %v", dir, err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

// fillUntilFailure writes 1 MiB blocks of random data to one file until a
// write fails, and returns how many were acknowledged.
func fillUntilFailure(t *testing.T, c *Conn, path string) int {
	t.Helper()
	ctx := context.Background()
	o, err := c.NS.Open(c.Ctx(ctx), &mdtv1.OpenRequest{Path: []byte(path), Flags: 0x2 | 0x40, Mode: 0o644})
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	block := make([]byte, 1<<20)
	for i := 0; i < 2000; i++ {
		_, _ = rand.Read(block)
		wctx, cancel := context.WithTimeout(c.Ctx(ctx), 20*time.Second)
		_, err := c.NS.Write(wctx, &mdtv1.WriteRequest{Handle: o.GetHandle(), Offset: uint64(i) << 20, Data: block})
		cancel()
		if err != nil {
			return i
		}
	}
	t.Fatal("2,000 MiB written to a small tmpfs")
	return 0
}

// TestDiskFull: a consumer that never clears lets the records fill the
// data directory's file system. mdtd exits 74 on the failed write; the
// restart finds less free space than the emergency ballast, deletes it,
// logs what to do and serves; everything acknowledged is there, and
// deregistering the consumer gives the space back.
func TestDiskFull(t *testing.T) {
	dir := tmpfsDir(t, 256<<20)
	data := filepath.Join(dir, "d")
	args := []string{"--ballast-size", "96M"}
	s := StartServer(t, data, args...)
	ballast := filepath.Join(data, "EMERGENCY_BALLAST")
	if st, err := os.Stat(ballast); err != nil || st.Size() != 96<<20 {
		t.Fatalf("ballast at start: %v %v", st, err)
	}
	c := Dial(t, s, 0, 0)
	ctx := context.Background()
	if _, err := c.CL.Register(c.Ctx(ctx), &changelogv1.RegisterRequest{Device: device, Mask: "ALL"}); err != nil {
		t.Fatal(err)
	}
	acked := fillUntilFailure(t, c, "big")
	if code := exitCode(t, s, 60*time.Second); code != 74 {
		t.Fatalf("mdtd exit %d on a full disk, want 74\n%s", code, s.Logs())
	}
	t.Logf("%d MiB acknowledged before the disk filled", acked)
	if acked < 20 {
		t.Fatalf("only %d MiB acknowledged before the disk filled", acked)
	}

	s.Restart()
	logs := s.Logs()
	if !strings.Contains(logs, "disk_full_ballast_removed") || !strings.Contains(logs, "changelog_users") {
		t.Fatalf("the restart does not say it removed the ballast and what to do:\n%s", logs)
	}
	c = Dial(t, s, 0, 0)
	st, err := c.NS.Stat(c.Ctx(ctx), &mdtv1.StatRequest{Path: []byte("big")})
	if err != nil || st.GetAttr().GetSize() < uint64(acked)<<20 {
		t.Fatalf("after the restart big is %v (%v), %d MiB were acknowledged", st.GetAttr(), err, acked)
	}
	if _, err := c.CL.Deregister(c.Ctx(ctx), &changelogv1.DeregisterRequest{Device: device, Selector: &changelogv1.DeregisterRequest_Id{Id: "cl1"}}); err != nil {
		t.Fatalf("deregister on the nearly full disk: %v", err)
	}
	if _, err := c.NS.Unlink(c.Ctx(ctx), &mdtv1.UnlinkRequest{Path: []byte("big")}); err != nil {
		t.Fatalf("unlink: %v", err)
	}
	// The space comes back (purge, compaction of the deleted data), and
	// with twice its size free the ballast would be allocated again.
	var fs unix.Statfs_t
	deadline := time.Now().Add(60 * time.Second)
	for {
		if err := unix.Statfs(dir, &fs); err != nil {
			t.Fatal(err)
		}
		if free := int64(fs.Bavail) * fs.Bsize; free >= 128<<20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("free space %d MiB 60 s after deregistering and unlinking", int64(fs.Bavail)*fs.Bsize>>20)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("stop: %v\n%s", err, s.Logs())
	}
}

// TestDiskFullNoBallast: without the ballast (--ballast-size 0) the
// restart on the full disk cannot flush the log it recovers. It must fail
// at once with status 74 and say why, not hang in Pebble's retries (it
// used to, deaf to SIGTERM).
func TestDiskFullNoBallast(t *testing.T) {
	dir := tmpfsDir(t, 160<<20)
	data := filepath.Join(dir, "d")
	s := StartServer(t, data, "--ballast-size", "0")
	c := Dial(t, s, 0, 0)
	if _, err := c.CL.Register(c.Ctx(context.Background()), &changelogv1.RegisterRequest{Device: device, Mask: "ALL"}); err != nil {
		t.Fatal(err)
	}
	fillUntilFailure(t, c, "big")
	if code := exitCode(t, s, 60*time.Second); code != 74 {
		t.Fatalf("mdtd exit %d on a full disk, want 74\n%s", code, s.Logs())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(bin, "mdtd"), s.args...).CombinedOutput()
	var ee *exec.ExitError
	if ctx.Err() != nil || !errors.As(err, &ee) || ee.ExitCode() != 74 ||
		!strings.Contains(string(out), "open_no_space") || !strings.Contains(string(out), "free space on its file system") {
		t.Fatalf("restart on the full disk without a ballast: %v (%v)\n%s", err, ctx.Err(), out)
	}
}
