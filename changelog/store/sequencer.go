package store

import (
	"fmt"
	"sync"
	"sync/atomic"

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
}

// maxGroupBytes bounds a group batch; callers beyond it wait for the next.
const maxGroupBytes = 4 << 20

// Pending is a batch applied (visible, indices assigned) but not yet known
// durable. Wait makes it durable.
type Pending struct {
	g     *group
	First changelog.Index // first index assigned, 0 if no record was kept
	Last  changelog.Index // last index assigned, 0 if no record was kept
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

// lead commits the queued requests (self among them) as one group, hands
// leadership to the first request queued meanwhile and wakes the group's
// other callers.
func (l *Log) lead(self *applyReq) {
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

	l.qmu.Lock()
	var next *applyReq
	if len(l.qmu.queue) == 0 {
		l.qmu.leading = false
	} else {
		next = l.qmu.queue[0]
		next.lead = true
	}
	l.qmu.Unlock()
	if next != nil {
		close(next.wake)
	}
	for _, r := range reqs {
		if r != self {
			close(r.wake)
		}
	}
}

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
		}
		if !ok {
			for _, r := range reqs {
				if r.p == nil && r.err == nil {
					r.err = in[0].err
				}
			}
		}
		g, in, kept = nil, nil, nil
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
	if err := l.db.ApplyNoSyncWait(g.b, pebble.Sync); err != nil {
		l.failGroupLocked(in, err)
		return false
	}
	l.mu.current = idx
	l.mu.head = head
	l.mu.seq++
	g.seq, g.idx = l.mu.seq, idx
	l.appliedI.Store(uint64(idx))
	l.applied.Store(g.seq)
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
func (p *Pending) Wait() error { return p.g.wait() }

// wait waits for the group's fsync once (the first caller; the others wait
// for it), publishes the durable watermark and releases the group batch.
func (g *group) wait() error {
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
