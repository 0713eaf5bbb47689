package store

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/fidlog/fidlog/changelog"
)

// Pending is a batch applied (visible, indices assigned) but not yet known
// durable. Wait makes it durable.
type Pending struct {
	l     *Log
	seq   uint64
	First changelog.Index // first index assigned, 0 if no record was kept
	Last  changelog.Index // last index assigned, 0 if no record was kept
}

// Apply commits b together with recs as one atomic batch, without waiting
// for the WAL sync. Records whose type is not in the effective mask, or all
// records while changelogs are off, are dropped (their Index stays 0); kept
// records get contiguous indices in commit order and their Time is set if
// zero. On error nothing of b is committed; the caller still owns b and
// must Close it. On success b is consumed by the commit (the caller may
// Close it). Call Wait before acknowledging the operation.
//
// The log's lock is held only for the in-memory part of the commit, never
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
			bufs[i] = changelog.Encode(r)
		}
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usableLocked(); err != nil {
		return nil, err
	}
	keep := 0
	on := len(l.mu.users) > 0
	if on && bufs != nil {
		for _, r := range recs {
			if l.mu.effective.Has(r.Type) {
				keep++
			}
		}
	}
	if keep > 0 && l.mu.settings.MaxRecords > 0 {
		if err := l.makeRoomLocked(uint64(keep)); err != nil {
			return nil, err
		}
		if len(l.mu.users) == 0 {
			// Making room evicted every user: changelogs are off now,
			// so nothing is recorded and the index does not move.
			keep = 0
		}
	}
	p := &Pending{l: l}
	idx := l.mu.current
	var kept []*changelog.Record
	if keep > 0 {
		kept = make([]*changelog.Record, 0, keep)
		for i, r := range recs {
			if !l.mu.effective.Has(r.Type) {
				r.Index = 0
				continue
			}
			idx++
			r.Index = idx
			changelog.SetIndex(bufs[i], idx)
			if err := b.Set(l.keys.record(idx), bufs[i], nil); err != nil {
				return nil, err
			}
			kept = append(kept, r)
		}
		p.First, p.Last = l.mu.current+1, idx
	} else {
		for _, r := range recs {
			r.Index = 0
		}
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		l.writeErrorLocked(err)
		return nil, fmt.Errorf("%w: commit: %v", changelog.ErrIO, err)
	}
	l.mu.current = idx
	l.mu.seq++
	p.seq = l.mu.seq
	l.appliedI.Store(uint64(idx))
	l.applied.Store(p.seq)
	if len(kept) > 0 {
		if f := l.opts.Events.Appended; f != nil {
			f(kept)
		}
		l.maybeKickGCLocked()
	}
	return p, nil
}

// Wait returns once the batch of p is durable (group commit: concurrent
// waiters share fsyncs, and a sync issued for a later batch covers p).
func (p *Pending) Wait() error { return p.l.syncTo(p.seq) }

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
