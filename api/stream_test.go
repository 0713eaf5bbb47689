package api_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/fidlog/fidlog/api"
	"github.com/fidlog/fidlog/api/client"
	"github.com/fidlog/fidlog/changelog"
	changelogv1 "github.com/fidlog/fidlog/proto/lustre/changelog/v1"
	mdtv1 "github.com/fidlog/fidlog/proto/lustre/mdt/v1"
)

// TestFollowConcurrentWriters: 16 writers create files while a follow
// stream reads; every record arrives exactly once, in index order, in
// batches.
func TestFollowConcurrentWriters(t *testing.T) {
	e := newEnv(t)
	c := e.local()
	ctx := ctxT(t)
	register(t, c, "", "")
	const writers, perWriter = 16, 100
	const total = writers * perWriter

	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := c.Changelog.Read(sctx, &changelogv1.ReadRequest{Device: device, Follow: true, Raw: true})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range writers {
		wc := e.dial(e.sock, client.WithJobID(fmt.Sprintf("w%d", w)))
		if _, err := wc.Namespace.Mkdir(ctx, &mdtv1.MkdirRequest{Path: []byte(fmt.Sprintf("w%d", w)), Mode: 0755}); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			for i := range perWriter {
				if _, err := wc.Namespace.Create(ctx, &mdtv1.CreateRequest{Path: []byte(fmt.Sprintf("w%d/f%d", w, i))}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	want := total + writers // files and the writers' directories
	var (
		next     changelog.Index = 1
		msgs     int
		perJob   = map[string]int{}
		lastNext uint64
	)
	for int(next) <= want {
		msg, err := st.Recv()
		if err != nil {
			t.Fatalf("recv after %d records: %v", next-1, err)
		}
		msgs++
		if msg.GetHeartbeat() {
			continue
		}
		recs, err := client.Records(msg)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if r.Index != next {
				t.Fatalf("got index %d, want %d", r.Index, next)
			}
			if uint64(r.Index) > msg.GetDurableIndex() {
				t.Fatalf("record %d above durable index %d", r.Index, msg.GetDurableIndex())
			}
			next++
			perJob[r.JobID]++
		}
		if msg.GetNextIndex() != uint64(next) || msg.GetNextIndex() < lastNext {
			t.Fatalf("next_index %d after record %d", msg.GetNextIndex(), next-1)
		}
		lastNext = msg.GetNextIndex()
	}
	wg.Wait()
	for w := range writers {
		if n := perJob[fmt.Sprintf("w%d", w)]; n != perWriter+1 {
			t.Errorf("writer %d: %d records, want %d", w, n, perWriter+1)
		}
	}
	if msgs >= want {
		t.Errorf("%d messages for %d records: not batched", msgs, want)
	}
	t.Logf("%d records in %d messages", want, msgs)
	cancel()
	for {
		if _, err := st.Recv(); err != nil {
			if status.Code(err) != codes.Canceled {
				t.Fatalf("after cancel: %v", err)
			}
			break
		}
	}
	waitFor(t, "stream to end", func() bool { return e.srv.Streams() == 0 })
}

// TestBatchLimits: max_batch_records and the byte cap bound messages.
func TestBatchLimits(t *testing.T) {
	e := newEnv(t, func(o *api.Options) { o.BatchBytes = 2000 })
	c := e.local()
	register(t, c, "", "")
	touch(t, c, "", "file-with-a-longish-name-", 100)
	for _, tc := range []struct {
		max     uint32
		wantMax int
	}{{7, 7}, {0, 1024}} {
		var sizes []int
		err := c.Read(ctxT(t), &changelogv1.ReadRequest{Device: device, Raw: true, MaxBatchRecords: tc.max}, func(recs []*changelog.Record, m *changelogv1.ReadResponse) error {
			n := 0
			for _, r := range m.GetRawRecords() {
				n += len(r)
			}
			if n-len(m.GetRawRecords()[len(m.GetRawRecords())-1]) >= 2000 {
				t.Errorf("message of %d bytes exceeds the cap by more than a record", n)
			}
			sizes = append(sizes, len(recs))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		total := 0
		for _, s := range sizes {
			total += s
			if s > tc.wantMax {
				t.Errorf("max %d: batch of %d", tc.max, s)
			}
		}
		if total != 100 || len(sizes) < 2 {
			t.Errorf("max %d: batches %v", tc.max, sizes)
		}
	}
}

// TestRawAndStructuredAgree: both stream forms give the same records.
func TestRawAndStructuredAgree(t *testing.T) {
	e := newEnv(t)
	c := e.local()
	ctx := ctxT(t)
	register(t, c, "", "ALL")
	touch(t, c, "", "f", 5)
	ns := c.Namespace
	ns.Mkdir(ctx, &mdtv1.MkdirRequest{Path: []byte("d")})
	ns.Rename(ctx, &mdtv1.RenameRequest{SrcPath: []byte("f1"), DstPath: []byte("d/g")})
	ns.Setxattr(ctx, &mdtv1.SetxattrRequest{Path: []byte("f2"), Name: "user.x", Value: []byte("1")})
	ns.Getxattr(ctx, &mdtv1.GetxattrRequest{Path: []byte("f2"), Name: "user.x"})
	op, _ := ns.Open(ctx, &mdtv1.OpenRequest{Path: []byte("f3"), Flags: 3})
	ns.Close(ctx, &mdtv1.CloseRequest{Handle: op.GetHandle()})
	ns.Unlink(ctx, &mdtv1.UnlinkRequest{Path: []byte("f4")})

	read := func(raw bool) []*changelog.Record {
		var out []*changelog.Record
		err := c.Read(ctx, &changelogv1.ReadRequest{Device: device, Raw: raw}, func(recs []*changelog.Record, m *changelogv1.ReadResponse) error {
			if raw != (len(m.GetRawRecords()) > 0) || raw == (len(m.GetRecords()) > 0) {
				t.Errorf("raw=%v: message has %d raw and %d structured records", raw, len(m.GetRawRecords()), len(m.GetRecords()))
			}
			out = append(out, recs...)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	raw, structured := read(true), read(false)
	if len(raw) < 12 || len(raw) != len(structured) {
		t.Fatalf("raw %d records, structured %d", len(raw), len(structured))
	}
	types := map[changelog.Type]bool{}
	for i := range raw {
		if a, b := raw[i].Line(), structured[i].Line(); a != b {
			t.Errorf("record %d:\n raw        %s\n structured %s", i, a, b)
		}
		types[raw[i].Type] = true
	}
	for _, ty := range []changelog.Type{changelog.CLRename, changelog.CLXattr, changelog.CLOpen, changelog.CLUnlink} {
		if !types[ty] {
			t.Errorf("no %v record in %d records", ty, len(raw))
		}
	}
}

// TestReadFilters: the user's mask intersected with the requested mask,
// end_index, and start below the first retained record.
func TestReadFilters(t *testing.T) {
	e := newEnv(t)
	c := e.local()
	ctx := ctxT(t)
	register(t, c, "all", "")
	register(t, c, "dirs", "MKDIR,RMDIR,CREAT")
	ns := c.Namespace
	for i := range 4 {
		ns.Mkdir(ctx, &mdtv1.MkdirRequest{Path: []byte(fmt.Sprintf("d%d", i))})   // 1,3,5,7
		ns.Create(ctx, &mdtv1.CreateRequest{Path: []byte(fmt.Sprintf("f%d", i))}) // 2,4,6,8
	}
	ns.Rmdir(ctx, &mdtv1.RmdirRequest{Path: []byte("d0")}) // 9
	read := func(req *changelogv1.ReadRequest) (idx []changelog.Index) {
		req.Device = device
		err := c.Read(ctx, req, func(recs []*changelog.Record, _ *changelogv1.ReadResponse) error {
			for _, r := range recs {
				idx = append(idx, r.Index)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return idx
	}
	for _, tc := range []struct {
		name string
		req  *changelogv1.ReadRequest
		want []changelog.Index
	}{
		{"user mask", &changelogv1.ReadRequest{User: "dirs", Mask: ""}, []changelog.Index{1, 2, 3, 4, 5, 6, 7, 8, 9}},
		{"requested mask", &changelogv1.ReadRequest{Mask: "MKDIR"}, []changelog.Index{1, 3, 5, 7}},
		{"intersection", &changelogv1.ReadRequest{User: "cl2", Mask: "RMDIR,UNLNK"}, []changelog.Index{9}},
		{"empty intersection", &changelogv1.ReadRequest{User: "dirs", Mask: "UNLNK"}, nil},
		{"relative mask", &changelogv1.ReadRequest{Mask: "-CREAT"}, []changelog.Index{1, 3, 5, 7, 9}},
		{"range", &changelogv1.ReadRequest{StartIndex: 3, EndIndex: 5}, []changelog.Index{3, 4, 5}},
		{"maskless user", &changelogv1.ReadRequest{User: "all", EndIndex: 2}, []changelog.Index{1, 2}},
	} {
		if got := read(tc.req); !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
	for _, u := range []string{"cl1", "cl2"} {
		if _, err := c.Clear(ctx, device, u, 4); err != nil {
			t.Fatal(err)
		}
	}
	var first uint64
	err := c.Read(ctx, &changelogv1.ReadRequest{Device: device, StartIndex: 1, EndIndex: 6}, func(recs []*changelog.Record, m *changelogv1.ReadResponse) error {
		first = m.GetFirstIndex()
		if recs[0].Index != 5 {
			t.Errorf("first record %d after purge to 4", recs[0].Index)
		}
		return nil
	})
	if err != nil || first != 5 {
		t.Fatalf("read after purge: first_index %d, %v", first, err)
	}
}

// TestHeartbeat: an idle follow stream sends heartbeats with the indices.
func TestHeartbeat(t *testing.T) {
	e := newEnv(t, func(o *api.Options) { o.HeartbeatInterval = 20 * time.Millisecond })
	c := e.local()
	register(t, c, "", "")
	// An empty log: a heartbeat, and a plain read ends at once.
	st0, err := c.Changelog.Read(ctxT(t), &changelogv1.ReadRequest{Device: device, Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	if msg, err := st0.Recv(); err != nil || !proto.Equal(msg, &changelogv1.ReadResponse{Heartbeat: true, FirstIndex: 1, NextIndex: 1}) {
		t.Fatalf("empty log: %v %v", msg, err)
	}
	if err := c.Read(ctxT(t), &changelogv1.ReadRequest{Device: device}, func([]*changelog.Record, *changelogv1.ReadResponse) error {
		return errors.New("record in an empty log")
	}); err != nil {
		t.Fatal(err)
	}
	touch(t, c, "", "f", 2)
	sctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	st, err := c.Changelog.Read(sctx, &changelogv1.ReadRequest{Device: device, Follow: true, StartIndex: 3})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	want := &changelogv1.ReadResponse{Heartbeat: true, DurableIndex: 2, FirstIndex: 1, NextIndex: 3}
	if !proto.Equal(msg, want) {
		t.Fatalf("got %v, want heartbeat %v", msg, want)
	}
	// A record ends the silence.
	touch(t, c, "", "g", 1)
	for {
		msg, err = st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if !msg.GetHeartbeat() {
			break
		}
	}
	if len(msg.GetRecords()) != 1 || msg.GetRecords()[0].GetIndex() != 3 {
		t.Fatalf("got %v", msg)
	}
}

// TestConsumerDisconnects: a consumer that goes away mid-stream leaves the
// server serving and its stream goroutine ends.
func TestConsumerDisconnects(t *testing.T) {
	e := newEnv(t)
	c := e.local()
	register(t, c, "", "")
	touch(t, c, "", "f", 300)
	for range 3 {
		cc := e.dial(e.sock)
		sctx, cancel := context.WithCancel(ctxT(t))
		st, err := cc.Changelog.Read(sctx, &changelogv1.ReadRequest{Device: device, Follow: true, MaxBatchRecords: 10})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Recv(); err != nil {
			t.Fatal(err)
		}
		cancel()
		cc.Close() // the connection goes away too
	}
	waitFor(t, "streams to end", func() bool { return e.srv.Streams() == 0 })
	touch(t, c, "", "g", 1)
	if err := c.Healthy(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	n := 0
	if err := c.Read(ctxT(t), &changelogv1.ReadRequest{Device: device}, func(recs []*changelog.Record, _ *changelogv1.ReadResponse) error {
		n += len(recs)
		return nil
	}); err != nil || n != 301 {
		t.Fatalf("read %d records: %v", n, err)
	}
}

// TestShutdownWithOpenStreams: Shutdown ends follow streams (UNAVAILABLE)
// and returns; nothing leaks (goleak in TestMain).
func TestShutdownWithOpenStreams(t *testing.T) {
	e := newEnv(t)
	c := e.local()
	register(t, c, "", "")
	touch(t, c, "", "f", 3)
	var streams []changelogv1.ChangelogService_ReadClient
	for _, target := range []string{e.sock, e.tcp} {
		for range 2 {
			st, err := e.dial(target).Changelog.Read(ctxT(t), &changelogv1.ReadRequest{Device: device, Follow: true})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.Recv(); err != nil {
				t.Fatal(err)
			}
			streams = append(streams, st)
		}
	}
	waitFor(t, "streams to open", func() bool { return e.srv.Streams() == 4 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() { e.srv.Shutdown(ctx); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return")
	}
	for _, st := range streams {
		_, err := st.Recv()
		if errors.Is(err, io.EOF) || err == nil {
			t.Fatalf("stream ended with %v", err)
		}
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("stream ended with %v, want UNAVAILABLE", err)
		}
		if ei, ok := client.ErrorInfo(err); ok && ei.GetReason() != "ESHUTDOWN" {
			t.Errorf("reason %s", ei.GetReason())
		}
	}
	if e.srv.Streams() != 0 {
		t.Fatalf("%d streams after shutdown", e.srv.Streams())
	}
	e.stop()
}

// TestEvictedWhileFollowing: an open follow stream of a consumer that GC
// evicts ends with USER_EVICTED.
func TestEvictedWhileFollowing(t *testing.T) {
	e := newEnv(t, func(o *api.Options) { o.HeartbeatInterval = 20 * time.Millisecond })
	c := e.local()
	ctx := ctxT(t)
	register(t, c, "slow", "")
	register(t, c, "fast", "")
	if _, err := c.SetParam(ctx, "mdd."+device+".changelog_max_records", "3"); err != nil {
		t.Fatal(err)
	}
	st, err := c.Changelog.Read(ctx, &changelogv1.ReadRequest{Device: device, Follow: true, User: "slow", FromUserPoint: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		touch(t, c, "", fmt.Sprintf("f%d", i), 1)
		if _, err := c.Clear(ctx, device, "cl2", 0); err != nil {
			t.Fatal(err)
		}
	}
	for {
		_, err := st.Recv()
		if err != nil {
			wantStatus(t, err, codes.FailedPrecondition, "USER_EVICTED", syscall.ENOENT, "cl1-slow")
			break
		}
	}
}

// TestChainRead: a chain read sends the anchor once, then every record
// (across batches and a purge) so that the stream verifies; a chain read
// that cannot be verified (structured records, a mask of the request or
// of the user) is INVALID_ARGUMENT.
func TestChainRead(t *testing.T) {
	e := newEnv(t)
	c := e.local()
	ctx := ctxT(t)
	u := register(t, c, "", "")
	register(t, c, "dirs", "MKDIR")
	touch(t, c, "", "f", 9)
	if _, err := c.Clear(ctx, device, u.GetDisplayName(), 3); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Clear(ctx, device, "cl2", 3); err != nil {
		t.Fatal(err)
	}
	gs, err := c.State(ctx, device)
	if err != nil {
		t.Fatal(err)
	}
	last := gs.GetCurrentIndex()
	for _, follow := range []bool{false, true} {
		st, err := c.Changelog.Read(ctx, &changelogv1.ReadRequest{Device: device, Raw: true, Chain: true, MaxBatchRecords: 2, Follow: follow, EndIndex: last})
		if err != nil {
			t.Fatal(err)
		}
		v := changelog.NewVerifier()
		anchors := 0
		for {
			m, err := st.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("follow=%v: %v", follow, err)
			}
			recs, err := client.Records(m)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				if r.Hash.IsZero() {
					t.Errorf("record %d without a hash", r.Index)
				}
			}
			for _, raw := range m.GetRawRecords() {
				if changelog.KindOf(raw) == changelog.ItemAnchor {
					anchors++
				}
				if err := v.Item(raw); err != nil {
					t.Fatalf("follow=%v: %v", follow, err)
				}
			}
		}
		if err := v.End(changelog.Index(last)); err != nil {
			t.Fatal(err)
		}
		if s := v.Summary(); anchors != 1 || s.First != 4 || uint64(s.Last) != last || !s.Linked {
			t.Errorf("follow=%v: %d anchors, summary %+v", follow, anchors, s)
		}
	}
	for _, req := range []*changelogv1.ReadRequest{
		{Device: device, Chain: true},
		{Device: device, Chain: true, Raw: true, Mask: "CREAT"},
		{Device: device, Chain: true, Raw: true, User: "dirs"},
	} {
		err := c.Read(ctx, req, func([]*changelog.Record, *changelogv1.ReadResponse) error { return nil })
		wantStatus(t, err, codes.InvalidArgument, "EINVAL", syscall.EINVAL, "chain read")
	}
}
