package fid

import (
	"errors"
	"fmt"
	"math"
	"sync"
)

// SeqStore persists the highest metadata sequence ever granted. SaveSeq must
// be durable before it returns.
//
// LoadSeq returns ok == false if no sequence has ever been saved. SaveSeq is
// called with strictly increasing values, except that after a failed SaveSeq
// the same value may be saved again. SaveSeq is called with the Allocator's
// lock held, so it must not call back into the Allocator. One store must
// serve at most one Allocator at a time.
type SeqStore interface {
	LoadSeq() (seq uint64, ok bool, err error)
	SaveSeq(seq uint64) error
}

// Errors of NewAllocator and Allocator.Next.
var (
	// ErrExhausted reports that the last sequence (2^64-1) has been used
	// up, or was already granted when the Allocator was opened.
	ErrExhausted = errors.New("fid: sequence space exhausted")
	// ErrBadSeq reports a stored sequence below SeqNormal, which no
	// Allocator could have saved.
	ErrBadSeq = errors.New("fid: stored sequence is not a normal sequence")
)

// Allocator hands out FIDs for new objects, one metadata sequence at a time,
// like a Lustre client's sequence manager: object ids 1 through SeqWidth
// (inclusive, so SeqWidth FIDs per sequence) with version 0, then the next
// sequence. It never returns the same FID twice, even across restarts and
// crashes, as long as its SeqStore is durable. An Allocator is safe for
// concurrent use.
type Allocator struct {
	store SeqStore
	// width is the number of object ids per sequence: SeqWidth, smaller
	// only in this package's tests.
	width uint32

	mu struct {
		sync.Mutex
		// next is the FID the next successful Next returns.
		next FID
		// saved reports whether next.Seq has been durably saved. FIDs of
		// next.Seq are returned only when it is true.
		saved bool
		// exhausted reports that the sequence space has been used up;
		// next is then meaningless.
		exhausted bool
	}
}

// NewAllocator opens an Allocator on store. The first FID it returns is
// [saved+1:0x1:0x0], where saved is the sequence in store, or
// [SeqNormal:0x1:0x0] if store is empty: whatever was left of the last
// sequence granted before is never used. NewAllocator writes nothing; the
// first call to Next saves the new sequence.
func NewAllocator(store SeqStore) (*Allocator, error) {
	return newAllocator(store, SeqWidth)
}

// newAllocator is NewAllocator with a given number of object ids per
// sequence.
func newAllocator(store SeqStore, width uint32) (*Allocator, error) {
	if store == nil {
		return nil, errors.New("fid: nil SeqStore")
	}
	seq, ok, err := store.LoadSeq()
	if err != nil {
		return nil, fmt.Errorf("fid: load sequence: %w", err)
	}
	next := SeqNormal
	if ok {
		switch {
		case seq < SeqNormal:
			return nil, fmt.Errorf("%w: %#x is below %#x", ErrBadSeq, seq, SeqNormal)
		case seq == math.MaxUint64:
			return nil, ErrExhausted
		}
		next = seq + 1
	}
	a := &Allocator{store: store, width: width}
	a.mu.next = FID{Seq: next, Oid: 1}
	return a, nil
}

// Next returns a FID that this Allocator, and any Allocator opened later on
// the same store, never returns again.
//
// When a sequence is used up, Next saves the following sequence with
// SaveSeq, holding the Allocator's lock meanwhile, before it returns any FID
// of it. If SaveSeq fails, Next returns the error (wrapped) and no FID; the
// next call tries to save the same sequence again.
func (a *Allocator) Next() (FID, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.mu.exhausted {
		return FID{}, ErrExhausted
	}
	if !a.mu.saved {
		// Held across SaveSeq on purpose: see the package's locking notes.
		if err := a.store.SaveSeq(a.mu.next.Seq); err != nil {
			return FID{}, fmt.Errorf("fid: save sequence %#x: %w", a.mu.next.Seq, err)
		}
		a.mu.saved = true
	}
	f := a.mu.next
	a.advanceLocked()
	return f, nil
}

// advanceLocked moves mu.next past the FID just returned.
func (a *Allocator) advanceLocked() {
	n := &a.mu.next
	switch {
	case n.Oid < a.width:
		n.Oid++
	case n.Seq == math.MaxUint64:
		a.mu.exhausted = true
	default:
		*n = FID{Seq: n.Seq + 1, Oid: 1}
		a.mu.saved = false
	}
}

// Peek returns the FID the next successful call to Next would return, or
// the zero FID if the sequence space is exhausted. It does not save
// anything. With concurrent callers of Next the answer may be stale at once;
// it is meant for metrics and tests.
func (a *Allocator) Peek() FID {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.mu.exhausted {
		return Zero
	}
	return a.mu.next
}
