package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSystemdUnit checks dist/systemd/mdtd.service with systemd's own
// verifier (its ExecStart pointed at a built mdtd, its man: documentation
// looked up in the repository's docs/man): it must be Type=notify and
// verify without a complaint.
func TestSystemdUnit(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("SKIP: no systemd-analyze (apt-get install -y systemd man-db); dist/systemd/mdtd.service was not verified")
	}
	if _, err := exec.LookPath("man"); err != nil {
		t.Skip("SKIP: no man (apt-get install -y man-db); dist/systemd/mdtd.service was not verified")
	}
	unit, err := os.ReadFile("../../dist/systemd/mdtd.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\nType=notify\n", "\nExecStart=/usr/local/bin/mdtd --config /etc/fidlog/mdtd.toml\n", "\nDocumentation=man:mdtd(8)\n"} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("unit lacks %q", want)
		}
	}
	dir := t.TempDir()
	u := filepath.Join(dir, "mdtd.service")
	if err := os.WriteFile(u, []byte(strings.ReplaceAll(string(unit), "/usr/local/bin/mdtd", mdtdBinary(t))), 0o644); err != nil {
		t.Fatal(err)
	}
	man, err := filepath.Abs("../../docs/man")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(analyze, "verify", u)
	cmd.Env = append(os.Environ(), "MANPATH="+man)
	out, err := cmd.CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}
