package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/fidlog/fidlog/changelog"
)

// ReadOptions select records to read.
type ReadOptions struct {
	// Start is the first index wanted; records below the first retained
	// one are gone, so reading starts at max(Start, first retained).
	Start changelog.Index
	// End is the last index wanted; 0 means up to the durable watermark.
	End changelog.Index
	// Mask keeps only these types; 0 keeps all.
	Mask changelog.Mask
	// Limit stops after this many delivered records; 0 means no limit.
	Limit int
	// Chain delivers what a verifier needs, in stream order: every record
	// and, just before the record each precedes, the checkpoints. Mask
	// must be 0.
	Chain bool
	// Anchor, in a Chain scan, first delivers the anchor: the hash of the
	// record before the first one delivered, or of the last purged record.
	// A stream sends it once, at its start.
	Anchor bool
	// Trailing, in a Chain scan that ends at the durable index, also
	// delivers the durable checkpoints written after the last record (which
	// a later scan would deliver before the next record): for one-shot
	// reads such as a verification, never for a stream that continues.
	Trailing bool
}

// Entry is one stored record as read: its index, type and encoding. Raw is
// valid only during the callback; copy it to keep it. In a Chain scan an
// entry may also be an anchor or a checkpoint (Kind); Index is then the
// anchor's index or the checkpoint's position, and Raw the stream
// encoding (changelog.AppendAnchor, Checkpoint.AppendEncode).
type Entry struct {
	Kind  changelog.ItemKind
	Index changelog.Index
	Type  changelog.Type
	Raw   []byte
}

// Decode decodes the entry's record.
func (e Entry) Decode() (*changelog.Record, error) { return changelog.Decode(e.Raw) }

// errStop ends a scan early without error.
var errStop = errors.New("stop")

// ErrStop may be returned by a Scan callback to stop without error.
var ErrStop = errStop

// testAfterIter, set by tests, runs once Scan has made its iterator.
var testAfterIter func()

// Scan calls fn for each durable record in [max(Start, first), min(End,
// durable)] in index order, skipping types outside Mask. It returns the index
// to continue from: one past the last record examined. Records above the
// durable watermark are never returned, even though Pebble may already
// show them.
func (l *Log) Scan(ctx context.Context, o ReadOptions, fn func(Entry) error) (next changelog.Index, err error) {
	if o.Chain && o.Mask != 0 {
		return o.Start, errors.New("changelog: a chain scan cannot filter by mask")
	}
	// The durable index is read before any iterator is made: every record
	// up to it was applied before, so an iterator made after sees it. Read
	// after, a group applied and synced in between would lie inside the
	// range but outside the iterator's view, and the scan would return
	// past it.
	end := l.Durable()
	if o.End != 0 {
		end = min(end, o.End)
	}
	var (
		first    changelog.Index
		closed   bool
		anchor   changelog.Anchor
		it, ckit *pebble.Iterator
	)
	if o.Chain {
		l.mu.Lock()
		first, closed = l.mu.purged+1, l.mu.closed
		anchor = changelog.Anchor{Index: l.mu.purged, Hash: l.mu.anchor}
		if !closed {
			// Under the lock, so that no purge falls between the anchor
			// and the iterators' views.
			if it, err = l.db.NewIter(nil); err == nil {
				if ckit, err = l.db.NewIter(nil); err != nil {
					err = errors.Join(err, it.Close())
					it = nil
				}
			}
		}
		l.mu.Unlock()
	} else {
		// No lock: a purge between this load and the iterator's view only
		// means the scan finds those records gone and starts after them.
		first, closed = l.First(), l.closedA.Load()
	}
	if closed {
		return o.Start, changelog.ErrClosed
	}
	if err != nil {
		return o.Start, err
	}
	start := max(o.Start, first)
	if it == nil {
		if start > end {
			return start, nil
		}
		// The newest records, what a follower woken by a commit reads,
		// come from the tail when it holds them all.
		if end-start < tailMaxRead {
			if next, ok, err := l.scanTail(ctx, o, start, end, fn); ok {
				return next, err
			}
		}
		if it, err = l.db.NewIter(nil); err != nil {
			return o.Start, err
		}
	}
	if testAfterIter != nil {
		testAfterIter()
	}
	if ckit != nil {
		defer func() {
			if cerr := ckit.Close(); cerr != nil && err == nil {
				err = cerr
			}
		}()
	}
	defer func() {
		if cerr := it.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	if start > end {
		return start, nil
	}
	var cks *ckIter
	if o.Chain && o.Anchor {
		if start > first {
			it.SetBounds(l.keys.record(start-1), l.keys.record(start))
			if !it.First() {
				return start, errors.Join(changelog.ErrCorrupt, fmt.Errorf("record %d is missing", start-1))
			}
			h, _ := changelog.StoredHash(it.Value())
			anchor = changelog.Anchor{Index: start - 1, Hash: h}
		}
		if err := fn(Entry{Kind: changelog.ItemAnchor, Index: anchor.Index, Raw: changelog.AppendAnchor(nil, anchor)}); err != nil {
			if errors.Is(err, errStop) {
				return start, nil
			}
			return start, err
		}
	}
	if o.Chain {
		cks = l.newCkIter(ckit, start, end+1)
	}
	lo, hi := l.keys.record(start), l.keys.record(end+1)
	it.SetBounds(lo, hi)
	next = start
	n := 0
	for valid := it.SeekGE(lo); valid; valid = it.Next() {
		if n%256 == 0 {
			if err := ctx.Err(); err != nil {
				return next, err
			}
		}
		v := it.Value()
		idx := l.keys.recordIndex(it.Key())
		if cks != nil {
			if err := cks.upTo(idx, fn); err != nil {
				if errors.Is(err, errStop) {
					return idx, nil
				}
				return idx, err
			}
		}
		next = idx + 1
		t, ok := changelog.PeekType(v)
		if !ok && !o.Chain {
			return idx, errors.Join(changelog.ErrCorrupt, errors.New("undecodable record"))
		}
		if o.Mask != 0 && !o.Mask.Has(t) {
			continue
		}
		if err := fn(Entry{Kind: changelog.ItemRecord, Index: idx, Type: t, Raw: v}); err != nil {
			if errors.Is(err, errStop) {
				return next, nil
			}
			return next, err
		}
		n++
		if o.Limit > 0 && n >= o.Limit {
			return next, it.Error()
		}
	}
	if err := it.Error(); err != nil {
		return next, err
	}
	if cks != nil && o.Trailing && end == l.Durable() {
		cks.maxSeq = l.ckDurable.Load()
		if err := cks.upTo(end+1, fn); err != nil && !errors.Is(err, errStop) {
			return end + 1, err
		}
	}
	return end + 1, nil
}

// Read returns decoded durable records per o.
func (l *Log) Read(ctx context.Context, o ReadOptions) ([]*changelog.Record, changelog.Index, error) {
	var out []*changelog.Record
	next, err := l.Scan(ctx, o, func(e Entry) error {
		r, err := e.Decode()
		if err != nil {
			return err
		}
		out = append(out, r)
		return nil
	})
	return out, next, err
}

// Verify streams the log from max(from, first retained) through v (a
// chain scan: anchor, records, checkpoints) and checks that it reaches the
// durable index. It returns v's first problem, or nil.
func (l *Log) Verify(ctx context.Context, v *changelog.Verifier, from changelog.Index) error {
	end := l.Durable()
	var fed error
	_, err := l.Scan(ctx, ReadOptions{Start: from, End: end, Chain: true, Anchor: true, Trailing: true}, func(e Entry) error {
		if fed = v.Item(e.Raw); fed != nil {
			return errStop
		}
		return nil
	})
	if fed != nil {
		return fed
	}
	if err != nil {
		return err
	}
	return v.End(end)
}
