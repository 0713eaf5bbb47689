package main

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fidlog/fidlog/changelog"
)

// killLoops is how many times the kill -9 tests kill the exporter under
// load: 3 by default, FIDLOG_EXPORT_KILL_LOOPS (e.g. 20) for a longer run.
func killLoops() int { return envInt("FIDLOG_EXPORT_KILL_LOOPS", 3) }

// killUnderLoad runs the exporter with args while a load writes records,
// kills it with SIGKILL loops times at random moments after it made
// progress, then lets a last exporter catch up and stops it with SIGTERM.
// It returns the last index the MDT wrote.
func killUnderLoad(t *testing.T, s *mdtServer, user string, args []string) changelog.Index {
	t.Helper()
	c := s.client(t)
	ld := startLoad(t, c, "/load")
	for i := range killLoops() {
		before := userIndex(t, s, c, user)
		x := startProc(t, "fidlog-export", args...)
		waitFor(t, 60*time.Second, "the exporter clearing", func() bool {
			select {
			case <-x.done:
				t.Fatalf("exporter exited:\n%s", x.Output())
			default:
			}
			return userIndex(t, s, c, user) > before
		})
		time.Sleep(time.Duration(rand.IntN(300)) * time.Millisecond) // a random moment of the batch cycle
		x.Kill()
		t.Logf("loop %d: killed at cleared index %d", i+1, userIndex(t, s, c, user))
	}
	n := ld.Stop()
	want := currentIndex(t, s, c)
	t.Logf("load created %d files; last index %d", n, want)
	x := startProc(t, "fidlog-export", args...)
	waitFor(t, 60*time.Second, "the exporter catching up", func() bool { return userIndex(t, s, c, user) >= want })
	if code := x.Stop(); code != exitOK {
		t.Fatalf("exporter exit %d after SIGTERM:\n%s", code, x.Output())
	}
	return want
}

// TestKill9FileSink: the exporter killed with SIGKILL under load leaves
// every record in the files exactly once, in index order, with no
// half-written line, across rotations and gzip of closed files.
func TestKill9FileSink(t *testing.T) {
	s := startMDT(t)
	out := filepath.Join(shortTempDir(t), "audit")
	args := []string{"--mdt", s.target(), "--user", "audit", "--interval", "50ms", "--batch", "300",
		"--sink", "file://" + out + "?format=ndjson&size=32K&gzip=true"}
	want := killUnderLoad(t, s, "audit", args)
	lines := dirLines(t, out, ".ndjson")
	checkExactlyOnce(t, formats["ndjson"], lines, map[string]changelog.Index{s.device: want})
	ents, _ := os.ReadDir(out)
	gz := 0
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".ndjson.gz") {
			gz++
		}
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("leftover %s", e.Name())
		}
	}
	if gz == 0 {
		t.Errorf("no gzipped closed file among %d files", len(ents))
	}
	t.Logf("%d records in %d files (%d gzipped)", len(lines), len(ents), gz)
}
