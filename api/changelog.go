package api

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/fidlog/fidlog/changelog"
	"github.com/fidlog/fidlog/changelog/store"
	"github.com/fidlog/fidlog/nodemap"
	changelogv1 "github.com/fidlog/fidlog/proto/lustre/changelog/v1"
)

// changelogService implements lustre.changelog.v1.ChangelogService.
type changelogService struct {
	changelogv1.UnimplementedChangelogServiceServer
	s *Server
}

// begin checks the device and the caller's right to use the changelog.
func (c *changelogService) begin(ctx context.Context, dev, what string) error {
	if err := c.s.checkDevice(dev); err != nil {
		return err
	}
	return c.s.authorize(ctx, nodemap.RoleChangelog, what)
}

func (c *changelogService) Register(ctx context.Context, r *changelogv1.RegisterRequest) (*changelogv1.RegisterResponse, error) {
	if err := c.begin(ctx, r.GetDevice(), "changelog_register"); err != nil {
		return nil, err
	}
	u, err := c.s.m.Log().Register(store.RegisterOptions{Name: r.GetName(), Mask: r.GetMask(), HasMask: r.GetMask() != ""})
	if err != nil {
		return nil, err
	}
	return &changelogv1.RegisterResponse{Id: u.ID, DisplayName: u.DisplayName(), Index: uint64(u.Index), MaskNames: maskNames(u.Mask)}, nil
}

func (c *changelogService) Deregister(ctx context.Context, r *changelogv1.DeregisterRequest) (*changelogv1.DeregisterResponse, error) {
	if err := c.begin(ctx, r.GetDevice(), "changelog_deregister"); err != nil {
		return nil, err
	}
	var (
		u   changelog.User
		err error
	)
	switch sel := r.GetSelector().(type) {
	case *changelogv1.DeregisterRequest_Id:
		u, err = c.s.m.Log().Deregister(sel.Id, false)
	case *changelogv1.DeregisterRequest_Name:
		if sel.Name == "" {
			return nil, argError("empty user name")
		}
		u, err = c.s.m.Log().Deregister(sel.Name, true)
	default:
		return nil, argError("deregister needs a user id or name")
	}
	if err != nil {
		return nil, err
	}
	return &changelogv1.DeregisterResponse{Id: u.ID, DisplayName: u.DisplayName()}, nil
}

func (c *changelogService) Clear(ctx context.Context, r *changelogv1.ClearRequest) (*changelogv1.ClearResponse, error) {
	if err := c.begin(ctx, r.GetDevice(), "changelog_clear"); err != nil {
		return nil, err
	}
	// As Lustre's changelog device: only "cl<ID>[-name]" is accepted.
	if _, ok := changelog.ParseUserID(r.GetUser()); !ok || !strings.HasPrefix(r.GetUser(), "cl") {
		return nil, argError("invalid changelog user '%s': expect cl<ID>[-name]", r.GetUser())
	}
	u, err := c.s.m.Log().Clear(r.GetUser(), changelog.Index(r.GetEndRecord()))
	if err != nil {
		return nil, err
	}
	return &changelogv1.ClearResponse{Index: uint64(u.Index), FirstIndex: uint64(c.s.m.Log().State().First)}, nil
}

func (c *changelogService) ListUsers(ctx context.Context, r *changelogv1.ListUsersRequest) (*changelogv1.ListUsersResponse, error) {
	if err := c.begin(ctx, r.GetDevice(), "changelog_users"); err != nil {
		return nil, err
	}
	l := c.s.m.Log()
	st := l.State()
	now := c.s.opts.Clock()
	out := &changelogv1.ListUsersResponse{CurrentIndex: uint64(st.Current)}
	for _, u := range l.Users() {
		out.Users = append(out.Users, userToPB(u, now))
	}
	return out, nil
}

func (c *changelogService) GetState(ctx context.Context, r *changelogv1.GetStateRequest) (*changelogv1.GetStateResponse, error) {
	if err := c.begin(ctx, r.GetDevice(), "changelog state"); err != nil {
		return nil, err
	}
	st := c.s.m.Log().State()
	return &changelogv1.GetStateResponse{FirstIndex: uint64(st.First), CurrentIndex: uint64(st.Current), DurableIndex: uint64(st.Durable), Enabled: st.On}, nil
}

// noType is a mask bit that matches no record type: a filter that lets
// nothing through (Scan treats mask 0 as "no filter").
const noType changelog.Mask = 1 << 31

// readPlan is a validated ReadRequest.
type readPlan struct {
	start, end changelog.Index // end 0: none
	mask       changelog.Mask  // 0: no filter
	user       string          // consumer to watch for eviction
	batch      int
	raw        bool
	follow     bool
	// chain streams checkpoints too, and the anchor first (anchor is
	// cleared once sent).
	chain  bool
	anchor *bool
	// ckSent is the sequence number of the last checkpoint a chain follow
	// sent: one sent while idle at the log's end (CheckpointsAt) is not
	// sent again before its record.
	ckSent *uint64
}

// plan validates r (reference 3.8: requested mask AND user mask, or either
// alone; mask 0 of a user filters nothing).
func (c *changelogService) plan(r *changelogv1.ReadRequest) (readPlan, error) {
	p := readPlan{start: max(changelog.Index(r.GetStartIndex()), 1), end: changelog.Index(r.GetEndIndex()), raw: r.GetRaw(), follow: r.GetFollow()}
	if p.end != 0 && p.start > p.end {
		return p, argError("start index %d is above end index %d", p.start, p.end)
	}
	var reqMask changelog.Mask
	if r.GetMask() != "" {
		m, err := changelog.ParseMask(r.GetMask(), changelog.DefMask)
		if err != nil {
			return p, err
		}
		reqMask = m
	}
	var userMask changelog.Mask
	switch {
	case r.GetUser() != "":
		u, err := c.s.m.Log().User(r.GetUser())
		if err != nil {
			return p, err
		}
		p.user, userMask = r.GetUser(), u.Mask
		if r.GetFromUserPoint() {
			p.start = max(p.start, u.Index+1)
		}
	case r.GetFromUserPoint():
		return p, argError("from_user_point needs a user")
	}
	switch {
	case reqMask != 0 && userMask != 0:
		p.mask = reqMask & userMask
		if p.mask == 0 {
			p.mask = noType
		}
	case reqMask != 0:
		p.mask = reqMask
	default:
		p.mask = userMask
	}
	if r.GetChain() {
		if !p.raw {
			return p, argError("a chain read needs raw records")
		}
		if p.mask != 0 {
			return p, argError("a chain read cannot filter by mask (the request's or the user's): every record is needed to verify the chain")
		}
		sendAnchor := true
		p.chain, p.anchor, p.ckSent = true, &sendAnchor, new(uint64)
	}
	p.batch = c.s.opts.BatchRecords
	if n := int(r.GetMaxBatchRecords()); n > 0 {
		p.batch = min(n, MaxBatchRecords)
	}
	return p, nil
}

// Read streams records in batches from the log's durable part (Scan), so
// a slow consumer costs writers nothing: there is no per-stream buffer in
// the write path and no iterator is open while a message is sent.
func (c *changelogService) Read(r *changelogv1.ReadRequest, stream grpc.ServerStreamingServer[changelogv1.ReadResponse]) error {
	if err := c.begin(stream.Context(), r.GetDevice(), "changelog read"); err != nil {
		return err
	}
	p, err := c.plan(r)
	if err != nil {
		return err
	}
	ctx, done, err := c.s.beginStream(stream.Context())
	if err != nil {
		return err
	}
	defer done()
	err = c.stream(ctx, p, stream)
	if cause := context.Cause(ctx); err != nil && errors.Is(cause, ErrDraining) {
		return ErrDraining
	}
	return err
}

// stream runs the read loop (produce) in its own goroutine so that reading
// Pebble and building the next message overlap with sending the previous
// one (reference/performance.md 4.4); at most two built messages wait.
// A small message built while nothing waits (a follow stream woken by a
// commit) is sent by produce itself: handing it to the sender cost a
// goroutine wake-up per message and stream, with nothing to overlap.
func (c *changelogService) stream(ctx context.Context, p readPlan, stream grpc.ServerStreamingServer[changelogv1.ReadResponse]) error {
	_, err := sendAll(ctx, stream, func(ctx context.Context, send func(any) error) error {
		return c.produce(ctx, p, send)
	})
	return err
}

// sendAll runs produce and sends what it builds on stream, in order (see
// stream). It returns the gate, for tests.
func sendAll(ctx context.Context, stream grpc.ServerStreamingServer[changelogv1.ReadResponse], produce func(context.Context, func(any) error) error) (*sendGate, error) {
	g, gctx := errgroup.WithContext(ctx)
	out := make(chan any, 2) // *changelogv1.ReadResponse or *wireResponse
	sg := &sendGate{stream: stream}
	g.Go(func() error {
		defer close(out)
		return produce(gctx, func(msg any) error { return sg.send(gctx, out, msg) })
	})
	g.Go(func() error {
		for msg := range out {
			err := stream.SendMsg(msg)
			sg.sent()
			if err != nil {
				return err
			}
		}
		return nil
	})
	return sg, g.Wait()
}

// directSendBytes is the largest message produce sends itself.
const directSendBytes = 64 << 10

// sendGate orders the messages of one stream: produce sends a message
// itself only when none it queued is still unsent, and holds mu while it
// does, so the sender never sends at the same time.
type sendGate struct {
	stream  grpc.ServerStreamingServer[changelogv1.ReadResponse]
	mu      sync.Mutex
	pending int // queued and not yet sent
	direct  int // messages produce sent itself (tests)
}

func (g *sendGate) send(ctx context.Context, out chan<- any, msg any) error {
	g.mu.Lock()
	if g.pending == 0 && messageBytes(msg) <= directSendBytes {
		g.direct++
		err := g.stream.SendMsg(msg)
		g.mu.Unlock()
		return err
	}
	g.pending++
	g.mu.Unlock()
	select {
	case out <- msg:
		return nil
	case <-ctx.Done():
		g.sent()
		return ctx.Err()
	}
}

// sent notes that the sender is done with a queued message.
func (g *sendGate) sent() {
	g.mu.Lock()
	g.pending--
	g.mu.Unlock()
}

// messageBytes is about the encoded size of a built message.
func messageBytes(msg any) int {
	if w, ok := msg.(*wireResponse); ok {
		return len(*w.buf)
	}
	return proto.Size(msg.(*changelogv1.ReadResponse))
}

// produce builds the messages of a Read: batches of everything durable,
// then (follow) waits for commits, with heartbeats while idle.
func (c *changelogService) produce(ctx context.Context, p readPlan, send func(any) error) error {
	l := c.s.m.Log()
	next := p.start
	stop := p.end // last index to send; 0 while following without end
	if !p.follow {
		d := l.Durable()
		if stop == 0 || stop > d {
			stop = d
		}
	}
	hb := c.s.opts.HeartbeatInterval
	lastSend := time.Now()
	var (
		rec   changelog.Record
		timer *time.Timer
	)
	for {
		if stop != 0 && next > stop {
			return nil
		}
		// Send everything durable now, batch by batch.
		if next <= l.Durable() {
			msg, count, n, err := c.batch(ctx, l, p, next, stop, &rec)
			if err != nil {
				return err
			}
			next = n
			if count > 0 {
				if err := send(msg); err != nil {
					return err
				}
				lastSend = time.Now()
			} else if w, ok := msg.(*wireResponse); ok {
				w.free()
			}
			continue
		}
		if !p.follow {
			return nil
		}
		if p.user != "" {
			// A consumer evicted while we stream is told so.
			if _, err := l.User(p.user); err != nil {
				return err
			}
		}
		if p.chain && l.DurableCheckpoint() > *p.ckSent {
			// Checkpoints signed since the last record: sent now, not
			// with the next record, which may be long in coming.
			if msg, err := c.trailing(l, p, next); err != nil {
				return err
			} else if msg != nil {
				if err := send(msg); err != nil {
					return err
				}
				lastSend = time.Now()
			}
		}
		wait := hb - time.Since(lastSend)
		if wait <= 0 {
			st := l.State()
			if err := send(&changelogv1.ReadResponse{Heartbeat: true, DurableIndex: uint64(st.Durable), FirstIndex: uint64(st.First), NextIndex: uint64(max(next, st.First))}); err != nil {
				return err
			}
			lastSend = time.Now()
			continue
		}
		// Wait for a commit, the heartbeat or the end, with one timer for
		// the stream's life (a context with a deadline per wait was 7 %
		// of the CPU of 64 follow streams).
		d, moved, closed := l.DurableWatch()
		if d >= next {
			continue
		}
		if timer == nil {
			timer = time.NewTimer(wait)
			defer timer.Stop()
		} else {
			timer.Reset(wait)
		}
		select {
		case <-moved:
			timer.Stop() // Go 1.23 timers: no stale tick after Stop or Reset
			c.linger(ctx, l, p, next, l.Durable())
		case <-timer.C:
		case <-ctx.Done():
			return ctx.Err()
		case <-closed:
			return changelog.ErrClosed
		}
	}
}

// trailing returns a message with the durable checkpoints positioned at
// next (signed after the last record a follow stream sent) that the
// stream has not sent, or nil. Checkpoints positioned further (records
// still committing) wait for their record.
func (c *changelogService) trailing(l *store.Log, p readPlan, next changelog.Index) (*changelogv1.ReadResponse, error) {
	var raws [][]byte
	cks := 0
	err := l.CheckpointsAt(next, *p.anchor, func(e store.Entry) error {
		if e.Kind == changelog.ItemAnchor {
			raws = append(raws, bytes.Clone(e.Raw))
		} else if seq := changelog.CheckpointSeq(e.Raw); seq > *p.ckSent {
			raws = append(raws, bytes.Clone(e.Raw))
			*p.ckSent = seq
			cks++
		}
		return nil
	})
	if err != nil || cks == 0 {
		return nil, err
	}
	*p.anchor = false // the stream starts with it
	st := l.State()
	return &changelogv1.ReadResponse{RawRecords: raws, DurableIndex: uint64(st.Durable), FirstIndex: uint64(st.First), NextIndex: uint64(next)}, nil
}

// linger gives a follow stream woken by a commit up to Options.FollowLinger
// to let more commits arrive, unless a full batch is already durable, so
// that a busy log is sent in batches rather than a message per commit.
func (c *changelogService) linger(ctx context.Context, l *store.Log, p readPlan, next, durable changelog.Index) {
	d := c.s.opts.FollowLinger
	full := next + changelog.Index(p.batch) - 1 // last index of a full batch
	if d <= 0 || durable >= full || (p.end != 0 && durable >= p.end) {
		return
	}
	lctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	_, _ = l.WaitDurable(lctx, full-1)
}

// rawRecordEstimate is the bytes per stored record a raw batch reserves
// (records are ~100-200 bytes; the buffer grows for larger ones).
const rawRecordEstimate = 192

// batch reads one message's worth of records starting at next: at most
// p.batch records and about BatchBytes of encoded records. It returns the
// message (a *wireResponse for raw records, else a ReadResponse), the
// number of entries in it and the index to continue from.
func (c *changelogService) batch(ctx context.Context, l *store.Log, p readPlan, next, stop changelog.Index, rec *changelog.Record) (any, int, changelog.Index, error) {
	durable, first := l.Durable(), l.First()
	// Scan no further than the durable index this message reports.
	end := durable
	if stop != 0 {
		end = min(end, stop)
	}
	if next > end || end == 0 {
		return &changelogv1.ReadResponse{DurableIndex: uint64(durable), FirstIndex: uint64(first), NextIndex: uint64(next)}, 0, next, nil
	}
	limit := c.s.opts.BatchBytes
	size, count := 0, 0
	// Reserve for the records durable now, not for a full batch: a
	// follow stream woken for one record must not take a megabyte (64
	// follow streams did, ~70 MB per commit).
	want := min(p.batch, int(end-next+1))
	var (
		msg  *changelogv1.ReadResponse
		wire *wireResponse
	)
	if p.raw {
		wire = newWireResponse(min(limit+limit/8, rawRecordEstimate*want) + 32)
		wire.varint(wireDurable, uint64(durable))
		wire.varint(wireFirst, uint64(first))
	} else {
		msg = &changelogv1.ReadResponse{DurableIndex: uint64(durable), FirstIndex: uint64(first)}
		msg.Records = make([]*changelogv1.Record, 0, min(want, 4096))
	}
	o := store.ReadOptions{Start: next, End: end, Mask: p.mask, Chain: p.chain, Trailing: p.chain && !p.follow}
	if p.chain {
		o.Anchor = *p.anchor
	}
	n, err := l.Scan(ctx, o, func(e store.Entry) error {
		switch e.Kind {
		case changelog.ItemAnchor:
			*p.anchor = false // once per stream
		case changelog.ItemCheckpoint:
			seq := changelog.CheckpointSeq(e.Raw)
			if seq <= *p.ckSent {
				return nil // sent while the stream was idle
			}
			*p.ckSent = seq
		}
		if wire != nil {
			wire.add(e.Raw)
		} else {
			*rec = changelog.Record{}
			if err := changelog.DecodeInto(rec, e.Raw); err != nil {
				return err
			}
			pb := recordToPB(rec)
			msg.Records = append(msg.Records, pb)
			size += proto.Size(pb) - len(e.Raw)
		}
		size += len(e.Raw)
		if e.Kind != changelog.ItemRecord {
			// Never stop after a checkpoint or the anchor: the next
			// scan would send it again.
			return nil
		}
		count++
		if count >= p.batch || size >= limit {
			return store.ErrStop
		}
		return nil
	})
	if err != nil {
		if wire != nil {
			wire.free()
		}
		return nil, 0, next, err
	}
	if wire != nil {
		wire.varint(wireNext, uint64(n))
		return wire, wire.records, n, nil
	}
	msg.NextIndex = uint64(n)
	return msg, len(msg.Records), n, nil
}
