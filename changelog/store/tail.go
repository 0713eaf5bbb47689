package store

import (
	"context"
	"errors"
	"sync"

	"github.com/fidlog/fidlog/changelog"
)

// The tail: the encodings of the newest records committed since Open, kept
// so that a follower woken by a commit reads them without a Pebble
// iterator. With 64 follow streams, creating an iterator and seeking it for
// the one or two records each wake-up brings was 12 % of all CPU of
// mdbench's T3 follow phase (NewIter and SeekGE, ~2 µs each time even with
// the records in the memtable).
//
// The log's lock orders appends (commit order is index order); the
// tail's own lock is held only to append or to copy out slice headers, so
// a slow reader never holds up a commit. Encodings are never modified once
// committed, so a reader uses its copies after unlocking.

// tailSize is how many records the tail keeps; tailMaxRead is the longest
// range Scan answers from it (longer reads are catch-up: one Pebble
// iteration serves them well).
const (
	tailSize    = 4096
	tailMaxRead = 256
)

type tail struct {
	mu   sync.Mutex
	raw  [tailSize][]byte // the encoding of record i at raw[i%tailSize]
	last changelog.Index  // highest index kept; 0 while empty
	n    int              // records kept: (last-n, last]
}

// add appends the encodings of records first, first+1, ... (under the
// log's lock, after their batch is applied).
func (t *tail) add(first changelog.Index, raws [][]byte) {
	if len(raws) == 0 {
		return
	}
	t.mu.Lock()
	if t.n > 0 && first != t.last+1 {
		t.n = 0 // not contiguous with what is kept: start again
	}
	for i, r := range raws {
		t.raw[(uint64(first)+uint64(i))%tailSize] = r
	}
	t.last = first + changelog.Index(len(raws)) - 1
	t.n = min(t.n+len(raws), tailSize)
	t.mu.Unlock()
}

// meanSize is the mean encoded size of the records kept, 0 while empty.
func (t *tail) meanSize() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n == 0 {
		return 0
	}
	var sum uint64
	for i := range t.n {
		sum += uint64(len(t.raw[(uint64(t.last)-uint64(i))%tailSize]))
	}
	return sum / uint64(t.n)
}

// get copies the encodings of records [start, end] into dst if the tail
// holds all of them.
func (t *tail) get(dst [][]byte, start, end changelog.Index) ([][]byte, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n == 0 || end > t.last || start <= t.last-changelog.Index(t.n) {
		return dst, false
	}
	for i := start; i <= end; i++ {
		dst = append(dst, t.raw[uint64(i)%tailSize])
	}
	return dst, true
}

// scanTail is Scan of [start, end] (durable, at most tailMaxRead records,
// no chain) from the tail. ok is false if the tail does not hold them all;
// Scan then reads Pebble.
func (l *Log) scanTail(ctx context.Context, o ReadOptions, start, end changelog.Index, fn func(Entry) error) (next changelog.Index, ok bool, err error) {
	var buf [32][]byte
	raws, ok := l.tail.get(buf[:0], start, end)
	if !ok {
		return start, false, nil
	}
	if err := ctx.Err(); err != nil {
		return start, true, err
	}
	// A purge since Scan loaded the first retained index: as a Pebble
	// iterator would, start after what it removed.
	if f := l.First(); f > start {
		if f > end {
			return f, true, nil
		}
		raws = raws[f-start:]
		start = f
	}
	n := 0
	for i, v := range raws {
		idx := start + changelog.Index(i)
		t, ok := changelog.PeekType(v)
		if !ok {
			return idx, true, errors.Join(changelog.ErrCorrupt, errors.New("undecodable record"))
		}
		if o.Mask != 0 && !o.Mask.Has(t) {
			continue
		}
		if err := fn(Entry{Kind: changelog.ItemRecord, Index: idx, Type: t, Raw: v}); err != nil {
			if errors.Is(err, errStop) {
				return idx + 1, true, nil
			}
			return idx + 1, true, err
		}
		n++
		if o.Limit > 0 && n >= o.Limit {
			return idx + 1, true, nil
		}
	}
	return end + 1, true, nil
}
