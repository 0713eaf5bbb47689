package integration

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	changelogv1 "github.com/fidlog/fidlog/proto/lustre/changelog/v1"
	mdtv1 "github.com/fidlog/fidlog/proto/lustre/mdt/v1"
)

// TestFollowSurvivesRestart: lfs changelog --follow outlives a restart
// of mdtd, as Lustre's does an MDS failover: it says once on stderr that
// it lost the server, reconnects, and goes on after the last record it
// printed (no record twice, none missing); SIGINT still ends it with 0.
func TestFollowSurvivesRestart(t *testing.T) {
	s := StartServer(t, shortTempDir(t))
	c := Dial(t, s, 0, 0)
	ctx := context.Background()
	if _, err := c.CL.Register(c.Ctx(ctx), &changelogv1.RegisterRequest{Device: device}); err != nil {
		t.Fatal(err)
	}
	mkdir := func(c *Conn, name string) {
		t.Helper()
		if _, err := c.NS.Mkdir(c.Ctx(ctx), &mdtv1.MkdirRequest{Path: []byte(name), Mode: 0o755}); err != nil {
			t.Fatalf("mkdir %s: %v", name, err)
		}
	}
	mkdir(c, "before")

	cmd := exec.Command(filepath.Join(bin, "lfs"), "changelog", "--follow", device)
	cmd.Env = append(os.Environ(), "MDT_SERVER=unix:"+s.Socket)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var lines []string
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			mu.Lock()
			lines = append(lines, sc.Text())
			mu.Unlock()
		}
	}()
	waitName := func(name string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			mu.Lock()
			n := len(lines)
			found := n > 0 && strings.HasSuffix(lines[n-1], " "+name)
			mu.Unlock()
			if found {
				return
			}
			if time.Now().After(deadline) {
				mu.Lock()
				defer mu.Unlock()
				t.Fatalf("no record of %s from lfs changelog --follow: %q\nstderr: %s", name, lines, errb.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitName("before")

	if err := s.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	time.Sleep(300 * time.Millisecond) // the follower finds the server gone
	s.Restart()
	c = Dial(t, s, 0, 0)
	mkdir(c, "after")
	waitName("after")

	_ = cmd.Process.Signal(syscall.SIGINT)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("lfs changelog --follow after SIGINT: %v\nstderr: %s", err, errb.String())
	}
	mu.Lock()
	defer mu.Unlock()
	for i, l := range lines {
		if n, err := strconv.Atoi(strings.Fields(l)[0]); err != nil || n != i+1 {
			t.Fatalf("line %d is record %q: records must follow each other once each:\n%s", i+1, l, strings.Join(lines, "\n"))
		}
	}
	if len(lines) != 2 || strings.Count(errb.String(), "reconnecting") != 1 || !strings.Contains(errb.String(), "lfs changelog: lost "+device) {
		t.Fatalf("lines %q, stderr %q: want 2 records and one notice of the lost server", lines, errb.String())
	}
}
