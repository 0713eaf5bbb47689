package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/fidlog/fidlog/changelog/store"
	"github.com/fidlog/fidlog/cmd/internal/clitest"
)

func runBuf(args []string, stdout, stderr *bytes.Buffer) int { return run(args, stdout, stderr) }

func TestVerbs(t *testing.T) {
	s := clitest.StartServer(t)
	if _, err := s.MDT().Log().Register(store.RegisterOptions{Mask: "ALL", HasMask: true}); err != nil {
		t.Fatal(err)
	}
	id := []string{"--uid", "0", "--gid", "0"}
	steps := []clitest.Step{
		{Args: []string{"mkdir", "pics"}},
		{Args: []string{"mkdir", "pics"}, Code: 17, Stderr: "mdc: cannot create directory 'pics': File exists\n"},
		{Args: []string{"mkdir", "-p", "pics/a/b"}},
		{Args: []string{"touch", "pics/chloe.jpg"}},
		{Args: []string{"touch", "pics/chloe.jpg"}},
		{Args: []string{"touch", "nodir/x"}, Code: 2, Stderr: "mdc: cannot touch 'nodir/x': No such file or directory\n"},
		{Args: []string{"chmod", "600", "pics/chloe.jpg"}},
		{Args: []string{"chown", "500:500", "pics/chloe.jpg"}},
		// (uid_t)-1 means "leave unchanged" to chown(2): as an owner it is
		// an invalid id (coreutils), never stored.
		{Args: []string{"chown", "4294967295", "pics/chloe.jpg"}, Code: 22, Stderr: "mdc chown: invalid spec: '4294967295' (numeric UID[:GID])\nusage: chown UID[:GID] PATH...\n"},
		{Args: []string{"chown", "1:4294967295", "pics/chloe.jpg"}, Code: 22, Stderr: "mdc chown: invalid spec: '1:4294967295' (numeric UID[:GID])\nusage: chown UID[:GID] PATH...\n"},
		{Args: []string{"truncate", "-s", "1K", "pics/chloe.jpg"}},
		// A size is an off_t: above 2^63-1 it is refused (coreutils:
		// "Invalid number"), never stored as a size stat shows negative.
		{Args: []string{"truncate", "-s", "9223372036854775808", "pics/chloe.jpg"}, Code: 22, Stderr: "mdc truncate: invalid number: '9223372036854775808'\nusage: truncate -s SIZE PATH...\n"},
		{Args: []string{"truncate", "-s", "18446744073709551615", "pics/chloe.jpg"}, Code: 22, Stderr: "mdc truncate: invalid number: '18446744073709551615'\nusage: truncate -s SIZE PATH...\n"},
		{Args: []string{"truncate", "-s", "8388608T", "pics/chloe.jpg"}, Code: 22, Stderr: "mdc truncate: invalid number: '8388608T'\nusage: truncate -s SIZE PATH...\n"},
		{Args: []string{"setfattr", "-n", "user.tag", "-v", "holiday", "pics/chloe.jpg"}},
		{Args: []string{"getfattr", "-n", "user.tag", "pics/chloe.jpg"}, Stdout: "# file: pics/chloe.jpg\nuser.tag=\"holiday\"\n\n"},
		{Args: []string{"getfattr", "-n", "user.none", "pics/chloe.jpg"}, Code: 61, Stderr: "pics/chloe.jpg: user.none: No such attribute\n"},
		{Args: []string{"setfattr", "-x", "user.tag", "pics/chloe.jpg"}},
		{Args: []string{"cat", "pics/chloe.jpg"}},
		{Args: []string{"ln", "pics/chloe.jpg", "hard"}},
		{Args: []string{"ln", "-s", "pics/chloe.jpg", "soft"}},
		{Args: []string{"mknod", "fifo", "p"}},
		{Args: []string{"mv", "hard", "pics"}},
		{Args: []string{"ls", "pics"}, Stdout: "a\nchloe.jpg\nhard\n"},
		{Args: []string{"ls", "-l", "soft"}, Stdout: "re:lrwxrwxrwx 1 0 0 14 [-0-9: ]+ soft -> pics/chloe\\.jpg\n"},
		{Args: []string{"stat", "pics/chloe.jpg"}, Stdout: "re:  File: pics/chloe\\.jpg\n  Size: 1024\tregular file\n   FID: \\[0x2\\w+:0x\\w+:0x0\\]\tLinks: 2\nAccess: \\(0600/-rw-------\\)  Uid: 500  Gid: 500\n.*"},
		{Args: []string{"rm", "pics/chloe.jpg", "pics/hard", "soft", "fifo"}},
		{Args: []string{"rm", "pics/chloe.jpg"}, Code: 2, Stderr: "mdc: cannot remove 'pics/chloe.jpg': No such file or directory\n"},
		{Args: []string{"rm", "-f", "pics/chloe.jpg"}},
		{Args: []string{"rmdir", "pics"}, Code: 39, Stderr: "mdc: failed to remove 'pics': Directory not empty\n"},
		{Args: []string{"rmdir", "pics/a/b", "pics/a", "pics"}},
		// Device numbers as glibc's major(3)/minor(3) read them: a major
		// above 4095 does not leak into the minor.
		{Args: []string{"mknod", "dev", "c", "4096", "1"}},
		{Args: []string{"ls", "-l", "dev"}, Stdout: "re:crw-r--r-- 1 0 0 4096, 1 [-0-9: ]+ dev\n"},
		{Args: []string{"mknod", "dev2", "b", "4095", "4294967295"}},
		{Args: []string{"ls", "-l", "dev2"}, Stdout: "re:brw-r--r-- 1 0 0 4095, 4294967295 [-0-9: ]+ dev2\n"},
		{Args: []string{"rm", "dev", "dev2"}},
		{Args: []string{"close", "12345"}, Code: 9, Stderr: "mdc: close 12345: Bad file descriptor\n"},
		{Args: []string{"mkdir"}, Code: 22, Stderr: "mdc mkdir: requires at least 1 arg(s), only received 0\nusage: mkdir [-m MODE] [-p] PATH...\n"},
		// A job id gRPC metadata cannot carry is a usage error naming
		// it, not an I/O error from the transport; nothing is created.
		{Args: []string{"--jobid", "a\xffb", "touch", "j1"}, Code: 22, Stderr: "mdc: --jobid \"a\\xffb\": a job id is printable ASCII\nusage: touch PATH...\n"},
		{Args: []string{"--jobid", "a\tb", "touch", "j1"}, Code: 22, Stderr: "mdc: --jobid \"a\\tb\": a job id is printable ASCII\nusage: touch PATH...\n"},
		{Args: []string{"stat", "j1"}, Code: 2, Stderr: "mdc: cannot stat 'j1': No such file or directory\n"},
		// An empty operand names no file (ENOENT, as for chmod(1) and
		// the system calls), never the root, which the server's "" is:
		// it changes nothing.
		{Args: []string{"chmod", "700", ""}, Code: 2, Stderr: "mdc chmod: cannot access '': No such file or directory\n"},
		{Args: []string{"chown", "500:500", ""}, Code: 2, Stderr: "mdc chown: cannot access '': No such file or directory\n"},
		{Args: []string{"setfattr", "-n", "user.tag", "-v", "x", ""}, Code: 2, Stderr: "mdc setfattr: cannot access '': No such file or directory\n"},
		{Args: []string{"touch", ""}, Code: 2, Stderr: "mdc touch: cannot access '': No such file or directory\n"},
		{Args: []string{"mkdir", "-p", ""}, Code: 2, Stderr: "mdc mkdir: cannot access '': No such file or directory\n"},
		{Args: []string{"ln", "-s", "x", ""}, Code: 2, Stderr: "mdc ln: cannot access '': No such file or directory\n"},
		{Args: []string{"stat", ""}, Code: 2, Stderr: "mdc stat: cannot access '': No such file or directory\n"},
		{Args: []string{"open", ""}, Code: 2, Stderr: "mdc open: cannot access '': No such file or directory\n"},
		{Args: []string{"stat", "/"}, Stdout: "re:  File: /\n  Size: 0\tdirectory\n[^\n]*\nAccess: \\(0755/drwxr-xr-x\\)  Uid: 0  Gid: 0\n.*"},
		{Args: []string{"getfattr", "-d", "/"}},
		{Args: []string{"ls"}},
	}
	for i := range steps {
		steps[i].Args = append(append([]string{}, id...), steps[i].Args...)
	}
	s.Run(t, runBuf, steps)

	recs, _, err := s.MDT().Log().Read(context.Background(), store.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, r := range recs {
		types = append(types, r.Type.String())
	}
	got := strings.Join(types, " ")
	for _, want := range []string{"MKDIR", "CREAT", "CLOSE", "SATTR", "TRUNC", "XATTR", "GXATR", "OPEN", "HLINK", "SLINK", "MKNOD", "RENME", "UNLNK", "RMDIR"} {
		if !strings.Contains(got, want) {
			t.Errorf("records %q lack %s", got, want)
		}
	}
	if !strings.HasPrefix(got, "MKDIR MKDIR MKDIR CREAT") {
		t.Errorf("records start %q, want MKDIR MKDIR MKDIR CREAT", got)
	}
	if recs[0].JobID != "mkdir.0" {
		t.Errorf("jobid %q, want mkdir.0", recs[0].JobID)
	}
}

func TestOpenClose(t *testing.T) {
	s := clitest.StartServer(t)
	var out, errb bytes.Buffer
	if code := run([]string{"--server", s.Target, "open", "-rw", "--create", "f"}, &out, &errb); code != 0 {
		t.Fatalf("open: exit %d: %s", code, errb.String())
	}
	h := strings.TrimSpace(out.String())
	// The handle outlives the mdc process that opened it.
	s.Run(t, runBuf, []clitest.Step{
		{Args: []string{"close", h}},
		{Args: []string{"close", h}, Code: 9, Stderr: "mdc: close " + h + ": Bad file descriptor\n"},
		{Args: []string{"open", "--create", "--excl", "f"}, Code: 17, Stderr: "mdc: cannot open 'f': File exists\n"},
	})
}

// TestWriteError: a listing that could not be printed (a full disk) is
// not status 0.
func TestWriteError(t *testing.T) {
	s := clitest.StartServer(t)
	var errb bytes.Buffer
	code := run([]string{"--server", s.Target, "stat", "/"}, fullWriter{}, &errb)
	if code != 28 || errb.String() != "mdc: write error: No space left on device\n" {
		t.Errorf("stat into a full disk: exit %d, stderr %q; want 28 and the write error", code, errb.String())
	}
}

// fullWriter fails every write as /dev/full does.
type fullWriter struct{}

func (fullWriter) Write([]byte) (int, error) {
	return 0, &os.PathError{Op: "write", Path: "/dev/stdout", Err: syscall.ENOSPC}
}
