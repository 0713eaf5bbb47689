package main

import (
	"bytes"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fidlog/fidlog/changelog/store"
	"github.com/fidlog/fidlog/cmd/internal/clitest"
)

func TestListParamAndDl(t *testing.T) {
	s := clitest.StartServer(t)
	dev := s.Device
	if _, err := s.MDT().Log().Register(store.RegisterOptions{Name: "audit"}); err != nil {
		t.Fatal(err)
	}
	mdd := "mdd." + dev
	ps, err := s.MDT().GetParams("mdd.*.*")
	if err != nil {
		t.Fatal(err)
	}
	var leaves []string // what -R lists below mdd.<dev>, sorted
	for _, p := range ps {
		leaves = append(leaves, p.Name+"\n")
	}
	slices.Sort(leaves)
	s.Run(t, runBuf, []clitest.Step{
		{Args: []string{"dl"}, Stdout: "  0 UP mdt " + dev + " " + dev + "_UUID 2\n"},
		{Args: []string{"device_list"}, Stdout: "  0 UP mdt " + dev + " " + dev + "_UUID 2\n"},
		{Args: []string{"dl", "x"}, Code: 4, Stderr: "re:lctl: unknown command \"x\" for \"lctl dl\"\n", Stdout: "re:.*\nusage: device_list \\[--target\\|-t\\] \\[--yaml\\|-y\\]\n"},
		{Args: []string{"dl", "-t"}, Stdout: "  0 UP mdt " + dev + " " + dev + "_UUID 2\n"},
		{Args: []string{"dl", "--yaml"}, Stdout: "devices:\n  - index: 0\n    status: UP\n    type: mdt\n    name: " + dev + "\n    uuid: " + dev + "_UUID\n    refcount: 2\n"},
		{Args: []string{"list_param", "mdd.*"}, Stdout: mdd + "\n"},
		{Args: []string{"list_param", "mdd/*/changelog_ma*"}, Stdout: mdd + ".changelog_mask\n" + mdd + ".changelog_max_idle_indexes\n" +
			mdd + ".changelog_max_idle_time\n" + mdd + ".changelog_max_records\n"},
		{Args: []string{"list_param", "-R", "mdd"}, Stdout: "mdd\n" + mdd + "\n" + strings.Join(leaves, "")},
		{Args: []string{"list_param", "-D", "-R", "*"}, Stdout: "mdd\n" + mdd + "\nnodemap\nnodemap.default\n"},
		{Args: []string{"list_param", "nodemap.active", "nope.*"}, Code: 2, Stdout: "nodemap.active\n",
			Stderr: "error: list_param: listing 'nope.*': No such file or directory\n"},
		{Args: []string{"list_param"}, Code: 4, Stderr: "error: list_param: param_path missing\n", Stdout: "re:.*\nusage: list_param \\[--only-dir\\|-D\\] \\[--recursive\\|-R\\] <param_path1 param_path2 \\.\\.\\.>\n"},
		{Args: []string{"get_param", "-N", "nodemap.*"}, Stdout: "nodemap.active\n"},
	})
}

// TestCompletionLive completes live names from the server, and offers
// nothing, quietly, when no server answers.
func TestCompletionLive(t *testing.T) {
	s := clitest.StartServer(t)
	dev := s.Device
	if _, err := s.MDT().Log().Register(store.RegisterOptions{Name: "audit"}); err != nil {
		t.Fatal(err)
	}
	if err := s.MDT().NodemapAdd("backup"); err != nil {
		t.Fatal(err)
	}
	const noFiles = ":4\n"
	s.Run(t, runBuf, []clitest.Step{
		{Args: []string{"__complete", "--device", ""}, Stdout: dev + "\n" + noFiles, Stderr: "re:.*"},
		{Args: []string{"__complete", "--device", dev, "changelog_deregister", ""}, Stdout: "cl1-audit\n" + noFiles, Stderr: "re:.*"},
		{Args: []string{"__complete", "get_param", "mdd.*.changelog_m"}, Stdout: noFiles, Stderr: "re:.*"},
		{Args: []string{"__complete", "get_param", "mdd." + dev + ".changelog_mas"}, Stdout: "mdd." + dev + ".changelog_mask\n" + noFiles, Stderr: "re:.*"},
		{Args: []string{"__complete", "get_param", "mdd." + dev + ".changelog_max_idle_t"}, Stdout: "mdd." + dev + ".changelog_max_idle_time\n" + noFiles, Stderr: "re:.*"},
		{Args: []string{"__complete", "set_param", "nodemap.act"}, Stdout: "nodemap.active=\n:6\n", Stderr: "re:.*"},
		{Args: []string{"__complete", "nodemap_modify", "--name", "b"}, Stdout: "backup\n" + noFiles, Stderr: "re:.*"},
		{Args: []string{"__complete", "nodemap", "del", ""}, Stdout: "default\nbackup\n" + noFiles, Stderr: "re:.*"},
		{Args: []string{"__complete", "list_param", "nodemap.backup.au"}, Stdout: "nodemap.backup.audit_mode\n" + noFiles, Stderr: "re:.*"},
	})

	// No server: nothing offered, no error, exit 0.
	dead := "unix:" + filepath.Join(t.TempDir(), "none.sock")
	for _, args := range [][]string{{"__complete", "--server", dead, "get_param", "mdd."}, {"__complete", "--server", dead, "--device", ""}} {
		var out, errb bytes.Buffer
		code := run(args, &out, &errb)
		if code != 0 || out.String() != noFiles || strings.Contains(errb.String(), "rror") {
			t.Errorf("%q with no server: exit %d, stdout %q, stderr %q", args, code, out.String(), errb.String())
		}
	}
}
