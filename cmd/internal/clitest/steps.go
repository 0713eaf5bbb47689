package clitest

import (
	"bytes"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"

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
