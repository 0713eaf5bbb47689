// Package clitest runs the command-line tools against real servers in
// tests: an in-process server (mdt + api on a unix socket) for table tests
// of run(), and testscript scripts that run the built binaries (lfs, lctl,
// mdc) against a real mdtd process.
package clitest

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fidlog/fidlog/api"
	"github.com/fidlog/fidlog/mdt"
)

// Server is an in-process MDT server listening on a unix socket.
type Server struct {
	// Target is what --server takes: "unix:<socket path>".
	Target string
	// Device is the served MDT, "lustre-MDT0000".
	Device string

	m   *mdt.MDT
	srv *api.Server
	lis net.Listener
	dir string
}

// StartServer starts an in-process server on a fresh data directory and
// stops it when the test ends.
func StartServer(t testing.TB) *Server {
	t.Helper()
	s, err := NewServer(t.TempDir())
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// NewServer starts an in-process server on dataDir. The socket lives in a
// short temporary directory (unix socket paths are limited to 107 bytes).
func NewServer(dataDir string) (*Server, error) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	m, err := mdt.Open(dataDir, &mdt.Options{Logger: logger})
	if err != nil {
		return nil, err
	}
	srv, err := api.New(m, api.Options{Logger: logger, HeartbeatInterval: 200 * time.Millisecond})
	if err != nil {
		m.Close()
		return nil, err
	}
	dir, err := os.MkdirTemp("", "fl")
	if err != nil {
		m.Close()
		return nil, err
	}
	sock := filepath.Join(dir, "mdt.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		m.Close()
		os.RemoveAll(dir)
		return nil, err
	}
	go srv.Serve(lis) //nolint:errcheck // returns nil after Stop
	return &Server{Target: "unix:" + sock, Device: m.Device(), m: m, srv: srv, lis: lis, dir: dir}, nil
}

// Close stops the server and closes the MDT.
func (s *Server) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.srv.Shutdown(ctx)
	s.m.Close()
	os.RemoveAll(s.dir)
}
