package clitest

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// InProcEnv, when set to 1, makes RunScripts use an in-process server (mdt
// + api) instead of the mdtd binary. Without it, scripts are skipped while
// cmd/mdtd does not build.
const InProcEnv = "FIDLOG_INPROC_SERVER"

// RunScripts runs the testscript scripts in dir. Each script gets a fresh
// server (a real mdtd on 127.0.0.1:0 and a temporary data directory),
// $MDT_SERVER pointing at it, $MDT naming its device, and the lfs, lctl
// and mdc binaries, built from this module, on $PATH.
func RunScripts(t *testing.T, dir string) {
	root := moduleRoot(t)
	bin := t.TempDir()
	build := func(pkgs ...string) error {
		cmd := exec.Command("go", append([]string{"build", "-o", bin + string(filepath.Separator)}, pkgs...)...)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("go build %s: %v\n%s", strings.Join(pkgs, " "), err, out)
		}
		return nil
	}
	if err := build("./cmd/lfs", "./cmd/lctl", "./cmd/mdc"); err != nil {
		t.Fatal(err)
	}
	inproc := os.Getenv(InProcEnv) == "1"
	mdtd := filepath.Join(bin, "mdtd")
	if !inproc {
		if err := build("./cmd/mdtd"); err != nil {
			t.Skipf("skipping scripts: cmd/mdtd does not build yet (set %s=1 to run them against an in-process server):\n%v", InProcEnv, err)
		}
	}
	testscript.Run(t, testscript.Params{
		Dir: dir,
		Setup: func(env *testscript.Env) error {
			env.Setenv("PATH", bin+string(os.PathListSeparator)+env.Getenv("PATH"))
			data := filepath.Join(env.WorkDir, ".mdt")
			if inproc {
				s, err := NewServer(data)
				if err != nil {
					return err
				}
				env.Defer(s.Close)
				env.Setenv("MDT_SERVER", s.Target)
				env.Setenv("MDT", s.Device)
				return nil
			}
			return startMDTD(env, mdtd, data)
		},
	})
}

var (
	sockRE   = regexp.MustCompile(`socket=("?)([^\s"]+)`)
	deviceRE = regexp.MustCompile(`(?:device|mdt)=("?)([A-Za-z0-9_]+-MDT[0-9a-fA-F]{4})`)
)

// startMDTD runs the mdtd binary on data, serving a unix socket in a short
// temporary directory (the kernel tells it who each command is), and
// waits for the log line that gives the socket ("socket=PATH").
func startMDTD(env *testscript.Env, mdtd, data string) error {
	if err := os.MkdirAll(data, 0o700); err != nil {
		return err
	}
	help, _ := exec.Command(mdtd, "--help").CombinedOutput()
	dataFlag := ""
	for _, f := range []string{"--data-dir", "--data", "--dir", "--datadir"} {
		if regexp.MustCompile(regexp.QuoteMeta(f) + `\b[^-]`).Match(help) {
			dataFlag = f
			break
		}
	}
	if dataFlag == "" {
		return fmt.Errorf("mdtd --help names no data directory flag:\n%s", help)
	}
	logPath := filepath.Join(env.WorkDir, ".mdtd.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	sockDir, err := os.MkdirTemp("", "fls")
	if err != nil {
		logf.Close()
		return err
	}
	env.Defer(func() { os.RemoveAll(sockDir) })
	cmd := exec.Command(mdtd, dataFlag, data, "--socket", filepath.Join(sockDir, "mdtd.sock"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	env.Defer(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		logf.Close()
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		addr, dev := scanLog(logPath)
		if addr != "" {
			if dev == "" {
				dev = "lustre-MDT0000"
			}
			env.Setenv("MDT_SERVER", "unix:"+addr)
			env.Setenv("MDT", dev)
			return nil
		}
		select {
		case err := <-exited:
			exited <- err
			log, _ := os.ReadFile(logPath)
			return fmt.Errorf("mdtd exited (%v) before listening:\n%s", err, log)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logPath)
			return fmt.Errorf("mdtd logged no socket= path within 30s:\n%s", log)
		}
	}
}

func scanLog(path string) (addr, dev string) {
	f, err := os.Open(path)
	if err != nil {
		return "", ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if m := deviceRE.FindStringSubmatch(line); m != nil && dev == "" {
			dev = m[2]
		}
		if m := sockRE.FindStringSubmatch(line); m != nil && addr == "" {
			addr = m[2]
		}
	}
	return addr, dev
}

// moduleRoot finds the directory holding go.mod above the working
// directory.
func moduleRoot(t *testing.T) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}
