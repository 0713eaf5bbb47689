package api_test

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fidlog/fidlog/api"
	"github.com/fidlog/fidlog/api/client"
	"github.com/fidlog/fidlog/changelog"
)

// userIndex returns the cleared index of consumer id.
func userIndex(t testing.TB, c *client.Client, id uint32) uint64 {
	t.Helper()
	r, err := c.Users(ctxT(t), device)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range r.GetUsers() {
		if u.GetId() == id {
			return u.GetIndex()
		}
	}
	t.Fatalf("no user %d", id)
	return 0
}

// TestFollowFromUserPointAndClear: Follow starts after the consumer's
// cleared point, hands every later record once, and clears what the
// handler accepted.
func TestFollowFromUserPointAndClear(t *testing.T) {
	e := newEnv(t, func(o *api.Options) { o.HeartbeatInterval = 20 * time.Millisecond })
	c := e.local()
	ctx := ctxT(t)
	register(t, c, "mirror", "")
	touch(t, c, "", "a", 10) // 1..10
	if _, err := c.Clear(ctx, device, "cl1", 4); err != nil {
		t.Fatal(err)
	}
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu  sync.Mutex
		got []changelog.Index
	)
	done := make(chan error, 1)
	go func() {
		done <- c.Follow(fctx, device, "mirror", func(recs []*changelog.Record) error {
			mu.Lock()
			defer mu.Unlock()
			for _, r := range recs {
				got = append(got, r.Index)
			}
			return nil
		}, client.FollowOptions{ClearRecords: 5, ClearInterval: time.Hour})
	}()
	touch(t, c, "", "b", 10) // 11..20
	waitFor(t, "20 records", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) >= 16 })
	// Clears every 5 records: at most 4 of the 20 stay uncleared.
	waitFor(t, "clear", func() bool { return userIndex(t, c, 1) >= 16 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Follow returned %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, idx := range got {
		if idx != changelog.Index(5+i) {
			t.Fatalf("records %v, want 5..20", got)
		}
	}
	if len(got) != 16 {
		t.Fatalf("records %v, want 5..20", got)
	}
	// The final flush clears everything handled.
	if n := userIndex(t, c, 1); n != 20 {
		t.Fatalf("cleared to %d after Follow ended, want 20", n)
	}
}

// TestFollowHandlerFailure: a failing handler's batch is never cleared and
// its error is returned.
func TestFollowHandlerFailure(t *testing.T) {
	e := newEnv(t)
	c := e.local()
	register(t, c, "", "")
	touch(t, c, "", "a", 5)
	boom := errors.New("boom")
	calls := 0
	err := c.Follow(ctxT(t), device, "cl1", func(recs []*changelog.Record) error {
		calls++
		return boom
	}, client.FollowOptions{ClearRecords: 1})
	if !errors.Is(err, boom) || calls != 1 {
		t.Fatalf("Follow = %v after %d calls", err, calls)
	}
	if n := userIndex(t, c, 1); n != 0 {
		t.Fatalf("cleared to %d although the handler failed", n)
	}

	// A handler that fails on its second batch: only the first is cleared.
	calls = 0
	var last changelog.Index
	err = c.Follow(ctxT(t), device, "1", func(recs []*changelog.Record) error {
		calls++
		if calls == 2 {
			return boom
		}
		last = recs[len(recs)-1].Index
		return nil
	}, client.FollowOptions{BatchRecords: 2, ClearInterval: time.Hour})
	if !errors.Is(err, boom) || last != 2 {
		t.Fatalf("Follow = %v, last handled %d", err, last)
	}
	if n := userIndex(t, c, 1); n != 2 {
		t.Fatalf("cleared to %d, want 2", n)
	}
}

// TestFollowEvictedAndUnknown: Follow stops with the eviction error, and
// with NOT_FOUND for an unknown consumer.
func TestFollowEvictedAndUnknown(t *testing.T) {
	e := newEnv(t)
	c := e.local()
	err := c.Follow(ctxT(t), device, "cl5", func([]*changelog.Record) error { return nil }, client.FollowOptions{})
	if client.Reason(err) != "ENOENT" {
		t.Fatalf("unknown user: %v", err)
	}
}

// TestFollowReconnects: Follow survives a server restart on the same
// socket and resumes after the last handled record, handling none twice.
func TestFollowReconnects(t *testing.T) {
	e := newEnv(t)
	c := e.local()
	register(t, c, "", "")
	touch(t, c, "", "a", 3)
	fctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	var (
		mu  sync.Mutex
		got []changelog.Index
	)
	done := make(chan error, 1)
	go func() {
		done <- c.Follow(fctx, device, "cl1", func(recs []*changelog.Record) error {
			mu.Lock()
			defer mu.Unlock()
			for _, r := range recs {
				got = append(got, r.Index)
			}
			return nil
		}, client.FollowOptions{MinBackoff: 10 * time.Millisecond, ClearInterval: time.Hour, Logger: quietLogger()})
	}()
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(got) }
	waitFor(t, "3 records", func() bool { return count() == 3 })

	// Restart the server (same MDT, same socket path).
	e.srv.Shutdown(context.Background())
	e.wg.Wait()
	srv2, err := api.New(e.m, api.Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", strings.TrimPrefix(e.sock, "unix:"))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { srv2.Serve(l) })
	t.Cleanup(func() { srv2.Stop(); wg.Wait() })

	c2 := e.local()
	touch(t, c2, "", "b", 3)
	waitFor(t, "6 records", func() bool { return count() >= 6 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Follow = %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(got, []changelog.Index{1, 2, 3, 4, 5, 6}) {
		t.Fatalf("records %v", got)
	}
	if n := userIndex(t, c2, 1); n != 6 {
		t.Fatalf("cleared to %d on exit, want 6", n)
	}
}

// TestFollowNoClear: with NoClear, Follow hands every record but never
// clears, not even when it returns; the caller's Clear is the only one.
func TestFollowNoClear(t *testing.T) {
	e := newEnv(t, func(o *api.Options) { o.HeartbeatInterval = 20 * time.Millisecond })
	c := e.local()
	ctx := ctxT(t)
	register(t, c, "exporter", "")
	touch(t, c, "", "a", 10) // 1..10
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu   sync.Mutex
		last changelog.Index
	)
	done := make(chan error, 1)
	go func() {
		done <- c.Follow(fctx, device, "exporter", func(recs []*changelog.Record) error {
			mu.Lock()
			defer mu.Unlock()
			last = recs[len(recs)-1].Index
			return nil
		}, client.FollowOptions{ClearRecords: 1, ClearInterval: time.Millisecond, NoClear: true})
	}()
	waitFor(t, "10 records", func() bool { mu.Lock(); defer mu.Unlock(); return last == 10 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Follow returned %v", err)
	}
	if n := userIndex(t, c, 1); n != 0 {
		t.Fatalf("cleared to %d with NoClear, want 0", n)
	}
}

// TestFollowChain: FollowChain streams every record after the consumer's
// cleared point, whatever its mask, with the chain's anchor first, so that
// what it hands verifies; it refuses a mask and says when the consumer is
// not registered.
func TestFollowChain(t *testing.T) {
	e := newEnv(t, func(o *api.Options) { o.HeartbeatInterval = 20 * time.Millisecond })
	c := e.local()
	ctx := ctxT(t)
	register(t, c, "exp", "MKDIR") // a mask that would filter every record here
	register(t, c, "all", "")      // so that the creates are recorded
	touch(t, c, "", "a", 10)       // 1..10
	if _, err := c.Clear(ctx, device, "cl1", 4); err != nil {
		t.Fatal(err)
	}
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu    sync.Mutex
		items []client.ChainItem
		last  changelog.Index
	)
	done := make(chan error, 1)
	go func() {
		done <- c.FollowChain(fctx, device, "exp", func(its []client.ChainItem) error {
			mu.Lock()
			defer mu.Unlock()
			items = append(items, its...)
			for _, it := range its {
				if it.Record != nil {
					last = it.Record.Index
				}
			}
			return nil
		}, client.FollowOptions{NoClear: true, BatchRecords: 3})
	}()
	touch(t, c, "", "b", 10) // 11..20
	waitFor(t, "records up to 20", func() bool { mu.Lock(); defer mu.Unlock(); return last >= 20 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("FollowChain returned %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(items) == 0 || items[0].Anchor == nil || items[0].Anchor.Index != 4 {
		t.Fatalf("first item %+v, want the anchor of record 4", items)
	}
	v := changelog.NewVerifier()
	want := changelog.Index(5)
	for _, it := range items {
		var err error
		switch {
		case it.Anchor != nil:
			err = v.Anchor(*it.Anchor)
		case it.Checkpoint != nil:
			err = v.Checkpoint(it.Checkpoint)
		default:
			if it.Record.Index != want {
				t.Fatalf("record %d, want %d", it.Record.Index, want)
			}
			want++
			err = v.Record(changelog.AppendStored(nil, it.Record))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if s := v.Summary(); s.First != 5 || s.Last != 20 || !s.Linked {
		t.Fatalf("verified %+v", s)
	}
	err := c.FollowChain(ctx, device, "nobody", func([]client.ChainItem) error { return nil }, client.FollowOptions{})
	if !errors.Is(err, client.ErrUnknownUser) {
		t.Fatalf("unknown user: %v", err)
	}
	if err := c.FollowChain(ctx, device, "exp", func([]client.ChainItem) error { return nil }, client.FollowOptions{Mask: "CREAT"}); err == nil {
		t.Fatal("a chain follow with a mask")
	}
}
