package clitest

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/fidlog/fidlog/mdt"
)

// MDT returns the server's MDT, to set up state directly in tests.
func (s *Server) MDT() *mdt.MDT { return s.m }

// Step is one command line run and what it must produce. Stdout and
// Stderr are compared exactly unless they start with "re:", in which case
// the rest is a regular expression that must match the whole output.
type Step struct {
	Args           []string
	Code           int
	Stdout, Stderr string
}

// RunFunc is a command's run(args, stdout, stderr) int.
type RunFunc func(args []string, stdout, stderr *bytes.Buffer) int

// Run runs each step in order with --server pointing at s (prepended to
// the arguments) and checks exit status and output.
func (s *Server) Run(t *testing.T, run RunFunc, steps []Step) {
	t.Helper()
	for _, st := range steps {
		var out, errb bytes.Buffer
		args := append([]string{"--server", s.Target}, st.Args...)
		code := run(args, &out, &errb)
		name := strings.Join(st.Args, " ")
		if code != st.Code {
			t.Errorf("%s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", name, code, st.Code, out.String(), errb.String())
		}
		check(t, name, "stdout", out.String(), st.Stdout)
		check(t, name, "stderr", errb.String(), st.Stderr)
	}
}

func check(t *testing.T, name, what, got, want string) {
	t.Helper()
	if re, ok := strings.CutPrefix(want, "re:"); ok {
		if !regexp.MustCompile(`\A(?s:` + re + `)\z`).MatchString(got) {
			t.Errorf("%s: %s does not match %q:\n%s", name, what, re, got)
		}
		return
	}
	if got != want {
		t.Errorf("%s: %s:\n got: %q\nwant: %q", name, what, got, want)
	}
}

// CheckExamples fails for every command of root (root included; cobra's
// own help and completion commands excepted) whose --help has no
// "Examples:" section naming the command.
func CheckExamples(t *testing.T, root *cobra.Command) {
	t.Helper()
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Name() == "help" || c.Name() == "completion" || c.Hidden {
			return
		}
		var out bytes.Buffer
		c.SetOut(&out)
		if err := c.Help(); err != nil {
			t.Fatal(err)
		}
		_, ex, ok := strings.Cut(out.String(), "\nExamples:\n")
		if !ok || !strings.Contains(ex, "  "+root.Name()) {
			t.Errorf("%s --help has no Examples: section with a %s command line:\n%s", c.CommandPath(), root.Name(), out.String())
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
}

// ManDir is the repository's man page tree (man1/, man8/: the layout of
// /usr/local/share/man), from a cmd/<binary> package's tests.
const ManDir = "../../docs/man"

// ManUpdateEnv names the variable that makes CheckManPages rewrite the
// pages instead of comparing them.
const ManUpdateEnv = "FIDLOG_UPDATE_MAN"

// manDate is the date in every page's header: fixed, so that pages only
// change when the commands do.
var manDate = time.Date(2026, time.November, 1, 0, 0, 0, 0, time.UTC)

// CheckManPages generates the man pages of root and its commands (cobra's
// doc.GenManTree, section section) and fails if they differ from the
// committed ones in ManDir, or if ManDir holds pages of root that no
// command makes. With FIDLOG_UPDATE_MAN=1 it writes them instead.
func CheckManPages(t *testing.T, root *cobra.Command, section string) {
	t.Helper()
	root.DisableAutoGenTag = true
	tmp := t.TempDir()
	hdr := &doc.GenManHeader{Title: strings.ToUpper(root.Name()), Section: section, Date: &manDate, Source: "fidlog", Manual: "fidlog manual"}
	if err := doc.GenManTree(root, hdr, tmp); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(ManDir, "man"+section)
	gen, _ := filepath.Glob(filepath.Join(tmp, root.Name()+"*."+section))
	have, _ := filepath.Glob(filepath.Join(dir, root.Name()+"*."+section))
	haveSet := map[string]bool{}
	for _, p := range have {
		// lfs's pages only, not lfs-foo's of another binary: every page of
		// root is root.<s> or root-<cmd>.<s>.
		if b := filepath.Base(p); b == root.Name()+"."+section || strings.HasPrefix(b, root.Name()+"-") {
			haveSet[b] = true
		}
	}
	update := os.Getenv(ManUpdateEnv) == "1"
	if update {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for b := range haveSet {
			os.Remove(filepath.Join(dir, b))
		}
	}
	for _, p := range gen {
		b := filepath.Base(p)
		want, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if update {
			if err := os.WriteFile(filepath.Join(dir, b), want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(filepath.Join(dir, b))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("docs/man/man%s/%s is missing or out of date with the command's help; regenerate: %s=1 go test ./cmd/%s -run TestManPages", section, b, ManUpdateEnv, root.Name())
		}
		delete(haveSet, b)
	}
	if !update {
		for b := range haveSet {
			t.Errorf("docs/man/man%s/%s belongs to no command; regenerate: %s=1 go test ./cmd/%s -run TestManPages", section, b, ManUpdateEnv, root.Name())
		}
	}
}
