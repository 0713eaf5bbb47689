package mdt

import (
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fidlog/fidlog/changelog"
)

// TestDeny: namespace operations refused for permission leave a DENY
// record (fidlog's own type 25, after Lustre's last) with the operation
// and errno in its flags, the target or parent and name, and the identity;
// DENY is outside DEFMASK and ALL, rate-limited per operation, target and
// identity by changelog_deniednext, and silent for audit_mode=0 clients.
func TestDeny(t *testing.T) {
	e := newEnv(t)
	e.register("") // DEFMASK: no DENY
	_, err := e.m.Mkdir(ctx, root, "priv", 0700)
	ok(t, err)
	_, err = e.m.Create(ctx, root, "priv/secret", 0600, true)
	ok(t, err)
	_, err = e.m.Create(ctx, root, "pub", 0644, true)
	ok(t, err)
	u := Cred{UID: 500, GID: 500, JobID: "mkdir.500", NID: "192.168.1.11@tcp"}
	start := e.current() + 1
	_, err = e.m.Mkdir(ctx, u, "priv/mine", 0755)
	wantErrno(t, err, 13)
	if n := len(e.records(start)); n != 0 {
		t.Fatalf("DENY recorded under DEFMASK: %q", e.lines(start))
	}
	e.setParam("mdd.*.changelog_mask", "ALL")
	_, err = e.m.Mkdir(ctx, u, "priv/mine", 0755)
	wantErrno(t, err, 13)
	if n := len(e.records(start)); n != 0 {
		t.Fatalf("DENY recorded under ALL (Lustre's 25 types): %q", e.lines(start))
	}

	e.setParam("mdd.*.changelog_mask", "+DENY")
	_, err = e.m.Mkdir(ctx, u, "priv/mine", 0755)
	wantErrno(t, err, 13)
	want := fmt.Sprintf("%d 25DENY  TIME 0x10d t=[0:0x0:0x0] j=mkdir.500 ef=0x13 u=500:500 nid=192.168.1.11@tcp p=%v mine", start, e.fidOf("priv"))
	if got := e.lines(start); !slices.Equal(got, []string{want}) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	recs := e.records(start)
	if op, errno := recs[0].Denied(); op != changelog.CLMkdir || errno != 13 {
		t.Fatalf("Denied() = %v, %d", op, errno)
	}
	if j := recs[0].JSON(); j.DeniedOp != "MKDIR" || j.Errno != 13 {
		t.Fatalf("JSON %+v", j)
	}
	// Rate limit: the same refusal again within changelog_deniednext is
	// not recorded; after it, it is.
	_, err = e.m.Mkdir(ctx, u, "priv/mine", 0755)
	wantErrno(t, err, 13)
	if n := len(e.records(start)); n != 1 {
		t.Fatalf("repeat within deniednext recorded: %q", e.lines(start))
	}
	e.clock.Advance(61 * time.Second)
	_, err = e.m.Mkdir(ctx, u, "priv/mine", 0755)
	wantErrno(t, err, 13)
	if n := len(e.records(start)); n != 2 {
		t.Fatalf("refusal after deniednext not recorded: %q", e.lines(start))
	}

	// Other operations: EPERM of a chmod by a non-owner names the target;
	// an unlink in an unwritable directory the object and its directory;
	// a setxattr carries x=.
	start = e.current() + 1
	_, err = e.m.Setattr(ctx, u, "pub", SetattrArgs{Mode: ptr[uint32](0777)})
	wantErrno(t, err, 1)
	wantErrno(t, e.m.Unlink(ctx, u, "pub"), 13)
	wantErrno(t, e.m.Setxattr(ctx, u, "pub", "user.tag", []byte("x"), 0), 13)
	wantErrno(t, e.m.Rename(ctx, u, "pub", "pub2"), 13)
	pub, rootFID := e.fidOf("pub"), e.fidOf("/")
	got := e.lines(start)
	wantLines := []string{
		fmt.Sprintf("%d 25DENY  TIME 0x701 t=%v j=mkdir.500 ef=0x13 u=500:500 nid=192.168.1.11@tcp p=%v pub", start, pub, rootFID),
		fmt.Sprintf("%d 25DENY  TIME 0x30d t=%v j=mkdir.500 ef=0x13 u=500:500 nid=192.168.1.11@tcp p=%v pub", start+1, pub, rootFID),
		fmt.Sprintf("%d 25DENY  TIME 0x78d t=%v j=mkdir.500 ef=0x1b u=500:500 nid=192.168.1.11@tcp x=user.tag p=%v pub", start+2, pub, rootFID),
		fmt.Sprintf("%d 25DENY  TIME 0x40d t=[0:0x0:0x0] j=mkdir.500 ef=0x13 u=500:500 nid=192.168.1.11@tcp p=%v pub2 s=%v sp=%v pub", start+3, rootFID, pub, rootFID),
	}
	if !slices.Equal(got, wantLines) {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantLines, "\n"))
	}

	// A refused truncate is a DENY of TRUNC, a refused chmod one of SATTR,
	// by path and by FID alike (the FID one names the object, no parent).
	for _, byFID := range []bool{false, true} {
		for _, c := range []struct {
			s     SetattrArgs
			errno syscall.Errno
			op    changelog.Type
		}{
			{SetattrArgs{Size: ptr[uint64](0)}, 13, changelog.CLTrunc},
			{SetattrArgs{Mode: ptr[uint32](0777)}, 1, changelog.CLSetattr},
		} {
			e.clock.Advance(61 * time.Second)
			start = e.current() + 1
			if byFID {
				_, err = e.m.SetattrFID(ctx, u, pub, 0, c.s)
			} else {
				_, err = e.m.Setattr(ctx, u, "pub", c.s)
			}
			wantErrno(t, err, c.errno)
			recs := e.records(start)
			if len(recs) != 1 {
				t.Fatalf("byFID %v %v: %q", byFID, c.op, e.lines(start))
			}
			if op, errno := recs[0].Denied(); op != c.op || errno != uint16(c.errno) || recs[0].TFID != pub {
				t.Fatalf("byFID %v: Denied() = %v, %d on %v, want %v, %d on %v", byFID, op, errno, recs[0].TFID, c.op, c.errno, pub)
			}
		}
	}

	// A denied open is NOPEN's, not DENY's; other failures record nothing.
	e.setParam("mdd.*.changelog_mask", "-NOPEN")
	start = e.current() + 1
	wantErrno(t, third(e.m.Open(ctx, u, "priv/secret", rd, 0)), 13) // search on priv: DENY OPEN
	_, err = e.m.Mkdir(ctx, root, "pub", 0755)
	wantErrno(t, err, 17)
	if ts := e.types(start); !slices.Equal(ts, []string{"DENY"}) {
		t.Fatalf("records %v", ts)
	}
	if op, _ := e.records(start)[0].Denied(); op != changelog.CLOpen {
		t.Fatalf("walk refusal of an open: op %v", op)
	}

	// audit_mode=0 clients leave no DENY.
	e.setParam("nodemap.default.audit_mode", "0")
	e.setParam("nodemap.active", "1")
	start = e.current() + 1
	_, err = e.m.Mkdir(ctx, u, "priv/other", 0755)
	wantErrno(t, err, 13)
	if n := len(e.records(start)); n != 0 {
		t.Fatalf("DENY from an audit_mode=0 client: %q", e.lines(start))
	}
}

// TestDedupWindow: changelog_dedup_window suppresses repeats of identical
// access records (type, target, identity, flags) within the window, for
// OPEN, GXATR, NOPEN and DENY; a CLOSE whose OPEN it suppressed is not
// recorded either; other identities, modes and types are not affected;
// what it suppresses is counted. 0 (the default) is off.
func TestDedupWindow(t *testing.T) {
	e := newEnv(t)
	e.register("")
	e.setParam("mdd.*.changelog_mask", "ALL,DENY")
	_, err := e.m.Create(ctx, root, "f", 0644, true)
	ok(t, err)
	ok(t, e.m.Setxattr(ctx, root, "f", "user.a", []byte("1"), 0))
	if v := e.param("mdd.lustre-MDT0000.changelog_dedup_window"); v != "0" {
		t.Fatalf("default window %q", v)
	}
	// Off: every cat is OPEN + CLOSE (sanity-hsm 605).
	start := e.current() + 1
	e.openClose(root, "f", rd)
	e.openClose(root, "f", rd)
	if ts := e.types(start); !slices.Equal(ts, []string{"OPEN", "CLOSE", "OPEN", "CLOSE"}) {
		t.Fatalf("window off: %v", ts)
	}

	e.setParam("mdd.lustre-MDT0000.changelog_dedup_window", "10")
	e.clock.Advance(time.Minute)
	start = e.current() + 1
	for range 1000 {
		e.openClose(root, "f", rd)
	}
	if ts := e.types(start); !slices.Equal(ts, []string{"OPEN", "CLOSE"}) {
		t.Fatalf("1000 identical opens in the window: %d records %v", len(ts), ts[:min(len(ts), 6)])
	}
	if v := e.param("mdd.lustre-MDT0000.changelog_dedup_suppressed"); v != "999" {
		t.Fatalf("changelog_dedup_suppressed %q, want 999", v)
	}
	// Another mode, another user: their own records.
	start = e.current() + 1
	e.openClose(root, "f", wr)
	u := Cred{UID: 500, GID: 500, JobID: "cat.500", NID: "192.168.1.11@tcp"}
	e.openClose(u, "f", rd)
	if ts := e.types(start); !slices.Equal(ts, []string{"OPEN", "CLOSE", "OPEN", "CLOSE"}) {
		t.Fatalf("other mode and user: %v", ts)
	}
	// GXATR: one per name per window.
	start = e.current() + 1
	for range 3 {
		_, err = e.m.Getxattr(ctx, root, "f", "user.a")
		ok(t, err)
	}
	if ts := e.types(start); !slices.Equal(ts, []string{"GXATR"}) {
		t.Fatalf("GXATR: %v", ts)
	}
	// After the window the next one is recorded again.
	e.clock.Advance(10 * time.Second)
	start = e.current() + 1
	e.openClose(root, "f", rd)
	if ts := e.types(start); !slices.Equal(ts, []string{"OPEN", "CLOSE"}) {
		t.Fatalf("after the window: %v", ts)
	}
	// NOPEN and DENY: with deniednext 0 every denial is due; the window
	// still keeps one per key.
	e.setParam("mdd.lustre-MDT0000.changelog_deniednext", "0")
	_, err = e.m.Setattr(ctx, root, "f", SetattrArgs{Mode: ptr[uint32](0600)})
	ok(t, err)
	_, err = e.m.Mkdir(ctx, root, "priv", 0700)
	ok(t, err)
	start = e.current() + 1
	for range 5 {
		wantErrno(t, third(e.m.Open(ctx, u, "f", rd, 0)), 13)
		_, err = e.m.Mkdir(ctx, u, "priv/x", 0755)
		wantErrno(t, err, 13)
	}
	if ts := e.types(start); !slices.Equal(ts, []string{"NOPEN", "DENY"}) {
		t.Fatalf("NOPEN/DENY in the window: %v", ts)
	}
	// Not an access type: SATTR is never suppressed.
	start = e.current() + 1
	for range 3 {
		_, err = e.m.Setattr(ctx, root, "f", SetattrArgs{Mode: ptr[uint32](0600)})
		ok(t, err)
	}
	if n := len(e.records(start)); n != 3 {
		t.Fatalf("SATTR suppressed: %d records", n)
	}
	// Bad values change nothing; the value persists.
	_, err = e.m.SetParam("mdd.*.changelog_dedup_window", "-1")
	wantErrno(t, err, 22)
	_, err = e.m.SetParam("mdd.*.changelog_dedup_suppressed", "0")
	wantErrno(t, err, 13)
	e.reopen()
	if v := e.param("mdd.lustre-MDT0000.changelog_dedup_window"); v != "10" {
		t.Fatalf("window after restart %q", v)
	}
}

// TestSetattrPFIDFirstLink: the p= of an MTIME or TRUNC is the directory
// of the file's first link (mdt_attr_get_pfid reads link #0 of the link
// EA), also when the path names another link; sanity 160l checks p= with
// fid2path.
func TestSetattrPFIDFirstLink(t *testing.T) {
	e := newEnv(t)
	e.register("")
	e.setParam("mdd.*.changelog_mask", "-CREAT")
	e.setParam("mdd.*.changelog_mask", "-CLOSE")
	e.setParam("mdd.*.changelog_mask", "-HLINK")
	for _, d := range []string{"a", "b"} {
		_, err := e.m.Mkdir(ctx, root, d, 0755)
		ok(t, err)
	}
	_, err := e.m.Create(ctx, root, "a/f", 0644, true)
	ok(t, err)
	_, err = e.m.Link(ctx, root, "a/f", "b/g")
	ok(t, err)
	start := e.current() + 1
	size := uint64(5)
	_, err = e.m.Setattr(ctx, root, "b/g", SetattrArgs{Size: &size})
	ok(t, err)
	recs := e.records(start)
	if len(recs) != 1 || recs[0].Type != changelog.CLTrunc || recs[0].PFID != e.fidOf("a") {
		t.Fatalf("TRUNC through the second link: %q, want p=%v", e.lines(start), e.fidOf("a"))
	}
}
