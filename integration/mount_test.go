package integration

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fidlog/fidlog/changelog"
	changelogv1 "github.com/fidlog/fidlog/proto/lustre/changelog/v1"
)

// Mount is a running "mdc mount".
type Mount struct {
	t    *testing.T
	Dir  string
	cmd  *exec.Cmd
	done chan error
	out  bytes.Buffer
}

// needFUSE skips, loudly, where a FUSE mount cannot work.
func needFUSE(t *testing.T, tools ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIP (loud): the mount tests need root (mdc mount mounts /dev/fuse directly); CI runs as root")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("SKIP (loud): /dev/fuse is missing (%v): no FUSE on this machine; CI must provide it", err)
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("SKIP (loud): %s is not installed (.ci/run installs it): %v", tool, err)
		}
	}
}

// StartMount mounts s at a new directory through its unix socket, as root.
func StartMount(t *testing.T, s *Server, extra ...string) *Mount {
	t.Helper()
	dir := filepath.Join(shortTempDir(t), "mnt")
	// Other users reach the mount through its parent.
	if err := os.Chmod(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return mountAt(t, s, dir, extra...)
}

// mountAt mounts s at the existing empty directory dir.
func mountAt(t *testing.T, s *Server, dir string, extra ...string) *Mount {
	t.Helper()
	m := &Mount{t: t, Dir: dir, done: make(chan error, 1)}
	args := append([]string{"--server", "unix:" + s.Socket, "mount"}, extra...)
	m.cmd = exec.Command(filepath.Join(bin, "mdc"), append(args, m.Dir)...)
	m.cmd.Stdout, m.cmd.Stderr = &m.out, &m.out
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { m.done <- m.cmd.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	for !m.mounted() {
		select {
		case err := <-m.done:
			t.Fatalf("mdc mount exited: %v\n%s", err, m.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("mount did not appear at %s\n%s", m.Dir, m.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() {
		if m.mounted() {
			_ = syscall.Unmount(m.Dir, unix.MNT_DETACH)
		}
		select {
		case <-m.done:
		case <-time.After(10 * time.Second):
			_ = m.cmd.Process.Kill()
		}
	})
	return m
}

func (m *Mount) mounted() bool {
	b, err := os.ReadFile("/proc/self/mounts")
	return err == nil && strings.Contains(string(b), " "+m.Dir+" fuse.fidlog ")
}

// Unmount runs umount and checks that mdc exits 0.
func (m *Mount) Unmount() {
	m.t.Helper()
	if out, err := exec.Command("umount", m.Dir).CombinedOutput(); err != nil {
		m.t.Fatalf("umount: %v %s", err, out)
	}
	select {
	case err := <-m.done:
		m.done <- err // for the cleanup, which waits for the exit too
		if err != nil {
			m.t.Fatalf("mdc mount after umount: %v\n%s", err, m.out.String())
		}
	case <-time.After(20 * time.Second):
		m.t.Fatal("mdc mount did not exit after umount")
	}
}

// sh runs a shell script in dir, as root or as uid/gid when cred is set.
func sh(t *testing.T, dir string, cred *syscall.Credential, script string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-ec", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_DATE=2026-01-01T00:00:00Z", "GIT_COMMITTER_DATE=2026-01-01T00:00:00Z",
		"HOME="+dir, "GIT_CONFIG_NOSYSTEM=1", "LC_ALL=C")
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("in %s: %s\n%v\n%s", dir, script, err, out)
	}
	return string(out)
}

// archiveTime is the mtime of every member of makeTar's archives.
var archiveTime = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)

// makeTar writes a tar of n small files in nested directories, with
// non-UTF-8 (Latin-1) names, a symlink and a hard link.
func makeTar(t *testing.T, path string, n int) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	mt := archiveTime
	add := func(h *tar.Header, body []byte) {
		h.ModTime, h.Format = mt, tar.FormatGNU
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	dirs := 20
	for d := range dirs {
		add(&tar.Header{Name: fmt.Sprintf("t/d%02d/", d), Typeflag: tar.TypeDir, Mode: 0o755}, nil)
	}
	for i := range n {
		name := fmt.Sprintf("t/d%02d/f%04d", i%dirs, i)
		if i%10 == 0 {
			name += "-caf\xe9-\xff" // Latin-1, not UTF-8
		}
		body := bytes.Repeat([]byte(fmt.Sprintf("file %d\n", i)), 1+i%50)
		add(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644 | int64(i%3)*0o100, Size: int64(len(body))}, body)
	}
	add(&tar.Header{Name: "t/link", Typeflag: tar.TypeSymlink, Linkname: "d00/f0000-caf\xe9-\xff", Mode: 0o777}, nil)
	add(&tar.Header{Name: "t/hard", Typeflag: tar.TypeLink, Linkname: "t/d01/f0001", Mode: 0o644}, nil)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}

// treeOf describes a tree: per path its type, mode, link count, size,
// content hash or link target, and xattrs.
func treeOf(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		if d.Name() == ".git" {
			// Its index holds inode numbers and ctimes; git log, status
			// and fsck check the repository instead.
			return fs.SkipDir
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		line := fmt.Sprintf("%q mode=%o", rel, st.Mode)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h := sha256.Sum256(b)
			line += fmt.Sprintf(" nlink=%d size=%d sha=%s", st.Nlink, st.Size, hex.EncodeToString(h[:8]))
			// Times set by tar and cp -a (the archive's) must match; files
			// written during the run have their own.
			if st.Mtim.Sec < archiveTime.Unix()+1 {
				line += fmt.Sprintf(" mtime=%d", st.Mtim.Sec)
			}
		case unix.S_IFLNK:
			tg, err := os.Readlink(p)
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" -> %q", tg)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFLNK {
			sz, err := unix.Llistxattr(p, nil)
			if err == nil && sz > 0 {
				buf := make([]byte, sz)
				sz, _ = unix.Llistxattr(p, buf)
				names := strings.Split(strings.TrimRight(string(buf[:sz]), "\x00"), "\x00")
				slices.Sort(names)
				for _, nm := range names {
					if !strings.HasPrefix(nm, "user.") {
						continue
					}
					v := make([]byte, 256)
					vn, err := unix.Lgetxattr(p, nm, v)
					if err != nil {
						return err
					}
					line += fmt.Sprintf(" %s=%q", nm, v[:vn])
				}
			}
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// readAll returns every record of the changelog.
func readAll(t *testing.T, c *Conn) []*changelog.Record {
	t.Helper()
	st, err := c.CL.Read(c.Ctx(context.Background()), &changelogv1.ReadRequest{Device: device, Raw: true})
	if err != nil {
		t.Fatal(err)
	}
	var out []*changelog.Record
	for {
		resp, err := st.Recv()
		if err != nil {
			break
		}
		for _, raw := range resp.GetRawRecords() {
			r, err := changelog.Decode(raw)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, r)
		}
	}
	return out
}

// TestMountRealPrograms runs tar, git, cp -a, mv, chmod -R, ln, ln -s,
// setfattr and rm -rf in the mount and in a local directory, compares the
// trees, and replays the changelog onto an empty namespace (the mirror
// oracle) to compare with the server's.
func TestMountRealPrograms(t *testing.T) {
	needFUSE(t, "tar", "git", "setfattr", "getfattr", "cp")
	s := StartServer(t, shortTempDir(t))
	c := Dial(t, s, 0, 0)
	if _, err := c.CL.Register(c.Ctx(context.Background()), &changelogv1.RegisterRequest{Device: device, Mask: "ALL"}); err != nil {
		t.Fatal(err)
	}
	m := StartMount(t, s)
	local := filepath.Join(shortTempDir(t), "local")
	if err := os.Mkdir(local, 0o755); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(shortTempDir(t), "a.tar")
	makeTar(t, archive, 2000)
	script := `
tar xf ` + archive + `
mkdir repo && cd repo && git init -q && git config user.email a@b && git config user.name A
echo one > one.txt && mkdir sub && echo two > sub/two.txt && git add -A && git commit -qm first
echo three >> one.txt && git commit -qam second && git log --format=%s > ../gitlog && git status --short > ../gitstatus
cd ..
cp -a t copy
mkdir moved && mv copy/d03 moved/ && mv t/d04/f0004 moved/f4
chmod -R go-w,g+x copy
ln t/d05/f0005 t/hardlink && ln -s ../t/d05/f0005 moved/sym
setfattr -n user.color -v blue t/d06/f0006 && setfattr -n user.n -v 1 moved && setfattr -x user.n moved
getfattr -n user.color t/d06/f0006 > /dev/null
mv t/d07/f0007 t/d08/f0008
rm -rf copy/d1*
echo replaced > t/d09/f0009.new && mv t/d09/f0009.new t/d09/f0009
`
	sh(t, local, nil, script)
	sh(t, m.Dir, nil, script)
	want, got := treeOf(t, local), treeOf(t, m.Dir)
	if !slices.Equal(got, want) {
		t.Fatalf("mount tree (%d) differs from the local tree (%d): %s", len(got), len(want), firstDiff(got, want))
	}
	gl, _ := os.ReadFile(filepath.Join(m.Dir, "gitlog"))
	if string(gl) != "second\nfirst\n" {
		t.Fatalf("git log in the mount: %q", gl)
	}
	if gs, _ := os.ReadFile(filepath.Join(m.Dir, "gitstatus")); len(gs) != 0 {
		t.Fatalf("git status in the mount not clean: %q", gs)
	}
	// git fsck reads every object back.
	sh(t, filepath.Join(m.Dir, "repo"), nil, "git fsck --no-progress 2>&1")

	recs := readAll(t, c)
	mir := mirror{}
	types := map[string]int{}
	for _, r := range recs {
		mir.apply(r)
		types[r.Type.String()]++
		if r.JobID == "" || r.ExtraFlags&changelog.ExtraUIDGID == 0 {
			t.Fatalf("record without job id or identity: %s", r.Line())
		}
	}
	if got, want := mir.lines(), serverNamespace(t, c).lines(); !slices.Equal(got, want) {
		t.Fatalf("replaying %d records does not reproduce the namespace: %s", len(recs), firstDiff(got, want))
	}
	for _, ty := range []string{"CREAT", "MKDIR", "HLINK", "SLINK", "UNLNK", "RMDIR", "RENME", "OPEN", "CLOSE", "SATTR", "XATTR", "TRUNC", "GXATR"} {
		if types[ty] == 0 {
			t.Errorf("no %s record from the real programs (%v)", ty, types)
		}
	}
	// The Latin-1 names came through as bytes.
	found := false
	for _, r := range recs {
		if r.Type == changelog.CLCreate && r.Name == "f0000-caf\xe9-\xff" {
			found = true
		}
	}
	if !found {
		t.Error("no CREAT record with the Latin-1 name f0000-caf\\xe9-\\xff")
	}
	out := MustRun(t, s, "lfs", "changelog", device)
	for _, j := range []string{" j=tar.0 ", " j=git.0 "} {
		if !strings.Contains(out, j) {
			t.Errorf("lfs changelog lacks the job id%s(procname_uid of the program that acted)", j)
		}
	}
	if !strings.Contains(out, "f0000-caf\xe9-\xff") {
		t.Error("lfs changelog does not print the Latin-1 name as its bytes")
	}
	t.Logf("%d records, types %v", len(recs), types)
	m.Unmount()
}

// TestMountIdentity: tar run as uid 1000 is recorded as u=1000:1000 with
// job id tar.1000; another user's 0700 directory gives EACCES and a NOPEN
// record for a denied open.
func TestMountIdentity(t *testing.T) {
	needFUSE(t, "tar")
	s := StartServer(t, shortTempDir(t))
	c := Dial(t, s, 0, 0)
	if _, err := c.CL.Register(c.Ctx(context.Background()), &changelogv1.RegisterRequest{Device: device, Mask: "ALL"}); err != nil {
		t.Fatal(err)
	}
	m := StartMount(t, s)
	archive := filepath.Join(shortTempDir(t), "a.tar")
	makeTar(t, archive, 50)
	if err := os.Chmod(filepath.Dir(archive), 0o755); err != nil {
		t.Fatal(err)
	}
	sh(t, m.Dir, nil, "mkdir u && chown 1000:1000 u && mkdir private && chmod 700 private && echo s > private/secret && echo s > closed && chmod 600 closed")
	user := &syscall.Credential{Uid: 1000, Gid: 1000}
	sh(t, filepath.Join(m.Dir, "u"), user, "tar xf "+archive+" && ls -ln t/d00 | head -3")
	// The mount shows what tar as uid 1000 created as owned by 1000:1000.
	fi, err := os.Stat(filepath.Join(m.Dir, "u/t/d00/f0000-caf\xe9-\xff"))
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 1000 || st.Gid != 1000 {
		t.Fatalf("tar's file as uid 1000 is owned by %d:%d in the mount", st.Uid, st.Gid)
	}
	cmd := exec.Command("cat", filepath.Join(m.Dir, "private/secret"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: user}
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "Permission denied") {
		t.Fatalf("uid 1000 read root's 0700 directory: %v %s", err, out)
	}
	cmd = exec.Command("cat", filepath.Join(m.Dir, "closed"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: user}
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "Permission denied") {
		t.Fatalf("uid 1000 read root's 0600 file: %v %s", err, out)
	}
	var tarRecs, nopen int
	for _, r := range readAll(t, c) {
		if r.JobID == "tar.1000" {
			tarRecs++
			if r.UID != 1000 || r.GID != 1000 {
				t.Fatalf("tar.1000 record with u=%d:%d: %s", r.UID, r.GID, r.Line())
			}
		}
		if r.Type == changelog.CLDeniedOpen {
			nopen++
			if r.UID != 1000 || r.JobID != "cat.1000" {
				t.Fatalf("NOPEN not from cat as uid 1000: %s", r.Line())
			}
		}
		if r.UID == 1000 && r.JobID != "tar.1000" && r.JobID != "cat.1000" && r.JobID != "sh.1000" && r.JobID != "ls.1000" {
			t.Fatalf("uid 1000 record with job id %q: %s", r.JobID, r.Line())
		}
	}
	if tarRecs < 100 {
		t.Fatalf("%d records with j=tar.1000, want the whole extraction", tarRecs)
	}
	if nopen != 1 {
		t.Fatalf("%d NOPEN records, want 1 (the denied open of 'closed')", nopen)
	}
	out := MustRun(t, s, "lfs", "changelog", device)
	if !strings.Contains(out, " j=tar.1000 ef=0x") || !strings.Contains(out, " u=1000:1000 ") {
		t.Fatalf("lfs changelog lacks j=tar.1000 / u=1000:1000:\n%.2000s", out)
	}
	m.Unmount()
}

// TestMountErrors: a missing or non-empty mount point is a clear error;
// SIGTERM unmounts and exits 0.
func TestMountErrors(t *testing.T) {
	needFUSE(t)
	s := StartServer(t, shortTempDir(t))
	dir := shortTempDir(t)
	r := Run(t, nil, "mdc", "--server", "unix:"+s.Socket, "mount", filepath.Join(dir, "nope"))
	if r.Code != int(syscall.ENOENT) || !strings.Contains(r.Stderr, "nope") {
		t.Fatalf("missing mount point: %s", r)
	}
	if err := os.WriteFile(filepath.Join(dir, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r = Run(t, nil, "mdc", "--server", "unix:"+s.Socket, "mount", dir)
	if r.Code != int(syscall.ENOTEMPTY) || !strings.Contains(r.Stderr, "not empty") {
		t.Fatalf("non-empty mount point: %s", r)
	}
	m := StartMount(t, s)
	if err := m.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-m.done:
		if err != nil {
			t.Fatalf("mdc mount after SIGTERM: %v\n%s", err, m.out.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("mdc mount did not exit after SIGTERM")
	}
	if m.mounted() {
		t.Fatal("still mounted after SIGTERM")
	}
}

// TestMountDaemonKilled: after kill -9 of mdc mount the dead mount stays
// (ENOTCONN); mounting again says what to do and exits ENOTCONN, and after
// umount the mount point mounts again.
func TestMountDaemonKilled(t *testing.T) {
	needFUSE(t)
	s := StartServer(t, shortTempDir(t))
	m := StartMount(t, s)
	if err := m.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-m.done
	m.done <- nil // for the cleanup
	r := Run(t, nil, "mdc", "--server", "unix:"+s.Socket, "mount", m.Dir)
	if r.Code != int(syscall.ENOTCONN) || !strings.Contains(r.Stderr, "umount '"+m.Dir+"' first") {
		t.Fatalf("mount over a dead mount: %s", r)
	}
	if out, err := exec.Command("umount", m.Dir).CombinedOutput(); err != nil {
		t.Fatalf("umount of the dead mount: %v %s", err, out)
	}
	m2 := mountAt(t, s, m.Dir)
	if err := os.WriteFile(filepath.Join(m2.Dir, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	m2.Unmount()
}

// TestMountServerKill: kill -9 of mdtd during tar x loses nothing tar
// wrote before the kill; while the server is down operations fail instead
// of hanging; after a restart the mount works again.
func TestMountServerKill(t *testing.T) {
	needFUSE(t, "tar")
	s := StartServer(t, shortTempDir(t))
	m := StartMount(t, s)
	archive := filepath.Join(shortTempDir(t), "a.tar")
	makeTar(t, archive, 2000)
	tarCmd := exec.Command("tar", "--quoting-style=literal", "-xvf", archive)
	tarCmd.Dir = m.Dir
	var tarOut syncBuffer
	tarCmd.Stdout, tarCmd.Stderr = &tarOut, &tarOut
	if err := tarCmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill once tar has written a few hundred files.
	deadline := time.Now().Add(60 * time.Second)
	for strings.Count(tarOut.String(), "\n") < 300 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	// What tar printed before the kill: it prints a member's name before
	// extracting it, one member after the other, so every name but the
	// last was completely written (acknowledged) before the kill.
	before := tarOut.String()
	s.Kill()
	_ = tarCmd.Wait() // tar fails: the server is gone
	// Down: an operation that reaches the server fails promptly: at once
	// a mkdir, and a stat once the kernel's and the mount's attribute
	// caches (the default --attr-timeout, 1 s) have expired.
	start := time.Now()
	if err := os.Mkdir(filepath.Join(m.Dir, "down"), 0o755); err == nil {
		t.Fatal("mkdir succeeded with the server down")
	}
	if d := time.Since(start); d > 40*time.Second {
		t.Fatalf("mkdir with the server down took %v", d)
	}
	time.Sleep(1100 * time.Millisecond)
	start = time.Now()
	_, err := os.Stat(filepath.Join(m.Dir, "t"))
	if err == nil {
		t.Fatal("stat succeeded with the server down")
	}
	if d := time.Since(start); d > 40*time.Second {
		t.Fatalf("stat with the server down took %v", d)
	}
	s.Restart()
	names := strings.Split(strings.TrimSpace(before), "\n")
	checked := 0
	for _, n := range names[:len(names)-1] {
		if !strings.HasPrefix(n, "t/d") || strings.HasSuffix(n, "/") {
			continue
		}
		var i int
		if _, err := fmt.Sscanf(n[len("t/d00/f"):], "%04d", &i); err != nil {
			continue
		}
		want := bytes.Repeat([]byte(fmt.Sprintf("file %d\n", i)), 1+i%50)
		var got []byte
		for range 100 { // the mount reconnects
			if got, err = os.ReadFile(filepath.Join(m.Dir, n)); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s after the kill: %v (%d bytes, want %d)", n, err, len(got), len(want))
		}
		checked++
	}
	if checked < 200 {
		t.Fatalf("only %d files checked (tar output %d lines)", checked, len(names))
	}
	if got := sh(t, m.Dir, nil, "mkdir after && echo ok > after/f && cat after/f"); strings.TrimSpace(got) != "ok" {
		t.Fatalf("after the restart the mount reads back %q, want ok", got)
	}
	m.Unmount()
}

// syncBuffer is a bytes.Buffer a command writes while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
