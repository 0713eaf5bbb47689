package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	mdtv1 "github.com/fidlog/fidlog/proto/lustre/mdt/v1"
)

// stuckNS is a server that takes calls and never answers StatFid.
type stuckNS struct {
	mdtv1.UnimplementedNamespaceServiceServer
}

func (stuckNS) StatFid(ctx context.Context, _ *mdtv1.StatFidRequest) (*mdtv1.StatFidResponse, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// A server that is up but does not answer fails "mdc mount" after
// mountRPCTimeout, before anything is mounted, instead of hanging.
func TestMountServerNotAnswering(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "s.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	mdtv1.RegisterNamespaceServiceServer(srv, stuckNS{})
	go srv.Serve(lis)
	defer srv.Stop()
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	defer func(d time.Duration) { mountRPCTimeout = d }(mountRPCTimeout)
	mountRPCTimeout = 300 * time.Millisecond

	var out, errb bytes.Buffer
	done := make(chan int, 1)
	go func() { done <- runBuf([]string{"--server", "unix:" + sock, "mount", mnt}, &out, &errb) }()
	select {
	case rc := <-done:
		if rc == 0 || !strings.Contains(errb.String(), "cannot reach the MDT") {
			t.Fatalf("rc %d, stderr %q: want a failure naming the unreachable MDT", rc, errb.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("mdc mount still waiting for a server that never answers")
	}
}
