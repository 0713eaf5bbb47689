package main

import (
	"bytes"
	"os"
	"syscall"
	"testing"

	"github.com/fidlog/fidlog/cmd/internal/clitest"
)

func runBuf(args []string, stdout, stderr *bytes.Buffer) int { return run(args, stdout, stderr) }

func TestChangelogUsers(t *testing.T) {
	s := clitest.StartServer(t)
	dev := s.Device
	// Usage errors are Lustre's CMD_HELP: the message on stderr, lctl.c's
	// help text on stdout, exit 4.
	regHelp := "register a new persistent changelog user, returns id\n" +
		"usage: {--device MDTNAME} changelog_register [--help|-h] [--mask|-m MASK]\n" +
		"       [--nameonly|-n] [--user|-u USERNAME]\n"
	deregHelp := "deregister an existing changelog user\n" +
		"usage: {--device MDTNAME} changelog_deregister [ID|clID] [--help|-h]\n" +
		"       [--user|-u USERNAME]\n"
	s.Run(t, runBuf, []clitest.Step{
		{Args: []string{"--device", dev, "changelog_register"}, Stdout: dev + ": Registered changelog userid 'cl1'\n"},
		{Args: []string{"--device", dev, "changelog_register", "-n", "-u", "dirs", "-m", "mkdir+rmdir"}, Stdout: "cl2-dirs\n"},
		{Args: []string{"--device", dev, "changelog_register", "-u", "dirs"}, Code: 17, Stderr: "error: changelog_register: User exists\n"},
		{Args: []string{"--device", dev, "changelog_register", "-m", ""}, Code: 22, Stderr: "error: changelog_register: invalid changelog mask '': Invalid argument\n"},
		// Lustre's line names only the errno; the server's message names
		// the bad name or mask token.
		{Args: []string{"--device", dev, "changelog_register", "-u", "Tt3_-#"}, Code: 22, Stderr: "re:^error: changelog_register: invalid changelog user 'Tt3_-#': [^\n]*: Invalid argument\n$"},
		{Args: []string{"--device", dev, "changelog_register", "-u", "test_160toolongname"}, Code: 36,
			Stderr: "error: changelog_register: changelog user name 'test_160toolongname' is longer than 16 characters: File name too long\n"},
		{Args: []string{"--device", dev, "changelog_register", "-m", "bogus"}, Code: 22, Stderr: "error: changelog_register: invalid changelog mask 'bogus': unknown mask 'bogus': Invalid argument\n"},
		{Args: []string{"--device", dev, "changelog_register", "-m", "CREAT+"}, Code: 22, Stderr: "error: changelog_register: invalid changelog mask 'CREAT+': unknown mask '+': Invalid argument\n"},
		// An explicitly empty name is a bad name, not "no name": nothing
		// is registered (the next id is still cl3).
		{Args: []string{"--device", dev, "changelog_register", "-u", ""}, Code: 22, Stderr: "error: changelog_register: invalid changelog user '': Invalid argument\n"},
		{Args: []string{"--device", dev, "changelog", "register", "-n"}, Stdout: "cl3\n"},
		{Args: []string{"--device", "lustre-MDT0009", "changelog_register"}, Code: 19,
			Stderr: "error: changelog_register: cannot find device 'lustre-MDT0009': No such device\n"},
		{Args: []string{"changelog_register"}, Code: 4,
			Stdout: regHelp, Stderr: "error: changelog_register: no device given: use 'lctl --device <fsname>-MDTxxxx changelog_register ...'\n"},
		{Args: []string{"get_param", "-n", "mdd." + dev + ".changelog_users"},
			Stdout: "re:current_index: 0\nID +index \\(idle\\) mask\ncl1 +0 \\(\\d+\\)\ncl2-dirs +0 \\(\\d+\\) mask=MARK,MKDIR,RMDIR\ncl3 +0 \\(\\d+\\)\n"},
		{Args: []string{"--device", dev, "changelog_deregister"}, Code: 4, Stdout: deregHelp},
		{Args: []string{"--device", dev, "changelog_deregister", "xyz"}, Code: 4,
			Stdout: deregHelp, Stderr: "error: Invalid argument: expect <ID> or cl<ID>[-name] got 'xyz'\n"},
		{Args: []string{"--device", dev, "changelog_deregister", "cl77"}, Code: 2, Stderr: "error: changelog_deregister: User not found: cl77\n"},
		{Args: []string{"--device", dev, "changelog_deregister", "-u", "nosuch"}, Code: 2, Stderr: "error: changelog_deregister: User not found: nosuch\n"},
		{Args: []string{"--device", "lustre-MDT0009", "changelog_deregister", "cl1"}, Code: 19,
			Stderr: "error: changelog_deregister: cannot find device 'lustre-MDT0009': No such device\n"},
		{Args: []string{"--device", dev, "changelog_deregister", "cl1"}, Stdout: dev + ": Deregistered changelog user #1\n"},
		{Args: []string{"--device", dev, "changelog_deregister", "-u", "dirs"}, Stdout: dev + ": Deregistered changelog user #2\n"},
		{Args: []string{"--device", dev, "changelog", "deregister", "3"}, Stdout: dev + ": Deregistered changelog user #3\n"},
		{Args: []string{"--device", dev, "changelog_deregister", "cl1"}, Code: 2, Stderr: "error: changelog_deregister: User not found: cl1\n"},
	})
}

func TestParams(t *testing.T) {
	s := clitest.StartServer(t)
	dev := s.Device
	p := "mdd." + dev + ".changelog_mask"
	s.Run(t, runBuf, []clitest.Step{
		{Args: []string{"get_param", p}, Stdout: p + "=MARK \n"},
		{Args: []string{"set_param", "mdd.*.changelog_mask=+hsm"}, Stdout: p + "=+hsm\n"},
		{Args: []string{"get_param", "-n", "mdd/" + dev + "/changelog_mask"},
			Stdout: "MARK CREAT MKDIR HLINK SLINK MKNOD UNLNK RMDIR RENME RNMTO CLOSE LYOUT TRUNC SATTR XATTR HSM MTIME CTIME MIGRT FLRW RESYNC \n"},
		{Args: []string{"set_param", "-n", p + "=-MKDIR"}},
		{Args: []string{"get_param", "-N", "mdd.*.changelog_mask"}, Stdout: p + "\n"},
		{Args: []string{"get_param", "mdd.*.changelog_users"}, Stdout: "re:mdd\\." + dev + "\\.changelog_users=\ncurrent_index: 0\nID +index \\(idle\\) mask\n"},
		{Args: []string{"set_param", p + "=CREATE"}, Code: 22, Stderr: "error: set_param: setting " + p + "=CREATE: Invalid argument\n"},
		// No parameter: CMD_HELP with no message (jt_lcfg_getparam,
		// jt_lcfg_setparam), the help on stdout.
		{Args: []string{"get_param"}, Code: 4, Stdout: "re:.*\nusage: get_param .*\n"},
		{Args: []string{"set_param"}, Code: 4, Stdout: "re:.*\nusage: set_param .*\n"},
		{Args: []string{"set_param", p}, Code: 22, Stderr: "error: set_param: setting '" + p + "': expected <param_path>=<value>: Invalid argument\n"},
		{Args: []string{"get_param", "mdd.*.nope", p}, Code: 2, Stdout: "re:" + p + "=MARK CREAT HLINK [^\n]*\n",
			Stderr: "error: get_param: param_path 'mdd.*.nope': No such file or directory\n"},
		{Args: []string{"set_param", "mdd.*.nope=1"}, Code: 2, Stderr: "error: set_param: param_path 'mdd.*.nope': No such file or directory\n"},
	})
}

func TestNodemap(t *testing.T) {
	s := clitest.StartServer(t)
	s.Run(t, runBuf, []clitest.Step{
		{Args: []string{"nodemap_add", "backup"}},
		{Args: []string{"nodemap_add", "--name", "backup"}, Code: 22,
			Stderr: "error: nodemap 'backup' already exists\nnodemap_add: Invalid argument\n"},
		{Args: []string{"nodemap_add"}, Code: 4, Stderr: "nodemap_add: missing nodemap name\n", Stdout: "re:.*\nusage: nodemap_add {--name <nodemap_name> \\| <nodemap_name>}\n"},
		{Args: []string{"nodemap_add_range", "--name", "backup", "--range", "192.168.1.[1-254]@tcp"}},
		{Args: []string{"nodemap", "add", "other"}},
		{Args: []string{"nodemap_add_range", "--name", "other", "--range", "192.168.1.[100-120]@tcp"}, Code: 17,
			Stderr: "error: nodemap_add_range: cannot add range '192.168.1.[100-120]@tcp' to nodemap 'other': File exists\n"},
		{Args: []string{"nodemap_add_range", "--name", "other", "--range", "192.168.1.[1,5]@tcp"}, Code: 22,
			Stderr: "error: nodemap_add_range: nodemap ranges must be contiguous\n"},
		{Args: []string{"nodemap_add_range", "--name", "other", "--range", "192.168.1.x@tcp"}, Code: 4,
			Stderr: "error: nodemap_add_range: can't parse nid range: 192.168.1.x@tcp\n", Stdout: "re:.*\nusage: nodemap_add_range --name <nodemap_name> --range <nid_range>\n"},
		{Args: []string{"nodemap_test_nid", "--nid", "192.168.1.10@tcp"}, Stdout: "backup\n"},
		{Args: []string{"nodemap_test_nid", "--nid", "10.0.0.1@tcp"}, Stdout: "default\n"},
		{Args: []string{"nodemap_modify", "--name", "backup", "--property", "audit_mode", "--value", "0"}},
		{Args: []string{"nodemap_modify", "--name", "backup", "--property", "admin=1"}},
		{Args: []string{"get_param", "-n", "nodemap.backup.audit_mode"}, Stdout: "0\n"},
		{Args: []string{"nodemap_modify", "--name", "backup", "--property", "squash_uid", "--value", "0"}, Code: 22,
			Stderr: "error: nodemap_modify: cannot squash to ID 0 on nodemap 'backup': Invalid argument\n"},
		{Args: []string{"nodemap_modify", "--name", "backup", "--property", "bogus", "--value", "1"}, Code: 4,
			Stderr: "error: nodemap_modify: nodemap_modify invalid property: bogus\n", Stdout: "re:.*\nusage: .*"},
		{Args: []string{"nodemap_modify", "--name", "backup", "--property", "audit_mode", "--value", "maybe"}, Code: 22,
			Stderr: "error: nodemap_modify: cannot modify nodemap 'backup' to param 'audit_mode': value 'maybe': Invalid argument\n"},
		{Args: []string{"nodemap_del_range", "--name", "backup", "--range", "192.168.1.[1-254]@tcp"}},
		{Args: []string{"nodemap_del", "backup"}},
		{Args: []string{"nodemap_add", "bad-name!"}, Code: 22,
			Stderr: "error: nodemap_add: nodemap 'bad-name!': invalid name: only letters, digits and '_' are allowed\nnodemap_add: Invalid argument\n"},
		{Args: []string{"nodemap_del", "backup"}, Code: 2, Stderr: "error: nodemap 'backup' does not exist\nnodemap_del: No such file or directory\n"},
		{Args: []string{"nodemap_activate", "maybe"}, Code: 4, Stderr: "error: nodemap_activate: invalid value 'maybe'\n", Stdout: "re:.*\nusage: nodemap_activate \\{0\\|1\\}\n"},
		{Args: []string{"nodemap_activate", "on"}},
		{Args: []string{"get_param", "nodemap.active"}, Stdout: "nodemap.active=1\n"},
		{Args: []string{"nodemap_activate", "0"}},
	})
}

// TestWriteError: a parameter that could not be printed (a full disk) is
// not status 0.
func TestWriteError(t *testing.T) {
	s := clitest.StartServer(t)
	var errb bytes.Buffer
	code := run([]string{"--server", s.Target, "get_param", "mdd.*.changelog_users"}, fullWriter{}, &errb)
	if code != 28 || errb.String() != "lctl: write error: No space left on device\n" {
		t.Errorf("get_param into a full disk: exit %d, stderr %q; want 28 and the write error", code, errb.String())
	}
}

// fullWriter fails every write as /dev/full does.
type fullWriter struct{}

func (fullWriter) Write([]byte) (int, error) {
	return 0, &os.PathError{Op: "write", Path: "/dev/stdout", Err: syscall.ENOSPC}
}

// TestDeviceNumber: as in Lustre, --device takes the device's number
// from "lctl dl" as well as its name; a number no device has is ENODEV.
func TestDeviceNumber(t *testing.T) {
	s := clitest.StartServer(t)
	dev := s.Device
	s.Run(t, runBuf, []clitest.Step{
		{Args: []string{"dl"}, Stdout: "  0 UP mdt " + dev + " " + dev + "_UUID 1\n"},
		{Args: []string{"--device", "0", "changelog_register"}, Stdout: dev + ": Registered changelog userid 'cl1'\n"},
		{Args: []string{"--device", "1", "changelog_register"}, Code: 19, Stderr: "error: changelog_register: cannot find device '1': No such device\n"},
		{Args: []string{"--device", "0", "changelog_deregister", "cl1"}, Stdout: dev + ": Deregistered changelog user #1\n"},
		{Args: []string{"--device", "99999999999999999999", "changelog_deregister", "cl1"}, Code: 19,
			Stderr: "error: changelog_deregister: cannot find device '99999999999999999999': No such device\n"},
	})
}
