package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	changelogv1 "github.com/fidlog/fidlog/proto/lustre/changelog/v1"
	mdtv1 "github.com/fidlog/fidlog/proto/lustre/mdt/v1"
)

// TestStorageFailureExits: a write to the store that fails is fatal.
// The running mdtd's file-size limit is cut to one byte (setrlimit on the
// live process), so its next WAL write fails with EFBIG. mdtd must log
// the failure, remove its socket and exit with status 74 (a clean, logged
// shutdown; it used to recover the failure and serve on). No create is
// acknowledged after the failure, and after a restart with the limit gone
// every create acknowledged before it is there with its record.
func TestStorageFailureExits(t *testing.T) {
	s := StartServer(t, shortTempDir(t))
	c := Dial(t, s, 0, 0)
	ctx := context.Background()
	if _, err := c.CL.Register(c.Ctx(ctx), &changelogv1.RegisterRequest{Device: device}); err != nil {
		t.Fatalf("register: %v", err)
	}
	var acked []string
	create := func(p string) error {
		cctx, cancel := context.WithTimeout(c.Ctx(ctx), 10*time.Second)
		defer cancel()
		_, err := c.NS.Create(cctx, &mdtv1.CreateRequest{Path: []byte(p), Mode: 0o644, Exclusive: true})
		if err == nil {
			acked = append(acked, p)
		}
		return err
	}
	for i := range 10 {
		if err := create(fmt.Sprintf("before-%d", i)); err != nil {
			t.Fatalf("create before the fault: %v", err)
		}
	}

	var lim unix.Rlimit
	if err := unix.Prlimit(s.cmd.Process.Pid, unix.RLIMIT_FSIZE, nil, &lim); err != nil {
		t.Fatalf("prlimit: %v", err)
	}
	lim.Cur = 1
	if err := unix.Prlimit(s.cmd.Process.Pid, unix.RLIMIT_FSIZE, &lim, nil); err != nil {
		t.Fatalf("prlimit: %v", err)
	}
	var failed error
	for i := 0; i < 200 && failed == nil; i++ {
		failed = create(fmt.Sprintf("after-%d", i))
	}
	if failed == nil {
		t.Fatalf("200 creates succeeded with a 1-byte file size limit\n%s", s.Logs())
	}
	if code := exitCode(t, s, 30*time.Second); code != 74 {
		t.Fatalf("mdtd exit %d after a failed write (%v), want status 74\n%s", code, failed, s.Logs())
	}
	logs := s.Logs()
	if !strings.Contains(logs, "storage_failure_exit") || !strings.Contains(logs, "pebble_fatal") && !strings.Contains(logs, "wal_sync_failed") {
		t.Fatalf("the failure is not logged:\n%s", logs)
	}
	if _, err := os.Lstat(s.Socket); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket left behind after the exit: %v", err)
	}

	s.Restart()
	c = Dial(t, s, 0, 0)
	for _, p := range acked {
		if _, err := c.NS.Stat(c.Ctx(ctx), &mdtv1.StatRequest{Path: []byte(p)}); err != nil {
			t.Fatalf("acknowledged create %s lost after the storage failure: %v", p, err)
		}
	}
	gs, err := c.CL.GetState(c.Ctx(ctx), &changelogv1.GetStateRequest{Device: device})
	if err != nil {
		t.Fatal(err)
	}
	if gs.GetCurrentIndex() < uint64(len(acked)) {
		t.Fatalf("current index %d after restart, %d creates acknowledged", gs.GetCurrentIndex(), len(acked))
	}
}
