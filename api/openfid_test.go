package api_test

import (
	"syscall"
	"testing"

	"google.golang.org/grpc/codes"

	commonv1 "github.com/fidlog/fidlog/proto/lustre/common/v1"
	mdtv1 "github.com/fidlog/fidlog/proto/lustre/mdt/v1"
)

// TestOpenFidAndSetattrFid: OpenFid opens an unlinked open file by FID,
// a reopen of a live handle returns it, Setattr by FID truncates through a
// handle; bad requests are clear errors.
func TestOpenFidAndSetattrFid(t *testing.T) {
	e := newEnv(t)
	ns := e.local().Namespace
	ctx := ctxT(t)
	o, err := ns.Open(ctx, &mdtv1.OpenRequest{Path: []byte("f"), Flags: uint32(mdtv1.OpenFlag_OPEN_FLAG_WRITE | mdtv1.OpenFlag_OPEN_FLAG_CREAT), Mode: 0644})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ns.Write(ctx, &mdtv1.WriteRequest{Handle: o.GetHandle(), Data: []byte("hello")}); err != nil {
		t.Fatal(err)
	}
	if _, err := ns.Unlink(ctx, &mdtv1.UnlinkRequest{Path: []byte("f")}); err != nil {
		t.Fatal(err)
	}
	f := o.GetAttr().GetFid()
	r, err := ns.OpenFid(ctx, &mdtv1.OpenFidRequest{Fid: f, Flags: uint32(mdtv1.OpenFlag_OPEN_FLAG_READ)})
	if err != nil || r.GetAttr().GetNlink() != 0 || r.GetHandle() == o.GetHandle() {
		t.Fatalf("open by FID of the unlinked file: %v %v", r, err)
	}
	again, err := ns.OpenFid(ctx, &mdtv1.OpenFidRequest{Fid: f, Flags: uint32(mdtv1.OpenFlag_OPEN_FLAG_WRITE), ReopenHandle: o.GetHandle()})
	if err != nil || again.GetHandle() != o.GetHandle() {
		t.Fatalf("reopen of a live handle: %v %v", again, err)
	}
	size := uint64(2)
	st, err := ns.Setattr(ctx, &mdtv1.SetattrRequest{Fid: f, Handle: o.GetHandle(), Size: &size})
	if err != nil || st.GetAttr().GetSize() != 2 {
		t.Fatalf("ftruncate by FID: %v %v", st, err)
	}
	rd, err := ns.Read(ctx, &mdtv1.ReadRequest{Handle: r.GetHandle(), Length: 10})
	if err != nil || string(rd.GetData()) != "he" {
		t.Fatalf("read %v %v", rd, err)
	}
	_, err = ns.Setattr(ctx, &mdtv1.SetattrRequest{Path: []byte("x"), Handle: 7, Size: &size})
	wantStatus(t, err, codes.InvalidArgument, "EINVAL", syscall.EINVAL, "handle 7 without fid")
	_, err = ns.Setattr(ctx, &mdtv1.SetattrRequest{Fid: f, Handle: r.GetHandle() + 1000, Size: &size})
	wantStatus(t, err, codes.NotFound, "EBADF", syscall.EBADF)
	_, err = ns.OpenFid(ctx, &mdtv1.OpenFidRequest{Fid: f, Flags: uint32(mdtv1.OpenFlag_OPEN_FLAG_CREAT)})
	wantStatus(t, err, codes.InvalidArgument, "EINVAL", syscall.EINVAL)
	_, err = ns.OpenFid(ctx, &mdtv1.OpenFidRequest{Fid: &commonv1.Fid{Seq: 0x200000400, Oid: 999}})
	wantStatus(t, err, codes.NotFound, "ENOENT", syscall.ENOENT)
	_, err = ns.OpenFid(ctx, &mdtv1.OpenFidRequest{})
	wantStatus(t, err, codes.InvalidArgument, "EINVAL", syscall.EINVAL, "fid")
	// The xattr calls by FID reach the unlinked file.
	if _, err := ns.Setxattr(ctx, &mdtv1.SetxattrRequest{Fid: f, Name: "user.k", Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	if l, err := ns.Listxattr(ctx, &mdtv1.ListxattrRequest{Fid: f}); err != nil || len(l.GetNames()) != 1 {
		t.Fatalf("listxattr by FID: %v %v", l, err)
	}
	if g, err := ns.Getxattr(ctx, &mdtv1.GetxattrRequest{Fid: f, Name: "user.k"}); err != nil || string(g.GetValue()) != "v" {
		t.Fatalf("getxattr by FID: %v %v", g, err)
	}
	if _, err := ns.Removexattr(ctx, &mdtv1.RemovexattrRequest{Fid: f, Name: "user.k"}); err != nil {
		t.Fatal(err)
	}
	_, err = ns.Getxattr(ctx, &mdtv1.GetxattrRequest{Fid: &commonv1.Fid{}, Name: "user.k"})
	wantStatus(t, err, codes.InvalidArgument, "EINVAL", syscall.EINVAL)
	for _, h := range []uint64{o.GetHandle(), r.GetHandle()} {
		if _, err := ns.Close(ctx, &mdtv1.CloseRequest{Handle: h}); err != nil {
			t.Fatal(err)
		}
	}
	_, err = ns.StatFid(ctx, &mdtv1.StatFidRequest{Fid: f})
	wantStatus(t, err, codes.NotFound, "ENOENT", syscall.ENOENT)
}

// TestRenameFlagsRPC: Rename's flags reach the MDT: NOREPLACE is
// ALREADY_EXISTS, EXCHANGE swaps, anything else is INVALID_ARGUMENT; a
// size-only Getxattr returns the length.
func TestRenameFlagsRPC(t *testing.T) {
	e := newEnv(t)
	ns := e.local().Namespace
	ctx := ctxT(t)
	a, err := ns.Create(ctx, &mdtv1.CreateRequest{Path: []byte("a")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ns.Mkdir(ctx, &mdtv1.MkdirRequest{Path: []byte("b"), Mode: 0o755}); err != nil {
		t.Fatal(err)
	}
	_, err = ns.Rename(ctx, &mdtv1.RenameRequest{SrcPath: []byte("a"), DstPath: []byte("b"), Flags: 1})
	wantStatus(t, err, codes.AlreadyExists, "EEXIST", syscall.EEXIST, "b")
	_, err = ns.Rename(ctx, &mdtv1.RenameRequest{SrcPath: []byte("a"), DstPath: []byte("b"), Flags: 4})
	wantStatus(t, err, codes.InvalidArgument, "EINVAL", syscall.EINVAL, "0x4")
	if _, err := ns.Rename(ctx, &mdtv1.RenameRequest{SrcPath: []byte("a"), DstPath: []byte("b"), Flags: 2}); err != nil {
		t.Fatal(err)
	}
	st, err := ns.Stat(ctx, &mdtv1.StatRequest{Path: []byte("b")})
	if err != nil || st.GetAttr().GetFid().GetOid() != a.GetAttr().GetFid().GetOid() {
		t.Fatalf("after the exchange b is %v (%v), want the file", st, err)
	}
	if _, err := ns.Setxattr(ctx, &mdtv1.SetxattrRequest{Path: []byte("b"), Name: "user.k", Value: []byte("abc")}); err != nil {
		t.Fatal(err)
	}
	zero := uint32(0)
	g, err := ns.Getxattr(ctx, &mdtv1.GetxattrRequest{Path: []byte("b"), Name: "user.k", Size: &zero})
	if err != nil || g.GetSize() != 3 || len(g.GetValue()) != 0 {
		t.Fatalf("size-only getxattr: %v %v", g, err)
	}
	two := uint32(2)
	_, err = ns.Getxattr(ctx, &mdtv1.GetxattrRequest{Path: []byte("b"), Name: "user.k", Size: &two})
	wantStatus(t, err, codes.OutOfRange, "ERANGE", syscall.ERANGE, "user.k")
}
