package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/fidlog/fidlog/changelog/store"
	"github.com/fidlog/fidlog/cmd/internal/cli"
	"github.com/fidlog/fidlog/cmd/internal/clitest"
	"github.com/fidlog/fidlog/mdt"
)

func runBuf(args []string, stdout, stderr *bytes.Buffer) int { return run(args, stdout, stderr) }

// setup registers cl1 and runs the Lustre manual's walkthrough: mkdir pics,
// create pics/chloe.jpg, remove it, rmdir pics (records 1..4).
func setup(t *testing.T) *clitest.Server {
	t.Helper()
	s := clitest.StartServer(t)
	m := s.MDT()
	if _, err := m.Log().Register(store.RegisterOptions{}); err != nil {
		t.Fatal(err)
	}
	ctx, c := context.Background(), mdt.Cred{JobID: "test.0"}
	if _, err := m.Mkdir(ctx, c, "pics", 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Create(ctx, c, "pics/chloe.jpg", 0o644, false); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Mkdir(ctx, c, "keep", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := m.Unlink(ctx, c, "pics/chloe.jpg"); err != nil {
		t.Fatal(err)
	}
	if err := m.Rmdir(ctx, c, "pics"); err != nil {
		t.Fatal(err)
	}
	return s
}

const (
	rec1 = `1 02MKDIR \d\d:\d\d:\d\d\.\d{9} \d{4}\.\d\d\.\d\d 0x0 t=\[0x2\w+:0x\w+:0x0\] j=test\.0 [^\n]*p=\[0x200000007:0x1:0x0\] pics\n`
	rec2 = `2 01CREAT [^\n]* chloe\.jpg\n`
	rec3 = `3 02MKDIR [^\n]* keep\n`
	rec4 = `4 06UNLNK [^\n]* 0x1 t=[^\n]* chloe\.jpg\n`
	rec5 = `5 07RMDIR [^\n]* 0x1 t=[^\n]* p=\[0x200000007:0x1:0x0\] pics\n`
)

func TestChangelog(t *testing.T) {
	s := setup(t)
	dev := s.Device
	// Lustre's CMD_HELP: the message on stderr, the command's help on
	// stdout, exit 4.
	help := "Show the metadata changes on an MDT.\nusage: " + changelogUsage + "\n"
	s.Run(t, runBuf, []clitest.Step{
		{Args: []string{"changelog", dev}, Stdout: "re:" + rec1 + rec2 + rec3 + rec4 + rec5},
		{Args: []string{"changelog", dev, "2", "3"}, Stdout: "re:" + rec2 + rec3},
		{Args: []string{"changelog", dev, "4"}, Stdout: "re:" + rec4 + rec5},
		{Args: []string{"changelog", dev, "abc", "1"}, Code: 22, Stderr: "lfs changelog: invalid startrec: 'abc' is not a whole decimal number\n"},
		{Args: []string{"changelog", dev, "1", "0x3"}, Code: 22, Stderr: "lfs changelog: invalid endrec: '0x3' is not a whole decimal number\n"},
		{Args: []string{"changelog", "--mask", "RMDIR,UNLNK", dev}, Stdout: "re:" + rec4 + rec5},
		{Args: []string{"changelog", "-m", "-MKDIR", dev, "1", "3"}, Stdout: "re:" + rec2},
		{Args: []string{"changelog", dev, "6"}},
		{Args: []string{"changelog", "--output", "json", dev, "5"}, Stdout: `re:\{"index":5,"type":"RMDIR"[^\n]*"name":"pics"[^\n]*\}\n`},
		{Args: []string{"changelog"}, Code: 4, Stdout: help, Stderr: "lfs changelog: mdtname must be specified\n"},
		// lfs_changelog ignores arguments after ENDREC.
		{Args: []string{"changelog", dev, "2", "3", "junk"}, Stdout: "re:" + rec2 + rec3},
		{Args: []string{"changelog", dev, "--", "-1"}, Code: 22, Stderr: "lfs changelog: invalid startrec: '-1' is not a whole decimal number\n"},
		{Args: []string{"changelog", dev, "1", "--", "-2"}, Code: 22, Stderr: "lfs changelog: invalid endrec: '-2' is not a whole decimal number\n"},
		// llapi_convert_str2mask's error, lfs's, then CMD_HELP.
		{Args: []string{"changelog", "--mask", "CREATE", dev}, Code: 4, Stdout: help,
			Stderr: "lfs changelog: unknown mask 'CREATE'.\nmask usage: [+|-]<all|type> ...: Invalid argument (22)\n" +
				"lfs changelog: invalid changelog mask 'CREATE': Invalid argument (22)\n"},
		{Args: []string{"changelog", "--mask", "CREAT+", dev}, Code: 4, Stdout: help,
			Stderr: "lfs changelog: invalid changelog mask 'CREAT+': Invalid argument (22)\n"},
		{Args: []string{"changelog", "--bogus", dev}, Code: 4, Stdout: help, Stderr: "lfs changelog: unrecognized option '--bogus'\n"},
		{Args: []string{"changelog", "-x", dev}, Code: 4, Stdout: help, Stderr: "lfs changelog: unrecognized option '-x'\n"},
		// The server's message names what was wrong (as liblustreapi's
		// own line names the device it could not open), then lfs's line.
		{Args: []string{"changelog", "lustre-MDT0007"}, Code: 2, Stderr: "lfs changelog: unknown device 'lustre-MDT0007' (this server serves '" + dev + "')\n" +
			"lfs changelog: cannot start changelog: No such file or directory\n"},
		{Args: []string{"changelog", ""}, Code: 22, Stderr: "lfs changelog: missing device (this server serves '" + dev + "')\n" +
			"lfs changelog: cannot start changelog: Invalid argument\n"},
		{Args: []string{"changelog", "--user", "cl9", dev}, Code: 2, Stderr: "lfs changelog: no changelog user: cl9\n" +
			"lfs changelog: cannot start changelog: No such file or directory\n"},
		{Args: []string{"changelog", "--user", "", dev}, Code: 22, Stderr: "lfs changelog: invalid changelog user ''\n"},
		{Args: []string{"changelog", "--user", "nosuch", dev}, Code: 2, Stderr: "lfs changelog: no changelog user: nosuch\n" +
			"lfs changelog: cannot start changelog: No such file or directory\n"},
		{Args: []string{"changelog", dev, "5", "3"}, Code: 22, Stderr: "lfs changelog: start index 5 is above end index 3\n" +
			"lfs changelog: cannot start changelog: Invalid argument\n"},
	})
}

func TestChangelogClear(t *testing.T) {
	s := setup(t)
	dev := s.Device
	help := "Indicate that old changelog records up to <endrec> are no longer of interest to consumer <id>, allowing the system to free up space.\n" +
		"An <endrec> of 0 means all records.\nusage: changelog_clear <mdtname> <id> <endrec>\n"
	s.Run(t, runBuf, []clitest.Step{
		{Args: []string{"changelog_clear", dev, "cl1", "1000000000"}, Code: 22, Stderr: "lfs changelog_clear: cannot purge records for 'cl1': Invalid argument (22)\n" +
			"changelog_clear: record out of range: 1000000000\n"},
		{Args: []string{"changelog_clear", dev, "cl7", "0"}, Code: 2, Stderr: "lfs changelog_clear: cannot purge records for 'cl7': No such file or directory (2)\n" +
			"changelog_clear: no changelog user: cl7\n"},
		// Only cl<ID> ids, as Lustre's device takes (EINVAL), but the
		// second line names the id instead of Lustre's misleading "record
		// out of range".
		{Args: []string{"changelog_clear", dev, "1", "0"}, Code: 22, Stderr: "lfs changelog_clear: cannot purge records for '1': Invalid argument (22)\n" +
			"changelog_clear: invalid changelog user '1': expect cl<ID>[-name]\n"},
		{Args: []string{"changelog_clear", dev, "cl0", "0"}, Code: 22, Stderr: "lfs changelog_clear: cannot purge records for 'cl0': Invalid argument (22)\n" +
			"changelog_clear: invalid changelog user 'cl0': expect cl<ID>[-name]\n"},
		{Args: []string{"changelog_clear", dev, "cl4294967296-x", "0"}, Code: 22, Stderr: "lfs changelog_clear: cannot purge records for 'cl4294967296': Invalid argument (22)\n" +
			"changelog_clear: invalid changelog user 'cl4294967296-x': expect cl<ID>[-name]\n"},
		{Args: []string{"changelog_clear", dev, "cl4294967295", "0"}, Code: 2, Stderr: "lfs changelog_clear: cannot purge records for 'cl4294967295': No such file or directory (2)\n" +
			"changelog_clear: no changelog user: cl4294967295\n"},
		// An unknown or missing device is not reported as an unknown user
		// or a record out of range: the second line says what is wrong.
		{Args: []string{"changelog_clear", "lustre-MDT0007", "cl1", "0"}, Code: 2, Stderr: "lfs changelog_clear: cannot purge records for 'cl1': No such file or directory (2)\n" +
			"changelog_clear: unknown device 'lustre-MDT0007' (this server serves '" + dev + "')\n"},
		{Args: []string{"changelog_clear", "", "cl1", "0"}, Code: 22, Stderr: "lfs changelog_clear: cannot purge records for 'cl1': Invalid argument (22)\n" +
			"changelog_clear: missing device (this server serves '" + dev + "')\n"},
		// No typo purges the audit: only a whole decimal number is an
		// end record, and a bad one clears nothing (the next read shows
		// every record).
		{Args: []string{"changelog_clear", dev, "cl1", "-1"}, Code: 22, Stderr: "lfs changelog_clear: invalid endrec: '-1' is not a whole decimal number\n"},
		{Args: []string{"changelog_clear", dev, "cl1", "abc"}, Code: 22, Stderr: "lfs changelog_clear: invalid endrec: 'abc' is not a whole decimal number\n"},
		{Args: []string{"changelog_clear", dev, "cl1", "12x"}, Code: 22, Stderr: "lfs changelog_clear: invalid endrec: '12x' is not a whole decimal number\n"},
		{Args: []string{"changelog_clear", dev, "cl1", "1e3"}, Code: 22, Stderr: "lfs changelog_clear: invalid endrec: '1e3' is not a whole decimal number\n"},
		{Args: []string{"changelog_clear", dev, "cl1", "0x10"}, Code: 22, Stderr: "lfs changelog_clear: invalid endrec: '0x10' is not a whole decimal number\n"},
		{Args: []string{"changelog_clear", dev, "cl1", "0b11"}, Code: 22, Stderr: "lfs changelog_clear: invalid endrec: '0b11' is not a whole decimal number\n"},
		{Args: []string{"changelog_clear", dev, "cl1", "1_000"}, Code: 22, Stderr: "lfs changelog_clear: invalid endrec: '1_000' is not a whole decimal number\n"},
		{Args: []string{"changelog_clear", dev, "cl1", ""}, Code: 22, Stderr: "lfs changelog_clear: invalid endrec: '' is not a whole decimal number\n"},
		{Args: []string{"changelog_clear", dev, "cl1", "99999999999999999999"}, Code: 22, Stderr: "lfs changelog_clear: invalid endrec: '99999999999999999999' is out of range (at most 9223372036854775807)\n"},
		{Args: []string{"changelog", dev}, Stdout: "re:" + rec1 + rec2 + rec3 + rec4 + rec5},
		{Args: []string{"changelog_clear", dev, "cl1"}, Code: 4, Stdout: help},
		{Args: []string{"changelog_clear", dev, "cl1-x", "3"}},
		{Args: []string{"changelog", dev}, Stdout: "re:" + rec4 + rec5},
		{Args: []string{"changelog_clear", dev, "cl1", "0"}},
		{Args: []string{"changelog", dev}},
	})
}

func TestFidPath(t *testing.T) {
	s := clitest.StartServer(t)
	m := s.MDT()
	ctx, c := context.Background(), mdt.Cred{}
	d, err := m.Mkdir(ctx, c, "d", 0o755)
	if err != nil {
		t.Fatal(err)
	}
	f, err := m.Create(ctx, c, "d/f", 0o644, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Link(ctx, c, "d/f", "g"); err != nil {
		t.Fatal(err)
	}
	df, ff := d.FID.String(), f.FID.String()
	fidHelp := "Resolve the full path(s) for given FID(s). For a specific hardlink specify link number <linkno>.\n" +
		"usage: fid2path [--print0|-0] [--print-fid|-f] [--print-link|-c] [--link|-l <linkno>] [--name|-n] <fsname|root> <fid>...\n"
	s.Run(t, runBuf, []clitest.Step{
		{Args: []string{"path2fid", "d/f"}, Stdout: ff + "\n"},
		{Args: []string{"path2fid", "d", "/d/f", "nope"}, Code: 2, Stdout: "d: " + df + "\n/d/f: " + ff + "\n",
			Stderr: "lfs path2fid: cannot get fid for 'nope': No such file or directory\n"},
		{Args: []string{"path2fid", "--parents", "d/f"}, Stdout: df + "/f\t[0x200000007:0x1:0x0]/g\n"},
		// An empty path names no file (llapi_path2fid's open fails with
		// ENOENT); the server would read it as the root.
		{Args: []string{"path2fid", "", "d"}, Code: 2, Stdout: "d: " + df + "\n", Stderr: "lfs path2fid: cannot get fid for '': No such file or directory\n"},
		{Args: []string{"path2fid", "--parents", ""}, Code: 2, Stderr: "lfs path2fid: cannot get parent fid for '': No such file or directory\n"},
		{Args: []string{"fid2path", "lustre", ff}, Stdout: "d/f\ng\n"},
		{Args: []string{"fid2path", "--link", "1", "lustre", ff}, Stdout: "g\n"},
		{Args: []string{"fid2path", "-f", "-c", "lustre", ff}, Stdout: ff + " 0 d/f\n" + ff + " 1 g\n"},
		{Args: []string{"fid2path", "lustre", "[0x200000007:0x1:0x0]"}, Stdout: "/\n"},
		// The root's path (lfs_fid2path keeps this quirk on purpose):
		// "/" for an FSNAME, "MOUNT//" for a mount point; trailing
		// slashes of the mount point are stripped (sanity 154A).
		{Args: []string{"fid2path", "/mnt/lustre", "0x200000007:0x1:0x0", df}, Stdout: "/mnt/lustre//\n/mnt/lustre/d\n"},
		{Args: []string{"fid2path", "/mnt/lustre///", ff}, Stdout: "/mnt/lustre/d/f\n/mnt/lustre/g\n"},
		// -f prints the FID as given.
		{Args: []string{"fid2path", "-f", "lustre", strings.Trim(df, "[]")}, Stdout: strings.Trim(df, "[]") + " d\n"},
		// An FSNAME no file system has: llapi_search_rootpath's ENODEV,
		// and no FID is looked up.
		{Args: []string{"fid2path", "other", ff, "junk"}, Code: 19, Stderr: "lfs fid2path: cannot resolve mount point for 'other': No such device\n"},
		{Args: []string{"fid2path", "lustre-MDT0000", ff}, Code: 19, Stderr: "lfs fid2path: cannot resolve mount point for 'lustre-MDT0000': No such device\n"},
		// Usage errors are CMD_HELP: message on stderr, help on stdout.
		{Args: []string{"fid2path", "lustre"}, Code: 4, Stdout: fidHelp, Stderr: "Usage: lfs fid2path FSNAME|ROOT FID...\n"},
		{Args: []string{"fid2path", "--link", "x", "lustre", ff}, Code: 4, Stdout: fidHelp, Stderr: "lfs fid2path: invalid linkno 'x'\n"},
		{Args: []string{"fid2path", "--link=-1", "lustre", ff}, Code: 4, Stdout: fidHelp, Stderr: "lfs fid2path: invalid linkno '-1'\n"},
		{Args: []string{"path2fid"}, Code: 4, Stdout: "Display the fid(s) for a given path(s).\nusage: path2fid [--parents] <path> ...\n",
			Stderr: "lfs path2fid: FILE... must be specified\n"},
		// Deliberate differences (README): -c numbers each path with its
		// own link number (Lustre prints the next link's number: "1 d/f",
		// "1 g"), and a link number past the last is ENOENT (Lustre's MDT
		// returns link 0's path for it).
		{Args: []string{"fid2path", "-c", "--link", "1", "lustre", ff}, Stdout: "1 g\n"},
		{Args: []string{"fid2path", "--link", "2", "lustre", ff}, Code: 2,
			Stderr: "lfs fid2path: cannot find lustre " + ff + ": No such file or directory\n"},
		{Args: []string{"fid2path", "lustre", "junk", "[0x200000400:0x999:0x0]", df}, Code: 22, Stdout: "d\n",
			Stderr: "lfs fid2path: invalid FID 'junk'\nlfs fid2path: cannot find lustre [0x200000400:0x999:0x0]: No such file or directory\n"},
		{Args: []string{"fid2path", "lustre", "[0x200000400:0x999:0x0]"}, Code: 2,
			Stderr: "lfs fid2path: cannot find lustre [0x200000400:0x999:0x0]: No such file or directory\n"},
	})
}

func TestConnectionRefused(t *testing.T) {
	var out, errb bytes.Buffer
	code := run([]string{"--server", "unix:" + t.TempDir() + "/none.sock", "changelog", "lustre-MDT0000"}, &out, &errb)
	if code != 111 {
		t.Errorf("exit %d, want 111; stderr %q", code, errb.String())
	}
	if want := "cannot connect to MDT server 'unix:"; !bytes.Contains(errb.Bytes(), []byte(want)) {
		t.Errorf("stderr %q lacks %q", errb.String(), want)
	}
}

// TestWriteError: records that could not be written (a full disk) never
// end with status 0, so a script's "lfs changelog > f && lfs
// changelog_clear" does not clear what it lost; the error is named.
func TestWriteError(t *testing.T) {
	s := setup(t)
	var errb bytes.Buffer
	code := run([]string{"--server", s.Target, "changelog", s.Device}, fullWriter{}, &errb)
	if code != 28 || errb.String() != "lfs: write error: No space left on device\n" {
		t.Errorf("changelog into a full disk: exit %d, stderr %q; want 28 and the write error", code, errb.String())
	}
	errb.Reset()
	code = run([]string{"--server", s.Target, "path2fid", "keep"}, fullWriter{}, &errb)
	if code != 28 || errb.String() != "lfs: write error: No space left on device\n" {
		t.Errorf("path2fid into a full disk: exit %d, stderr %q", code, errb.String())
	}
}

// fullWriter fails every write as /dev/full does.
type fullWriter struct{}

func (fullWriter) Write([]byte) (int, error) {
	return 0, &os.PathError{Op: "write", Path: "/dev/stdout", Err: syscall.ENOSPC}
}

// TestVerifyArgs: a bad --from is named with the reason, as every other
// record number is (not strconv's text), and verifies nothing.
func TestVerifyArgs(t *testing.T) {
	s := setup(t)
	dev := s.Device
	help := "re:Prove that no changelog record was changed, removed or inserted\\.\nusage: changelog_verify .*"
	s.Run(t, runBuf, []clitest.Step{
		{Args: []string{"changelog_verify", "--from", "abc", dev}, Code: 4, Stdout: help,
			Stderr: "lfs changelog_verify: invalid argument \"abc\" for \"--from\" flag: 'abc' is not a whole decimal number\n"},
		{Args: []string{"changelog_verify", "--from=-5", dev}, Code: 4, Stdout: help,
			Stderr: "lfs changelog_verify: invalid argument \"-5\" for \"--from\" flag: '-5' is not a whole decimal number\n"},
		{Args: []string{"changelog_verify", "--from", "99999999999999999999", dev}, Code: 4, Stdout: help,
			Stderr: "lfs changelog_verify: invalid argument \"99999999999999999999\" for \"--from\" flag: '99999999999999999999' is out of range (at most 9223372036854775807)\n"},
		// The server's message names what is wrong with the device.
		{Args: []string{"changelog_verify", ""}, Code: 22,
			Stderr: "lfs changelog_verify: missing device (this server serves '" + dev + "')\nlfs changelog_verify: : Invalid argument\n"},
		{Args: []string{"changelog_verify", "lustre-MDT0007"}, Code: 2,
			Stderr: "lfs changelog_verify: unknown device 'lustre-MDT0007' (this server serves '" + dev + "')\nlfs changelog_verify: lustre-MDT0007: No such file or directory\n"},
	})
}

// TestInterrupted: a listing cut short by SIGINT or SIGTERM (the command's
// context cancelled) is incomplete and says so with a non-zero status, so
// "lfs changelog MDT > f && lfs changelog_clear MDT cl1 0" never clears
// records f lacks; --follow, which only ends that way, ends with 0.
func TestInterrupted(t *testing.T) {
	s := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"changelog", s.Device}, 125, "lfs changelog: interrupted: the listing is incomplete\n"},
		{[]string{"changelog", "--follow", s.Device}, 0, ""},
	} {
		var out, errb bytes.Buffer
		code := cli.ExecuteContext(ctx, newRootCmd(&out, &errb), append([]string{"--server", s.Target}, tc.args...), &errb, cli.UsageLustre)
		if code != tc.code || errb.String() != tc.stderr {
			t.Errorf("%v interrupted: exit %d, stderr %q; want %d, %q", tc.args, code, errb.String(), tc.code, tc.stderr)
		}
	}
}
