package mdt

import (
	"math"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fidlog/fidlog/changelog"
	"github.com/fidlog/fidlog/fid"
)

func TestRootAndRestart(t *testing.T) {
	e := newEnv(t)
	a, err := e.m.Stat(ctx, root, "/")
	ok(t, err)
	if a.FID != fid.Root || a.Type != TypeDir || a.Nlink != 2 {
		t.Fatalf("root = %+v", a)
	}
	if got := must[fid.FID](t)(e.m.Path2Fid(ctx, root, "")); got != fid.Root {
		t.Fatalf("path2fid root = %v", got)
	}
	if got := must[[]string](t)(e.m.Fid2Path(ctx, root, fid.Root, -1)); !slices.Equal(got, []string{"/"}) {
		t.Fatalf("fid2path root = %q", got)
	}
	d := must[Attr](t)(e.m.Mkdir(ctx, root, "d", 0755))
	f := must[Attr](t)(e.m.Create(ctx, root, "/d/f", 0644, true))
	ok(t, e.m.Setxattr(ctx, root, "d/f", "user.a", []byte("v"), 0))
	before := must[Attr](t)(e.m.Stat(ctx, root, "d/f"))
	e.reopen()
	after := must[Attr](t)(e.m.Stat(ctx, root, "d/f"))
	if !attrEqual(before, after) {
		t.Fatalf("after restart %+v, before %+v", after, before)
	}
	if got := must[[]byte](t)(e.m.Getxattr(ctx, root, "d/f", "user.a")); string(got) != "v" {
		t.Fatalf("xattr after restart %q", got)
	}
	if r := must[Attr](t)(e.m.Stat(ctx, root, "")); r.Nlink != 3 {
		t.Fatalf("root nlink %d, want 3", r.Nlink)
	}
	// New FIDs after restart never repeat.
	g := must[Attr](t)(e.m.Create(ctx, root, "g", 0644, true))
	if g.FID == f.FID || g.FID == d.FID {
		t.Fatalf("FID reused: %v", g.FID)
	}
}

func attrEqual(a, b Attr) bool {
	return a.FID == b.FID && a.Type == b.Type && a.Mode == b.Mode && a.UID == b.UID && a.GID == b.GID &&
		a.Size == b.Size && a.Nlink == b.Nlink && a.Atime.Equal(b.Atime) && a.Mtime.Equal(b.Mtime) &&
		a.Ctime.Equal(b.Ctime) && a.Rdev == b.Rdev && a.Target == b.Target
}

func TestNames(t *testing.T) {
	e := newEnv(t)
	long := strings.Repeat("x", 256)
	tests := []struct {
		path string
		want syscall.Errno
	}{
		{"a/./b", syscall.EINVAL},
		{"..", syscall.EINVAL},
		{".", syscall.EINVAL},
		{"a\x00b", syscall.EINVAL},
		{long, syscall.ENAMETOOLONG},
		{strings.Repeat("x", 255), 0},
		{"//y//", 0},
		{"", syscall.EEXIST},
	}
	for _, tt := range tests {
		_, err := e.m.Create(ctx, root, tt.path, 0644, true)
		if tt.want == 0 {
			ok(t, err)
			continue
		}
		wantErrno(t, err, tt.want)
	}
	if _, err := e.m.Stat(ctx, root, "y"); err != nil {
		t.Fatal(err)
	}
	// Errors name the path.
	_, err := e.m.Stat(ctx, root, "nope/x")
	if err == nil || !strings.Contains(err.Error(), "nope/x") {
		t.Fatalf("error %v does not name the path", err)
	}
}

func TestPosixErrors(t *testing.T) {
	e := newEnv(t)
	ok1 := func(err error) { t.Helper(); ok(t, err) }
	_, err := e.m.Mkdir(ctx, root, "d", 0755)
	ok1(err)
	_, err = e.m.Mkdir(ctx, root, "d/sub", 0755)
	ok1(err)
	_, err = e.m.Create(ctx, root, "d/sub/f", 0644, true)
	ok1(err)
	_, err = e.m.Create(ctx, root, "f", 0644, true)
	ok1(err)
	_, err = e.m.Symlink(ctx, root, "d", "ln")
	ok1(err)
	_, err = e.m.Mkdir(ctx, root, "e", 0755)
	ok1(err)

	cases := []struct {
		name string
		err  error
		want syscall.Errno
	}{
		{"mkdir exists", second(e.m.Mkdir(ctx, root, "d", 0755)), syscall.EEXIST},
		{"create excl exists", second(e.m.Create(ctx, root, "f", 0644, true)), syscall.EEXIST},
		{"create over dir", second(e.m.Create(ctx, root, "d", 0644, false)), syscall.EISDIR},
		{"missing parent", second(e.m.Create(ctx, root, "no/f", 0644, true)), syscall.ENOENT},
		{"file as dir", second(e.m.Create(ctx, root, "f/x", 0644, true)), syscall.ENOTDIR},
		{"symlink as dir", second(e.m.Stat(ctx, root, "ln/sub")), syscall.ENOTDIR},
		{"rmdir non-empty", e.m.Rmdir(ctx, root, "d"), syscall.ENOTEMPTY},
		{"rmdir file", e.m.Rmdir(ctx, root, "f"), syscall.ENOTDIR},
		{"unlink dir", e.m.Unlink(ctx, root, "d"), syscall.EISDIR},
		{"unlink missing", e.m.Unlink(ctx, root, "zz"), syscall.ENOENT},
		{"link dir", second(e.m.Link(ctx, root, "d", "d2")), syscall.EPERM},
		{"link exists", second(e.m.Link(ctx, root, "f", "e")), syscall.EEXIST},
		{"rename dir into itself", e.m.Rename(ctx, root, "d", "d/sub/x"), syscall.EINVAL},
		{"rename dir onto own child", e.m.Rename(ctx, root, "d", "d/sub"), syscall.EINVAL},
		{"rename dir over non-empty", e.m.Rename(ctx, root, "e", "d"), syscall.ENOTEMPTY},
		{"rename file over dir", e.m.Rename(ctx, root, "f", "e"), syscall.EISDIR},
		{"rename dir over file", e.m.Rename(ctx, root, "e", "f"), syscall.ENOTDIR},
		{"rename missing", e.m.Rename(ctx, root, "zz", "f"), syscall.ENOENT},
		{"readdir file", second(e.m.Readdir(ctx, root, "f")), syscall.ENOTDIR},
		{"mknod dir", second(e.m.Mknod(ctx, root, "n", TypeDir, 0644, 0)), syscall.EINVAL},
		{"mknod chr by user", second(e.m.Mknod(ctx, user(500), "n", TypeChr, 0644, 1)), syscall.EPERM},
		{"close bad handle", e.m.CloseFile(ctx, root, 12345), syscall.EBADF},
		{"stat zero fid", second(e.m.StatFID(ctx, root, fid.Zero)), syscall.EINVAL},
		{"fid2path unknown", second(e.m.Fid2Path(ctx, root, fid.FID{Seq: 0x200000400, Oid: 999}, -1)), syscall.ENOENT},
		{"xattr missing", second(e.m.Getxattr(ctx, root, "f", "user.nope")), syscall.ENODATA},
		{"xattr bad namespace", e.m.Setxattr(ctx, root, "f", "bogus.x", nil, 0), syscall.EOPNOTSUPP},
		{"xattr replace missing", e.m.Setxattr(ctx, root, "f", "user.x", nil, XattrReplace), syscall.ENODATA},
		{"removexattr missing", e.m.Removexattr(ctx, root, "f", "user.x"), syscall.ENODATA},
		{"rmdir root", e.m.Rmdir(ctx, root, "/"), syscall.EBUSY},
		{"open missing", third(e.m.Open(ctx, root, "zz", changelog.OpenRead, 0)), syscall.ENOENT},
		{"open dir for write", third(e.m.Open(ctx, root, "d", changelog.OpenWrite, 0)), syscall.EISDIR},
		{"open excl exists", third(e.m.Open(ctx, root, "f", changelog.OpenWrite|changelog.OpenCreate|changelog.OpenExcl, 0644)), syscall.EEXIST},
		{"truncate dir", second(e.m.Setattr(ctx, root, "d", SetattrArgs{Size: ptr[uint64](0)})), syscall.EISDIR},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { wantErrno(t, c.err, c.want) })
	}
	// Nothing above changed the tree.
	got := walkTree(t, e.m)
	if len(got) != 6 {
		t.Fatalf("tree changed: %v", got)
	}
}

func second[T any](_ T, err error) error        { return err }
func third[A, B any](_ A, _ B, err error) error { return err }
func ptr[T any](v T) *T                         { return &v }

func TestRenameRules(t *testing.T) {
	e := newEnv(t)
	e.register("")
	mk := func(p string) fid.FID { return must[Attr](t)(e.m.Create(ctx, root, p, 0644, true)).FID }
	mkd := func(p string) fid.FID { return must[Attr](t)(e.m.Mkdir(ctx, root, p, 0755)).FID }
	a := mk("a")
	b := mk("b")
	d1 := mkd("d1")
	d2 := mkd("d2")
	start := e.current() + 1
	// file over file
	ok(t, e.m.Rename(ctx, root, "a", "b"))
	if got := must[fid.FID](t)(e.m.Path2Fid(ctx, root, "b")); got != a {
		t.Fatalf("b = %v, want %v", got, a)
	}
	if _, err := e.m.StatFID(ctx, root, b); Errno(err) != syscall.ENOENT {
		t.Fatalf("overwritten file still exists: %v", err)
	}
	// dir over empty dir, across parents
	sub := mkd("d1/sub")
	ok(t, e.m.Rename(ctx, root, "d1/sub", "d2"))
	if got := must[fid.FID](t)(e.m.Path2Fid(ctx, root, "d2")); got != sub {
		t.Fatalf("d2 = %v", got)
	}
	_ = d2
	if r := must[Attr](t)(e.m.Stat(ctx, root, "")); r.Nlink != 4 {
		t.Fatalf("root nlink %d, want 4 (d1, d2)", r.Nlink)
	}
	if d := must[Attr](t)(e.m.StatFID(ctx, root, d1)); d.Nlink != 2 {
		t.Fatalf("d1 nlink %d, want 2", d.Nlink)
	}
	// same object: no-op, no record
	ok(t, e.m.linkT("b", "c").err())
	cur := e.current()
	ok(t, e.m.Rename(ctx, root, "b", "c"))
	ok(t, e.m.Rename(ctx, root, "b", "b"))
	if e.current() != cur {
		t.Fatalf("same-object rename recorded")
	}
	want := []string{
		"RENME t=" + b.String() + " flags=0x1",
		"MKDIR",
		"RENME t=" + d2.String() + " flags=0x1",
		"HLINK",
	}
	var got []string
	for _, r := range e.records(start) {
		s := r.Type.String()
		if r.Type == changelog.CLRename {
			s += " t=" + r.TFID.String() + " flags=0x" + itoa(uint32(r.Flags))
		}
		got = append(got, s)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("records\n%q\nwant\n%q", got, want)
	}
}

// err lets a two-value result be checked with ok().
type attrErr struct {
	a Attr
	e error
}

func (a attrErr) err() error { return a.e }

func (m *MDT) linkT(old, new string) attrErr {
	a, err := m.Link(ctx, root, old, new)
	return attrErr{a, err}
}

func TestPermissions(t *testing.T) {
	e := newEnv(t)
	u1, u2 := user(500), user(600)
	grp := Cred{UID: 700, GID: 700, Groups: []uint32{500}, NID: "192.168.1.12@tcp"}
	_, err := e.m.Mkdir(ctx, root, "pub", 01777)
	ok(t, err)
	_, err = e.m.Mkdir(ctx, root, "priv", 0700)
	ok(t, err)
	_, err = e.m.Create(ctx, root, "priv/f", 0644, true)
	ok(t, err)
	_, err = e.m.Create(ctx, u1, "pub/f1", 0640, true)
	ok(t, err)
	_, err = e.m.Mkdir(ctx, root, "ro", 0555)
	ok(t, err)

	wantErrno(t, second(e.m.Stat(ctx, u1, "priv/f")), syscall.EACCES)             // search on priv
	wantErrno(t, second(e.m.Readdir(ctx, u1, "priv")), syscall.EACCES)            // read on priv
	wantErrno(t, second(e.m.Create(ctx, u1, "ro/x", 0644, true)), syscall.EACCES) // write on parent
	wantErrno(t, e.m.Unlink(ctx, u2, "pub/f1"), syscall.EACCES)                   // sticky
	wantErrno(t, third(e.m.Open(ctx, u2, "pub/f1", changelog.OpenRead, 0)), syscall.EACCES)
	// group member (supplementary group 500) may read 0640 file of gid 500
	h, _, err := e.m.Open(ctx, grp, "pub/f1", changelog.OpenRead, 0)
	ok(t, err)
	ok(t, e.m.CloseFile(ctx, grp, h))
	wantErrno(t, third(e.m.Open(ctx, grp, "pub/f1", changelog.OpenWrite, 0)), syscall.EACCES)
	// setattr rules
	wantErrno(t, second(e.m.Setattr(ctx, u2, "pub/f1", SetattrArgs{Mode: ptr[uint32](0777)})), syscall.EPERM)
	wantErrno(t, second(e.m.Setattr(ctx, u1, "pub/f1", SetattrArgs{UID: ptr[uint32](600)})), syscall.EPERM)
	wantErrno(t, second(e.m.Setattr(ctx, u1, "pub/f1", SetattrArgs{GID: ptr[uint32](600)})), syscall.EPERM)
	ok(t, second(e.m.Setattr(ctx, u1, "pub/f1", SetattrArgs{Mode: ptr[uint32](0600)})))
	ok(t, second(e.m.Setattr(ctx, root, "pub/f1", SetattrArgs{UID: ptr[uint32](600), GID: ptr[uint32](600)})))
	wantErrno(t, second(e.m.Setattr(ctx, u1, "pub/f1", SetattrArgs{Size: ptr[uint64](1)})), syscall.EACCES)
	// owner may chgrp to a group it is in
	ok(t, second(e.m.Create(ctx, grp, "pub/g", 0644, true)))
	ok(t, second(e.m.Setattr(ctx, grp, "pub/g", SetattrArgs{GID: ptr[uint32](500)})))
	// sticky: owner may remove own file; root may remove anything
	ok(t, e.m.Unlink(ctx, grp, "pub/g"))
	ok(t, e.m.Unlink(ctx, root, "pub/f1"))
	// xattrs
	ok(t, second(e.m.Create(ctx, u1, "pub/x", 0644, true)))
	wantErrno(t, e.m.Setxattr(ctx, u2, "pub/x", "user.a", []byte("1"), 0), syscall.EACCES)
	ok(t, e.m.Setxattr(ctx, u1, "pub/x", "user.a", []byte("1"), 0))
	wantErrno(t, e.m.Setxattr(ctx, u1, "pub/x", "trusted.a", []byte("1"), 0), syscall.EPERM)
	ok(t, e.m.Setxattr(ctx, root, "pub/x", "trusted.a", []byte("1"), 0))
	if got := must[[]string](t)(e.m.Listxattr(ctx, u1, "pub/x")); !slices.Equal(got, []string{"user.a"}) {
		t.Fatalf("user listxattr %q", got)
	}
	if got := must[[]string](t)(e.m.Listxattr(ctx, root, "pub/x")); !slices.Equal(got, []string{"trusted.a", "user.a"}) {
		t.Fatalf("root listxattr %q", got)
	}
	wantErrno(t, e.m.Setxattr(ctx, root, "pub/x", "user.a", nil, XattrCreate), syscall.EEXIST)
	ok(t, e.m.Removexattr(ctx, u1, "pub/x", "user.a"))
	// exec needs an x bit even for root
	wantErrno(t, third(e.m.Open(ctx, root, "pub/x", changelog.OpenExec, 0)), syscall.EACCES)
}

func TestLinksAndFid2Path(t *testing.T) {
	// sanity 161a: 5 links -> 5 lines; --link N follows link order after
	// removals and a rename.
	e := newEnv(t)
	_, err := e.m.Mkdir(ctx, root, "d2", 0755)
	ok(t, err)
	_, err = e.m.Mkdir(ctx, root, "d2/a", 0755)
	ok(t, err)
	f := must[Attr](t)(e.m.Create(ctx, root, "d2/a/f", 0644, true)).FID
	for _, n := range []string{"l1", "l2", "l3", "l4"} {
		ok(t, e.m.linkT("d2/a/f", "d2/"+n).err())
	}
	got := must[[]string](t)(e.m.Fid2Path(ctx, root, f, -1))
	want := []string{"d2/a/f", "d2/l1", "d2/l2", "d2/l3", "d2/l4"}
	if !slices.Equal(got, want) {
		t.Fatalf("fid2path = %q, want %q", got, want)
	}
	if a := must[Attr](t)(e.m.StatFID(ctx, root, f)); a.Nlink != 5 {
		t.Fatalf("nlink %d", a.Nlink)
	}
	ok(t, e.m.Unlink(ctx, root, "d2/l1"))
	ok(t, e.m.Unlink(ctx, root, "d2/a/f"))
	ok(t, e.m.Rename(ctx, root, "d2/l2", "d2/a/moved"))
	// order now: l3, l4, a/moved
	if got := must[[]string](t)(e.m.Fid2Path(ctx, root, f, 1)); !slices.Equal(got, []string{"d2/l4"}) {
		t.Fatalf("--link 1 = %q", got)
	}
	if got := must[[]string](t)(e.m.Fid2Path(ctx, root, f, 2)); !slices.Equal(got, []string{"d2/a/moved"}) {
		t.Fatalf("--link 2 = %q", got)
	}
	wantErrno(t, second(e.m.Fid2Path(ctx, root, f, 3)), syscall.ENOENT)
	// directory rename moves every path below it
	ok(t, e.m.Rename(ctx, root, "d2/a", "b"))
	if got := must[[]string](t)(e.m.Fid2Path(ctx, root, f, 2)); !slices.Equal(got, []string{"b/moved"}) {
		t.Fatalf("after dir rename: %q", got)
	}
}

func TestSymlinkOpen(t *testing.T) {
	e := newEnv(t)
	_, err := e.m.Mkdir(ctx, root, "d", 0755)
	ok(t, err)
	f := must[Attr](t)(e.m.Create(ctx, root, "d/f", 0644, true)).FID
	ln := must[Attr](t)(e.m.Symlink(ctx, root, "f", "d/ln"))
	if ln.Type != TypeLnk || ln.Target != "f" || ln.Size != 1 {
		t.Fatalf("symlink attr %+v", ln)
	}
	_, err = e.m.Symlink(ctx, root, "/d/ln", "abs")
	ok(t, err)
	_, err = e.m.Symlink(ctx, root, "/d/f", "abs2")
	ok(t, err)
	// stat does not follow
	if a := must[Attr](t)(e.m.Stat(ctx, root, "d/ln")); a.FID != ln.FID {
		t.Fatal("stat followed the link")
	}
	h, a, err := e.m.Open(ctx, root, "d/ln", changelog.OpenRead, 0)
	ok(t, err)
	if a.FID != f {
		t.Fatalf("open of link gave %v, want %v", a.FID, f)
	}
	ok(t, e.m.CloseFile(ctx, root, h))
	h, a, err = e.m.Open(ctx, root, "abs2", changelog.OpenRead, 0)
	ok(t, err)
	ok(t, e.m.CloseFile(ctx, root, h))
	if a.FID != f {
		t.Fatalf("absolute link open gave %v", a.FID)
	}
	wantErrno(t, third(e.m.Open(ctx, root, "abs", changelog.OpenRead, 0)), syscall.ELOOP)
	ok(t, e.m.Unlink(ctx, root, "d/f"))
	wantErrno(t, third(e.m.Open(ctx, root, "d/ln", changelog.OpenRead, 0)), syscall.ENOENT)
}

func TestOpenUnlinkedKeepsObject(t *testing.T) {
	e := newEnv(t)
	e.register("")
	h, a, err := e.m.Open(ctx, root, "f", changelog.OpenWrite|changelog.OpenCreate, 0644)
	ok(t, err)
	ok(t, e.m.Setxattr(ctx, root, "f", "user.k", []byte("v"), 0))
	ok(t, e.m.Unlink(ctx, root, "f"))
	if st := must[Attr](t)(e.m.StatFID(ctx, root, a.FID)); st.Nlink != 0 {
		t.Fatalf("open unlinked nlink %d", st.Nlink)
	}
	wantErrno(t, second(e.m.Fid2Path(ctx, root, a.FID, -1)), syscall.ENOENT)
	ok(t, e.m.CloseFile(ctx, root, h))
	wantErrno(t, second(e.m.StatFID(ctx, root, a.FID)), syscall.ENOENT)
	assertNoKeysOf(t, e.m, a.FID)

	// An orphan left by a restart (handle lost) is removed at Open when
	// orphan_grace is 0 (orphan_test.go covers the window).
	h, a, err = e.m.Open(ctx, root, "g", changelog.OpenWrite|changelog.OpenCreate, 0644)
	ok(t, err)
	_ = h
	ok(t, e.m.Unlink(ctx, root, "g"))
	e.setParam("mdd.*.orphan_grace", "0")
	e.reopen()
	wantErrno(t, second(e.m.StatFID(ctx, root, a.FID)), syscall.ENOENT)
	assertNoKeysOf(t, e.m, a.FID)
}

func TestSetattrTimes(t *testing.T) {
	e := newEnv(t)
	_, err := e.m.Create(ctx, root, "f", 0644, true)
	ok(t, err)
	mt := time.Date(2020, 1, 2, 3, 4, 5, 6, time.UTC)
	a := must[Attr](t)(e.m.Setattr(ctx, root, "f", SetattrArgs{Mtime: &mt, Atime: &mt}))
	if !a.Mtime.Equal(mt) || !a.Atime.Equal(mt) {
		t.Fatalf("times %v %v", a.Mtime, a.Atime)
	}
	a = must[Attr](t)(e.m.Setattr(ctx, root, "f", SetattrArgs{Size: ptr[uint64](4096)}))
	if a.Size != 4096 || a.Mtime.Equal(mt) {
		t.Fatalf("truncate: %+v", a)
	}
}

// TestSetattrImpossibleValues: a size beyond off_t and the uid or gid
// (uid_t)-1 are EINVAL naming the value, by path and by FID, and change
// nothing: no record, no DENY.
func TestSetattrImpossibleValues(t *testing.T) {
	e := newEnv(t)
	e.setParam("mdd.*.changelog_mask", "ALL")
	e.register("")
	a0, err := e.m.Create(ctx, root, "f", 0644, true)
	ok(t, err)
	cur := e.current()
	for _, tc := range []struct {
		s    SetattrArgs
		want string
	}{
		{SetattrArgs{Size: ptr[uint64](1 << 63)}, "size 9223372036854775808"},
		{SetattrArgs{Size: ptr[uint64](math.MaxUint64)}, "size 18446744073709551615"},
		{SetattrArgs{UID: ptr[uint32](math.MaxUint32)}, "uid 4294967295"},
		{SetattrArgs{GID: ptr[uint32](math.MaxUint32)}, "gid 4294967295"},
	} {
		_, err := e.m.Setattr(ctx, root, "f", tc.s)
		if Errno(err) != syscall.EINVAL || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("setattr by path %s: %v, want EINVAL naming it", tc.want, err)
		}
		_, err = e.m.SetattrFID(ctx, root, a0.FID, 0, tc.s)
		if Errno(err) != syscall.EINVAL || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("setattr by FID %s: %v, want EINVAL naming it", tc.want, err)
		}
	}
	if a := must[Attr](t)(e.m.Stat(ctx, root, "f")); a.Size != 0 || a.UID != a0.UID || a.GID != a0.GID {
		t.Fatalf("attributes changed: %+v", a)
	}
	if e.current() != cur {
		t.Fatalf("records written: %q", e.lines(cur))
	}
	// The largest size is a size.
	ok(t, second(e.m.Setattr(ctx, root, "f", SetattrArgs{Size: ptr[uint64](math.MaxInt64)})))
}

// TestRenameFlags: RENAME_NOREPLACE is EEXIST over an existing entry;
// RENAME_EXCHANGE swaps two entries of any types atomically (directory
// link counts follow) with one RENME record flagged 0x4.
func TestRenameFlags(t *testing.T) {
	e := newEnv(t)
	e.register("")
	d1 := must[Attr](t)(e.m.Mkdir(ctx, root, "d1", 0755))
	d2 := must[Attr](t)(e.m.Mkdir(ctx, root, "d2", 0755))
	f := must[Attr](t)(e.m.Create(ctx, root, "d1/f", 0644, true))
	sub := must[Attr](t)(e.m.Mkdir(ctx, root, "d2/sub", 0755))
	_ = must[Attr](t)(e.m.Create(ctx, root, "d2/sub/x", 0644, true))

	start := e.current()
	wantErrno(t, e.m.RenameFlags(ctx, root, "d1/f", "d2/sub", RenameNoReplace), syscall.EEXIST)
	wantErrno(t, e.m.RenameFlags(ctx, root, "d1/f", "d2/none", RenameExchange), syscall.ENOENT)
	wantErrno(t, e.m.RenameFlags(ctx, root, "d1/f", "d2/sub", RenameExchange|RenameNoReplace), syscall.EINVAL)
	wantErrno(t, e.m.RenameFlags(ctx, root, "d2", "d2/sub/x", RenameExchange), syscall.EINVAL)
	if n := e.current(); n != start {
		t.Fatalf("failed renames recorded %v", e.types(start+1))
	}
	ok(t, e.m.RenameFlags(ctx, root, "d1/f", "d1/g", RenameNoReplace))

	// A file in d1 and a directory in d2 trade places.
	ok(t, e.m.RenameFlags(ctx, root, "d1/g", "d2/sub", RenameExchange))
	if a := must[Attr](t)(e.m.Stat(ctx, root, "d1/g")); a.FID != sub.FID {
		t.Fatalf("d1/g is %v, want the directory %v", a.FID, sub.FID)
	}
	if a := must[Attr](t)(e.m.Stat(ctx, root, "d2/sub")); a.FID != f.FID {
		t.Fatalf("d2/sub is %v, want the file %v", a.FID, f.FID)
	}
	_ = must[Attr](t)(e.m.Stat(ctx, root, "d1/g/x"))
	if a := must[Attr](t)(e.m.Stat(ctx, root, "d1")); a.Nlink != 3 {
		t.Fatalf("d1 nlink %d after gaining a directory, want 3", a.Nlink)
	}
	if a := must[Attr](t)(e.m.Stat(ctx, root, "d2")); a.Nlink != 2 {
		t.Fatalf("d2 nlink %d after losing its directory, want 2", a.Nlink)
	}
	lines := e.lines(start + 1)
	want := []string{
		"RENME TIME 0x0 t=[0:0x0:0x0] j=test.0 ef=0x13 u=0:0 nid=192.168.1.10@tcp p=" + d1.FID.String() + " g s=" + f.FID.String() + " sp=" + d1.FID.String() + " f",
		"RENME TIME 0x4 t=" + sub.FID.String() + " j=test.0 ef=0x13 u=0:0 nid=192.168.1.10@tcp p=" + d2.FID.String() + " sub s=" + f.FID.String() + " sp=" + d1.FID.String() + " g",
	}
	for i := range lines {
		lines[i] = lines[i][strings.IndexByte(lines[i], ' ')+3:]
	}
	if !slices.Equal(lines, want) {
		t.Fatalf("records:\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	// Swapping two links of one object, or an entry with itself, does
	// nothing.
	_ = must[Attr](t)(e.m.Link(ctx, root, "d2/sub", "d2/sub2"))
	start = e.current()
	ok(t, e.m.RenameFlags(ctx, root, "d2/sub", "d2/sub2", RenameExchange))
	if n := e.current(); n != start {
		t.Fatalf("no-op exchange recorded %v", e.types(start+1))
	}
}
