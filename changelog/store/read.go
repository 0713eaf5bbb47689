package store

import (
	"context"
	"errors"

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
}

// Entry is one stored record as read: its index, type and encoding. Raw is
// valid only during the callback; copy it to keep it.
type Entry struct {
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

// Scan calls fn for each durable record in [max(Start, first), min(End,
// durable)] in index order, skipping types outside Mask. It returns the index
// to continue from: one past the last record examined. Records above the
// durable watermark are never returned, even though Pebble may already
// show them.
func (l *Log) Scan(ctx context.Context, o ReadOptions, fn func(Entry) error) (next changelog.Index, err error) {
	l.mu.Lock()
	first := l.mu.purged + 1
	closed := l.mu.closed
	l.mu.Unlock()
	if closed {
		return o.Start, changelog.ErrClosed
	}
	start := max(o.Start, first)
	end := l.Durable()
	if o.End != 0 {
		end = min(end, o.End)
	}
	if start > end {
		return start, nil
	}
	it, err := l.db.NewIter(nil)
	if err != nil {
		return start, err
	}
	defer func() {
		if cerr := it.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
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
		next = idx + 1
		t, ok := changelog.PeekType(v)
		if !ok {
			return idx, errors.Join(changelog.ErrCorrupt, errors.New("undecodable record"))
		}
		if o.Mask != 0 && !o.Mask.Has(t) {
			continue
		}
		if err := fn(Entry{Index: idx, Type: t, Raw: v}); err != nil {
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
