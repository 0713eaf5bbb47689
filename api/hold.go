package api

import (
	"context"
	"sync/atomic"

	"google.golang.org/grpc/tap"

	"github.com/fidlog/fidlog/changelog/store"
	mdtv1 "github.com/fidlog/fidlog/proto/lustre/mdt/v1"
)

// Write RPCs are announced to the log's group commit (store.Log.Expect)
// from the moment the transport reads their headers until their handler
// returns, so that it holds a sync back while writers are on their way
// (changelog/store, "Held syncs"). Announced from the handler only, most
// of them were not seen: at 128 writers on 2 cores the requests wait for
// the CPU between the transport and the handler, and 4 groups in 5 were
// synced at once with ~1 create each. Announced from the transport, groups
// are held and an fsync is shared by more creates (same-run mdbench T1b on
// the shared machine: 49-54 creates per fsync at 128 writers against
// 35-45, 16 against 13.5-15 at 32, same CPU per create).

// writeMethods are the RPCs that may commit to the log.
var writeMethods = map[string]bool{
	mdtv1.NamespaceService_Mkdir_FullMethodName:       true,
	mdtv1.NamespaceService_Create_FullMethodName:      true,
	mdtv1.NamespaceService_Mknod_FullMethodName:       true,
	mdtv1.NamespaceService_Link_FullMethodName:        true,
	mdtv1.NamespaceService_Symlink_FullMethodName:     true,
	mdtv1.NamespaceService_Unlink_FullMethodName:      true,
	mdtv1.NamespaceService_Rmdir_FullMethodName:       true,
	mdtv1.NamespaceService_Rename_FullMethodName:      true,
	mdtv1.NamespaceService_Open_FullMethodName:        true,
	mdtv1.NamespaceService_OpenFid_FullMethodName:     true,
	mdtv1.NamespaceService_Close_FullMethodName:       true,
	mdtv1.NamespaceService_Write_FullMethodName:       true,
	mdtv1.NamespaceService_Setattr_FullMethodName:     true,
	mdtv1.NamespaceService_Setxattr_FullMethodName:    true,
	mdtv1.NamespaceService_Removexattr_FullMethodName: true,
}

// writer is one announced write RPC.
type writer struct {
	l    *store.Log
	done atomic.Bool
	stop func() bool // cancels the end-of-stream fallback
}

type writerKey struct{}

// announceWriter is the transport's tap: it announces a write RPC. The
// announcement ends when the handler returns (unaryInterceptor) or, for an
// RPC that never reaches it (aborted, reset by the client before its
// request arrived), when the stream ends.
func (s *Server) announceWriter(ctx context.Context, info *tap.Info) (context.Context, error) {
	if !writeMethods[info.FullMethodName] {
		return ctx, nil
	}
	w := &writer{l: s.m.Log()}
	w.l.Expect()
	w.stop = context.AfterFunc(ctx, w.end)
	return context.WithValue(ctx, writerKey{}, w), nil
}

// handled ends the announcement once the handler has returned.
func (w *writer) handled() {
	w.stop()
	w.end()
}

// end ends the announcement once.
func (w *writer) end() {
	if w.done.CompareAndSwap(false, true) {
		w.l.ExpectDone()
	}
}
