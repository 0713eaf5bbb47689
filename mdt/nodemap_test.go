package mdt

import (
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// TestNodemapAuditMode: clients of a nodemap with audit_mode=0 produce no
// records at all, while others are recorded; the setting survives a
// restart.
func TestNodemapAuditMode(t *testing.T) {
	e := newEnv(t)
	e.setParam("mdd.*.changelog_mask", "ALL")
	e.register("")
	ok(t, e.m.NodemapAdd("hsm_agents"))
	ok(t, e.m.NodemapAddRange("hsm_agents", "192.168.1.[100-120]@tcp"))
	ok(t, e.m.NodemapModify("hsm_agents", "audit_mode", "0"))
	ok(t, e.m.NodemapModify("hsm_agents", "admin", "1"))
	ok(t, e.m.NodemapModify("hsm_agents", "trusted", "1"))
	ok(t, e.m.NodemapModify("default", "admin", "1"))
	ok(t, e.m.NodemapModify("default", "trusted", "1"))
	ok(t, e.m.NodemapActivate(true))
	if got := must[string](t)(e.m.NodemapTestNID("192.168.1.110@tcp")); got != "hsm_agents" {
		t.Fatalf("test_nid = %q", got)
	}
	e.reopen() // persisted

	agent := Cred{UID: 0, GID: 0, JobID: "copytool.0", NID: "192.168.1.110@tcp"}
	client := Cred{UID: 500, GID: 500, JobID: "touch.500", NID: "192.168.1.10@tcp"}
	_, err := e.m.Mkdir(ctx, root, "d", 0777)
	ok(t, err)
	start := e.current() + 1
	// Everything the agent does, including audit events, is invisible.
	_, err = e.m.Mkdir(ctx, agent, "d/a", 0755)
	ok(t, err)
	h, _, err := e.m.Open(ctx, agent, "d/a/f", rd|wr|crt, 0600)
	ok(t, err)
	ok(t, e.m.CloseFile(ctx, agent, h))
	ok(t, e.m.Setxattr(ctx, agent, "d/a/f", "user.x", []byte("1"), 0))
	_, err = e.m.Getxattr(ctx, agent, "d/a/f", "user.x")
	ok(t, err)
	ok(t, e.m.Rename(ctx, agent, "d/a/f", "d/a/g"))
	_, err = e.m.Setattr(ctx, agent, "d/a/g", SetattrArgs{Size: ptr[uint64](1)})
	ok(t, err)
	if got := e.lines(start); len(got) != 0 {
		t.Fatalf("audit_mode=0 client recorded: %q", got)
	}
	// The other client is recorded, and denied opens too.
	f := must[Attr](t)(e.m.Create(ctx, client, "d/c", 0644, true)).FID
	wantErrno(t, third(e.m.Open(ctx, client, "d/a/g", rd, 0)), syscall.EACCES)
	want := []string{
		fmt.Sprintf("%d 01CREAT TIME 0x0 t=%v j=touch.500 ef=0x13 u=500:500 nid=192.168.1.10@tcp p=%v c", start, f, e.fidOf("d")),
		fmt.Sprintf("%d 24NOPEN TIME 0x1 t=%v j=touch.500 ef=0x17 u=500:500 nid=192.168.1.10@tcp m=r--", start+1, e.fidOf("d/a/g")),
	}
	if got := e.lines(start); !slices.Equal(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	// Deactivated, the agent is recorded again.
	ok(t, e.m.NodemapActivate(false))
	start = e.current() + 1
	ok(t, e.m.Unlink(ctx, agent, "d/a/g"))
	if ts := e.types(start); !slices.Equal(ts, []string{"UNLNK"}) {
		t.Fatalf("inactive nodemap: %v", ts)
	}
}

// TestNodemapRootSquash: with admin=0 root is squashed: EACCES on a 0700
// root-owned directory, and records carry the squashed IDs.
func TestNodemapRootSquash(t *testing.T) {
	e := newEnv(t)
	e.register("")
	_, err := e.m.Mkdir(ctx, root, "secret", 0700)
	ok(t, err)
	_, err = e.m.Mkdir(ctx, root, "pub", 0777)
	ok(t, err)
	ok(t, e.m.NodemapActivate(true)) // default nodemap: admin=0, trusted=0
	remoteRoot := Cred{UID: 0, GID: 0, JobID: "touch.0", NID: "192.168.1.50@tcp"}
	id := must[Identity](t)(e.m.Identify(remoteRoot))
	if id.UID != 65534 || id.GID != 65534 || id.Admin || id.Nodemap != "default" {
		t.Fatalf("identity %+v", id)
	}
	wantErrno(t, second(e.m.Create(ctx, remoteRoot, "secret/f", 0644, true)), syscall.EACCES)
	wantErrno(t, second(e.m.Stat(ctx, remoteRoot, "secret")), 0)
	start := e.current() + 1
	a := must[Attr](t)(e.m.Create(ctx, remoteRoot, "pub/f", 0644, true))
	if a.UID != 65534 || a.GID != 65534 {
		t.Fatalf("file owned by %d:%d", a.UID, a.GID)
	}
	recs := e.records(start)
	if len(recs) != 1 || !strings.Contains(recs[0].Line(), " u=65534:65534 nid=192.168.1.50@tcp ") {
		t.Fatalf("records %q", e.lines(start))
	}
	// Squashed root cannot use root-only xattrs.
	wantErrno(t, e.m.Setxattr(ctx, remoteRoot, "pub/f", "trusted.x", nil, 0), syscall.EPERM)
	// deny_unknown refuses squashed users outright.
	ok(t, e.m.NodemapModify("default", "deny_unknown", "1"))
	_, err = e.m.Stat(ctx, remoteRoot, "pub")
	wantErrno(t, err, syscall.EACCES)
	// The local administrator (0@lo, empty NID) is on the default nodemap
	// too unless a range claims lo; an admin nodemap for it restores root.
	ok(t, e.m.NodemapAdd("local"))
	ok(t, e.m.NodemapAddRange("local", "0@lo"))
	ok(t, e.m.NodemapModify("local", "admin", "1"))
	ok(t, e.m.NodemapModify("local", "trusted", "1"))
	ok(t, second(e.m.Create(ctx, Cred{}, "secret/f", 0644, true)))
}

func TestNodemapErrors(t *testing.T) {
	e := newEnv(t)
	wantNM := func(err error, want syscall.Errno) {
		t.Helper()
		if Errno(err) != want {
			t.Fatalf("error %v: errno %v, want %v", err, Errno(err), want)
		}
	}
	ok(t, e.m.NodemapAdd("a"))
	wantNM(e.m.NodemapAdd("a"), syscall.EEXIST)
	wantNM(e.m.NodemapAdd("bad-name"), syscall.EINVAL)
	wantNM(e.m.NodemapDel("default"), syscall.EINVAL)
	wantNM(e.m.NodemapDel("zz"), syscall.ENOENT)
	wantNM(e.m.NodemapAddRange("a", "not a range"), syscall.EINVAL)
	ok(t, e.m.NodemapAddRange("a", "10.0.0.[1-10]@tcp"))
	ok(t, e.m.NodemapAdd("b"))
	wantNM(e.m.NodemapAddRange("b", "10.0.0.5@tcp"), syscall.EEXIST)
	wantNM(e.m.NodemapModify("a", "nope", "1"), syscall.EINVAL)
	wantNM(e.m.NodemapModify("a", "squash_uid", "0"), syscall.EINVAL)
	_, err := e.m.Identify(Cred{NID: "garbage"})
	wantNM(err, syscall.EINVAL)
	// Failed changes changed nothing, even after a restart.
	e.reopen()
	ps := must[[]Param](t)(e.m.GetParams("nodemap.a.ranges", "nodemap.b.ranges", "nodemap.a.squash_uid"))
	if ps[0].Value == "[]" || ps[1].Value != "[]" || ps[2].Value != "65534" {
		t.Fatalf("params %v", ps)
	}
}
