package store

import (
	"context"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/fidlog/fidlog/changelog"
)

// syncTo makes every batch up to seq durable and publishes the durable
// watermark. The WAL is written in commit order, which is index order, so
// one sync covers every batch applied before it was issued.
func (l *Log) syncTo(seq uint64) error {
	if l.syncSeq.Load() >= seq {
		return nil
	}
	// Everything applied so far is covered by the sync below.
	s := l.applied.Load()
	idx := changelog.Index(l.appliedI.Load())
	if err := l.db.LogData(nil, pebble.Sync); err != nil {
		return l.syncFailed(err)
	}
	l.syncedTo(s, idx)
	return nil
}

// syncFailed latches a failed WAL sync (the log is unusable from then on:
// applied batches may not be durable) and returns the error to report.
func (l *Log) syncFailed(err error) error {
	err2 := fmt.Errorf("%w: wal sync: %v", changelog.ErrIO, err)
	l.mu.Lock()
	if l.mu.failed == nil {
		l.mu.failed = err2
	}
	l.writeErrorLocked(err)
	l.mu.Unlock()
	return err2
}

// syncedTo notes that every batch up to seq, so every record up to idx, is
// synced, and publishes the durable watermark.
func (l *Log) syncedTo(seq uint64, idx changelog.Index) {
	for {
		old := l.syncSeq.Load()
		if old >= seq || l.syncSeq.CompareAndSwap(old, seq) {
			break
		}
	}
	l.publishDurable(idx)
}

func (l *Log) publishDurable(idx changelog.Index) {
	l.dmu.Lock()
	if idx > l.dmu.durable {
		l.dmu.durable = idx
		l.durableA.Store(uint64(idx))
		close(l.dmu.ch)
		l.dmu.ch = make(chan struct{})
	}
	l.dmu.Unlock()
}

// Durable returns the durable watermark: every record up to it is synced.
// It takes no lock.
func (l *Log) Durable() changelog.Index { return changelog.Index(l.durableA.Load()) }

// First returns the first retained index (one past the last purged
// record; records below it are gone). It takes no lock.
func (l *Log) First() changelog.Index { return changelog.Index(l.purgedA.Load()) + 1 }

// WaitDurable blocks until the durable watermark passes after, the context
// ends, or the log closes. It returns the watermark. Followers are woken by
// commits; there is no polling.
func (l *Log) WaitDurable(ctx context.Context, after changelog.Index) (changelog.Index, error) {
	for {
		l.dmu.Lock()
		d, ch := l.dmu.durable, l.dmu.ch
		l.dmu.Unlock()
		if d > after {
			return d, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return d, ctx.Err()
		case <-l.stop:
			return d, changelog.ErrClosed
		}
	}
}

// DurableWatch returns the durable watermark, a channel closed when it
// next moves and one closed when the log closes: for a follower that waits
// with its own timer (WaitDurable takes a context, which with a deadline
// costs a timer per wait).
func (l *Log) DurableWatch() (d changelog.Index, moved, closed <-chan struct{}) {
	l.dmu.Lock()
	d, moved = l.dmu.durable, l.dmu.ch
	l.dmu.Unlock()
	return d, moved, l.stop
}
