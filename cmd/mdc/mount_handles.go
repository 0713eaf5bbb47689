package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"

	"github.com/fidlog/fidlog/api/client"
	"github.com/fidlog/fidlog/fid"
	commonv1 "github.com/fidlog/fidlog/proto/lustre/common/v1"
	mdtv1 "github.com/fidlog/fidlog/proto/lustre/mdt/v1"
)

// Open files across a restart of the server. Server handles live in
// mdtd's memory: after a restart it knows none of them, but it keeps the
// objects of unlinked open files (orphans) for mdd.<dev>.orphan_grace
// seconds. The mount keeps every open file's FID, server open flags and
// opener, and re-establishes the handle with OpenFid(reopen_handle) as
// that opener: for all of them whenever the connection becomes ready
// again (keepHandles), and for one of them when a call on it finds its
// handle unknown (EBADF). A reopen records nothing; the last close then
// records CLOSE as the process that opened.

// fileHandle is one open file: its server handle and who opened it (a
// FUSE release carries no caller, so the close is sent as the opener).
type fileHandle struct {
	fid    fid.FID
	flags  uint32 // server open flags (a reopen keeps them for CLOSE's flags)
	opener caller
	append bool
	wrote  atomic.Bool // the close updates the times (mountcache.go)

	mu     sync.Mutex
	h      uint64 // guarded by mu
	closed bool   // guarded by mu
}

// handles is the set of open files of a mount.
type handles struct {
	mu   sync.Mutex
	open map[*fileHandle]struct{}
}

// newHandle makes and tracks the file handle of a successful open.
func (m *mountFS) newHandle(h uint64, f fid.FID, openFlags uint32, c caller, appendMode bool) *fileHandle {
	fh := &fileHandle{h: h, fid: f, flags: openFlags, opener: c, append: appendMode}
	m.files.mu.Lock()
	if m.files.open == nil {
		m.files.open = make(map[*fileHandle]struct{})
	}
	m.files.open[fh] = struct{}{}
	m.files.mu.Unlock()
	return fh
}

func (fh *fileHandle) handle() uint64 {
	fh.mu.Lock()
	defer fh.mu.Unlock()
	return fh.h
}

// reopen re-establishes fh's server handle if it is still stale (the
// server may have it still: then OpenFid returns it unchanged).
func (m *mountFS) reopen(ctx context.Context, fh *fileHandle, stale uint64) error {
	fh.mu.Lock()
	defer fh.mu.Unlock()
	if fh.h != stale || fh.closed {
		return nil // done meanwhile
	}
	cctx, cancel := fh.opener.call(ctx)
	defer cancel()
	r, err := m.ns.OpenFid(cctx, &mdtv1.OpenFidRequest{Fid: client.FIDToPB(fh.fid), Flags: fh.flags, ReopenHandle: stale})
	if err != nil {
		return err
	}
	fh.h = r.GetHandle()
	return nil
}

// withHandle calls fn with fh's server handle; if the server does not know
// the handle (EBADF: it restarted), it reopens the file and calls fn once
// more.
func (m *mountFS) withHandle(ctx context.Context, fh *fileHandle, fn func(h uint64) error) error {
	h := fh.handle()
	err := fn(h)
	if errno(err) != syscall.EBADF {
		return err
	}
	if rerr := m.reopen(ctx, fh, h); rerr != nil {
		return rerr
	}
	return fn(fh.handle())
}

// release closes fh on the server as its opener. A file the server no
// longer has (removed when orphan_grace ended before the mount could
// reopen it) counts as closed.
func (m *mountFS) release(ctx context.Context, fh *fileHandle) syscall.Errno {
	fh.mu.Lock()
	closed := fh.closed
	fh.mu.Unlock()
	if closed {
		return 0
	}
	err := m.withHandle(ctx, fh, func(h uint64) error {
		cctx, cancel := fh.opener.call(ctx)
		defer cancel()
		_, err := m.ns.Close(cctx, &mdtv1.CloseRequest{Handle: h})
		return err
	})
	if e := errno(err); e != 0 && e != syscall.ENOENT {
		return e
	}
	fh.mu.Lock()
	fh.closed = true
	fh.mu.Unlock()
	m.files.mu.Lock()
	delete(m.files.open, fh)
	m.files.mu.Unlock()
	return 0
}

// keepHandles re-establishes the open files' handles each time the
// connection to the server becomes ready again, and keeps the connection
// up (an idle channel does not reconnect by itself), until ctx ends.
func (m *mountFS) keepHandles(ctx context.Context, cc *grpc.ClientConn, logw io.Writer) {
	was := cc.GetState()
	for {
		if was == connectivity.Idle {
			cc.Connect()
		}
		if !cc.WaitForStateChange(ctx, was) {
			return
		}
		s := cc.GetState()
		if s == connectivity.Ready && was != connectivity.Ready {
			m.reopenAll(ctx, logw)
		}
		was = s
	}
}

// reopenAll re-establishes every open file's handle (a no-op for handles
// the server still has).
func (m *mountFS) reopenAll(ctx context.Context, logw io.Writer) {
	m.files.mu.Lock()
	fhs := make([]*fileHandle, 0, len(m.files.open))
	for fh := range m.files.open {
		fhs = append(fhs, fh)
	}
	m.files.mu.Unlock()
	for _, fh := range fhs {
		if err := m.reopen(ctx, fh, fh.handle()); err != nil && ctx.Err() == nil {
			fmt.Fprintf(logw, "mdc mount: cannot reopen %v after reconnecting: %v\n", fh.fid, err)
		}
	}
}

// orphaned reports whether the kernel dropped every name of n (unlinked
// while open): path-based calls cannot reach it, calls by FID can.
func (n *node) orphaned() bool {
	if n.fid == fid.Root {
		return false
	}
	_, p := n.Parent()
	return p == nil
}

// orphanFID is n's FID for the calls that take one instead of a path when
// n is orphaned (fgetxattr and the like on an unlinked open file: its path
// would name the root), else nil.
func (n *node) orphanFID() *commonv1.Fid {
	if !n.orphaned() {
		return nil
	}
	return client.FIDToPB(n.fid)
}
