package mdt

import (
	"bytes"
	"encoding/binary"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/fidlog/fidlog/changelog"
)

// TestOrphanSurvivesRestart: an open unlinked file outlives a restart of
// the MDT; the client that held it reopens it by FID, reads and writes it,
// truncates it through its handle, and its last close records CLOSE as the
// opener and removes it.
func TestOrphanSurvivesRestart(t *testing.T) {
	e := newEnv(t)
	e.register("")
	u := user(1000)
	ok(t, second(e.m.Setattr(ctx, root, "", SetattrArgs{Mode: ptr[uint32](0777)})))
	old, a, err := e.m.Open(ctx, u, "f", changelog.OpenCreate|changelog.OpenRead|changelog.OpenWrite, 0644)
	ok(t, err)
	_, err = e.m.WriteFile(ctx, u, old, 0, []byte("hello world"))
	ok(t, err)
	ok(t, e.m.Unlink(ctx, u, "f"))
	e.reopen() // the handle is lost with the process

	if v := e.param("mdd.lustre-MDT0000.orphan_count"); v != "1" {
		t.Fatalf("orphan_count %s after restart, want 1", v)
	}
	if st := must[Attr](t)(e.m.StatFID(ctx, u, a.FID)); st.Nlink != 0 || st.Size != 11 {
		t.Fatalf("orphan after restart: %+v", st)
	}
	// The old handle number means nothing now, and is never handed out
	// again.
	wantErrno(t, e.m.CloseFile(ctx, u, old), syscall.EBADF)
	h2, _, err := e.m.Open(ctx, root, "other", changelog.OpenCreate|changelog.OpenWrite, 0644)
	ok(t, err)
	if h2 == old {
		t.Fatalf("handle %d reused after a restart", old)
	}
	ok(t, e.m.CloseFile(ctx, root, h2))

	start := e.current()
	h, _, err := e.m.OpenFID(ctx, u, a.FID, changelog.OpenRead|changelog.OpenWrite, old)
	ok(t, err)
	// Reopening a handle the MDT still has returns it unchanged.
	if h3, _, err := e.m.OpenFID(ctx, u, a.FID, changelog.OpenRead|changelog.OpenWrite, h); err != nil || h3 != h {
		t.Fatalf("reopen of a live handle: %d, %v; want %d", h3, err, h)
	}
	got := must[[]byte](t)(e.m.ReadFile(ctx, u, h, 0, 100))
	if string(got) != "hello world" {
		t.Fatalf("read after restart %q", got)
	}
	_, err = e.m.WriteFile(ctx, u, h, 5, []byte("!"))
	ok(t, err)
	// ftruncate on the unlinked file, through its handle.
	st, err := e.m.SetattrFID(ctx, u, a.FID, h, SetattrArgs{Size: ptr[uint64](6)})
	ok(t, err)
	if st.Size != 6 {
		t.Fatalf("size %d after ftruncate", st.Size)
	}
	// fchmod without a handle (the kernel sends none).
	st, err = e.m.SetattrFID(ctx, u, a.FID, 0, SetattrArgs{Mode: ptr[uint32](0600)})
	ok(t, err)
	if st.Mode != 0600 {
		t.Fatalf("mode %o after fchmod", st.Mode)
	}
	if got := must[[]byte](t)(e.m.ReadFile(ctx, u, h, 0, 100)); string(got) != "hello!" {
		t.Fatalf("read after write and truncate %q", got)
	}
	ok(t, e.m.CloseFile(ctx, u, h))
	want := []string{
		"TRUNC TIME 0xe t=" + a.FID.String() + " j=test.1000 ef=0x13 u=1000:1000 nid=192.168.1.11@tcp",
		"SATTR TIME 0x14 t=" + a.FID.String() + " j=test.1000 ef=0x13 u=1000:1000 nid=192.168.1.11@tcp",
		"CLOSE TIME 0x3 t=" + a.FID.String() + " j=test.1000 ef=0x13 u=1000:1000 nid=192.168.1.11@tcp",
	}
	var lines []string
	for _, l := range e.lines(start + 1) {
		lines = append(lines, l[strings.IndexByte(l, ' ')+3:])
	}
	if !slices.Equal(lines, want) {
		t.Fatalf("records after the restart:\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	wantErrno(t, second(e.m.StatFID(ctx, u, a.FID)), syscall.ENOENT)
	assertNoKeysOf(t, e.m, a.FID)
	if v := e.param("mdd.lustre-MDT0000.orphan_count"); v != "0" {
		t.Fatalf("orphan_count %s after the last close", v)
	}
}

// TestOrphanGraceReclaims: when orphan_grace ends, the orphans nobody
// reopened are removed without a record; a reopened one stays until its
// close.
func TestOrphanGraceReclaims(t *testing.T) {
	e := newEnv(t)
	e.register("")
	e.setParam("mdd.*.orphan_grace", "1")
	var fids [2]Attr
	for i, name := range []string{"a", "b"} {
		_, a, err := e.m.Open(ctx, root, name, changelog.OpenCreate|changelog.OpenWrite, 0644)
		ok(t, err)
		ok(t, e.m.Unlink(ctx, root, name))
		fids[i] = a
	}
	e.reopen()
	start := e.current()
	h, _, err := e.m.OpenFID(ctx, root, fids[1].FID, changelog.OpenRead, 0)
	ok(t, err)
	deadline := time.Now().Add(10 * time.Second)
	for e.param("mdd.lustre-MDT0000.orphan_count") != "1" {
		if time.Now().After(deadline) {
			t.Fatalf("orphan_count %s 10s after a 1s window", e.param("mdd.lustre-MDT0000.orphan_count"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	wantErrno(t, second(e.m.StatFID(ctx, root, fids[0].FID)), syscall.ENOENT)
	assertNoKeysOf(t, e.m, fids[0].FID)
	wantErrno(t, third(e.m.OpenFID(ctx, root, fids[0].FID, changelog.OpenRead, 0)), syscall.ENOENT)
	if st := must[Attr](t)(e.m.StatFID(ctx, root, fids[1].FID)); st.Nlink != 0 {
		t.Fatalf("reopened orphan: %+v", st)
	}
	if n := e.current(); n != start {
		t.Fatalf("the window's end recorded %v", e.types(start+1))
	}
	ok(t, e.m.CloseFile(ctx, root, h))
	assertNoKeysOf(t, e.m, fids[1].FID)
}

// TestOrphanCrash: a crash (unsynced writes lost) right after the unlink
// of an open file was acknowledged keeps the orphan for the window; a
// crash after its last close leaves nothing.
func TestOrphanCrash(t *testing.T) {
	fs := vfs.NewCrashableMem()
	opts := Options{FS: fs, Clock: newTestClock().Now, Logger: quietLogger()}
	o := opts
	m, err := Open("db", &o)
	ok(t, err)
	h, a, err := m.Open(ctx, root, "f", changelog.OpenCreate|changelog.OpenWrite|changelog.OpenRead, 0644)
	ok(t, err)
	_, err = m.WriteFile(ctx, root, h, 0, bytes.Repeat([]byte("x"), 3*ChunkSize))
	ok(t, err)
	ok(t, m.Unlink(ctx, root, "f"))
	crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
	ok(t, m.CloseFile(ctx, root, h))
	gone := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
	ok(t, m.Close())

	o = opts
	o.FS = crashed
	m2, err := Open("db", &o)
	ok(t, err)
	h, _, err = m2.OpenFID(ctx, root, a.FID, changelog.OpenRead, 1)
	ok(t, err)
	if got := must[[]byte](t)(m2.ReadFile(ctx, root, h, 2*ChunkSize, 3)); string(got) != "xxx" {
		t.Fatalf("orphan after a crash reads %q", got)
	}
	ok(t, m2.CloseFile(ctx, root, h))
	assertNoKeysOf(t, m2, a.FID)
	ok(t, m2.Close())

	o = opts
	o.FS = gone
	m3, err := Open("db", &o)
	ok(t, err)
	defer m3.Close()
	assertNoKeysOf(t, m3, a.FID)
}

// TestOpenFIDChecks: OpenFID checks the object's permissions as Open
// does (EACCES and NOPEN), refuses CREATE, and SetattrFID's size change
// needs write permission unless a write handle is given.
func TestOpenFIDChecks(t *testing.T) {
	e := newEnv(t)
	e.register("NOPEN TRUNC")
	ok(t, second(e.m.Setattr(ctx, root, "", SetattrArgs{Mode: ptr[uint32](0777)})))
	h, f, err := e.m.Open(ctx, user(1000), "f", changelog.OpenCreate|changelog.OpenWrite, 0400)
	ok(t, err)
	start := e.current()
	wantErrno(t, third(e.m.OpenFID(ctx, user(2000), f.FID, changelog.OpenRead, 0)), syscall.EACCES)
	if ty := e.types(start + 1); !slices.Equal(ty, []string{"NOPEN"}) {
		t.Fatalf("denied open by FID recorded %v, want NOPEN", ty)
	}
	wantErrno(t, third(e.m.OpenFID(ctx, user(1000), f.FID, changelog.OpenRead|changelog.OpenCreate, 0)), syscall.EINVAL)
	// The file is 0400: a truncate by FID needs the write handle.
	wantErrno(t, second(e.m.SetattrFID(ctx, user(1000), f.FID, 0, SetattrArgs{Size: ptr[uint64](1)})), syscall.EACCES)
	wantErrno(t, second(e.m.SetattrFID(ctx, user(1000), f.FID, h+1, SetattrArgs{Size: ptr[uint64](1)})), syscall.EBADF)
	st, err := e.m.SetattrFID(ctx, user(1000), f.FID, h, SetattrArgs{Size: ptr[uint64](1)})
	ok(t, err)
	if st.Size != 1 {
		t.Fatalf("size %d", st.Size)
	}
	ok(t, e.m.CloseFile(ctx, user(1000), h))
	for _, v := range []string{"abc", "-1", "86401"} {
		_, err := e.m.SetParam("mdd.*.orphan_grace", v)
		wantErrno(t, err, syscall.EINVAL)
	}
}

// TestOrphanReopenRecords: with OPEN in the mask, a reopen after a
// restart records no second OPEN, and the last close records the CLOSE
// the original open was owed, with its flags (CREAT included).
func TestOrphanReopenRecords(t *testing.T) {
	e := newEnv(t)
	e.setParam("mdd.*.changelog_mask", "ALL")
	e.register("")
	flags := changelog.OpenCreate | changelog.OpenWrite
	_, a, err := e.m.Open(ctx, root, "f", flags, 0644)
	ok(t, err)
	ok(t, e.m.Unlink(ctx, root, "f"))
	e.reopen()
	start := e.current()
	h, _, err := e.m.OpenFID(ctx, root, a.FID, flags, 1)
	ok(t, err)
	ok(t, e.m.CloseFile(ctx, root, h))
	recs := e.records(start + 1)
	if len(recs) != 1 || recs[0].Type != changelog.CLClose || recs[0].Flags != 0x42 || recs[0].TFID != a.FID {
		var l []string
		for _, r := range recs {
			l = append(l, r.Line())
		}
		t.Fatalf("records after the reopen: %v, want one CLOSE 0x42", l)
	}
	assertNoKeysOf(t, e.m, a.FID)
}

// TestOrphanReopenAfterChmod: a file created 0444 and written through the
// descriptor of its create, then unlinked, is reopened for writing after a
// restart (a descriptor keeps its access), while a plain open by FID is
// refused by the mode.
func TestOrphanReopenAfterChmod(t *testing.T) {
	e := newEnv(t)
	u := user(1000)
	_, err := e.m.Setattr(ctx, root, "", SetattrArgs{Mode: ptr[uint32](0777)})
	ok(t, err)
	flags := changelog.OpenCreate | changelog.OpenWrite
	old, a, err := e.m.Open(ctx, u, "f", flags, 0444)
	ok(t, err)
	ok(t, e.m.Unlink(ctx, u, "f"))
	e.reopen()
	wantErrno(t, third(e.m.OpenFID(ctx, u, a.FID, changelog.OpenWrite, 0)), syscall.EACCES)
	h, _, err := e.m.OpenFID(ctx, u, a.FID, flags, old)
	ok(t, err)
	_, err = e.m.WriteFile(ctx, u, h, 0, []byte("x"))
	ok(t, err)
	ok(t, e.m.CloseFile(ctx, u, h))
	assertNoKeysOf(t, e.m, a.FID)
}

// TestStartCounterLazy: the start counter in handle numbers is stored at
// the first open of a start, not at Open, so restarts that open nothing
// write nothing (an Open with a WAL to replay costs twice as long), and
// handle numbers still never repeat across restarts.
func TestStartCounterLazy(t *testing.T) {
	e := newEnv(t)
	boot := func() uint64 {
		t.Helper()
		v, found, err := e.m.getMeta(metaBoot)
		ok(t, err)
		if !found {
			return 0
		}
		return binary.BigEndian.Uint64(v)
	}
	if b := boot(); b != 0 {
		t.Fatalf("start counter %d before any open, want none stored", b)
	}
	h1, _, err := e.m.Open(ctx, root, "a", changelog.OpenCreate|changelog.OpenWrite, 0o644)
	ok(t, err)
	ok(t, e.m.CloseFile(ctx, root, h1))
	b1 := boot()
	if b1 == 0 || h1>>handleBits != b1 {
		t.Fatalf("handle %#x with stored start counter %d", h1, b1)
	}
	e.reopen()
	e.reopen()
	if b := boot(); b != b1 {
		t.Fatalf("start counter %d after two restarts that opened nothing, want %d", b, b1)
	}
	h2, _, err := e.m.Open(ctx, root, "a", changelog.OpenRead, 0)
	ok(t, err)
	if h2>>handleBits != b1+1 || h2 == h1 {
		t.Fatalf("first handle after the restarts %#x (before: %#x)", h2, h1)
	}
	ok(t, e.m.CloseFile(ctx, root, h2))
}
