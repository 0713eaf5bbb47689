package mdt

import (
	"slices"
	"syscall"
	"testing"
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
