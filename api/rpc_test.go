package api_test

import (
	"slices"
	"strings"
	"syscall"
	"testing"

	"google.golang.org/grpc/codes"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectiongrpc "google.golang.org/grpc/reflection/grpc_reflection_v1"

	"github.com/fidlog/fidlog/api/client"
	"github.com/fidlog/fidlog/changelog"
	"github.com/fidlog/fidlog/fid"
	changelogv1 "github.com/fidlog/fidlog/proto/lustre/changelog/v1"
	commonv1 "github.com/fidlog/fidlog/proto/lustre/common/v1"
	mdtv1 "github.com/fidlog/fidlog/proto/lustre/mdt/v1"
	paramsv1 "github.com/fidlog/fidlog/proto/lustre/params/v1"
)

func TestHealthAndReflection(t *testing.T) {
	e := newEnv(t)
	for _, target := range []string{e.sock, e.tcp} {
		c := e.dial(target)
		if err := c.Healthy(ctxT(t)); err != nil {
			t.Fatalf("%s: %v", target, err)
		}
		r, err := c.Health.Check(ctxT(t), &healthgrpc.HealthCheckRequest{Service: "lustre.changelog.v1.ChangelogService"})
		if err != nil || r.GetStatus() != healthgrpc.HealthCheckResponse_SERVING {
			t.Fatalf("changelog health: %v %v", r, err)
		}
		rc, err := reflectiongrpc.NewServerReflectionClient(c.Conn()).ServerReflectionInfo(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		if err := rc.Send(&reflectiongrpc.ServerReflectionRequest{MessageRequest: &reflectiongrpc.ServerReflectionRequest_ListServices{}}); err != nil {
			t.Fatal(err)
		}
		resp, err := rc.Recv()
		if err != nil {
			t.Fatal(err)
		}
		rc.CloseSend()
		var names []string
		for _, s := range resp.GetListServicesResponse().GetService() {
			names = append(names, s.GetName())
		}
		for _, want := range []string{"lustre.changelog.v1.ChangelogService", "lustre.mdt.v1.NamespaceService",
			"lustre.params.v1.ParamsService", "lustre.nodemap.v1.NodemapService", "grpc.health.v1.Health"} {
			if !slices.Contains(names, want) {
				t.Errorf("%s: reflection lists %v, missing %s", target, names, want)
			}
		}
	}
}

func TestNamespaceRPCs(t *testing.T) {
	e := newEnv(t)
	c := e.local()
	ns := c.Namespace
	ctx := ctxT(t)

	d, err := ns.Mkdir(ctx, &mdtv1.MkdirRequest{Path: []byte("/d"), Mode: 0755})
	if err != nil || d.GetAttr().GetType() != commonv1.ObjectType_OBJECT_TYPE_DIR || d.GetAttr().GetMode() != 0755 {
		t.Fatalf("mkdir: %v %v", d, err)
	}
	cr, err := ns.Create(ctx, &mdtv1.CreateRequest{Path: []byte("d/f"), Mode: 0640})
	if err != nil || !cr.GetCreated() || cr.GetAttr().GetType() != commonv1.ObjectType_OBJECT_TYPE_REG {
		t.Fatalf("create: %v %v", cr, err)
	}
	cr2, err := ns.Create(ctx, &mdtv1.CreateRequest{Path: []byte("d/f"), Mode: 0640})
	if err != nil || cr2.GetCreated() {
		t.Fatalf("second create: %v %v", cr2, err)
	}
	_, err = ns.Create(ctx, &mdtv1.CreateRequest{Path: []byte("d/f"), Exclusive: true})
	wantStatus(t, err, codes.AlreadyExists, "EEXIST", syscall.EEXIST, "d/f")
	for i := range 5 {
		if _, err := ns.Create(ctx, &mdtv1.CreateRequest{Path: []byte("d/g" + string(rune('a'+i)))}); err != nil {
			t.Fatal(err)
		}
	}
	// Readdir pages.
	var all []string
	after := ""
	for {
		r, err := ns.Readdir(ctx, &mdtv1.ReaddirRequest{Path: []byte("d"), StartAfter: []byte(after), MaxEntries: 2})
		if err != nil {
			t.Fatal(err)
		}
		for _, en := range r.GetEntries() {
			all = append(all, string(en.GetName()))
		}
		if !r.GetMore() {
			break
		}
		after = all[len(all)-1]
	}
	if want := []string{"f", "ga", "gb", "gc", "gd", "ge"}; !slices.Equal(all, want) {
		t.Fatalf("readdir %v, want %v", all, want)
	}
	if _, err := ns.Link(ctx, &mdtv1.LinkRequest{OldPath: []byte("d/f"), NewPath: []byte("d/h")}); err != nil {
		t.Fatal(err)
	}
	sl, err := ns.Symlink(ctx, &mdtv1.SymlinkRequest{Target: []byte("f"), Path: []byte("d/s")})
	if err != nil || string(sl.GetAttr().GetSymlinkTarget()) != "f" {
		t.Fatalf("symlink: %v %v", sl, err)
	}
	mk, err := ns.Mknod(ctx, &mdtv1.MknodRequest{Path: []byte("d/p"), Mode: 0010644})
	if err != nil || mk.GetAttr().GetType() != commonv1.ObjectType_OBJECT_TYPE_FIFO {
		t.Fatalf("mknod: %v %v", mk, err)
	}
	_, err = ns.Mknod(ctx, &mdtv1.MknodRequest{Path: []byte("d/q"), Mode: 0040755})
	wantStatus(t, err, codes.InvalidArgument, "EINVAL", syscall.EINVAL, "040755")
	if _, err := ns.Rename(ctx, &mdtv1.RenameRequest{SrcPath: []byte("d/h"), DstPath: []byte("d/h2")}); err != nil {
		t.Fatal(err)
	}
	op, err := ns.Open(ctx, &mdtv1.OpenRequest{Path: []byte("d/new"), Flags: uint32(mdtv1.OpenFlag_OPEN_FLAG_CREAT | mdtv1.OpenFlag_OPEN_FLAG_WRITE), Mode: 0600})
	if err != nil || op.GetHandle() == 0 || !op.GetCreated() {
		t.Fatalf("open: %v %v", op, err)
	}
	if _, err := ns.Close(ctx, &mdtv1.CloseRequest{Handle: op.GetHandle()}); err != nil {
		t.Fatal(err)
	}
	_, err = ns.Close(ctx, &mdtv1.CloseRequest{Handle: op.GetHandle()})
	wantStatus(t, err, codes.NotFound, "EBADF", syscall.EBADF)
	_, err = ns.Open(ctx, &mdtv1.OpenRequest{Path: []byte("d/f"), Flags: 0x100000})
	wantStatus(t, err, codes.InvalidArgument, "EINVAL", syscall.EINVAL, "0x100000")
	size := uint64(42)
	sa, err := ns.Setattr(ctx, &mdtv1.SetattrRequest{Path: []byte("d/f"), Size: &size})
	if err != nil || sa.GetAttr().GetSize() != 42 {
		t.Fatalf("setattr: %v %v", sa, err)
	}
	if _, err := ns.Setxattr(ctx, &mdtv1.SetxattrRequest{Path: []byte("d/f"), Name: "user.tag", Value: []byte("v1")}); err != nil {
		t.Fatal(err)
	}
	_, err = ns.Setxattr(ctx, &mdtv1.SetxattrRequest{Path: []byte("d/f"), Name: "user.tag", Value: []byte("v2"), Mode: mdtv1.SetxattrMode_SETXATTR_MODE_CREATE})
	wantStatus(t, err, codes.AlreadyExists, "EEXIST", syscall.EEXIST)
	gx, err := ns.Getxattr(ctx, &mdtv1.GetxattrRequest{Path: []byte("d/f"), Name: "user.tag"})
	if err != nil || string(gx.GetValue()) != "v1" {
		t.Fatalf("getxattr: %v %v", gx, err)
	}
	lx, err := ns.Listxattr(ctx, &mdtv1.ListxattrRequest{Path: []byte("d/f")})
	if err != nil || !slices.Equal(lx.GetNames(), []string{"user.tag"}) {
		t.Fatalf("listxattr: %v %v", lx, err)
	}
	if _, err := ns.Removexattr(ctx, &mdtv1.RemovexattrRequest{Path: []byte("d/f"), Name: "user.tag"}); err != nil {
		t.Fatal(err)
	}
	_, err = ns.Getxattr(ctx, &mdtv1.GetxattrRequest{Path: []byte("d/f"), Name: "user.tag"})
	wantStatus(t, err, codes.NotFound, "ENODATA", syscall.ENODATA)

	f, err := c.Path2Fid(ctx, "d/f")
	if err != nil || !f.IsNormal() {
		t.Fatalf("path2fid: %v %v", f, err)
	}
	paths, err := c.Fid2Path(ctx, f, -1)
	if err != nil || !slices.Equal(paths, []string{"d/f", "d/h2"}) {
		t.Fatalf("fid2path: %v %v", paths, err)
	}
	paths, err = c.Fid2Path(ctx, fid.Root, -1)
	if err != nil || !slices.Equal(paths, []string{""}) {
		t.Fatalf("fid2path root: %q %v", paths, err)
	}
	_, err = ns.Fid2Path(ctx, &mdtv1.Fid2PathRequest{})
	wantStatus(t, err, codes.InvalidArgument, "EINVAL", syscall.EINVAL, "fid")
	_, err = c.Fid2Path(ctx, fid.Zero, -1)
	wantStatus(t, err, codes.InvalidArgument, "EINVAL", syscall.EINVAL, "[0:0x0:0x0]")
	_, err = c.Fid2Path(ctx, fid.FID{Seq: 0x200000bad, Oid: 7}, -1)
	wantStatus(t, err, codes.NotFound, "ENOENT", syscall.ENOENT, "[0x200000bad:0x7:0x0]")

	_, err = ns.Stat(ctx, &mdtv1.StatRequest{Path: []byte("d/missing")})
	wantStatus(t, err, codes.NotFound, "ENOENT", syscall.ENOENT, "d/missing")
	_, err = ns.Stat(ctx, &mdtv1.StatRequest{Path: []byte("d/../f")})
	wantStatus(t, err, codes.InvalidArgument, "EINVAL", syscall.EINVAL, "d/../f")
	_, err = ns.Mkdir(ctx, &mdtv1.MkdirRequest{Path: []byte("d/" + strings.Repeat("x", 256))})
	wantStatus(t, err, codes.InvalidArgument, "ENAMETOOLONG", syscall.ENAMETOOLONG)
	_, err = ns.Mkdir(ctx, &mdtv1.MkdirRequest{Path: []byte("d")})
	wantStatus(t, err, codes.AlreadyExists, "EEXIST", syscall.EEXIST, "d")
	_, err = ns.Rmdir(ctx, &mdtv1.RmdirRequest{Path: []byte("d")})
	wantStatus(t, err, codes.FailedPrecondition, "ENOTEMPTY", syscall.ENOTEMPTY, "d")
	_, err = ns.Unlink(ctx, &mdtv1.UnlinkRequest{Path: []byte("d")})
	wantStatus(t, err, codes.FailedPrecondition, "EISDIR", syscall.EISDIR)
	_, err = ns.Mkdir(ctx, &mdtv1.MkdirRequest{Path: []byte("d/f/x")})
	wantStatus(t, err, codes.FailedPrecondition, "ENOTDIR", syscall.ENOTDIR)

	// Permission: uid 1000 cannot create in a 0755 root-owned directory.
	u := e.dial(e.sock, client.WithUID(1000), client.WithGID(1000))
	_, err = u.Namespace.Create(ctx, &mdtv1.CreateRequest{Path: []byte("d/nope")})
	wantStatus(t, err, codes.PermissionDenied, "EACCES", syscall.EACCES)

	if _, err := ns.Unlink(ctx, &mdtv1.UnlinkRequest{Path: []byte("d/f")}); err != nil {
		t.Fatal(err)
	}
}

func TestChangelogRPCs(t *testing.T) {
	e := newEnv(t)
	c := e.local()
	ctx := ctxT(t)

	r := register(t, c, "", "")
	if r.GetId() != 1 || r.GetDisplayName() != "cl1" {
		t.Fatalf("register: %v", r)
	}
	r2 := register(t, c, "dirs", "MKDIR RMDIR")
	if r2.GetDisplayName() != "cl2-dirs" || !slices.Equal(r2.GetMaskNames(), []string{"MARK", "MKDIR", "RMDIR"}) {
		t.Fatalf("register: %v", r2)
	}
	_, err := c.Register(ctx, device, "dirs", "")
	wantStatus(t, err, codes.AlreadyExists, "EEXIST", syscall.EEXIST, "dirs")
	_, err = c.Register(ctx, device, "x", "CREAT,BOGUS")
	wantStatus(t, err, codes.InvalidArgument, "EINVAL", syscall.EINVAL, "BOGUS")
	_, err = c.Register(ctx, device, "abcdefghijklmnopq", "")
	wantStatus(t, err, codes.InvalidArgument, "ENAMETOOLONG", syscall.ENAMETOOLONG, "abcdefghijklmnopq")
	_, err = c.Register(ctx, device, "1bad", "")
	wantStatus(t, err, codes.InvalidArgument, "EINVAL", syscall.EINVAL, "1bad")
	_, err = c.Register(ctx, "other-MDT0001", "", "")
	wantStatus(t, err, codes.NotFound, "ENOENT", syscall.ENOENT, "unknown device 'other-MDT0001'")
	_, err = c.Register(ctx, "", "", "")
	wantStatus(t, err, codes.InvalidArgument, "EINVAL", syscall.EINVAL, "device")

	touch(t, c, "", "f", 3) // records 1..3
	st, err := c.State(ctx, device)
	if err != nil || st.GetCurrentIndex() != 3 || st.GetDurableIndex() != 3 || st.GetFirstIndex() != 1 || !st.GetEnabled() {
		t.Fatalf("state: %v %v", st, err)
	}
	_, err = c.State(ctx, "nope")
	wantStatus(t, err, codes.NotFound, "ENOENT", syscall.ENOENT, "unknown device 'nope'")

	users, err := c.Users(ctx, device)
	if err != nil || users.GetCurrentIndex() != 3 || len(users.GetUsers()) != 2 || users.GetUsers()[1].GetName() != "dirs" {
		t.Fatalf("users: %v %v", users, err)
	}

	_, err = c.Clear(ctx, device, "cl1", 99)
	wantStatus(t, err, codes.InvalidArgument, "EINVAL", syscall.EINVAL, "99")
	_, err = c.Clear(ctx, device, "cl77", 1)
	wantStatus(t, err, codes.NotFound, "ENOENT", syscall.ENOENT, "cl77")
	_, err = c.Clear(ctx, device, "1", 1)
	wantStatus(t, err, codes.InvalidArgument, "EINVAL", syscall.EINVAL, "'1'")
	cl, err := c.Clear(ctx, device, "cl1", 2)
	if err != nil || cl.GetIndex() != 2 || cl.GetFirstIndex() != 1 {
		t.Fatalf("clear: %v %v", cl, err)
	}
	cl, err = c.Clear(ctx, device, "cl2-dirs", 0)
	if err != nil || cl.GetIndex() != 3 || cl.GetFirstIndex() != 3 {
		t.Fatalf("clear cl2: %v %v", cl, err)
	}

	// Read errors.
	readErr := func(req *changelogv1.ReadRequest) error {
		return c.Read(ctx, req, func([]*changelog.Record, *changelogv1.ReadResponse) error { return nil })
	}
	wantStatus(t, readErr(&changelogv1.ReadRequest{Device: device, Mask: "+nosuch"}), codes.InvalidArgument, "EINVAL", syscall.EINVAL, "nosuch")
	wantStatus(t, readErr(&changelogv1.ReadRequest{Device: device, User: "cl9"}), codes.NotFound, "ENOENT", syscall.ENOENT, "cl9")
	wantStatus(t, readErr(&changelogv1.ReadRequest{Device: device, FromUserPoint: true}), codes.InvalidArgument, "EINVAL", syscall.EINVAL, "from_user_point")
	wantStatus(t, readErr(&changelogv1.ReadRequest{Device: "x-MDT0000"}), codes.NotFound, "ENOENT", syscall.ENOENT, "unknown device 'x-MDT0000'")
	wantStatus(t, readErr(&changelogv1.ReadRequest{Device: device, StartIndex: 5, EndIndex: 4}), codes.InvalidArgument, "EINVAL", syscall.EINVAL, "5")

	// Read from the user's point.
	var got []changelog.Index
	err = c.Read(ctx, &changelogv1.ReadRequest{Device: device, User: "cl1", FromUserPoint: true}, func(recs []*changelog.Record, _ *changelogv1.ReadResponse) error {
		for _, r := range recs {
			got = append(got, r.Index)
		}
		return nil
	})
	if err != nil || !slices.Equal(got, []changelog.Index{3}) {
		t.Fatalf("read from cl1's point: %v %v", got, err)
	}

	_, err = c.Deregister(ctx, device, "cl77")
	wantStatus(t, err, codes.NotFound, "ENOENT", syscall.ENOENT, "cl77")
	_, err = c.Changelog.Deregister(ctx, &changelogv1.DeregisterRequest{Device: device})
	wantStatus(t, err, codes.InvalidArgument, "EINVAL", syscall.EINVAL)
	dr, err := c.DeregisterName(ctx, device, "dirs")
	if err != nil || dr.GetId() != 2 || dr.GetDisplayName() != "cl2-dirs" {
		t.Fatalf("deregister: %v %v", dr, err)
	}
	dr, err = c.Deregister(ctx, device, "cl1")
	if err != nil || dr.GetId() != 1 {
		t.Fatalf("deregister: %v %v", dr, err)
	}
	st, err = c.State(ctx, device)
	if err != nil || st.GetEnabled() {
		t.Fatalf("state after deregistering all: %v %v", st, err)
	}
}

func TestEvictedUser(t *testing.T) {
	e := newEnv(t)
	c := e.local()
	ctx := ctxT(t)
	register(t, c, "slow", "")
	register(t, c, "fast", "")
	if _, err := c.SetParam(ctx, "mdd."+device+".changelog_max_records", "4"); err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		touch(t, c, "", "f"+string(rune('a'+i)), 1)
		if _, err := c.Clear(ctx, device, "cl2-fast", 0); err != nil {
			t.Fatal(err)
		}
	}
	err := c.Read(ctx, &changelogv1.ReadRequest{Device: device, User: "cl1"}, func([]*changelog.Record, *changelogv1.ReadResponse) error { return nil })
	wantStatus(t, err, codes.FailedPrecondition, "USER_EVICTED", syscall.ENOENT, "cl1-slow")
	if u, ok := client.IsEvicted(err); !ok || u != "cl1-slow" {
		t.Fatalf("IsEvicted = %q %v", u, ok)
	}
	_, err = c.Clear(ctx, device, "cl1", 0)
	wantStatus(t, err, codes.FailedPrecondition, "USER_EVICTED", syscall.ENOENT, "cl1-slow")
}

func TestParamsRPCs(t *testing.T) {
	e := newEnv(t)
	c := e.local()
	ctx := ctxT(t)
	ps, err := c.GetParams(ctx, "mdd.*.changelog_mask")
	if err != nil || len(ps) != 1 || ps[0].GetName() != "mdd."+device+".changelog_mask" {
		t.Fatalf("get: %v %v", ps, err)
	}
	ps, err = c.SetParam(ctx, "mdd.*.changelog_mask", "+OPEN")
	if err != nil || len(ps) != 1 || ps[0].GetValue() != "+OPEN" {
		t.Fatalf("set: %v %v", ps, err)
	}
	ps, err = c.GetParams(ctx, "mdd."+device+".changelog_mask")
	if err != nil || !strings.Contains(ps[0].GetValue(), "OPEN") {
		t.Fatalf("get after set: %v %v", ps, err)
	}
	_, err = c.SetParam(ctx, "mdd.*.changelog_mask", "+BOGUS")
	wantStatus(t, err, codes.InvalidArgument, "EINVAL", syscall.EINVAL, "BOGUS")
	_, err = c.GetParams(ctx, "mdd.*.no_such_param")
	wantStatus(t, err, codes.NotFound, "ENOENT", syscall.ENOENT, "no_such_param")
	_, err = c.SetParam(ctx, "mdd.*.changelog_users", "x")
	wantStatus(t, err, codes.PermissionDenied, "EACCES", syscall.EACCES, "changelog_users")
	_, err = c.Params.GetParams(ctx, &paramsv1.GetParamsRequest{})
	wantStatus(t, err, codes.InvalidArgument, "EINVAL", syscall.EINVAL)
}

func TestIdentityMetadata(t *testing.T) {
	e := newEnv(t)
	c := e.local()
	ctx := ctxT(t)
	register(t, c, "", "")

	for _, tc := range []struct{ key, value string }{
		{"lustre-uid", "abc"}, {"lustre-gid", "-1"}, {"lustre-uid", "4294967296"},
		{"lustre-groups", "10,x,12"}, {"lustre-jobid", strings.Repeat("j", 32)},
	} {
		mctx := metadata.AppendToOutgoingContext(ctx, tc.key, tc.value)
		_, err := c.Namespace.Stat(mctx, &mdtv1.StatRequest{Path: []byte("/")})
		wantStatus(t, err, codes.InvalidArgument, "EINVAL", syscall.EINVAL, tc.key)
	}

	// Records carry the NID of the connection, and uid/gid/jobid.
	tcp := e.dial(e.tcp, client.WithUID(0), client.WithGID(0), client.WithJobID("job.tcp"))
	if _, err := tcp.Namespace.Mkdir(ctx, &mdtv1.MkdirRequest{Path: []byte("viatcp"), Mode: 0777}); err != nil {
		t.Fatal(err)
	}
	u := e.dial(e.sock, client.WithUID(500), client.WithGID(600), client.WithGroups(7, 8), client.WithJobID("job.unix"))
	if _, err := u.Namespace.Mkdir(ctx, &mdtv1.MkdirRequest{Path: []byte("viatcp/viaunix")}); err != nil {
		t.Fatal(err)
	}
	var recs []*changelog.Record
	err := c.Read(ctx, &changelogv1.ReadRequest{Device: device}, func(rs []*changelog.Record, _ *changelogv1.ReadResponse) error {
		recs = append(recs, rs...)
		return nil
	})
	if err != nil || len(recs) != 2 {
		t.Fatalf("read: %v %v", recs, err)
	}
	if r := recs[0]; r.NID != "127.0.0.1@tcp" || r.JobID != "job.tcp" || r.UID != 0 {
		t.Errorf("tcp record: %s", r.Line())
	}
	if r := recs[1]; r.NID != "0@lo" || r.JobID != "job.unix" || r.UID != 500 || r.GID != 600 {
		t.Errorf("unix record: %s", r.Line())
	}
}
