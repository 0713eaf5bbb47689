package mdt

import (
	"slices"
	"syscall"
	"testing"

	"github.com/fidlog/fidlog/changelog"
)

// TestGetxattrSizeProbe: getxattr(2)'s size probe (0) returns the length
// and records nothing, a short buffer is ERANGE and records nothing, the
// read that returns data records one GXATR (Lustre records reads that
// return data).
func TestGetxattrSizeProbe(t *testing.T) {
	e := newEnv(t)
	e.register("GXATR")
	_, err := e.m.Create(ctx, root, "f", 0644, true)
	ok(t, err)
	ok(t, e.m.Setxattr(ctx, root, "f", "user.k", []byte("value"), 0))
	start := e.current()
	v, n, err := e.m.GetxattrSize(ctx, root, "f", "user.k", 0)
	if err != nil || v != nil || n != 5 {
		t.Fatalf("size probe: %q %d %v", v, n, err)
	}
	_, n, err = e.m.GetxattrSize(ctx, root, "f", "user.k", 3)
	wantErrno(t, err, syscall.ERANGE)
	if n != 5 {
		t.Fatalf("ERANGE reports length %d, want 5", n)
	}
	if cur := e.current(); cur != start {
		t.Fatalf("probe and short read recorded %v", e.types(start+1))
	}
	v, n, err = e.m.GetxattrSize(ctx, root, "f", "user.k", 64)
	if err != nil || string(v) != "value" || n != 5 {
		t.Fatalf("read: %q %d %v", v, n, err)
	}
	if ty := e.types(start + 1); !slices.Equal(ty, []string{"GXATR"}) {
		t.Fatalf("records %v, want one GXATR", ty)
	}
	wantErrno(t, third(e.m.GetxattrSize(ctx, root, "f", "user.none", 0)), syscall.ENODATA)
}

// TestXattrFID: the xattr calls by FID reach an unlinked open file, with
// the same checks and records as by path.
func TestXattrFID(t *testing.T) {
	e := newEnv(t)
	e.register("XATTR GXATR")
	_, err := e.m.Setattr(ctx, root, "", SetattrArgs{Mode: ptr[uint32](0777)})
	ok(t, err)
	h, a, err := e.m.Open(ctx, user(1000), "f", changelog.OpenCreate|changelog.OpenWrite, 0644)
	ok(t, err)
	ok(t, e.m.Unlink(ctx, user(1000), "f"))
	start := e.current()
	ok(t, e.m.SetxattrFID(ctx, user(1000), a.FID, "user.k", []byte("v"), 0))
	wantErrno(t, e.m.SetxattrFID(ctx, user(2000), a.FID, "user.k", []byte("w"), 0), syscall.EACCES)
	if v, _, err := e.m.GetxattrFID(ctx, user(1000), a.FID, "user.k", 10); err != nil || string(v) != "v" {
		t.Fatalf("getxattr by FID: %q %v", v, err)
	}
	if names, err := e.m.ListxattrFID(ctx, user(1000), a.FID); err != nil || !slices.Equal(names, []string{"user.k"}) {
		t.Fatalf("listxattr by FID: %v %v", names, err)
	}
	ok(t, e.m.RemovexattrFID(ctx, user(1000), a.FID, "user.k"))
	if names := must[[]string](t)(e.m.Listxattr(ctx, root, "")); len(names) != 0 {
		t.Fatalf("root has xattrs %v", names)
	}
	for _, r := range e.records(start + 1) {
		if r.TFID != a.FID {
			t.Fatalf("record not on the file: %s", r.Line())
		}
	}
	if ty := e.types(start + 1); !slices.Equal(ty, []string{"XATTR", "GXATR", "XATTR"}) {
		t.Fatalf("records %v", ty)
	}
	ok(t, e.m.CloseFile(ctx, user(1000), h))
	wantErrno(t, e.m.SetxattrFID(ctx, root, a.FID, "user.k", nil, 0), syscall.ENOENT)
}
