package mdt

import (
	"errors"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

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
	// The failed operations left nothing of theirs in the namespace cache.
	checkCache(t, e.m)
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

// TestWriteError: a WAL write failure is fatal (Pebble reports it through
// Fatalf or as a failed sync); the MDT latches it (every later operation
// fails with EIO), logs it (pebble_fatal or wal_sync_failed) and calls
// OnFatal, which must end the process (mdtd exits; here the failing
// goroutine stops, standing in for the exit). Nothing is acknowledged
// after the failure, and after reopening nothing of the failed operation
// is visible.
func TestWriteError(t *testing.T) {
	mem := vfs.NewCrashableMem()
	toggle := &errorfs.Toggle{Injector: errorfs.InjectorFunc(func(op errorfs.Op) error {
		if strings.HasSuffix(op.Path, ".log") && op.Kind.ReadOrWrite() == errorfs.OpIsWrite {
			return errorfs.ErrInjected
		}
		return nil
	})}
	var logs strings.Builder
	var logMu sync.Mutex
	fatal := make(chan error, 4)
	e := newEnv(t, func(o *Options) {
		o.FS = errorfs.Wrap(mem, toggle)
		o.Logger = slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, nil))
		o.OnFatal = func(err error) {
			fatal <- err
			runtime.Goexit() // the process exit, for this goroutine
		}
	})
	e.register("")
	_, err := e.m.Mkdir(ctx, root, "d", 0755)
	ok(t, err)
	cur := e.current()
	toggle.On()
	done := make(chan error, 1)
	go func() {
		defer close(done)
		_, err := e.m.Create(ctx, root, "d/f", 0644, true)
		done <- err // not reached: OnFatal does not return
	}()
	select {
	case err := <-fatal:
		if Errno(err) != syscall.EIO {
			t.Fatalf("OnFatal got %v, want an EIO error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("OnFatal not called after a WAL write failure")
	}
	if err, acked := <-done; acked {
		t.Fatalf("the failed create returned (%v); it must never be acknowledged", err)
	}
	_, err = e.m.Create(ctx, root, "d/g", 0644, true)
	if Errno(err) != syscall.EIO {
		t.Fatalf("create after a fatal write error: %v", err)
	}
	logMu.Lock()
	if !strings.Contains(logs.String(), "pebble_fatal") && !strings.Contains(logs.String(), "wal_sync_failed") {
		t.Errorf("no pebble_fatal or wal_sync_failed event logged:\n%s", logs.String())
	}
	logMu.Unlock()
	toggle.Off()
	// The process exits here: what survives is what was synced. The
	// failed DB is then closed only to release this test's resources.
	crashed := mem.CrashClone(vfs.CrashCloneCfg{})
	old := e.m
	e.m = nil
	_ = old.Close()
	e.opts.FS = crashed
	e.opts.OnFatal = nil
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

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
