package mdt

import (
	"errors"
	"strings"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// TestMissingLinkFailsTheOperation: an entry whose link record is gone
// (the namespace invariant is broken) makes unlink and rename fail with
// ErrCorrupt (EIO) and change nothing, instead of removing the entry and
// recording a change the namespace does not match.
func TestMissingLinkFailsTheOperation(t *testing.T) {
	e := newEnv(t)
	e.register("")
	_, err := e.m.Mkdir(ctx, root, "d", 0755)
	ok(t, err)
	a := e.touch(root, "d/a")
	e.touch(root, "d/b")
	ok(t, e.m.db.Delete(linkKey(a, 0), pebble.Sync))

	before := walkTree(t, e.m)
	cur := e.current()
	for name, err := range map[string]error{
		"unlink":         e.m.Unlink(ctx, root, "d/a"),
		"rename":         e.m.Rename(ctx, root, "d/a", "d/c"),
		"rename-replace": e.m.Rename(ctx, root, "d/b", "d/a"),
	} {
		if !errors.Is(err, ErrCorrupt) || Errno(err) != syscall.EIO {
			t.Errorf("%s of an entry without its link: %v, want ErrCorrupt (EIO)", name, err)
		}
	}
	if e.current() != cur {
		t.Fatalf("records appended by failed operations: %q", e.lines(cur+1))
	}
	after := walkTree(t, e.m)
	if len(after) != len(before) {
		t.Fatalf("namespace changed: %v -> %v", before, after)
	}
	for k := range before {
		if !after[k] {
			t.Fatalf("entry %v gone", k)
		}
	}
}

// TestDeleteObjectReportsReadErrors: when the links or xattrs of an object
// cannot be listed, deleteObject returns ErrIO (the caller then commits
// nothing) instead of returning a batch that deletes the inode but leaves
// its other keys behind.
func TestDeleteObjectReportsReadErrors(t *testing.T) {
	mem := vfs.NewMem()
	toggle := &errorfs.Toggle{Injector: errorfs.InjectorFunc(func(op errorfs.Op) error {
		if strings.HasSuffix(op.Path, ".sst") && op.Kind.ReadOrWrite() == errorfs.OpIsRead {
			return errorfs.ErrInjected
		}
		return nil
	})}
	cache := pebble.NewCache(1) // every block read goes to the file
	t.Cleanup(cache.Unref)
	e := newEnv(t, func(o *Options) {
		o.FS = errorfs.Wrap(mem, toggle)
		o.PebbleOptions = func(po *pebble.Options) { po.Cache = cache }
	})
	f := e.touch(root, "f")
	ok(t, e.m.Setxattr(ctx, root, "f", "user.a", []byte("1"), 0))
	ok(t, e.m.db.Flush())

	b := e.m.db.NewBatch()
	defer func() { mustBatch(b.Close()) }()
	toggle.On()
	err := e.m.deleteObject(b, f)
	toggle.Off()
	if !errors.Is(err, ErrIO) {
		t.Fatalf("deleteObject with unreadable tables: %v, want ErrIO", err)
	}
	// Without the fault the same call succeeds and removes every key.
	b2 := e.m.db.NewBatch()
	defer func() { mustBatch(b2.Close()) }()
	ok(t, e.m.deleteObject(b2, f))
	ok(t, b2.Commit(pebble.Sync))
	assertNoKeysOf(t, e.m, f)
}
