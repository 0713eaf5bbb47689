package integration

import (
	"bufio"
	"context"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fidlog/fidlog/changelog"
	changelogv1 "github.com/fidlog/fidlog/proto/lustre/changelog/v1"
	mdtv1 "github.com/fidlog/fidlog/proto/lustre/mdt/v1"
)

// modeOf is the permission bits of path, or -1 if it cannot be stat'ed.
func modeOf(path string) int {
	fi, err := os.Stat(path)
	if err != nil {
		return -1
	}
	return int(fi.Mode().Perm())
}

// readNoStat reads path with open and read only (os.ReadFile stats).
func readNoStat(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// TestMountCoherence: what the mount caches and for how long (README
// "Mounting it"). Changes made through the mount are seen at once;
// another client's chmod, create and rename show after at most the
// timeouts; an open always sees another client's completed write
// (close-to-open); with the timeouts at 0 every change shows at once.
func TestMountCoherence(t *testing.T) {
	needFUSE(t, "getfattr")
	s := StartServer(t, shortTempDir(t))
	c := Dial(t, s, 0, 0)
	ctx := c.Ctx(context.Background())
	const timeout = 3 * time.Second
	d := timeout.String()
	m := StartMount(t, s, "--attr-timeout", d, "--entry-timeout", d, "--negative-timeout", d)
	f := filepath.Join(m.Dir, "f")

	// Through the mount: seen at once.
	sh(t, m.Dir, nil, "echo one > f && chmod 600 f")
	if got := modeOf(f); got != 0o600 {
		t.Fatalf("after chmod 600 through the mount: mode %o", got)
	}
	// The mount knows the new f has no xattrs, but only security.* names
	// are answered from that: another user may not read f's user.*
	// xattrs, and the server says so.
	cmd := exec.Command("getfattr", "-n", "user.x", f)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 1000, Gid: 1000}}
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "Permission denied") {
		t.Fatalf("uid 1000 getfattr -n user.x of root's new 0600 file: %v %s (want Permission denied)", err, out)
	}

	// Another client's chmod: the cached mode for up to the timeout, the
	// new one after it.
	cached := time.Now()
	mode := uint32(0o640)
	if _, err := c.NS.Setattr(ctx, &mdtv1.SetattrRequest{Path: []byte("f"), Mode: &mode}); err != nil {
		t.Fatal(err)
	}
	got := modeOf(f)
	if time.Since(cached) < timeout/2 && got != 0o600 {
		t.Errorf("right after another client's chmod: mode %o, want the cached 600 (caching is off?)", got)
	}
	time.Sleep(timeout + 200*time.Millisecond)
	if got := modeOf(f); got != 0o640 {
		t.Fatalf("%v after another client's chmod 640: mode %o", timeout, got)
	}

	// Close-to-open: the kernel knows f as 4 bytes; another client
	// appends; an open at once reads all of it. (readNoStat: a stat
	// after a read would ask the server anyway, the atime being stale.)
	if b, err := readNoStat(f); err != nil || string(b) != "one\n" {
		t.Fatalf("read f: %q %v", b, err)
	}
	o, err := c.NS.Open(ctx, &mdtv1.OpenRequest{Path: []byte("f"), Flags: 0x2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.NS.Write(ctx, &mdtv1.WriteRequest{Handle: o.GetHandle(), Offset: 4, Data: []byte("two, from another client\n")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.NS.Close(ctx, &mdtv1.CloseRequest{Handle: o.GetHandle()}); err != nil {
		t.Fatal(err)
	}
	if b, err := readNoStat(f); err != nil || string(b) != "one\ntwo, from another client\n" {
		t.Fatalf("open and read after another client's write and close: %q %v", b, err)
	}

	// Another client's create: a missing name is trusted for up to the
	// timeout; then it shows.
	g := filepath.Join(m.Dir, "g")
	if _, err := os.Stat(g); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("stat g before it exists: %v", err)
	}
	cached = time.Now()
	if _, err := c.NS.Create(ctx, &mdtv1.CreateRequest{Path: []byte("g"), Mode: 0o644}); err != nil {
		t.Fatal(err)
	}
	_, err = os.Stat(g)
	if time.Since(cached) < timeout/2 && err == nil {
		t.Errorf("right after another client's create, g shows: the missing name was not cached")
	}
	// An open(O_CREAT) of the name the kernel thinks missing opens the
	// other client's file, which is not new: its xattrs are not assumed
	// absent.
	if _, err := c.NS.Setxattr(ctx, &mdtv1.SetxattrRequest{Path: []byte("g"), Name: "user.color", Value: []byte("blue")}); err != nil {
		t.Fatal(err)
	}
	gf, err := os.OpenFile(g, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	n, err := unix.Getxattr(g, "user.color", buf)
	if err != nil {
		t.Fatalf("getxattr user.color of g after open(O_CREAT) of the existing file: %v", err)
	}
	if string(buf[:n]) != "blue" {
		t.Fatalf("getxattr user.color of g after open(O_CREAT) of the existing file: %q", buf[:n])
	}
	if err := gf.Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(timeout + 200*time.Millisecond)
	if _, err := os.Stat(g); err != nil {
		t.Fatalf("%v after another client created g: %v", timeout, err)
	}
	// Another client's rename: the old name goes after the timeout.
	if _, err := c.NS.Rename(ctx, &mdtv1.RenameRequest{SrcPath: []byte("g"), DstPath: []byte("h")}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(timeout + 200*time.Millisecond)
	if _, err := os.Stat(g); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%v after another client renamed g to h, stat g: %v", timeout, err)
	}
	if _, err := os.Stat(filepath.Join(m.Dir, "h")); err != nil {
		t.Fatalf("%v after another client renamed g to h, stat h: %v", timeout, err)
	}
	m.Unmount()

	// Without caching, every change shows at once.
	m0 := StartMount(t, s, "--attr-timeout", "0", "--entry-timeout", "0", "--negative-timeout", "0")
	f0 := filepath.Join(m0.Dir, "f")
	if got := modeOf(f0); got != 0o640 {
		t.Fatalf("uncached mount: mode %o", got)
	}
	mode = 0o604
	if _, err := c.NS.Setattr(ctx, &mdtv1.SetattrRequest{Path: []byte("f"), Mode: &mode}); err != nil {
		t.Fatal(err)
	}
	if got := modeOf(f0); got != 0o604 {
		t.Fatalf("uncached mount right after another client's chmod 604: mode %o", got)
	}
	if _, err := os.Stat(filepath.Join(m0.Dir, "k")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("stat k: %v", err)
	}
	if _, err := c.NS.Create(ctx, &mdtv1.CreateRequest{Path: []byte("k"), Mode: 0o644}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(m0.Dir, "k")); err != nil {
		t.Fatalf("uncached mount right after another client created k: %v", err)
	}
	m0.Unmount()
}

// rpcCounts scrapes grpc_server_started_total by method from mdtd's
// metrics.
func rpcCounts(t *testing.T, s *Server) map[string]float64 {
	t.Helper()
	addr := regexp.MustCompile(`metrics=(\S+)`).FindStringSubmatch(s.Logs())
	if addr == nil {
		t.Fatalf("no metrics address in mdtd's log:\n%s", s.Logs())
	}
	resp, err := http.Get("http://" + addr[1] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	re := regexp.MustCompile(`^grpc_server_started_total\{.*grpc_method="(\w+)".*\} (\S+)$`)
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if mm := re.FindStringSubmatch(sc.Text()); mm != nil {
			v, _ := strconv.ParseFloat(mm[2], 64)
			out[mm[1]] += v
		}
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return out
}

// TestMountRoundTrips: tar x of small files as root reaches the server
// with the requests that change something (create, write, GNU tar's
// three attribute restores, close); the lookup of each new name is
// answered by the mount (mountneg.go), and the
// kernel's security.capability probes and its re-read of the mode before
// chown are answered by the mount (mountcache.go), and so are the
// kernel's lookups of the directory t/ that tar makes before each of its
// files (the kernel keeps t/ itself, TestMountKeepsNames). GNU tar's chown to
// the owner the file already has still records SATTR, as Lustre's mdd
// does (mdd_attr_set keeps an attribute that does not change).
func TestMountRoundTrips(t *testing.T) {
	needFUSE(t, "tar")
	s := StartServer(t, shortTempDir(t), "--metrics", "127.0.0.1:0")
	c := Dial(t, s, 0, 0)
	if _, err := c.CL.Register(c.Ctx(context.Background()), &changelogv1.RegisterRequest{Device: device, Mask: "ALL"}); err != nil {
		t.Fatal(err)
	}
	m := StartMount(t, s)
	src := shortTempDir(t)
	if err := os.Mkdir(filepath.Join(src, "t"), 0o755); err != nil {
		t.Fatal(err)
	}
	const n = 200
	for i := range n {
		if err := os.WriteFile(filepath.Join(src, "t", "f"+strconv.Itoa(i)), []byte(strings.Repeat("x", 100+i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	archive := filepath.Join(shortTempDir(t), "a.tar")
	sh(t, src, nil, "tar cf "+archive+" t")
	if err := os.Mkdir(filepath.Join(m.Dir, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	before := rpcCounts(t, s)
	sh(t, filepath.Join(m.Dir, "d"), nil, "tar xf "+archive)
	after := rpcCounts(t, s)
	per := map[string]float64{}
	for k, v := range after {
		if d := v - before[k]; d > 0 {
			per[k] = d / n
		}
	}
	t.Logf("RPCs per file of tar x: %v", per)
	for method, want := range map[string]float64{"Open": 1, "Write": 1, "Setattr": 3, "Close": 1} {
		if per[method] < want || per[method] > want+0.1 {
			t.Errorf("%s: %.2f per file, want %v", method, per[method], want)
		}
	}
	if per["Getxattr"] > 0.05 {
		t.Errorf("Getxattr: %.2f per file, want none (the kernel's security.capability probes of new files)", per["Getxattr"])
	}
	if per["StatFid"] > 0.05 {
		t.Errorf("StatFid: %.2f per file, want none (the kernel's re-read of the mode before chown)", per["StatFid"])
	}
	// The kernel's lookup of each new name before its create is
	// answered by the mount, which knows t's names (it made t) and that
	// the server lets root search t; it asks again once per
	// --attr-timeout (a Stat, and a Readdir to learn the names).
	if per["Stat"] > 0.1 || per["Readdir"] > 0.1 {
		t.Errorf("Stat: %.2f, Readdir: %.2f per file, want at most 0.1 (the lookups of new names are answered by the mount)", per["Stat"], per["Readdir"])
	}
	// Every chown of tar recorded its SATTR (uid, gid and ctime valid:
	// flags 0x64), though no owner changed.
	var chowns int
	for _, r := range readAll(t, c) {
		if r.Type == changelog.CLSetattr && r.Flags == 0x64 && r.JobID == "tar.0" {
			chowns++
		}
	}
	if chowns < n {
		t.Errorf("%d SATTR records of tar's chown to the same owner, want %d", chowns, n)
	}
	// The files are whole.
	for _, i := range []int{0, n / 2, n - 1} {
		b, err := os.ReadFile(filepath.Join(m.Dir, "d", "t", "f"+strconv.Itoa(i)))
		if err != nil || len(b) != 100+i {
			t.Fatalf("f%d: %d bytes, %v", i, len(b), err)
		}
	}
	m.Unmount()
}

// TestMountNoTraversalLeak: the kernel keeps names only in directories
// every user may search, because it does not check the search permission
// of directories for this mount (the server does, on each lookup as the
// caller): right after root used a file in its 0700 directory, uid 1000
// can neither stat it nor read its link target, nor reach a file root
// used in a directory it then made 0700, or moved into one. With
// --entry-timeout above 0 it could, which is what the flag's help warns
// about.
func TestMountNoTraversalLeak(t *testing.T) {
	needFUSE(t)
	s := StartServer(t, shortTempDir(t))
	m := StartMount(t, s)
	sh(t, m.Dir, nil, "mkdir private && chmod 700 private && echo s > private/secret && ln -s secret private/link && cat private/secret >/dev/null && stat private/link >/dev/null")
	// Names in directories every user may search are kept by the
	// kernel for a while; a chmod that takes the search permission away
	// from some users, and a rename into a directory they may not
	// search, must make the kernel ask again.
	sh(t, m.Dir, nil, "mkdir pub pub/d && echo s > pub/d/secret && stat pub/d/secret >/dev/null && chmod 700 pub")
	sh(t, m.Dir, nil, "mkdir pub2 priv2 && chmod 700 priv2 && echo s > pub2/moved && stat pub2/moved >/dev/null && mv pub2/moved priv2/moved")
	for _, c := range [][]string{{"stat", "private/secret"}, {"readlink", "-v", "private/link"}, {"stat", "pub/d/secret"}, {"stat", "priv2/moved"}} {
		cmd := exec.Command(c[0], c[1:]...)
		cmd.Dir = m.Dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 1000, Gid: 1000}}
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "Permission denied") {
			t.Errorf("uid 1000 %s right after root used it in root's 0700 directory: %v\n%s", strings.Join(c, " "), err, out)
		}
	}
	m.Unmount()
}

// TestMountNoFlush: close(2) of a file opened through the mount sends no
// FLUSH (FOPEN_NOFLUSH: every write is already durable, so close would
// wait for a round trip that does nothing), and still returns 0 with the
// data and the CLOSE record where they belong.
func TestMountNoFlush(t *testing.T) {
	needFUSE(t)
	s := StartServer(t, shortTempDir(t))
	c := Dial(t, s, 0, 0)
	if _, err := c.CL.Register(c.Ctx(context.Background()), &changelogv1.RegisterRequest{Device: device, Mask: "ALL"}); err != nil {
		t.Fatal(err)
	}
	m := StartMount(t, s, "--debug")
	// The shell reports a failed close of a redirection as an error.
	sh(t, m.Dir, nil, "printf hello > f; printf ' world' >> f; cat f > /dev/null")
	b, err := os.ReadFile(filepath.Join(m.Dir, "f"))
	if err != nil || string(b) != "hello world" {
		t.Fatalf("f = %q, %v", b, err)
	}
	var closes int
	for _, r := range readAll(t, c) {
		if r.Type == changelog.CLClose {
			closes++
		}
	}
	m.Unmount()
	log := m.out.String()
	if !strings.Contains(log, "CREATE") || !strings.Contains(log, "RELEASE") {
		t.Fatalf("mdc mount --debug logged no CREATE/RELEASE requests:\n%s", log)
	}
	var flushes int
	for _, line := range strings.Split(log, "\n") {
		// "rx 12: FLUSH n2 {Fh 1}"; go-fuse's own probe file at mount
		// time (its poll workaround) is node 2^64-1.
		if strings.Contains(line, ": FLUSH ") && !strings.Contains(line, "FLUSH n18446744073709551615 ") {
			flushes++
		}
	}
	if flushes > 0 {
		t.Errorf("the kernel sent %d FLUSH requests, want none:\n%s", flushes, log)
	}
	if closes < 2 {
		t.Errorf("%d CLOSE records for two opens for writing, want 2", closes)
	}
}

// TestMountKeepsNames: in a directory every user may search, the kernel
// keeps the names the mount gave it for --attr-timeout (here an hour, so
// that the count does not depend on the machine's speed), so a tar x
// does not send a LOOKUP of the directory t/ before each of its files
// (it did, one FUSE round trip per file, answered by the mount).
func TestMountKeepsNames(t *testing.T) {
	needFUSE(t, "tar")
	s := StartServer(t, shortTempDir(t))
	m := StartMount(t, s, "--debug", "--attr-timeout", "1h")
	src := shortTempDir(t)
	if err := os.Mkdir(filepath.Join(src, "t"), 0o755); err != nil {
		t.Fatal(err)
	}
	const n = 50
	for i := range n {
		if err := os.WriteFile(filepath.Join(src, "t", "f"+strconv.Itoa(i)), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	archive := filepath.Join(shortTempDir(t), "a.tar")
	sh(t, src, nil, "tar cf "+archive+" t")
	sh(t, m.Dir, nil, "mkdir d && tar xf "+archive+" -C d && test -f d/t/f0")
	m.Unmount()
	log := m.out.String()
	if !strings.Contains(log, "CREATE") {
		t.Fatalf("mdc mount --debug logged no CREATE requests:\n%s", log)
	}
	// "rx 26: LOOKUP n2  "t"  p1234": tar's mkdir and its chdir or
	// first open look t up.
	lookups := regexp.MustCompile(`: LOOKUP n[0-9]+ +"t" `).FindAllString(log, -1)
	if len(lookups) > 2 {
		t.Errorf("the kernel looked up t %d times for %d files, want at most twice:\n%s", len(lookups), n, strings.Join(lookups, "\n"))
	}
}

// TestMountMissingNames: the mount answers a lookup of a missing name
// itself (no Stat) when it knows the directory's names and that the
// server let the caller search it, within --attr-timeout: another
// client's create shows after at most the timeout, and a user the server
// does not let search the directory is sent to the server and denied,
// never told that the name is missing.
func TestMountMissingNames(t *testing.T) {
	needFUSE(t)
	s := StartServer(t, shortTempDir(t))
	c := Dial(t, s, 0, 0)
	ctx := c.Ctx(context.Background())
	const timeout = 3 * time.Second
	m := StartMount(t, s, "--attr-timeout", timeout.String())
	// root makes a 0700 directory through the mount and looks up a
	// missing name in it: the server lets root search it.
	sh(t, m.Dir, nil, "mkdir priv && chmod 700 priv && ! test -e priv/x")
	known := time.Now()
	if _, err := c.NS.Create(ctx, &mdtv1.CreateRequest{Path: []byte("priv/y"), Mode: 0o644}); err != nil {
		t.Fatal(err)
	}
	y := filepath.Join(m.Dir, "priv", "y")
	_, err := os.Stat(y)
	if time.Since(known) < timeout/2 && err == nil {
		t.Errorf("right after another client's create, priv/y shows: the mount did not answer the missing name")
	}
	for _, name := range []string{"x", "y", "z"} {
		cmd := exec.Command("stat", "priv/"+name)
		cmd.Dir = m.Dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 1000, Gid: 1000}}
		if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "Permission denied") {
			t.Errorf("uid 1000 stat priv/%s in root's 0700 directory: %v %s (want Permission denied)", name, err, out)
		}
	}
	time.Sleep(time.Until(known.Add(timeout + 200*time.Millisecond)))
	if _, err := os.Stat(y); err != nil {
		t.Errorf("another client's priv/y, %v after it was made: %v", timeout, err)
	}
	// A name the server has and the mount knows is never missing.
	sh(t, m.Dir, nil, "echo a > priv/a && test -f priv/a && ! test -e priv/b && test -f priv/y")
	m.Unmount()
}
