package integration

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	changelogv1 "github.com/fidlog/fidlog/proto/lustre/changelog/v1"
)

// shell is a bash that a test drives one script at a time, in the
// background, as a real program holding open files across steps.
type shell struct {
	t     *testing.T
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   syncBuffer
	done  chan error
}

func startShell(t *testing.T, dir string, cred *syscall.Credential) *shell {
	t.Helper()
	sh := &shell{t: t, cmd: exec.Command("bash"), done: make(chan error, 1)}
	sh.cmd.Dir = dir
	if cred != nil {
		sh.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	var err error
	if sh.stdin, err = sh.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	sh.cmd.Stdout, sh.cmd.Stderr = &sh.out, &sh.out
	if err := sh.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { sh.done <- sh.cmd.Wait() }()
	t.Cleanup(func() {
		_ = sh.cmd.Process.Kill()
		<-sh.done
	})
	return sh
}

// step runs script and waits for it to print "<mark>" on a line; it
// returns what the script printed before.
func (sh *shell) step(script, mark string) string {
	sh.t.Helper()
	before := len(sh.out.String())
	if _, err := io.WriteString(sh.stdin, script+"\necho "+mark+"\n"); err != nil {
		sh.t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		out := sh.out.String()[before:]
		if i := strings.Index(out, mark+"\n"); i >= 0 {
			return out[:i]
		}
		if time.Now().After(deadline) {
			sh.t.Fatalf("bash did not reach %s; output:\n%s", mark, sh.out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// exit ends the shell (closing its files) and waits.
func (sh *shell) exit() {
	sh.t.Helper()
	_ = sh.stdin.Close()
	select {
	case err := <-sh.done:
		if err != nil {
			sh.t.Fatalf("bash: %v\n%s", err, sh.out.String())
		}
		sh.done <- nil
	case <-time.After(60 * time.Second):
		sh.t.Fatal("bash did not exit")
	}
}

// TestMountOrphanRestart: bash as uid 1000 holds an unlinked file open
// (a read and an append descriptor) while mdtd is killed with SIGKILL and
// restarted; it then writes and reads the file through the same
// descriptors, as in a local directory, and its last close records CLOSE
// as bash.1000 and removes the file (orphan_count back to 0).
func TestMountOrphanRestart(t *testing.T) {
	needFUSE(t, "bash")
	s := StartServer(t, shortTempDir(t))
	c := Dial(t, s, 0, 0)
	if _, err := c.CL.Register(c.Ctx(context.Background()), &changelogv1.RegisterRequest{Device: device}); err != nil {
		t.Fatal(err)
	}
	m := StartMount(t, s)
	sh0 := filepath.Join(m.Dir, "u")
	if err := os.Mkdir(sh0, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(sh0, 1000, 1000); err != nil {
		t.Fatal(err)
	}
	local := filepath.Join(shortTempDir(t), "local")
	if err := os.Chmod(filepath.Dir(local), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(local, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(local, 1000, 1000); err != nil {
		t.Fatal(err)
	}
	user := &syscall.Credential{Uid: 1000, Gid: 1000}
	const (
		open  = "echo hello > f && exec 3<f 4>>f && rm f && ls"
		after = "echo world >&4 && cat <&3 && ls -l /proc/$$/fd/3 | grep -c deleted"
	)
	// The same steps in a local directory, without a restart.
	lsh := startShell(t, local, user)
	wantOpen, wantAfter := lsh.step(open, "step1"), lsh.step(after, "step2")
	lsh.exit()

	b := startShell(t, sh0, user)
	if got := b.step(open, "step1"); got != wantOpen {
		t.Fatalf("before the restart bash printed %q, locally %q", got, wantOpen)
	}
	before := len(readAll(t, c))
	// A short window, so that the test sees it end: the mount must have
	// reopened bash's files by then, before bash touches them again.
	MustRun(t, s, "lctl", "set_param", "mdd.*.orphan_grace=10")
	s.Kill()
	s.Restart()
	c = Dial(t, s, 0, 0)
	if got := strings.TrimSpace(MustRun(t, s, "lctl", "get_param", "-n", "mdd.*.orphan_count")); got != "1" {
		t.Fatalf("orphan_count after the restart: %s, want 1", got)
	}
	// The mount reconnects (and re-establishes bash's handles): a lookup
	// of a missing name reaches the server (a stat of sh0 could be
	// answered from the kernel's cache).
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(sh0, "probe")); errors.Is(err, fs.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the mount did not reconnect within 60s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	for deadline := time.Now().Add(60 * time.Second); !strings.Contains(s.Logs(), "msg=orphan_window_end"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the orphan window did not end within 60s:\n%s", s.Logs())
		}
	}
	if !strings.Contains(s.Logs(), "reclaimed=0 reopened=1") {
		t.Fatalf("at the window's end the file was not held by the mount:\n%s", s.Logs())
	}
	if got := strings.TrimSpace(MustRun(t, s, "lctl", "get_param", "-n", "mdd.*.orphan_count")); got != "1" {
		t.Fatalf("orphan_count after the window: %s, want 1", got)
	}
	if got := b.step(after, "step2"); got != wantAfter {
		t.Fatalf("after the restart bash printed %q, locally %q", got, wantAfter)
	}
	b.exit()
	if got := strings.TrimSpace(MustRun(t, s, "lctl", "get_param", "-n", "mdd.*.orphan_count")); got != "0" {
		t.Fatalf("orphan_count after the last close: %s, want 0", got)
	}
	recs := readAll(t, c)
	var unlnk string
	for _, r := range recs[:before] {
		if r.Type.String() == "UNLNK" && r.Name == "f" {
			unlnk = r.TFID.String()
		}
	}
	var lines []string
	for _, r := range recs[before:] {
		lines = append(lines, r.Line())
	}
	// The reopen recorded nothing; the append descriptor's close (open
	// flags WRITE|APPEND: the kernel sends no CREAT for an existing file)
	// is bash's, as uid 1000.
	if len(lines) != 1 || !strings.Contains(lines[0], " 11CLOSE ") || !strings.Contains(lines[0], " 0x402 t="+unlnk+" j=bash.1000 ") ||
		!strings.Contains(lines[0], " u=1000:1000 ") {
		t.Fatalf("records after the restart (UNLNK t=%s):\n%s", unlnk, strings.Join(lines, "\n"))
	}
	out := MustRun(t, s, "lfs", "changelog", device)
	if !strings.Contains(out, "CLOSE") || !strings.Contains(out, "t="+unlnk+" j=bash.1000") {
		t.Fatalf("lfs changelog lacks bash's CLOSE of %s:\n%s", unlnk, out)
	}
	m.Unmount()
}

// TestMountSetattrUnlinked: ftruncate, fchmod and futimes on an open,
// unlinked file through the mount behave as on a local directory (they
// go by FID; by path they failed, or reached the root), and record TRUNC
// and SATTR on the file.
func TestMountSetattrUnlinked(t *testing.T) {
	needFUSE(t)
	run := func(dir string) string {
		t.Helper()
		f, err := os.OpenFile(filepath.Join(dir, "g"), os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString("0123456789"); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(filepath.Join(dir, "g")); err != nil {
			t.Fatal(err)
		}
		var out []string
		note := func(what string, err error) { out = append(out, what+": "+errString(err)) }
		note("ftruncate", f.Truncate(4))
		note("fchmod", f.Chmod(0o600))
		tv := []unix.Timeval{{Sec: 1000000000}, {Sec: 1200000000}}
		note("futimes", unix.Futimes(int(f.Fd()), tv))
		var st unix.Stat_t
		note("fstat", unix.Fstat(int(f.Fd()), &st))
		out = append(out, fmt.Sprintf("size %d mode %o nlink %d mtime %d", st.Size, st.Mode&0o7777, st.Nlink, st.Mtim.Sec))
		b := make([]byte, 16)
		n, err := f.ReadAt(b, 0)
		out = append(out, fmt.Sprintf("read %q", b[:n]))
		_ = err
		// Opened again through /proc/self/fd (the kernel's magic link).
		g, err := os.Open(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
		note("open /proc/self/fd", err)
		if err == nil {
			n, err := g.ReadAt(b, 0)
			out = append(out, fmt.Sprintf("read again %q", b[:n]))
			_ = err
			g.Close()
		}
		fi, err := os.Stat(dir)
		note("stat dir", err)
		out = append(out, fmt.Sprintf("dir mode %v", fi.Mode()))
		return strings.Join(out, "\n")
	}
	_, c, m, before := mountMatchesLocal(t, run)
	// The release (and its CLOSE) follows close(2) asynchronously: g's
	// CLOSE may come after the next create unless it is waited for.
	types := func() string {
		var types []string
		for _, r := range readAll(t, c)[before:] {
			types = append(types, r.Type.String())
		}
		return strings.Join(types, " ")
	}
	const wantFirst = "CREAT UNLNK TRUNC SATTR CLOSE"
	for deadline := time.Now().Add(20 * time.Second); types() != wantFirst && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
	}
	if got := types(); got != wantFirst {
		t.Fatalf("records %s, want %s", got, wantFirst)
	}
	// The xattr calls on an unlinked open file go by FID too (by path they
	// reached the mount's root).
	f, err := os.OpenFile(filepath.Join(m.Dir, "x"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(m.Dir, "x")); err != nil {
		t.Fatal(err)
	}
	fd := int(f.Fd())
	if err := unix.Fsetxattr(fd, "user.k", []byte("v1"), 0); err != nil {
		t.Fatalf("fsetxattr on the unlinked file: %v", err)
	}
	buf := make([]byte, 64)
	if n, err := unix.Listxattr(m.Dir, buf); err != nil || n != 0 {
		t.Fatalf("the mount's root has xattrs %q (%v) after fsetxattr on a file", buf[:n], err)
	}
	if n, err := unix.Fgetxattr(fd, "user.k", buf); err != nil || string(buf[:n]) != "v1" {
		t.Fatalf("fgetxattr: %q %v", buf[:n], err)
	}
	if n, err := unix.Flistxattr(fd, buf); err != nil || string(buf[:n]) != "user.k\x00" {
		t.Fatalf("flistxattr: %q %v", buf[:n], err)
	}
	if err := unix.Fremovexattr(fd, "user.k"); err != nil {
		t.Fatalf("fremovexattr: %v", err)
	}
	if n, err := unix.Listxattr(m.Dir, buf); err != nil || n != 0 {
		t.Fatalf("the mount's root has xattrs %q (%v)", buf[:n], err)
	}
	f.Close()
	// The release (and its CLOSE) follows close(2) asynchronously.
	const wantTypes = "CREAT UNLNK TRUNC SATTR CLOSE CREAT UNLNK XATTR XATTR CLOSE"
	var got string
	for deadline := time.Now().Add(20 * time.Second); got != wantTypes && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		got = types()
	}
	if got != wantTypes {
		t.Fatalf("records %s, want %s", got, wantTypes)
	}
	m.Unmount()
}

// mountMatchesLocal starts a server with a changelog user registered on
// device and a mount of it, runs run in an empty local directory and then
// in the mount, and fails unless both print the same. It returns the
// server, a connection, the mount and the number of records before the
// mount's run.
func mountMatchesLocal(t *testing.T, run func(dir string) string) (*Server, *Conn, *Mount, int) {
	t.Helper()
	s := StartServer(t, shortTempDir(t))
	c := Dial(t, s, 0, 0)
	if _, err := c.CL.Register(c.Ctx(context.Background()), &changelogv1.RegisterRequest{Device: device}); err != nil {
		t.Fatal(err)
	}
	m := StartMount(t, s)
	local := filepath.Join(shortTempDir(t), "local")
	if err := os.Mkdir(local, 0o755); err != nil {
		t.Fatal(err)
	}
	want := run(local)
	before := len(readAll(t, c))
	if got := run(m.Dir); got != want {
		t.Fatalf("in the mount:\n%s\nlocally:\n%s", got, want)
	}
	return s, c, m, before
}

func errString(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

// TestMountRenameat2: renameat2(2) with RENAME_NOREPLACE and
// RENAME_EXCHANGE through the mount gives what it gives on a local
// directory (EEXIST, ENOENT, swapped entries of any types), and an
// exchange is one RENME record flagged 0x4.
func TestMountRenameat2(t *testing.T) {
	needFUSE(t)
	run := func(dir string) string {
		t.Helper()
		sh(t, dir, nil, "mkdir -p a b/sub && echo one > a/f && echo two > b/g && echo three > b/sub/x")
		var out []string
		r2 := func(from, to string, flags uint) {
			err := unix.Renameat2(unix.AT_FDCWD, filepath.Join(dir, from), unix.AT_FDCWD, filepath.Join(dir, to), flags)
			out = append(out, fmt.Sprintf("renameat2 %s %s %d: %s", from, to, flags, errString(err)))
		}
		r2("a/f", "b/g", unix.RENAME_NOREPLACE)
		r2("a/f", "b/none", unix.RENAME_EXCHANGE)
		r2("a/f", "b/g", unix.RENAME_EXCHANGE|unix.RENAME_NOREPLACE)
		r2("a/f", "b/g", unix.RENAME_EXCHANGE)   // file <-> file
		r2("a/f", "b/sub", unix.RENAME_EXCHANGE) // file <-> directory, across directories
		r2("a", "a/f/x", unix.RENAME_EXCHANGE)   // into its own subtree
		r2("a/f", "a/h", unix.RENAME_NOREPLACE)
		out = append(out, sh(t, dir, nil, "cat a/h/x b/g b/sub; stat -c '%n %h' a b a/h"))
		return strings.Join(out, "\n")
	}
	s, c, m, before := mountMatchesLocal(t, run)
	var renames []string
	for _, r := range readAll(t, c)[before:] {
		if r.Type.String() == "RENME" {
			renames = append(renames, fmt.Sprintf("%#x %s->%s", r.Flags, r.SName, r.Name))
		}
	}
	if got := strings.Join(renames, ", "); got != "0x4 f->g, 0x4 f->sub, 0x0 f->h" {
		t.Fatalf("RENME records %s, want 0x4 f->g, 0x4 f->sub, 0x0 f->h", got)
	}
	out := MustRun(t, s, "lfs", "changelog", device)
	if strings.Count(out, "08RENME ") != 3 || len(regexp.MustCompile(`08RENME \S+ \S+ 0x4 t=\[0x`).FindAllString(out, -1)) != 2 {
		t.Fatalf("lfs changelog: want 3 RENME, 2 of them exchanges (0x4 with t=):\n%s", out)
	}
	// Replaying the changelog (swapping on 0x4) gives the server's
	// namespace.
	mm := mirror{}
	for _, r := range readAll(t, c) {
		mm.apply(r)
	}
	if got, want := mm.lines(), serverNamespace(t, c).lines(); !slices.Equal(got, want) {
		t.Fatalf("mirror of the changelog:\n%s\nserver:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	m.Unmount()
}

// TestMountGetxattrProbe: a getxattr(2) size probe through the mount
// records no GXATR, a short buffer gets ERANGE and records none, and the
// read that returns the value records one: one GXATR per getxattr(2) that
// returned data (Lustre records no size query), so getfattr's probe and
// read make one record.
func TestMountGetxattrProbe(t *testing.T) {
	needFUSE(t, "getfattr")
	s := StartServer(t, shortTempDir(t))
	c := Dial(t, s, 0, 0)
	if _, err := c.CL.Register(c.Ctx(context.Background()), &changelogv1.RegisterRequest{Device: device, Mask: "GXATR"}); err != nil {
		t.Fatal(err)
	}
	MustRun(t, s, "lctl", "set_param", "mdd.*.changelog_mask=+GXATR")
	m := StartMount(t, s)
	p := filepath.Join(m.Dir, "f")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(p, "user.k", []byte("value"), 0); err != nil {
		t.Fatal(err)
	}
	gxatr := func() int {
		n := 0
		for _, r := range readAll(t, c) {
			if r.Type.String() == "GXATR" {
				n++
			}
		}
		return n
	}
	if n, err := unix.Getxattr(p, "user.k", nil); n != 5 || err != nil {
		t.Fatalf("size probe: %d %v", n, err)
	}
	if _, err := unix.Getxattr(p, "user.k", make([]byte, 2)); err != unix.ERANGE {
		t.Fatalf("short buffer: %v, want ERANGE", err)
	}
	if n := gxatr(); n != 0 {
		t.Fatalf("%d GXATR after a size probe and a short read, want 0", n)
	}
	buf := make([]byte, 64)
	if n, err := unix.Getxattr(p, "user.k", buf); err != nil || string(buf[:n]) != "value" {
		t.Fatalf("read: %q %v", buf[:n], err)
	}
	if n := gxatr(); n != 1 {
		t.Fatalf("%d GXATR after one read, want 1", n)
	}
	if out := sh(t, m.Dir, nil, "getfattr -n user.k --only-values f"); out != "value" {
		t.Fatalf("getfattr printed %q", out)
	}
	if n := gxatr(); n != 2 {
		t.Fatalf("%d GXATR after getfattr, want 2 (one per getfattr)", n)
	}
	m.Unmount()
}
