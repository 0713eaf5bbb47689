package gctune

import (
	"os"
	"os/exec"
	"runtime/debug"
	"strings"
	"testing"
)

func TestApply(t *testing.T) {
	if os.Getenv("GCTUNE_CHILD") != "" {
		got := Apply()
		now := debug.SetGCPercent(-1)
		if got != now {
			t.Fatalf("Apply returned %d, runtime has %d", got, now)
		}
		t.Logf("percent=%d", now)
		return
	}
	for _, c := range []struct{ env, want string }{{"", "percent=400"}, {"GOGC=150", "percent=150"}} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestApply$", "-test.v")
		cmd.Env = append(os.Environ(), "GCTUNE_CHILD=1")
		if c.env != "" {
			cmd.Env = append(cmd.Env, c.env)
		} else {
			cmd.Env = append(cmd.Env, "GOGC=")
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%q: %v\n%s", c.env, err, out)
		}
		if !strings.Contains(string(out), c.want) {
			t.Errorf("%q: want %s in\n%s", c.env, c.want, out)
		}
	}
}
