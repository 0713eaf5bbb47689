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

	pending []*event
	// delivered is the highest index of each device every sink committed;
	// cleared the highest the server acknowledged clearing.
	delivered map[string]changelog.Index
	cleared   map[string]changelog.Index
	lastTime  map[string]time.Time // time of the record at delivered

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
}

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
	return fmt.Sprintf("changelog user %s was evicted from %s by the changelog garbage collector: %d records (indices %d..%d) were not exported and are lost to this exporter; restart it to register a new user, which starts at the current record",
		e.user, e.dev, lost, e.delivered+1, e.last)
}

func (e *errEvicted) Unwrap() error { return e.err }

func newExporter(cfg *config, log *slog.Logger, met *metrics, sources []*source, sinks []sink) *exporter {
	x := &exporter{
		cfg: cfg, log: log, met: met, sources: sources,
		in:        make(chan []*event, 4),
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
	}
	x.mu.delivered = maps.Clone(x.delivered)
	x.mu.lastTime = map[string]time.Time{}
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
		st.written = maps.Clone(st.committed)
	}
	return nil
}

// run exports until ctx ends or a source fails for good; it delivers and
// clears what is pending before it returns.
func (x *exporter) run(ctx context.Context) error {
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, len(x.sources))
	var wg sync.WaitGroup
	for _, src := range x.sources {
		wg.Go(func() { errc <- x.follow(fctx, src) })
	}
	wg.Go(func() { x.reportLag(fctx) })
	defer wg.Wait()
	tick := time.NewTicker(x.cfg.interval)
	defer tick.Stop()
	var failed error
	for failed == nil {
		select {
		case evs := <-x.in:
			x.pending = append(x.pending, evs...)
			if len(x.pending) >= x.cfg.batch {
				if err := x.deliver(ctx); err != nil {
					failed = err
				}
			}
		case <-tick.C:
			if err := x.deliver(ctx); err != nil {
				failed = err
			}
		case err := <-errc:
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
	dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer dcancel()
	if err := x.deliver(dctx); err != nil {
		x.log.Warn("final_delivery_failed", "err", err, "records", len(x.pending))
	}
	return failed
}

// follow runs one source until ctx ends or its user is evicted.
func (x *exporter) follow(ctx context.Context, src *source) error {
	err := src.c.Follow(ctx, src.dev, src.user, func(recs []*changelog.Record) error {
		evs := make([]*event, len(recs))
		for i, r := range recs {
			evs[i] = &event{dev: src.dev, rec: r}
			if src.paths != nil {
				src.paths.resolve(ctx, evs[i])
			}
		}
		select {
		case x.in <- evs:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}, client.FollowOptions{NoClear: true, BatchRecords: uint32(x.cfg.batch), Logger: x.log})
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return nil
	}
	if user, ok := client.IsEvicted(err); ok {
		if user == "" {
			user = src.user
		}
		e := &errEvicted{dev: src.dev, user: user, err: err}
		x.mu.Lock()
		e.delivered = x.mu.delivered[src.dev]
		x.mu.Unlock()
		sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer scancel()
		if st, serr := src.c.State(sctx, src.dev); serr == nil {
			e.last = changelog.Index(st.GetCurrentIndex())
		}
		x.met.lost.WithLabelValues(src.dev).Set(float64(max(e.last, e.delivered) - e.delivered))
		return e
	}
	if err == nil {
		return fmt.Errorf("%s: follow ended", src.dev)
	}
	return fmt.Errorf("%s (%s): %w", src.dev, src.target, err)
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
		ls := make([][]byte, len(x.pending))
		for i, e := range x.pending {
			ls[i] = f.appendLine(nil, e)
		}
		lines[f] = ls
	}
	for _, st := range x.sinks {
		backoff := x.cfg.minBackoff
		for {
			n, err := x.deliverTo(ctx, st, lines[st.s.format()])
			if err == nil {
				x.met.delivered.WithLabelValues(st.s.label()).Add(float64(n))
				break
			}
			x.met.failed.WithLabelValues(st.s.label()).Inc()
			st.s.reset()
			st.written = maps.Clone(st.committed)
			x.log.Warn("sink_failed", "sink", st.s.label(), "err", err, "retry_in", backoff, "pending", len(x.pending))
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
			backoff = min(backoff*2, x.cfg.maxBackoff)
		}
	}
	for _, e := range x.pending {
		if e.rec.Index > x.delivered[e.dev] {
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

// deliverTo writes to one sink what it lacks and commits it.
func (x *exporter) deliverTo(ctx context.Context, st *sinkState, lines [][]byte) (int, error) {
	n := 0
	for i, e := range x.pending {
		if e.rec.Index <= st.written[e.dev] {
			continue
		}
		if err := st.s.write(ctx, e, lines[i]); err != nil {
			return 0, err
		}
		st.written[e.dev] = e.rec.Index
		n++
	}
	if err := st.s.commit(ctx); err != nil {
		return 0, err
	}
	maps.Copy(st.committed, st.written)
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

// reportLag samples each server's current index for the lag metrics.
func (x *exporter) reportLag(ctx context.Context) {
	t := time.NewTicker(x.cfg.lagInterval)
	defer t.Stop()
	for {
		for _, src := range x.sources {
			sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			st, err := src.c.State(sctx, src.dev)
			cancel()
			if err != nil {
				continue
			}
			x.mu.Lock()
			d, lt := x.mu.delivered[src.dev], x.mu.lastTime[src.dev]
			x.mu.Unlock()
			cur := changelog.Index(st.GetCurrentIndex())
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
