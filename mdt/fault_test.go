package mdt

import (
	"errors"
	"strings"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/fidlog/fidlog/changelog"
	"github.com/fidlog/fidlog/fid"
)

// TestNoSpace: at the retained-records cap with GC off, every operation
// that owes a record fails with ENOSPC and changes nothing; clearing the
// user frees space.
func TestNoSpace(t *testing.T) {
	e := newEnv(t)
	e.setParam("mdd.*.changelog_mask", "ALL")
	e.register("")
	e.setParam("mdd.*.changelog_gc", "0")
	_, err := e.m.Mkdir(ctx, root, "d", 0777)
	ok(t, err)
	e.touch(root, "d/f")
	ok(t, e.m.Setxattr(ctx, root, "d/f", "user.a", []byte("1"), 0))
	h, _, err := e.m.Open(ctx, root, "d/f", rd, 0)
	ok(t, err)
	e.setParam("mdd.*.changelog_max_records", "1")
	if cur := e.current(); cur < 2 {
		t.Fatalf("current %d", cur)
	}
	e.setParam("mdd.*.changelog_max_records", itoa(uint32(e.current())))

	before := walkTree(t, e.m)
	beforeAttr := must[Attr](t)(e.m.Stat(ctx, root, "d/f"))
	cur := e.current()
	handles := e.m.OpenHandles()
	ops := map[string]error{
		"create":      second(e.m.Create(ctx, root, "d/new", 0644, true)),
		"mkdir":       second(e.m.Mkdir(ctx, root, "d/newdir", 0755)),
		"symlink":     second(e.m.Symlink(ctx, root, "x", "d/sl")),
		"link":        second(e.m.Link(ctx, root, "d/f", "d/f2")),
		"unlink":      e.m.Unlink(ctx, root, "d/f"),
		"rename":      e.m.Rename(ctx, root, "d/f", "d/g"),
		"rmdir":       e.m.Rmdir(ctx, root, "d"),
		"setattr":     second(e.m.Setattr(ctx, root, "d/f", SetattrArgs{Mode: ptr[uint32](0600)})),
		"truncate":    second(e.m.Setattr(ctx, root, "d/f", SetattrArgs{Size: ptr[uint64](9)})),
		"setxattr":    e.m.Setxattr(ctx, root, "d/f", "user.b", []byte("1"), 0),
		"removexattr": e.m.Removexattr(ctx, root, "d/f", "user.a"),
		"getxattr":    second(e.m.Getxattr(ctx, root, "d/f", "user.a")),
		"open":        third(e.m.Open(ctx, root, "d/f", wr, 0)),
		"open-create": third(e.m.Open(ctx, root, "d/oc", wr|crt, 0644)),
		"close":       e.m.CloseFile(ctx, root, h),
	}
	for name, err := range ops {
		if name == "rmdir" {
			wantErrno(t, err, syscall.ENOTEMPTY) // checked before any record
			continue
		}
		if Errno(err) != syscall.ENOSPC || !errors.Is(err, ErrNoSpace) || !errors.Is(err, changelog.ErrNoSpace) {
			t.Errorf("%s: %v, want ENOSPC matching both sentinels", name, err)
		}
	}
	if e.current() != cur || e.m.OpenHandles() != handles {
		t.Fatalf("index %d -> %d, handles %d -> %d", cur, e.current(), handles, e.m.OpenHandles())
	}
	after := walkTree(t, e.m)
	if len(after) != len(before) {
		t.Fatalf("tree changed: %v -> %v", before, after)
	}
	if a := must[Attr](t)(e.m.Stat(ctx, root, "d/f")); !attrEqual(a, beforeAttr) {
		t.Fatalf("attributes changed: %+v -> %+v", beforeAttr, a)
	}
	if got := must[[]string](t)(e.m.Listxattr(ctx, root, "d/f")); strings.Join(got, ",") != "user.a" {
		t.Fatalf("xattrs changed: %v", got)
	}
	// Reads that owe no record still work.
	ok(t, second(e.m.Stat(ctx, root, "d/f")))
	// Clearing frees space; the log has no gap.
	_, err = e.m.log.Clear("cl1", 0)
	ok(t, err)
	ok(t, second(e.m.Create(ctx, root, "d/new", 0644, true)))
	ok(t, e.m.CloseFile(ctx, root, h))
	recs := e.records(0)
	if len(recs) != 2 || recs[0].Index != cur+1 || recs[1].Index != cur+2 {
		t.Fatalf("after clear: %q", e.lines(0))
	}
}

// TestWriteError: a WAL write failure fails the operation with EIO, the
// MDT refuses further writes, and after reopening nothing of the failed
// operation is visible.
func TestWriteError(t *testing.T) {
	mem := vfs.NewMem()
	toggle := &errorfs.Toggle{Injector: errorfs.InjectorFunc(func(op errorfs.Op) error {
		if strings.HasSuffix(op.Path, ".log") && op.Kind.ReadOrWrite() == errorfs.OpIsWrite {
			return errorfs.ErrInjected
		}
		return nil
	})}
	e := newEnv(t, func(o *Options) { o.FS = errorfs.Wrap(mem, toggle) })
	e.register("")
	_, err := e.m.Mkdir(ctx, root, "d", 0755)
	ok(t, err)
	cur := e.current()
	toggle.On()
	_, err = e.m.Create(ctx, root, "d/f", 0644, true)
	if Errno(err) != syscall.EIO {
		t.Fatalf("create with failing WAL: %v", err)
	}
	_, err = e.m.Create(ctx, root, "d/g", 0644, true)
	if Errno(err) != syscall.EIO {
		t.Fatalf("create after a write error: %v", err)
	}
	toggle.Off()
	_ = e.m.Close()
	e.m = nil
	e.opts.FS = mem
	e.open()
	wantErrno(t, second(e.m.Stat(ctx, root, "d/f")), syscall.ENOENT)
	wantErrno(t, second(e.m.Stat(ctx, root, "d/g")), syscall.ENOENT)
	if e.current() != cur {
		t.Fatalf("current %d, want %d", e.current(), cur)
	}
	ok(t, second(e.m.Create(ctx, root, "d/f", 0644, true)))
	if recs := e.records(0); recs[len(recs)-1].Index != cur+1 || recs[len(recs)-1].Type != changelog.CLCreate {
		t.Fatalf("records after reopen: %q", e.lines(0))
	}
	_ = fid.Root
}
