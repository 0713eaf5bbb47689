package api_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	"github.com/fidlog/fidlog/api"
	mdtv1 "github.com/fidlog/fidlog/proto/lustre/mdt/v1"
)

// TestWritersAnnounced: write RPCs are announced to the log's group commit
// while they are served (changelog/store "Held syncs"), and every
// announcement ends: after concurrent creates, failing creates, reads, a
// request refused by identification and cancelled requests none is left
// (a leaked one would hold every sync for its time limit from then on).
func TestWritersAnnounced(t *testing.T) {
	e := newEnv(t)
	c := e.local()
	register(t, c, "", "")
	ctx := ctxT(t)
	l := e.m.Log()

	var seen atomic.Int64
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if n := l.Announced(); n > seen.Load() {
				seen.Store(n)
			}
			time.Sleep(50 * time.Microsecond)
		}
	})
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := range 30 {
				p := []byte(fmt.Sprintf("w%d-%d", w, i))
				if _, err := c.Namespace.Create(ctx, &mdtv1.CreateRequest{Path: p, Mode: 0o644, Exclusive: true}); err != nil {
					t.Error(err)
					return
				}
				// Exists: fails in the handler.
				if _, err := c.Namespace.Create(ctx, &mdtv1.CreateRequest{Path: p, Mode: 0o644, Exclusive: true}); err == nil {
					t.Error("second exclusive create succeeded")
				}
				if _, err := c.Namespace.Stat(ctx, &mdtv1.StatRequest{Path: p}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	sampler.Wait()
	if seen.Load() == 0 {
		t.Fatal("no write RPC was ever announced")
	}

	// Refused before the handler: a malformed identity.
	bad := metadata.AppendToOutgoingContext(ctx, api.MDUID, "not-a-uid")
	if _, err := c.Namespace.Mkdir(bad, &mdtv1.MkdirRequest{Path: []byte("d"), Mode: 0o755}); err == nil {
		t.Fatal("a malformed uid was accepted")
	}
	// Cancelled before or while being served.
	for range 20 {
		cctx, cancel := context.WithCancel(ctx)
		go cancel()
		_, _ = c.Namespace.Create(cctx, &mdtv1.CreateRequest{Path: []byte("x"), Mode: 0o644})
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, _ = c.Namespace.Create(cctx, &mdtv1.CreateRequest{Path: []byte("y"), Mode: 0o644})

	waitFor(t, "every announcement to end", func() bool { return l.Announced() == 0 })
}
