package integration

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// readmeCommand is one "$ command" line of a README shell block and the
// output printed under it.
type readmeCommand struct {
	line int // in README.md
	cmd  string
	want []string
}

// readmeCommands returns the commands of every indented block of
// README.md that starts with "$ ", in order.
func readmeCommands(readme string) []readmeCommand {
	lines := strings.Split(readme, "\n")
	var out []readmeCommand
	inBlock, shell := false, false
	for i, l := range lines {
		nextIndented := i+1 < len(lines) && strings.HasPrefix(lines[i+1], "    ")
		switch {
		case l == "":
			// A blank line continues a block when indented lines follow.
			if !nextIndented {
				inBlock, shell = false, false
			} else if shell {
				out[len(out)-1].want = append(out[len(out)-1].want, "")
			}
			continue
		case !strings.HasPrefix(l, "    "):
			inBlock, shell = false, false
			continue
		case !inBlock:
			// A code block follows a blank line (an indented line right
			// under text continues a list item); a shell block starts
			// with "$ ".
			inBlock = true
			shell = i > 0 && lines[i-1] == "" && strings.HasPrefix(l, "    $ ")
		}
		if !shell {
			continue
		}
		if c, ok := strings.CutPrefix(l[4:], "$ "); ok {
			out = append(out, readmeCommand{line: i + 1, cmd: c})
			continue
		}
		out[len(out)-1].want = append(out[len(out)-1].want, l[4:])
	}
	return out
}

var (
	readmeTimeRE = regexp.MustCompile(`\d\d:\d\d:\d\d\.\d{9} \d{4}\.\d\d\.\d\d`)
	readmeIdleRE = regexp.MustCompile(`\(\d+\)`)
)

// normalize makes output comparable: record times and idle seconds are
// placeholders, trailing blanks and blank lines go.
func normalize(lines []string) []string {
	var out []string
	for _, l := range lines {
		l = readmeTimeRE.ReplaceAllString(l, "HH:MM:SS.NNNNNNNNN YYYY.MM.DD")
		l = readmeIdleRE.ReplaceAllString(l, "(N)")
		out = append(out, strings.TrimRight(l, " \t"))
	}
	for len(out) > 0 && out[len(out)-1] == "" {
		out = out[:len(out)-1]
	}
	return out
}

// matchOutput compares got with want, where a "..." line in want stands
// for any number of lines.
func matchOutput(want, got []string) bool {
	if len(want) == 0 {
		return len(got) == 0
	}
	if want[0] == "..." {
		for i := 0; i <= len(got); i++ {
			if matchOutput(want[1:], got[i:]) {
				return true
			}
		}
		return false
	}
	return len(got) > 0 && want[0] == got[0] && matchOutput(want[1:], got[1:])
}

// TestREADME runs every shell block of README.md, as written, in order,
// against a real mdtd (the clients find it through MDT_SERVER), and
// compares what each command prints (stdout and stderr, as a terminal
// shows them) with the README; record times and idle seconds are the
// only placeholders. It also checks that the README's Go consumer is
// ExampleClient_Follow.
func TestREADME(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the README against real processes")
	}
	if os.Geteuid() != 0 {
		t.Skip("SKIP: the README's walkthrough asserts another uid (mdc --uid 500), which mdtd allows root only; run as root")
	}
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	checkGoBlock(t, readme)

	cmds := readmeCommands(readme)
	if n := len(regexp.MustCompile(`(?m)^    \$ `).FindAllString(readme, -1)); len(cmds) != n || n < 30 {
		t.Fatalf("parsed %d README commands of %d \"    $ \" lines", len(cmds), n)
	}
	// The socket sits where uid 65534 may reach it: the Security section
	// runs commands as nobody.
	s := StartServerAt(t, filepath.Join(shortTempDir(t), "data"), filepath.Join(openDir(t), "mdtd.sock"))
	work := t.TempDir()
	env := append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "MDT_SERVER=unix:"+s.Socket, "HOME="+work)
	for _, c := range cmds {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		cmd := exec.CommandContext(ctx, "bash", "-c", c.cmd)
		cmd.Dir, cmd.Env = work, env
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		cancel()
		got := normalize(strings.Split(out.String(), "\n"))
		want := normalize(c.want)
		if err != nil || !matchOutput(want, got) {
			t.Fatalf("README.md:%d: $ %s\nexit: %v\nwant:\n%s\ngot:\n%s", c.line, c.cmd, err,
				strings.Join(want, "\n"), strings.Join(got, "\n"))
		}
	}
}

// checkGoBlock: the README's ```go block is the part of
// ExampleClient_Follow between its README markers.
func checkGoBlock(t *testing.T, readme string) {
	t.Helper()
	src, err := os.ReadFile("../api/client/example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(src), "\t// README: begin\n")
	body, _, ok2 := strings.Cut(rest, "\t// README: end\n")
	if !ok || !ok2 {
		t.Fatal("api/client/example_test.go lost its README markers")
	}
	var b strings.Builder
	for _, l := range strings.SplitAfter(body, "\n") {
		b.WriteString(strings.TrimPrefix(l, "\t"))
	}
	_, rest, ok = strings.Cut(readme, "```go\n")
	block, _, ok2 := strings.Cut(rest, "```\n")
	if !ok || !ok2 {
		t.Fatal("README.md has no ```go block")
	}
	if block != b.String() {
		t.Errorf("README's Go consumer differs from ExampleClient_Follow:\nREADME:\n%s\nexample:\n%s", block, b.String())
	}
}
