package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/fidlog/fidlog/api/client"
	"github.com/fidlog/fidlog/changelog"
	changelogv1 "github.com/fidlog/fidlog/proto/lustre/changelog/v1"
)

// exporter follows every source, renders each record once per format and
// delivers it to every sink; it clears a source's changelog only up to the
// highest index that every sink has committed.
//
// One goroutine (run) owns the pending batch, the sinks and the clear
// points; one goroutine per source runs client.Follow and hands batches
// over a channel, which blocks it while the sinks are down, so nothing
// more is read and nothing is cleared.
type exporter struct {
	cfg     *config
	log     *slog.Logger
	met     *metrics
	sources []*source
	sinks   []*sinkState
	in      chan []*event
	// errc carries a source's end (eviction, a non-retryable error); the
	// delivery retry loop watches it too.
	errc chan error

	pending []*event
	// delivered is the highest index of each device every sink committed;
	// cleared the highest the server acknowledged clearing.
	delivered map[string]changelog.Index
	cleared   map[string]changelog.Index
	lastTime  map[string]time.Time // time of the record at delivered
	// lineBufs are the rendering buffers kept between deliveries, per
	// format (lineBuffers).
	lineBufs map[*format]*lineBuffers

	mu struct {
		sync.Mutex
		delivered map[string]changelog.Index // copy for the lag reporter
		lastTime  map[string]time.Time
	}
}

// sinkState is the exporter's view of one sink: what it holds per device.
type sinkState struct {
	s         sink
	written   map[string]changelog.Index // written since the last commit
	committed map[string]changelog.Index
	// The hash chain's evidence (sinks with checkpoints on): the last
	// checkpoint sequence number written and committed, and whether the
	// chain's anchor was written in this run.
	ckWritten, ckCommitted map[string]uint64
	anchored, anchoredC    map[string]bool
}

// commitDone records that what was written is committed.
func (st *sinkState) commitDone() {
	maps.Copy(st.committed, st.written)
	maps.Copy(st.ckCommitted, st.ckWritten)
	maps.Copy(st.anchoredC, st.anchored)
}

// rollBack forgets what was written since the last commit.
func (st *sinkState) rollBack() {
	st.written = maps.Clone(st.committed)
	st.ckWritten = maps.Clone(st.ckCommitted)
	st.anchored = maps.Clone(st.anchoredC)
}

// lacks reports whether the sink must be sent e: a record it does not
// hold yet; with checkpoints on, a checkpoint it does not hold (before a
// record it does not hold, and newer than its last checkpoint), or the
// anchor when the sink starts a device (holds none of its records and
// wrote no anchor in this run).
func (st *sinkState) lacks(e *event) bool {
	switch {
	case e.isRecord():
		return e.rec.Index > st.written[e.dev]
	case !st.s.checkpoints():
		return false
	case e.ck != nil:
		return e.ck.Position > st.written[e.dev] && e.ck.Seq > st.ckWritten[e.dev]
	}
	return st.written[e.dev] == 0 && !st.anchored[e.dev]
}

// sent records that e was written to the sink.
func (st *sinkState) sent(e *event) {
	switch {
	case e.isRecord():
		st.written[e.dev] = e.rec.Index
	case e.ck != nil:
		st.ckWritten[e.dev] = e.ck.Seq
	default:
		st.anchored[e.dev] = true
	}
}

// maxGroup bounds a delivery to this many --batch sizes of records when
// the sources are ahead of the sinks.
const maxGroup = 8

// errEvicted: a source's changelog user was evicted; records were lost.
type errEvicted struct {
	dev, user       string
	delivered, last changelog.Index
	err             error
}

func (e *errEvicted) Error() string {
	lost := uint64(0)
	if e.last > e.delivered {
		lost = uint64(e.last - e.delivered)
	}
	how := "was evicted from " + e.dev + " by the changelog garbage collector"
	if _, ok := client.IsEvicted(e.err); !ok {
		how = "is no longer registered on " + e.dev + " (deregistered)"
	}
	return fmt.Sprintf("changelog user %s %s: %d records (indices %d..%d) were not exported and are lost to this exporter; restart it to register a new user, which starts at the current record",
		e.user, how, lost, e.delivered+1, e.last)
}

func (e *errEvicted) Unwrap() error { return e.err }

func newExporter(cfg *config, log *slog.Logger, met *metrics, sources []*source, sinks []sink) *exporter {
	x := &exporter{
		cfg: cfg, log: log, met: met, sources: sources,
		in:        make(chan []*event, maxGroup),
		errc:      make(chan error, 2*len(sources)),
		delivered: map[string]changelog.Index{},
		cleared:   map[string]changelog.Index{},
		lastTime:  map[string]time.Time{},
	}
	for _, s := range sinks {
		x.sinks = append(x.sinks, &sinkState{s: s})
	}
	for _, src := range sources {
		x.delivered[src.dev] = src.start
		x.cleared[src.dev] = src.start
		x.lastTime[src.dev] = time.Now() // lag seconds count from the start until a record is delivered
	}
	x.mu.delivered = maps.Clone(x.delivered)
	x.mu.lastTime = maps.Clone(x.lastTime)
	return x
}

// openSinks opens every sink and records what each already holds.
func (x *exporter) openSinks(ctx context.Context) error {
	devs := make([]string, len(x.sources))
	for i, s := range x.sources {
		devs[i] = s.dev
	}
	for _, st := range x.sinks {
		have, err := st.s.open(ctx, devs)
		if err != nil {
			return fmt.Errorf("sink %s: %w", st.s.label(), err)
		}
		st.committed = map[string]changelog.Index{}
		for _, d := range devs {
			st.committed[d] = have[d]
			if have[d] > 0 {
				x.log.Info("sink_resume", "sink", st.s.label(), "device", d, "holds_through", uint64(have[d]))
			}
		}
		st.ckCommitted, st.anchoredC = map[string]uint64{}, map[string]bool{}
		if h, ok := st.s.(checkpointHolder); ok {
			cks, anchors := h.heldChain()
			maps.Copy(st.ckCommitted, cks)
			maps.Copy(st.anchoredC, anchors)
		}
		st.rollBack()
	}
	return nil
}

// run exports until ctx ends or a source fails for good; it delivers and
// clears what is pending before it returns.
func (x *exporter) run(ctx context.Context) error {
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for _, src := range x.sources {
		wg.Go(func() {
			if err := x.follow(fctx, src); err != nil {
				x.errc <- err
			}
		})
	}
	wg.Go(func() { x.watch(fctx) })
	defer wg.Wait()
	tick := time.NewTicker(x.cfg.interval)
	defer tick.Stop()
	var failed error
	for failed == nil {
		select {
		case evs := <-x.in:
			x.pending = append(x.pending, evs...)
			// Group commit: when the sources are ahead, take everything
			// they already read (up to maxGroup batches), so one fsync or
			// one wait for PubAcks covers it.
			for more := true; more && len(x.pending) < maxGroup*x.cfg.batch; {
				select {
				case evs := <-x.in:
					x.pending = append(x.pending, evs...)
				default:
					more = false
				}
			}
			if len(x.pending) >= x.cfg.batch {
				if err := x.deliver(ctx); err != nil {
					failed = err
				}
			}
		case <-tick.C:
			if err := x.deliver(ctx); err != nil {
				failed = err
			}
		case err := <-x.errc:
			failed = err
		case <-ctx.Done():
			failed = ctx.Err()
		}
	}
	cancel()
	// Take what the sources already handed over, deliver and clear it.
	for drained := false; !drained; {
		select {
		case evs := <-x.in:
			x.pending = append(x.pending, evs...)
		default:
			drained = true
		}
	}
	grace := 10 * time.Second
	if ctx.Err() == nil {
		grace = 2 * time.Second
	}
	dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer dcancel()
	if err := x.deliver(dctx); err != nil {
		x.log.Warn("final_delivery_failed", "err", err, "records", len(x.pending))
	}
	return failed
}

// follow runs one source until ctx ends or its user is evicted.
func (x *exporter) follow(ctx context.Context, src *source) error {
	if x.cfg.chain {
		return x.followChain(ctx, src)
	}
	err := src.c.Follow(ctx, src.dev, src.user, func(recs []*changelog.Record) error {
		return x.send(ctx, src.events(ctx, len(recs), func(i int) event { return event{rec: recs[i]} }))
	}, x.followOptions())
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return nil
	}
	if _, ok := client.IsEvicted(err); ok {
		return x.evicted(ctx, src, err)
	}
	if err == nil {
		return fmt.Errorf("%s: follow ended", src.dev)
	}
	return fmt.Errorf("%s (%s): %w", src.dev, src.target, err)
}

// followChain is follow for sinks that carry the hash chain's evidence:
// every record (the user's mask is not applied: a chain with gaps cannot
// be verified), with the chain's anchor and checkpoints in stream order.
func (x *exporter) followChain(ctx context.Context, src *source) error {
	err := src.c.FollowChain(ctx, src.dev, src.user, func(items []client.ChainItem) error {
		return x.send(ctx, src.events(ctx, len(items), func(i int) event {
			it := items[i]
			return event{rec: it.Record, ck: it.Checkpoint, anchor: it.Anchor, raw: it.Raw}
		}))
	}, x.followOptions())
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return nil
	}
	var lost *client.RecordsLostError
	if _, ok := client.IsEvicted(err); ok || errors.As(err, &lost) || errors.Is(err, client.ErrUnknownUser) {
		// The chain is read without the user: its eviction shows as
		// records purged before they were read, or the user gone.
		return x.evicted(ctx, src, nil)
	}
	if err == nil {
		return fmt.Errorf("%s: follow ended", src.dev)
	}
	return fmt.Errorf("%s (%s): %w", src.dev, src.target, err)
}

// send hands a batch of events to the delivery loop.
func (x *exporter) send(ctx context.Context, evs []*event) error {
	select {
	case x.in <- evs:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// followOptions are the options of follow and followChain: the exporter
// clears only what every sink holds.
func (x *exporter) followOptions() client.FollowOptions {
	return client.FollowOptions{NoClear: true, BatchRecords: uint32(x.cfg.batch), Logger: x.log}
}

// deliver writes the pending events to every sink and commits them,
// retrying each failing sink with backoff until it succeeds or ctx ends;
// then it clears each device up to its last delivered record. Sinks that
// already hold a record (read back at start) are not sent it again.
func (x *exporter) deliver(ctx context.Context) error {
	lines := map[*format][][]byte{}
	for _, st := range x.sinks {
		f := st.s.format()
		if _, ok := lines[f]; ok {
			continue
		}
		lines[f] = f.lines(x.pending, x.lineBuffers(f))
	}
	for _, st := range x.sinks {
		backoff := x.cfg.minBackoff
		for {
			n, err := x.deliverTo(ctx, st, lines[st.s.format()])
			if err == nil {
				x.met.delivered.WithLabelValues(st.s.label()).Add(float64(n))
				x.met.sinkUp.WithLabelValues(st.s.label()).Set(1)
				break
			}
			x.met.failed.WithLabelValues(st.s.label()).Inc()
			x.met.sinkUp.WithLabelValues(st.s.label()).Set(0)
			st.s.reset()
			st.rollBack()
			x.log.Warn("sink_failed", "sink", st.s.label(), "err", err, "retry_in", backoff, "pending", len(x.pending))
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case err := <-x.errc:
				t.Stop()
				return err
			case <-t.C:
			}
			backoff = min(backoff*2, x.cfg.maxBackoff)
		}
	}
	for _, e := range x.pending {
		if e.isRecord() && e.rec.Index > x.delivered[e.dev] {
			x.delivered[e.dev] = e.rec.Index
			x.lastTime[e.dev] = e.rec.Time
		}
	}
	x.pending = x.pending[:0]
	x.mu.Lock()
	x.mu.delivered = maps.Clone(x.delivered)
	x.mu.lastTime = maps.Clone(x.lastTime)
	x.mu.Unlock()
	return x.clear(ctx)
}

// lineBuffers returns the buffers to render f's lines into: the ones of
// the last delivery when no sink of f keeps its lines past a delivery,
// fresh ones otherwise (JetStream's publishes hold their lines).
func (x *exporter) lineBuffers(f *format) *lineBuffers {
	for _, st := range x.sinks {
		if st.s.format() == f && st.s.keepsLines() {
			return &lineBuffers{}
		}
	}
	if x.lineBufs == nil {
		x.lineBufs = map[*format]*lineBuffers{}
	}
	lb := x.lineBufs[f]
	if lb == nil {
		lb = &lineBuffers{}
		x.lineBufs[f] = lb
	}
	return lb
}

// deliverTo writes to one sink what it lacks and commits it.
func (x *exporter) deliverTo(ctx context.Context, st *sinkState, lines [][]byte) (int, error) {
	n := 0
	for i, e := range x.pending {
		if !st.lacks(e) {
			continue
		}
		if err := st.s.write(ctx, e, lines[i]); err != nil {
			return 0, err
		}
		st.sent(e)
		if e.isRecord() {
			n++
		}
	}
	if err := st.s.commit(ctx); err != nil {
		return 0, err
	}
	st.commitDone()
	return n, nil
}

// clear acknowledges delivered records to each server. A failed clear is
// retried at the next delivery; it never loses or repeats records.
func (x *exporter) clear(ctx context.Context) error {
	for _, src := range x.sources {
		to := x.delivered[src.dev]
		if to <= x.cleared[src.dev] {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := src.c.Clear(cctx, src.dev, src.user, to)
		cancel()
		if err != nil {
			if _, ok := client.IsEvicted(err); ok {
				continue // the follow loop reports it
			}
			x.log.Warn("clear_failed", "device", src.dev, "user", src.user, "index", uint64(to), "err", err)
			continue
		}
		x.cleared[src.dev] = to
		x.met.cleared.WithLabelValues(src.dev).Set(float64(to))
	}
	return nil
}

// evicted builds the error for src's user having been evicted: how many
// records were written that no sink got.
func (x *exporter) evicted(ctx context.Context, src *source, cause error) error {
	e := &errEvicted{dev: src.dev, user: src.user, err: cause}
	x.mu.Lock()
	e.delivered = x.mu.delivered[src.dev]
	x.mu.Unlock()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if cause == nil {
		// The server remembers evicted users: a read as the user says
		// USER_EVICTED.
		req := &changelogv1.ReadRequest{Device: src.dev, User: src.user, StartIndex: 1, EndIndex: 1}
		if err := src.c.Read(sctx, req, func([]*changelog.Record, *changelogv1.ReadResponse) error { return nil }); err != nil {
			e.err = err
		}
	}
	if st, err := src.c.State(sctx, src.dev); err == nil {
		e.last = changelog.Index(st.GetCurrentIndex())
	}
	e.last = max(e.last, e.delivered)
	x.met.lost.WithLabelValues(src.dev).Set(float64(e.last - e.delivered))
	return e
}

// watch samples each server for the lag metrics, and notices a user that
// disappeared (evicted by the changelog GC) even while the follow loop is
// blocked behind a sink that is down.
func (x *exporter) watch(ctx context.Context) {
	t := time.NewTicker(x.cfg.lagInterval)
	defer t.Stop()
	for {
		for _, src := range x.sources {
			sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			r, err := src.c.Users(sctx, src.dev)
			cancel()
			if err != nil {
				continue
			}
			found := false
			for _, u := range r.GetUsers() {
				found = found || u.GetDisplayName() == src.user
			}
			if !found {
				select {
				case x.errc <- x.evicted(ctx, src, nil):
				default:
				}
				return
			}
			x.mu.Lock()
			d, lt := x.mu.delivered[src.dev], x.mu.lastTime[src.dev]
			x.mu.Unlock()
			cur := changelog.Index(r.GetCurrentIndex())
			lag := float64(0)
			if cur > d {
				lag = float64(cur - d)
			}
			x.met.lagRecords.WithLabelValues(src.dev).Set(lag)
			secs := 0.0
			if lag > 0 && !lt.IsZero() {
				secs = time.Since(lt).Seconds()
			}
			x.met.lagSeconds.WithLabelValues(src.dev).Set(secs)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
