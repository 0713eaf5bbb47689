package store

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/fidlog/fidlog/changelog"
)

// Group commit. Concurrent Apply calls queue their batches; one of them,
// the leader, takes the whole queue, assigns the records' indices under the
// log's lock in queue order, copies every batch into one group batch and
// commits it to Pebble with a sync requested but not waited for
// (DB.ApplyNoSyncWait: applied and visible, WAL record written, fsync queued
// in Pebble's own pipeline). Leadership then passes to the first caller
// that queued meanwhile, which commits the next group while this group's
// fsync is in flight; the callers of a group wait for its fsync outside
// every lock (Pending.Wait). With one writer the caller is its own leader:
// no goroutine hand-off besides Pebble's WAL writer.

// applyReq is one Apply call in the queue.
type applyReq struct {
	b    *pebble.Batch
	recs []*changelog.Record
	bufs [][]byte // encoded recs, nil when changelogs were off at encode time
	// wake is closed when the request is done (p or err set) or when its
	// caller must lead (lead set). nil for a caller that found no leader.
	wake chan struct{}
	lead bool
	p    *Pending
	err  error
}

// group is one group batch: what its callers wait on.
type group struct {
	l   *Log
	b   *pebble.Batch
	seq uint64
	idx changelog.Index // current index once the group is applied

	claimed atomic.Bool
	done    chan struct{} // closed once the sync is known (err set)
	err     error

	// A held group was applied without a sync; issued is closed once
	// cover, the sync that covers it, is issued (see releaseHeld).
	issued chan struct{}
	cover  *group
}

// maxGroupBytes bounds a group batch; callers beyond it wait for the next.
const maxGroupBytes = 4 << 20

// Pending is a batch applied (visible, indices assigned) but not yet known
// durable. Wait makes it durable.
type Pending struct {
	g      *group
	First  changelog.Index // first index assigned, 0 if no record was kept
	Last   changelog.Index // last index assigned, 0 if no record was kept
	waited atomic.Bool
}

// Apply commits b together with recs as one atomic batch, without waiting
// for the WAL sync. Records whose type is not in the effective mask, or all
// records while changelogs are off, are dropped (their Index stays 0); kept
// records get contiguous indices in commit order and their Time is set if
// zero. On error nothing of b is committed. b is only read: the caller
// still owns it and must Close it, after Apply returns. Call Wait before
// acknowledging the operation.
//
// Concurrent calls share one Pebble commit (see group commit above). The
// log's lock is held only for the in-memory part of the commit, never
// across an fsync.
func (l *Log) Apply(b *pebble.Batch, recs []*changelog.Record) (*Pending, error) {
	now := l.opts.Clock()
	// Encode outside the lock; the index is patched in under it.
	var bufs [][]byte
	if l.gate.Load()&(1<<32) != 0 && len(recs) > 0 {
		bufs = make([][]byte, len(recs))
		for i, r := range recs {
			if r.Time.IsZero() {
				r.Time = now
			}
			if len(r.JobID) > changelog.MaxJobID {
				r.JobID = r.JobID[:changelog.MaxJobID]
			}
			if l.opts.NoChain {
				bufs[i] = changelog.Encode(r)
			} else {
				// The chain hash is sealed in under the lock.
				bufs[i] = changelog.EncodeChained(r)
			}
		}
	}
	req := &applyReq{b: b, recs: recs, bufs: bufs}
	l.qmu.Lock()
	l.qmu.queue = append(l.qmu.queue, req)
	if l.qmu.leading {
		req.wake = make(chan struct{})
		l.qmu.Unlock()
		<-req.wake
		if !req.lead {
			return req.p, req.err
		}
	} else {
		l.qmu.leading = true
		l.qmu.Unlock()
	}
	l.lead(req)
	return req.p, req.err
}

// lead commits the queued requests (self among them) as one group and
// wakes the group's other callers; while callers queued meanwhile, it
// commits them too, up to maxLeadRounds groups, and then hands leadership
// to the first request still queued.
//
// Handing leadership on after every group cost a goroutine hand-off per
// group on the path every commit takes: at 128 writers groups are small
// (the leader is quick, ~2 callers queue during one commit) and the woken
// leader waits behind the callers it was woken with, so the pipeline
// stalled between groups.
func (l *Log) lead(self *applyReq) {
	for round := 1; ; round++ {
		l.qmu.Lock()
		reqs, size := l.qmu.queue, 0
		n := 0
		for n < len(reqs) && (n == 0 || size+len(reqs[n].b.Repr()) <= maxGroupBytes) {
			size += len(reqs[n].b.Repr())
			n++
		}
		// The rest start a new queue: reqs stays this leader's alone.
		l.qmu.queue = append([]*applyReq(nil), reqs[n:]...)
		reqs = reqs[:n:n]
		l.qmu.Unlock()

		if appended := l.commitGroup(reqs); len(appended) > 0 {
			// Metrics and logs run after the log's lock is released.
			if f := l.opts.Events.Appended; f != nil {
				f(appended)
			}
		}
		if l.hold.n.Load() > 0 {
			l.releaseHeld(false)
		}
		for _, r := range reqs {
			if r != self {
				close(r.wake)
			}
		}

		l.qmu.Lock()
		switch {
		case len(l.qmu.queue) == 0:
			l.qmu.leading = false
			l.qmu.Unlock()
			return
		case round < maxLeadRounds:
			l.qmu.Unlock()
			continue
		}
		next := l.qmu.queue[0]
		next.lead = true
		l.qmu.Unlock()
		close(next.wake)
		return
	}
}

// maxLeadRounds bounds the groups one leader commits before it returns to
// its own caller.
const maxLeadRounds = 8

// commitGroup assigns indices and commits reqs as one Pebble batch (two or
// more when making room for records evicts users: the records before the
// eviction commit first, as they would one by one); it sets every
// request's p or err. It returns the records appended, for the Appended
// event.
func (l *Log) commitGroup(reqs []*applyReq) (appended []*changelog.Record) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var (
		g    *group
		in   []*applyReq // requests in g
		kept []*changelog.Record
		raws [][]byte // encodings of kept
		idx  = l.mu.current
		head = l.mu.head // chain hash of record idx
	)
	// flush commits g; false if it failed (every request of reqs then has
	// its error).
	flush := func() bool {
		if len(in) == 0 {
			return true
		}
		ok := l.applyGroupLocked(g, in, kept, idx, head)
		if ok {
			appended = append(appended, kept...)
			if len(kept) > 0 {
				l.tail.add(kept[0].Index, raws)
			}
		}
		if !ok {
			for _, r := range reqs {
				if r.p == nil && r.err == nil {
					r.err = in[0].err
				}
			}
		}
		g, in, kept, raws = nil, nil, nil, nil
		return ok
	}
	for _, r := range reqs {
		if err := l.usableLocked(); err != nil {
			r.err = err
			continue
		}
		keep := 0
		if len(l.mu.users) > 0 && r.bufs != nil {
			for _, rec := range r.recs {
				if l.mu.effective.Has(rec.Type) {
					keep++
				}
			}
		}
		if keep > 0 && l.mu.settings.MaxRecords > 0 {
			if pending := uint64(idx - l.mu.current); pending > 0 &&
				uint64(l.mu.current-l.mu.purged)+pending+uint64(keep) > l.mu.settings.MaxRecords {
				// Making room may evict users: commit the records
				// before it first.
				if !flush() {
					return
				}
			}
			if err := l.makeRoomLocked(uint64(keep)); err != nil {
				r.err = err
				continue
			}
			if len(l.mu.users) == 0 {
				// Making room evicted every user: changelogs are off now,
				// so nothing is recorded and the index does not move.
				keep = 0
			}
		}
		if g == nil {
			g = &group{l: l, b: l.db.NewBatch(), done: make(chan struct{})}
		}
		if err := g.b.Apply(r.b, nil); err != nil {
			r.err = fmt.Errorf("%w: batch: %v", changelog.ErrIO, err)
			continue
		}
		p := &Pending{g: g}
		if keep > 0 {
			first := idx + 1
			for i, rec := range r.recs {
				if !l.mu.effective.Has(rec.Type) {
					rec.Index = 0
					continue
				}
				idx++
				rec.Index = idx
				changelog.SetIndex(r.bufs[i], idx)
				if !l.opts.NoChain {
					// The chain's only cost under the lock: one
					// SHA-256 of the record's bytes.
					head = l.mu.sealer.Seal(r.bufs[i], head)
					rec.Hash = head
				}
				if err := g.b.Set(l.keys.record(idx), r.bufs[i], nil); err != nil {
					// Unreachable on an open batch; fail the group
					// rather than leave a gap.
					in = append(in, r)
					l.failGroupLocked(in, err)
					for _, r := range reqs {
						if r.p == nil && r.err == nil {
							r.err = in[0].err
						}
					}
					return
				}
				kept = append(kept, rec)
				raws = append(raws, r.bufs[i])
			}
			p.First, p.Last = first, idx
		} else {
			for _, rec := range r.recs {
				rec.Index = 0
			}
		}
		r.p = p
		in = append(in, r)
	}
	flush()
	return appended
}

// applyGroupLocked commits g, which holds the batches of in and the records
// kept up to index idx, and advances the sequencer. On failure every
// request of in has its error and nothing of g is committed.
func (l *Log) applyGroupLocked(g *group, in []*applyReq, kept []*changelog.Record, idx changelog.Index, head changelog.Hash) bool {
	if g.b.Empty() {
		// Nothing to write, yet the callers' Wait must cover the batches
		// applied before: an empty WAL record carries the sync.
		mustBatch(g.b.LogData(nil, nil))
	}
	// Hold the sync back while announced callers are still on their way
	// (see releaseHeld), and behind groups already held.
	hold := false
	if e := l.expected.Load(); e > 0 {
		hold = l.hold.n.Load() > 0 || e-l.waiting.Load()-int64(len(in)) > 0
	}
	var err error
	if hold {
		if err = l.db.Apply(g.b, pebble.NoSync); err == nil {
			closeBatch(g.b)
			g.b = nil
		}
	} else {
		err = l.db.ApplyNoSyncWait(g.b, pebble.Sync)
	}
	if err != nil {
		l.failGroupLocked(in, err)
		return false
	}
	l.mu.current = idx
	l.mu.head = head
	l.mu.seq++
	g.seq, g.idx = l.mu.seq, idx
	l.appliedI.Store(uint64(idx))
	l.applied.Store(g.seq)
	l.waiting.Add(int64(len(in)))
	if hold {
		g.issued = make(chan struct{})
		l.hold.add(g, len(in))
	}
	if len(kept) > 0 {
		l.maybeKickGCLocked()
		l.kickCheckpointLocked()
	}
	return true
}

// failGroupLocked fails every request of in: nothing of their group batch
// committed. The batch is dropped, not closed: Pebble may still hold it.
func (l *Log) failGroupLocked(in []*applyReq, err error) {
	l.writeErrorLocked(err)
	err = fmt.Errorf("%w: commit: %v", changelog.ErrIO, err)
	for _, r := range in {
		r.p, r.err = nil, err
	}
}

// Wait returns once the batch of p is durable (group commit: concurrent
// waiters share fsyncs, and a sync issued for a later batch covers p).
func (p *Pending) Wait() error {
	err := p.g.wait()
	if p.waited.CompareAndSwap(false, true) {
		p.g.l.waiting.Add(-1)
	}
	return err
}

// wait waits for the group's fsync once (the first caller; the others wait
// for it), publishes the durable watermark and releases the group batch.
func (g *group) wait() error {
	if g.issued != nil {
		<-g.issued
		return g.cover.wait()
	}
	if !g.claimed.CompareAndSwap(false, true) {
		<-g.done
		return g.err
	}
	l := g.l
	if err := g.b.SyncWait(); err != nil {
		g.err = l.syncFailed(err)
	} else {
		closeBatch(g.b)
		l.syncedTo(g.seq, g.idx)
	}
	close(g.done)
	return g.err
}

// Commit is Apply followed by Wait.
func (l *Log) Commit(b *pebble.Batch, recs []*changelog.Record) (*Pending, error) {
	p, err := l.Apply(b, recs)
	if err != nil {
		return nil, err
	}
	return p, p.Wait()
}

// commitLocked applies a batch with no records (users, settings, purge) in
// commit order; the caller syncs after unlocking.
func (l *Log) commitLocked(b *pebble.Batch) (uint64, error) {
	if err := b.Commit(pebble.NoSync); err != nil {
		l.writeErrorLocked(err)
		return 0, fmt.Errorf("%w: commit: %v", changelog.ErrIO, err)
	}
	l.mu.seq++
	l.applied.Store(l.mu.seq)
	return l.mu.seq, nil
}

// queue is the group-commit queue (guarded by its own lock, never held
// with mu).
type queue struct {
	sync.Mutex
	queue   []*applyReq
	leading bool
}

// Held syncs. Over gRPC the transport hands the server creates more
// slowly than one fsync takes (at 128 writers ~25k creates/s against a
// 300-400 µs fsync), so a group commit that syncs as soon as it can
// shares an fsync between ~10 creates, while raw Pebble fed at 110k/s
// shares 50; each fsync costs ~70 µs of CPU besides its wait. The server
// knows better: it announces the write RPCs it is serving (Expect,
// ExpectDone). A group applied while announced callers are still on their
// way to Apply (announced minus those applied and not yet through Wait) is
// applied without a sync and held; the held groups get one sync, issued
// once holdOps callers are held, nobody announced is on the way any more,
// or maxHold has passed since the first was held. With one writer, or
// in-process callers that announce nothing, nothing is held. Groups are
// applied (visible, indices assigned, the namespace locks of their
// callers released) exactly as before; only the sync request waits.

// Hold limits.
const (
	holdOps = 32
	maxHold = time.Millisecond
)

// holdState is the held groups.
type holdState struct {
	sync.Mutex
	groups []*group // applied without a sync, in commit order
	ops    int      // their callers
	since  time.Time
	timer  *time.Timer
	limit  time.Duration // maxHold (tests change it before any Apply)
	n      atomic.Int64  // len(groups), read without the lock
}

// add holds g, applied for ops callers (under the log's lock: groups are
// held in commit order).
func (h *holdState) add(g *group, ops int) {
	h.Lock()
	if len(h.groups) == 0 {
		h.since = time.Now()
	}
	h.groups = append(h.groups, g)
	h.ops += ops
	h.n.Store(int64(len(h.groups)))
	h.Unlock()
}

// Expect announces a caller on its way to Apply: a server serving a write
// request. ExpectDone must follow when the request is done, whether it
// applied anything or not. See "Held syncs".
func (l *Log) Expect() { l.expected.Add(1) }

// Announced returns the number of callers announced by Expect and not yet
// done (metrics, tests).
func (l *Log) Announced() int64 { return l.expected.Load() }

// ExpectDone ends what Expect announced.
func (l *Log) ExpectDone() {
	l.expected.Add(-1)
	if l.hold.n.Load() > 0 {
		l.releaseHeld(false)
	}
}

// releaseHeld issues one sync for the held groups if they should wait no
// longer (always with force), and wakes their callers.
func (l *Log) releaseHeld(force bool) {
	h := &l.hold
	h.Lock()
	if len(h.groups) == 0 {
		h.Unlock()
		return
	}
	if !force && h.ops < holdOps && l.expected.Load()-l.waiting.Load() > 0 {
		limit := h.limit
		if limit == 0 {
			limit = maxHold
		}
		if wait := limit - time.Since(h.since); wait > 0 {
			if h.timer == nil {
				h.timer = time.AfterFunc(wait, func() { l.releaseHeld(true) })
			}
			h.Unlock()
			return
		}
	}
	gs := h.groups
	h.groups, h.ops = nil, 0
	h.n.Store(0)
	if h.timer != nil {
		h.timer.Stop()
		h.timer = nil
	}
	h.Unlock()

	// The sync: an empty WAL record written after every held group, so its
	// fsync covers them all.
	last := gs[len(gs)-1]
	t := &group{l: l, b: l.db.NewBatch(), seq: last.seq, idx: last.idx, done: make(chan struct{})}
	mustBatch(t.b.LogData(nil, nil))
	if err := l.db.ApplyNoSyncWait(t.b, pebble.Sync); err != nil {
		t.err = l.syncFailed(err)
		t.claimed.Store(true)
		close(t.done)
	}
	for _, g := range gs {
		g.cover = t
		close(g.issued)
	}
}
