package main

import (
	"bytes"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	commonv1 "github.com/fidlog/fidlog/proto/lustre/common/v1"
)

// TestMountTimeoutFlags: a negative or huge cache timeout is a usage
// error naming the flag and the value, before anything is mounted.
func TestMountTimeoutFlags(t *testing.T) {
	for _, c := range []struct{ flag, val, want string }{
		{"--attr-timeout", "-1s", "mdc mount: --attr-timeout -1s: must be between 0 and 1h\n"},
		{"--entry-timeout", "2h", "mdc mount: --entry-timeout 2h0m0s: must be between 0 and 1h\n"},
		{"--negative-timeout", "-5ms", "mdc mount: --negative-timeout -5ms: must be between 0 and 1h\n"},
	} {
		var stdout, stderr bytes.Buffer
		code := run([]string{"mount", c.flag, c.val, t.TempDir()}, &stdout, &stderr)
		if code != 22 || !strings.HasPrefix(stderr.String(), c.want) {
			t.Errorf("%s %s: exit %d, stderr %q; want 22 and %q", c.flag, c.val, code, stderr.String(), c.want)
		}
	}
}

// TestObjCache: attributes are served until the timeout and dropped on
// request; a new object has no xattrs; an ENODATA is remembered per name
// until the timeout; a change of xattrs forgets all; timeout 0 caches
// nothing.
func TestObjCache(t *testing.T) {
	const ttl = 80 * time.Millisecond
	n := &node{m: &mountFS{attrTimeout: ttl}}
	var out fuse.AttrOut
	if n.cachedAttr(&out) {
		t.Fatal("empty cache served attributes")
	}
	a := &commonv1.Attr{Mode: 0o640, Size: 7, Nlink: 1, Uid: 5}
	n.cacheAttr(a)
	if !n.cachedAttr(&out) || out.Mode&07777 != 0o640 || out.Size != 7 || out.Uid != 5 {
		t.Fatalf("cached attributes: ok=%v %+v", n.cachedAttr(&out), out.Attr)
	}
	if out.Timeout() <= 0 || out.Timeout() > ttl {
		t.Fatalf("kernel timeout %v, want the time left of %v", out.Timeout(), ttl)
	}
	if !n.sameAttr(a) || n.sameAttr(&commonv1.Attr{Mode: 0o640, Size: 8, Nlink: 1, Uid: 5}) {
		t.Fatal("sameAttr does not compare the attributes")
	}
	n.dropAttr()
	if n.cachedAttr(&out) {
		t.Fatal("dropped attributes served")
	}
	n.cacheAttr(a)
	time.Sleep(ttl + 20*time.Millisecond)
	if n.cachedAttr(&out) {
		t.Fatal("attributes served after the timeout")
	}

	if n.xattrAbsent("security.capability") {
		t.Fatal("unknown xattr reported absent")
	}
	n.created()
	if !n.xattrAbsent("security.capability") || !n.xattrAbsent("user.x") {
		t.Fatal("a new object's xattrs not known absent")
	}
	n.xattrsChanged()
	if n.xattrAbsent("user.x") {
		t.Fatal("absent after a change of xattrs")
	}
	n.noteAbsent("security.capability")
	if !n.xattrAbsent("security.capability") || n.xattrAbsent("user.x") {
		t.Fatal("ENODATA of one name not remembered for that name only")
	}
	time.Sleep(ttl + 20*time.Millisecond)
	if n.xattrAbsent("security.capability") {
		t.Fatal("absent after the timeout")
	}

	off := &node{m: &mountFS{}}
	off.cacheAttr(a)
	off.created()
	off.noteAbsent("user.x")
	if off.cachedAttr(&out) || off.xattrAbsent("user.x") {
		t.Fatal("timeout 0 cached something")
	}
}

// TestProcIdentity: the process name and supplementary groups read from
// /proc are this process's; the groups are reused within identityTTL for
// the same (pid, uid, gid) only.
func TestProcIdentity(t *testing.T) {
	pid := uint32(os.Getpid())
	comm, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Skipf("SKIP (loud): no /proc: %v", err)
	}
	var cf commFiles
	for range 2 { // opened, then through the kept descriptor
		if got := cf.comm(pid); got != strings.TrimSpace(string(comm)) {
			t.Fatalf("comm = %q, want %q", got, comm)
		}
	}
	want, err := os.Getgroups()
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for _, g := range readGroups(pid) {
		got = append(got, int(g))
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("readGroups = %v, want %v", got, want)
	}
	var p procCache
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	p.m = map[uint32]procIdentity{pid: {uid: uid, gid: gid, groups: []uint32{4242}, till: time.Now().Add(time.Hour)}}
	if g := p.groups(pid, uid, gid); !slices.Equal(g, []uint32{4242}) {
		t.Fatalf("cached groups not reused: %v", g)
	}
	if g := p.groups(pid, uid+1, gid); slices.Contains(g, 4242) {
		t.Fatalf("groups of another uid reused: %v", g)
	}
	if cf.comm(1<<30) != "" || readGroups(1<<30) != nil {
		t.Fatal("a missing process has a name or groups")
	}
}

// TestCommFollowsExec: the name read through a kept descriptor is the
// process's current one (after an exec), and "" once it has exited.
func TestCommFollowsExec(t *testing.T) {
	cmd := exec.Command("sh", "-c", "read x; exec sleep 30")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Skipf("SKIP (loud): cannot run sh: %v", err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	pid := uint32(cmd.Process.Pid)
	var cf commFiles
	if got := cf.comm(pid); got != "sh" {
		t.Fatalf("comm before exec = %q, want sh", got)
	}
	if _, err := in.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for cf.comm(pid) != "sleep" {
		if time.Now().After(deadline) {
			t.Fatalf("comm after exec = %q, want sleep", cf.comm(pid))
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if got := cf.comm(pid); got != "" {
		t.Fatalf("comm of an exited process = %q", got)
	}
	if len(cf.fds) != 0 {
		t.Fatalf("descriptor of an exited process kept: %v", cf.fds)
	}
}

// TestSearchableTill: the kernel may keep names only in a directory the
// mount knows, within --attr-timeout, that every user may search (the x
// bit of owner, group and others), and for no longer than the mount
// knows it; --entry-timeout applies when longer.
func TestSearchableTill(t *testing.T) {
	const ttl = time.Hour
	for _, c := range []struct {
		typ  commonv1.ObjectType
		mode uint32
		want bool
	}{
		{commonv1.ObjectType_OBJECT_TYPE_DIR, 0o755, true},
		{commonv1.ObjectType_OBJECT_TYPE_DIR, 0o711, true},
		{commonv1.ObjectType_OBJECT_TYPE_DIR, 0o700, false},
		{commonv1.ObjectType_OBJECT_TYPE_DIR, 0o741, false}, // others may, not the group
		{commonv1.ObjectType_OBJECT_TYPE_DIR, 0o671, false}, // others may, not the owner
		{commonv1.ObjectType_OBJECT_TYPE_REG, 0o755, false},
	} {
		n := &node{m: &mountFS{attrTimeout: ttl}}
		now := time.Now()
		if _, ok := n.searchableTill(now); ok {
			t.Fatal("a directory whose mode the mount does not know is searchable")
		}
		n.cacheAttr(&commonv1.Attr{Type: c.typ, Mode: c.mode})
		till, ok := n.searchableTill(now)
		if ok != c.want {
			t.Errorf("%v %o: searchable %v, want %v", c.typ, c.mode, ok, c.want)
		}
		if ok && (till.Before(now) || till.After(now.Add(ttl+time.Second))) {
			t.Errorf("%v %o: searchable until %v, want within %v of %v", c.typ, c.mode, till, ttl, now)
		}
		if _, ok := n.searchableTill(now.Add(ttl + time.Second)); ok {
			t.Errorf("%v %o: searchable after --attr-timeout", c.typ, c.mode)
		}
	}
	var out fuse.EntryOut
	n := &node{m: &mountFS{attrTimeout: time.Second, entryTimeout: 5 * time.Second}}
	n.setEntryTimeout(&out, time.Second)
	if out.EntryTimeout() != 0 {
		t.Errorf("entry timeout %v set below --entry-timeout 5s (the default applies)", out.EntryTimeout())
	}
	n.m.entryTimeout = 0
	n.setEntryTimeout(&out, time.Second)
	if out.EntryTimeout() != time.Second {
		t.Errorf("entry timeout %v, want 1s", out.EntryTimeout())
	}
}
