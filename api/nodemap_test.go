package api_test

import (
	"syscall"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/fidlog/fidlog/api/client"
	"github.com/fidlog/fidlog/changelog"
	changelogv1 "github.com/fidlog/fidlog/proto/lustre/changelog/v1"
	nodemapv1 "github.com/fidlog/fidlog/proto/lustre/nodemap/v1"
)

func TestNodemapRPCs(t *testing.T) {
	e := newEnv(t)
	c := e.local()
	ctx := ctxT(t)
	nm := c.Nodemap
	add, err := nm.Add(ctx, &nodemapv1.AddRequest{Name: "clients"})
	if err != nil || add.GetNodemap().GetName() != "clients" || add.GetNodemap().GetId() == 0 {
		t.Fatalf("add: %v %v", add, err)
	}
	_, err = nm.Add(ctx, &nodemapv1.AddRequest{Name: "clients"})
	wantStatus(t, err, codes.AlreadyExists, "EEXIST", syscall.EEXIST, "clients")
	_, err = nm.Add(ctx, &nodemapv1.AddRequest{Name: "bad-name"})
	wantStatus(t, err, codes.InvalidArgument, "EINVAL", syscall.EINVAL, "bad-name")
	ar, err := nm.AddRange(ctx, &nodemapv1.AddRangeRequest{Name: "clients", Range: "192.168.1.[1-254]@tcp"})
	if err != nil || len(ar.GetNodemap().GetRanges()) != 1 || ar.GetNodemap().GetRanges()[0].GetStartNid() != "192.168.1.1@tcp" {
		t.Fatalf("add range: %v %v", ar, err)
	}
	_, err = nm.AddRange(ctx, &nodemapv1.AddRangeRequest{Name: "clients", Range: "192.168.1.[1,5]@tcp"})
	wantStatus(t, err, codes.InvalidArgument, "EINVAL", syscall.EINVAL, "192.168.1.[1,5]@tcp")
	_, err = nm.AddRange(ctx, &nodemapv1.AddRangeRequest{Name: "default", Range: "10.0.0.1@tcp"})
	wantStatus(t, err, codes.InvalidArgument, "EINVAL", syscall.EINVAL, "default")
	_, err = nm.AddRange(ctx, &nodemapv1.AddRangeRequest{Name: "nosuch", Range: "10.0.0.1@tcp"})
	wantStatus(t, err, codes.NotFound, "ENOENT", syscall.ENOENT, "nosuch")
	mr, err := nm.Modify(ctx, &nodemapv1.ModifyRequest{Name: "clients", Property: "audit_mode", Value: "0"})
	if err != nil {
		t.Fatal(err)
	}
	props := map[string]string{}
	for _, p := range mr.GetNodemap().GetProperties() {
		props[p.GetName()] = p.GetValue()
	}
	if props["audit_mode"] != "0" || props["admin"] != "0" || props["squash_uid"] != "65534" {
		t.Fatalf("modify: properties %v", props)
	}
	_, err = nm.Modify(ctx, &nodemapv1.ModifyRequest{Name: "clients", Property: "bogus", Value: "1"})
	wantStatus(t, err, codes.InvalidArgument, "EINVAL", syscall.EINVAL, "bogus")
	_, err = nm.Modify(ctx, &nodemapv1.ModifyRequest{Name: "clients", Property: "squash_uid", Value: "0"})
	wantStatus(t, err, codes.InvalidArgument, "EINVAL", syscall.EINVAL, "clients")
	tn, err := nm.TestNid(ctx, &nodemapv1.TestNidRequest{Nid: "192.168.1.7@tcp"})
	if err != nil || tn.GetName() != "clients" {
		t.Fatalf("test nid: %v %v", tn, err)
	}
	_, err = nm.TestNid(ctx, &nodemapv1.TestNidRequest{Nid: "not a nid"})
	wantStatus(t, err, codes.InvalidArgument, "EINVAL", syscall.EINVAL, "not a nid")
	ls, err := nm.List(ctx, &nodemapv1.ListRequest{})
	if err != nil || ls.GetActive() || len(ls.GetNodemaps()) != 2 || ls.GetNodemaps()[0].GetName() != "default" {
		t.Fatalf("list: %v %v", ls, err)
	}
	if _, err := nm.DelRange(ctx, &nodemapv1.DelRangeRequest{Name: "clients", Range: "192.168.1.[1-254]@tcp"}); err != nil {
		t.Fatal(err)
	}
	_, err = nm.Info(ctx, &nodemapv1.InfoRequest{Name: "nosuch"})
	wantStatus(t, err, codes.NotFound, "ENOENT", syscall.ENOENT, "nosuch")
	if _, err := nm.Del(ctx, &nodemapv1.DelRequest{Name: "clients"}); err != nil {
		t.Fatal(err)
	}
	_, err = nm.Del(ctx, &nodemapv1.DelRequest{Name: "default"})
	wantStatus(t, err, codes.InvalidArgument, "EINVAL", syscall.EINVAL, "default")
	act, err := nm.Activate(ctx, &nodemapv1.ActivateRequest{Active: true})
	if err != nil || !act.GetActive() {
		t.Fatalf("activate: %v %v", act, err)
	}
}

// TestNodemapAuthorization is sanity-sec 35: with nodemaps active, root on
// a client whose nodemap has admin=0 can neither read nor clear the
// changelog nor administer; admin=1 (and trusted) restores access; the
// unix socket is always the local administrator.
func TestNodemapAuthorization(t *testing.T) {
	e := newEnv(t)
	local := e.local()
	ctx := ctxT(t)
	register(t, local, "", "")
	touch(t, local, "", "f", 2)
	nm := local.Nodemap
	for _, req := range []any{
		&nodemapv1.AddRequest{Name: "loop"},
		&nodemapv1.AddRangeRequest{Name: "loop", Range: "127.0.0.1@tcp"},
		&nodemapv1.ActivateRequest{Active: true},
	} {
		var err error
		switch r := req.(type) {
		case *nodemapv1.AddRequest:
			_, err = nm.Add(ctx, r)
		case *nodemapv1.AddRangeRequest:
			_, err = nm.AddRange(ctx, r)
		case *nodemapv1.ActivateRequest:
			_, err = nm.Activate(ctx, r)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	remote := e.dial(e.tcp, client.WithUID(0), client.WithGID(0))
	read := func(c *client.Client) error {
		return c.Read(ctx, &changelogv1.ReadRequest{Device: device}, func([]*changelog.Record, *changelogv1.ReadResponse) error { return nil })
	}
	denied := func(what string, err error) {
		t.Helper()
		wantStatus(t, err, codes.PermissionDenied, "EPERM", syscall.EPERM, "admin nodemap")
	}
	denied("read", read(remote))
	_, err := remote.Clear(ctx, device, "cl1", 1)
	denied("clear", err)
	_, err = remote.Register(ctx, device, "", "")
	denied("register", err)
	_, err = remote.Deregister(ctx, device, "cl1")
	denied("deregister", err)
	_, err = remote.Users(ctx, device)
	denied("users", err)
	_, err = remote.SetParam(ctx, "mdd.*.changelog_mask", "+OPEN")
	denied("set_param", err)
	_, err = remote.Nodemap.Modify(ctx, &nodemapv1.ModifyRequest{Name: "loop", Property: "admin", Value: "1"})
	denied("nodemap_modify", err)
	// Reading parameters is not administration.
	if _, err := remote.GetParams(ctx, "nodemap.active"); err != nil {
		t.Fatal(err)
	}

	// The unix socket still works.
	if err := read(local); err != nil {
		t.Fatal(err)
	}
	if _, err := local.Clear(ctx, device, "cl1", 1); err != nil {
		t.Fatal(err)
	}

	// A non-root user on an admin nodemap is still refused.
	for _, p := range [][2]string{{"admin", "1"}, {"trusted", "1"}} {
		if _, err := nm.Modify(ctx, &nodemapv1.ModifyRequest{Name: "loop", Property: p[0], Value: p[1]}); err != nil {
			t.Fatal(err)
		}
	}
	user := e.dial(e.tcp, client.WithUID(1000), client.WithGID(1000))
	denied("read as uid 1000", read(user))

	// Root on an admin nodemap may.
	if err := read(remote); err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Clear(ctx, device, "cl1", 2); err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Nodemap.Activate(ctx, &nodemapv1.ActivateRequest{Active: false}); err != nil {
		t.Fatal(err)
	}
	// Inactive again: nothing is squashed, root may, other users still not.
	if err := read(remote); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, read(user), codes.PermissionDenied, "EPERM", syscall.EPERM, "read needs root")
}
