package integration

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/fidlog/fidlog/changelog"
	changelogv1 "github.com/fidlog/fidlog/proto/lustre/changelog/v1"
)

// TestMountDeny: through the FUSE mount, a mkdir that a real unprivileged
// process (uid 1000) tries in another user's directory is refused with
// EACCES and leaves one DENY record (fidlog's type 25) with the operation
// and errno in its flags, the caller's identity, the directory and the
// name; the second identical attempt within changelog_deniednext is not
// recorded again.
func TestMountDeny(t *testing.T) {
	needFUSE(t)
	s := StartServer(t, shortTempDir(t))
	c := Dial(t, s, 0, 0)
	if _, err := c.CL.Register(c.Ctx(context.Background()), &changelogv1.RegisterRequest{Device: device, Mask: "+DENY"}); err != nil {
		t.Fatal(err)
	}
	m := StartMount(t, s)
	defer m.Unmount()
	sh(t, m.Dir, nil, "mkdir home2000 && chown 2000:2000 home2000 && chmod 0755 home2000")
	user := &syscall.Credential{Uid: 1000, Gid: 1000}
	for range 2 {
		cmd := exec.Command("mkdir", filepath.Join(m.Dir, "home2000/x"))
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: user}
		if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "Permission denied") {
			t.Fatalf("uid 1000 mkdir in uid 2000's directory: %v %s", err, out)
		}
	}
	var denies []*changelog.Record
	var home *changelog.Record
	for _, r := range readAll(t, c) {
		switch {
		case r.Type == changelog.CLDenied:
			denies = append(denies, r)
		case r.Type == changelog.CLMkdir && r.Name == "home2000":
			home = r
		}
	}
	if home == nil {
		t.Fatal("no MKDIR record for home2000")
	}
	if len(denies) != 1 {
		t.Fatalf("%d DENY records, want 1", len(denies))
	}
	d := denies[0]
	if op, errno := d.Denied(); op != changelog.CLMkdir || errno != uint16(syscall.EACCES) || d.UID != 1000 || d.GID != 1000 || d.Name != "x" || d.PFID != home.TFID {
		t.Fatalf("DENY record: %s (want MKDIR, EACCES, u=1000:1000, p=%s, name x)", d.Line(), home.TFID)
	}
	// lfs changelog shows it as Lustre-style type 25DENY with flags 0x10d
	// (DenyFlags(MKDIR, EACCES)).
	out := MustRun(t, s, "lfs", "changelog", device)
	if !strings.Contains(out, " 25DENY ") || !strings.Contains(out, " 0x10d ") || !strings.Contains(out, " u=1000:1000 ") {
		t.Fatalf("lfs changelog lacks the DENY line:\n%s", out)
	}
}
