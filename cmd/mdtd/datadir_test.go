package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// mdtdBinary builds mdtd once per test run.
func mdtdBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mdtdbin")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "mdtd")
		if out, err := exec.Command("go", "build", "-o", builtBin, ".").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// startBinary runs the mdtd binary with args until its serving line and
// returns the process and that line.
func startBinary(t *testing.T, args ...string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(mdtdBinary(t), args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("mdtd exited before serving")
			}
			if strings.Contains(l, "msg=serving") {
				go func() {
					for range lines {
					}
				}()
				return cmd, l
			}
		case <-timeout:
			t.Fatal("no serving line")
		}
	}
}

// TestDataDirHeld starts a second mdtd on the data directory of a running
// one: one line naming the holder's pid, exit 1, the first one untouched.
func TestDataDirHeld(t *testing.T) {
	dir := shortTemp(t)
	data := filepath.Join(dir, "data")
	first, _ := startBinary(t, "--data", data, "--listen", "", "--socket", filepath.Join(dir, "a.sock"))

	var out, errb bytes.Buffer
	code := runContext(context.Background(), []string{"--data", data, "--listen", "", "--socket", filepath.Join(dir, "b.sock")}, &out, &errb)
	want := fmt.Sprintf("mdtd: data directory '%s' is in use by another mdtd (pid %d)\n", data, first.Process.Pid)
	if code != exitError || errb.String() != want {
		t.Fatalf("second mdtd = %d, stderr %q; want %d, %q", code, errb.String(), exitError, want)
	}
	if _, err := os.Stat(filepath.Join(data, "LOCK")); err != nil {
		t.Fatalf("the holder's data directory was touched: %v", err)
	}
}

// TestFailedStartLeavesNoDataDir fails starts after the store was made
// (the TCP address is taken): the data directory, and the parents the
// start created, are gone; a directory that existed empty is empty again;
// one that held a store keeps it.
func TestFailedStartLeavesNoDataDir(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := shortTemp(t)
	fail := func(data string) {
		t.Helper()
		var out, errb bytes.Buffer
		args := []string{"--data", data, "--listen", busy.Addr().String(), "--insecure", "--socket", filepath.Join(dir, "s.sock")}
		if code := runContext(context.Background(), args, &out, &errb); code != exitError || !strings.Contains(errb.String(), "address already in use") {
			t.Fatalf("mdtd = %d, stderr %q; want exit 1, address in use", code, errb.String())
		}
	}

	fail(filepath.Join(dir, "new", "data"))
	if _, err := os.Stat(filepath.Join(dir, "new")); !os.IsNotExist(err) {
		t.Errorf("failed start left %s/new behind (stat: %v)", dir, err)
	}

	empty := filepath.Join(dir, "empty")
	os.Mkdir(empty, 0o700)
	fail(empty)
	if ents, err := os.ReadDir(empty); err != nil || len(ents) != 0 {
		t.Errorf("empty data directory now holds %v (%v)", ents, err)
	}

	// A real store stays.
	used := filepath.Join(dir, "used")
	_, _, stop := start(t, "--data", used, "--listen", "127.0.0.1:0", "--insecure", "--socket", filepath.Join(dir, "u.sock"))
	stop()
	fail(used)
	if _, err := os.Stat(filepath.Join(used, "LOCK")); err != nil {
		t.Errorf("existing store damaged: %v", err)
	}
}

// TestSdNotify runs mdtd as systemd's Type=notify does: NOTIFY_SOCKET
// names a datagram socket; mdtd sends READY=1 once it serves and
// STOPPING=1 on SIGTERM.
func TestSdNotify(t *testing.T) {
	dir := shortTemp(t)
	sockPath := filepath.Join(dir, "notify")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sockPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cmd := exec.Command(mdtdBinary(t), "--data", filepath.Join(dir, "data"), "--listen", "", "--socket", filepath.Join(dir, "s.sock"))
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sockPath)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	read := func() string {
		t.Helper()
		ln.SetReadDeadline(time.Now().Add(20 * time.Second))
		buf := make([]byte, 4096)
		n, err := ln.Read(buf)
		if err != nil {
			t.Fatalf("no notification: %v", err)
		}
		return string(buf[:n])
	}
	want := fmt.Sprintf("READY=1\nSTATUS=serving lustre-MDT0000\nMAINPID=%d\n", cmd.Process.Pid)
	if got := read(); got != want {
		t.Fatalf("first notification %q, want %q", got, want)
	}
	// READY means serving: the socket answers now.
	c, err := net.Dial("unix", filepath.Join(dir, "s.sock"))
	if err != nil {
		t.Fatalf("READY sent before serving: %v", err)
	}
	c.Close()
	cmd.Process.Signal(syscall.SIGTERM)
	if got := read(); got != "STOPPING=1\nSTATUS=shutting down\n" {
		t.Fatalf("second notification %q", got)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v", err)
	}
}
