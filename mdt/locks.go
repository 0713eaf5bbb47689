package mdt

import (
	"errors"
	"slices"
	"sync"

	"github.com/fidlog/fidlog/fid"
)

// lockStripes is the number of per-object lock stripes.
const lockStripes = 1024

// maxOptimistic is how many passes an operation makes under the shared
// namespace lock before it falls back to the exclusive one (which always
// succeeds: nothing else runs).
const maxOptimistic = 4

// stripe is one per-object mutex, padded to a cache line.
type stripe struct {
	sync.Mutex
	_ [64 - 8]byte
}

// stripeOf returns the stripe of object f.
func stripeOf(f fid.FID) uint16 {
	h := f.Seq*0x9e3779b97f4a7c15 ^ uint64(f.Oid)*0xc2b2ae3d27d4eb4f ^ uint64(f.Ver)
	h ^= h >> 29
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 32
	return uint16(h % lockStripes)
}

var (
	// errRelock makes update release every lock and run the operation
	// again with the objects it asked for locked from the start.
	errRelock = errors.New("mdt: relock")
	// errExclusive makes update run the operation again under the
	// exclusive namespace lock.
	errExclusive = errors.New("mdt: needs the exclusive namespace lock")
)

// lockSet is the object stripes one pass of an operation holds. In
// exclusive mode (MDT.mu held for writing) nothing else runs and no stripe
// is taken.
type lockSet struct {
	m         *MDT
	exclusive bool
	held      []uint16 // sorted, locked
	want      []uint16 // stripes to lock at the start of the next pass
	// Room for the stripes of a typical operation (parent, object,
	// replaced entry's object), so that taking them allocates nothing.
	heldBuf, wantBuf [4]uint16
}

// need makes sure the stripes of fs are held, and must be called before
// the state of those objects is read. A stripe above every held one is
// taken (blocking: stripes are always acquired in ascending order); one
// below is only tried. It returns false if a stripe could not be taken:
// the caller must then return errRelock (see relock) before reading
// anything of that object.
func (ls *lockSet) need(fs ...fid.FID) bool {
	if ls.exclusive {
		return true
	}
	ok := true
	for _, f := range fs {
		if f.IsZero() {
			continue
		}
		s := stripeOf(f)
		i, found := slices.BinarySearch(ls.held, s)
		switch {
		case found:
		case i == len(ls.held):
			ls.m.stripes[s].Lock()
			ls.held = append(ls.held, s)
		case ls.m.stripes[s].TryLock():
			ls.held = slices.Insert(ls.held, i, s)
		default:
			ls.want = append(ls.want, s)
			ok = false
		}
	}
	return ok
}

// relock is the error an operation returns when need failed.
func (ls *lockSet) relock() error { return errRelock }

// exclusiveNeeded returns nil in exclusive mode and errExclusive
// otherwise: the caller does something that needs the whole namespace.
func (ls *lockSet) exclusiveNeeded() error {
	if ls.exclusive {
		return nil
	}
	return errExclusive
}

// lockAll takes the wanted stripes in ascending order at the start of a
// pass.
func (ls *lockSet) lockAll() {
	ls.held = append(ls.held[:0], ls.want...)
	ls.want = ls.want[:0]
	slices.Sort(ls.held)
	ls.held = slices.Compact(ls.held)
	for _, s := range ls.held {
		ls.m.stripes[s].Lock()
	}
}

// unlockAll releases the held stripes; they are wanted again by the next
// pass, if any.
func (ls *lockSet) unlockAll() {
	for _, s := range ls.held {
		ls.m.stripes[s].Unlock()
	}
	ls.want = append(ls.want, ls.held...)
	ls.held = ls.held[:0]
}

// update runs fn, which reads and changes the namespace, under the
// namespace lock. Ordinary operations hold MDT.mu for reading plus the
// stripes of every object they read and then change (fn asks for them
// with need as it finds them); fn returns errRelock when a stripe could
// not be taken in order, and errExclusive when it must run alone
// (directory renames, permission changes of directories). fn must return
// those errors only before anything was applied. No lock is held when
// update returns; the caller waits for durability afterwards.
func (m *MDT) update(fn func(ls *lockSet) error) error {
	ls := &lockSet{m: m}
	ls.held, ls.want = ls.heldBuf[:0], ls.wantBuf[:0]
	for pass := 0; ; pass++ {
		ls.exclusive = pass >= maxOptimistic
		if ls.exclusive {
			m.mu.Lock()
		} else {
			m.mu.RLock()
			ls.lockAll()
		}
		err := fn(ls)
		if ls.exclusive {
			m.mu.Unlock()
		} else {
			ls.unlockAll()
			m.mu.RUnlock()
		}
		switch {
		case errors.Is(err, errExclusive) && !ls.exclusive:
			pass = maxOptimistic - 1
		case errors.Is(err, errRelock) && !ls.exclusive:
		default:
			return err
		}
	}
}
