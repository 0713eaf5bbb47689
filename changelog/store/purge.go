package store

import (
	"context"
	"math"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/fidlog/fidlog/changelog"
)

// purgeLocked adds to b the deletion of every record up to the lowest user
// point: one DeleteRange over [old floor+1, new floor+1), never overlapping
// an earlier one. With no user left everything up to current goes. It sets
// the chain anchor to the hash of the last purged record; the caller puts
// it in b with the state (putStateLocked) and restores purged and anchor
// if b does not commit.
func (l *Log) purgeLocked(b *pebble.Batch) error {
	floor := l.mu.current
	for _, u := range l.mu.users {
		floor = min(floor, u.Index)
	}
	if floor <= l.mu.purged {
		return nil
	}
	if floor == math.MaxUint64 {
		floor--
	}
	anchor := l.mu.head
	if floor != l.mu.current {
		var err error
		if anchor, err = l.recordHash(floor); err != nil {
			return err
		}
	}
	if err := b.DeleteRange(l.keys.record(l.mu.purged+1), l.keys.record(floor+1), nil); err != nil {
		return err
	}
	// Checkpoints sit before the record of their position: those before
	// the new first record go with the records.
	if err := b.DeleteRange(l.keys.checkpoint(l.mu.purged+1, 0), l.keys.checkpoint(floor+1, 0), nil); err != nil {
		return err
	}
	if f := l.opts.Events.Purged; f != nil {
		f(l.mu.purged+1, floor)
	}
	l.mu.purged = floor
	l.purgedA.Store(uint64(floor))
	l.mu.anchor = anchor
	l.changedLocked(RecordsPurged)
	if uint64(floor)-l.compactFrom.Load() >= reclaimThreshold {
		select {
		case l.compactKick <- struct{}{}:
		default:
		}
	}
	return nil
}

// reclaimThreshold is how many purged records make the reclaimer compact
// the purged span.
const reclaimThreshold = 4096

// reclaimDelay coalesces a burst of purges into one compaction (Compact
// flushes the memtable holding the range tombstone itself).
const reclaimDelay = 100 * time.Millisecond

// reclaimLoop gives disk space back after large purges. Pebble drops
// sstables that a range deletion covers entirely, but the files at the
// edges of the record keyspace also hold neighbouring keys (users, meta,
// namespace) and would keep the purged records' bytes indefinitely; a
// compaction of the purged span rewrites just those.
// It runs until ctx ends (Close), which also cancels a compaction.
func (l *Log) reclaimLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.compactKick:
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(reclaimDelay):
		}
		l.mu.Lock()
		to := l.mu.purged
		l.mu.Unlock()
		from := changelog.Index(l.compactFrom.Load())
		if to <= from {
			continue
		}
		if err := l.db.Compact(ctx, l.keys.record(from), l.keys.record(to+1), false); err != nil {
			if ctx.Err() != nil {
				return
			}
			l.opts.Logger.Warn("changelog_reclaim_failed", "device", l.opts.Device, "err", err)
			continue
		}
		l.compactFrom.Store(uint64(to))
	}
}
