package main

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fidlog/fidlog/cmd/internal/cli"
	"github.com/fidlog/fidlog/mdt"
)

// lockedBuffer is a bytes.Buffer safe for one writer and one poller.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestFollow: --follow survives idle heartbeats, prints records as they
// come, and ends with status 0 when interrupted.
func TestFollow(t *testing.T) {
	s := setup(t)
	var out, errb lockedBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- cli.ExecuteContext(ctx, newRootCmd(&out, &errb), []string{"--server", s.Target, "changelog", "-f", s.Device, "5"}, &errb, cli.UsageLustre)
	}()
	waitFor(t, "record 5", func() bool { return strings.Contains(out.String(), "07RMDIR") })
	// Several heartbeat intervals (200ms in clitest) pass idle.
	time.Sleep(time.Second)
	if _, err := s.MDT().Mkdir(context.Background(), mdt.Cred{}, "late", 0o755); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "record 6", func() bool { return strings.Contains(out.String(), "\n6 02MKDIR ") })
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d, want 0; stderr %q", code, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("follow did not end after cancel")
	}
	if errb.String() != "" {
		t.Errorf("stderr %q", errb.String())
	}
}
