package mdt

import (
	"sync"
	"sync/atomic"

	"github.com/fidlog/fidlog/fid"
)

// nsCache is the namespace cache: inodes by FID and directory entries by
// (directory FID, name), so that path walks and the "is the name free?"
// check of a create do not seek Pebble's memtables and sstables (at 128
// writers those point reads were a third to a half of a create's CPU).
// Both halves are bounded and sharded by FID; a directory whose every
// entry is cached is marked complete, which answers negative lookups (a
// new name) without a read.
//
// Coherence. The cache holds exactly what Pebble holds for every key it
// caches, except while a change of that key is in flight:
//
//   - A transaction (txn.apply) marks what it changes pending before its
//     batch is applied (begin: the inodes it writes, the directories
//     whose entries it writes) and installs the new values after Apply
//     succeeded (commit), or drops them if it failed (abort), with the
//     operation's stripes still held. Lookups of a pending inode or in a
//     pending directory read Pebble, so from the moment Pebble makes the
//     batch visible (inside Apply) until commit, cached readers see what
//     Pebble shows, and after commit the cache does. Nothing durable or
//     acknowledged is ever answered from an old entry: the group's fsync
//     and the caller's acknowledgement both come after commit or while
//     the entries are pending.
//   - A reader that missed fills the cache with what it read from Pebble
//     only if its shard's generation did not move between the read and
//     the fill and the key is not pending: begin, commit and abort move
//     the generation, so a value read before or during a change is never
//     installed over it.
//   - Changes of a directory's entries and of an inode need the stripe
//     of that directory or object (or the exclusive namespace lock; see
//     locks.go), so at most one transaction has a given key pending.
//   - A directory is marked complete when it is created (begin of the
//     mkdir: its FID is not visible to anyone yet), or when a name was not
//     found in it and it has at most dirLoadMax entries: loadDir reads them
//     all and installs them only if the directory's version (moved by every
//     begin, commit and abort of its entries) did not move during the read
//     and nothing is pending, so no change can fall between the read and
//     the installation.
//
// Eviction drops whole directories (so "complete" stays exact) and random
// inodes, never pending ones.
type nsCache struct {
	inodes [nsShards]inoShard
	dirs   [nsShards]dirShard
	// inoCap and entCap are the per-shard bounds (inodes; directory
	// entries plus one per cached directory).
	inoCap, entCap int
	// loadHook, if set (tests), runs in loadDir between the scan of a
	// directory and its installation.
	loadHook func(dir fid.FID)
}

const nsShards = 64

type inoShard struct {
	mu      sync.RWMutex
	gen     uint64
	m       map[fid.FID]*inode
	pending map[fid.FID]int
	_       [64]byte
}

type dirShard struct {
	mu   sync.RWMutex
	gen  uint64
	dirs map[fid.FID]*dcDir
	n    int // cached entries + cached directories
	_    [64]byte
}

// dcDir is one directory's cached entries.
type dcDir struct {
	ents map[string]dent
	// complete: every entry of the directory is in ents, so a name not
	// in ents does not exist.
	complete bool
	// pending counts transactions changing the directory's entries (at
	// most one, see nsCache): while non-zero, lookups read Pebble.
	pending int
	// ver moves whenever a transaction starts or ends changing the
	// entries (begin, commit, abort): a load that saw the same ver before
	// and after its scan saw no change.
	ver uint64
	// big: a load found more than dirLoadMax entries; not tried again
	// while the directory stays cached. failed counts loads dropped
	// because the entries changed meanwhile; after maxLoadFailures none
	// is tried either (a busy directory would be scanned again and again).
	big    bool
	failed int
	// ref is set by every hit and cleared by the eviction sweep.
	ref atomic.Bool
}

// dirLoadMax is the most entries a directory may have to be loaded whole
// (made complete) after a negative lookup.
const (
	dirLoadMax      = 1024
	maxLoadFailures = 3
)

type dent struct {
	fid fid.FID
	typ FileType
}

// newNSCache returns a cache of about size inodes and size directory
// entries, nil (no cache) for size < 0.
func newNSCache(size int) *nsCache {
	if size < 0 {
		return nil
	}
	c := &nsCache{inoCap: max(size/nsShards, 4), entCap: max(size/nsShards, 4)}
	for i := range c.inodes {
		c.inodes[i].m = make(map[fid.FID]*inode)
		c.inodes[i].pending = make(map[fid.FID]int)
	}
	for i := range c.dirs {
		c.dirs[i].dirs = make(map[fid.FID]*dcDir)
	}
	return c
}

func shardOf(f fid.FID) int { return int(stripeOf(f)) % nsShards }

// getInode returns a copy of f's cached inode; gen is the shard's
// generation to pass to fillInode on a miss.
func (c *nsCache) getInode(f fid.FID) (ino *inode, gen uint64) {
	s := &c.inodes[shardOf(f)]
	s.mu.RLock()
	defer s.mu.RUnlock()
	if p, ok := s.m[f]; ok && s.pending[f] == 0 {
		cp := *p
		return &cp, 0
	}
	return nil, s.gen
}

// fillInode caches ino, read from Pebble after getInode returned gen,
// unless the shard changed since.
func (c *nsCache) fillInode(ino *inode, gen uint64) {
	s := &c.inodes[shardOf(ino.FID)]
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen != gen || s.pending[ino.FID] != 0 {
		return
	}
	cp := *ino
	s.m[ino.FID] = &cp
	c.trimInodesLocked(s)
}

// trimInodesLocked drops random unpending inodes above the bound.
func (c *nsCache) trimInodesLocked(s *inoShard) {
	if len(s.m) <= c.inoCap {
		return
	}
	target := c.inoCap - c.inoCap/8
	for f := range s.m {
		if len(s.m) <= target {
			return
		}
		if s.pending[f] == 0 {
			delete(s.m, f)
		}
	}
}

// lookupResult is what the cache knows of a name.
type lookupResult uint8

const (
	lookupMiss   lookupResult = iota // unknown: read Pebble
	lookupFound                      // cached entry
	lookupAbsent                     // complete directory without the name
)

// lookup answers (dir, name) from the cache; gen is for fillDent on a miss.
func (c *nsCache) lookup(dir fid.FID, name string) (d dent, r lookupResult, gen uint64) {
	s := &c.dirs[shardOf(dir)]
	s.mu.RLock()
	defer s.mu.RUnlock()
	if cd := s.dirs[dir]; cd != nil && cd.pending == 0 {
		if e, ok := cd.ents[name]; ok {
			cd.ref.Store(true)
			return e, lookupFound, 0
		}
		if cd.complete {
			cd.ref.Store(true)
			return dent{}, lookupAbsent, 0
		}
	}
	return dent{}, lookupMiss, s.gen
}

// fillDent caches entry (dir, name) -> e, read from Pebble after lookup
// returned gen, unless the shard changed since.
func (c *nsCache) fillDent(dir fid.FID, name string, e dent, gen uint64) {
	s := &c.dirs[shardOf(dir)]
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen != gen {
		return
	}
	cd := s.dirs[dir]
	if cd == nil {
		cd = &dcDir{ents: make(map[string]dent)}
		s.dirs[dir] = cd
		s.n++
	} else if cd.pending != 0 {
		return
	}
	if _, ok := cd.ents[name]; !ok {
		s.n++
	}
	cd.ents[name] = e
	cd.ref.Store(true)
	c.trimDirsLocked(s)
}

// trimDirsLocked drops whole unpending directories above the bound,
// recently hit ones last.
func (c *nsCache) trimDirsLocked(s *dirShard) {
	if s.n <= c.entCap {
		return
	}
	target := c.entCap - c.entCap/8
	for pass := 0; pass < 2 && s.n > target; pass++ {
		for f, cd := range s.dirs {
			if s.n <= target {
				return
			}
			if cd.pending != 0 {
				continue
			}
			if pass == 0 && cd.ref.Swap(false) {
				continue
			}
			delete(s.dirs, f)
			s.n -= len(cd.ents) + 1
		}
	}
}

// nsChanges are the inodes and directory entries one transaction writes,
// in order, for the cache.
type nsChanges struct {
	inodes []inoChange
	dents  []dentChange
	// newDirs are the directories the transaction creates (empty, so
	// complete from the start).
	newDirs []fid.FID
}

type inoChange struct {
	ino inode // the new value, unless del
	del bool
	// fresh: the object is created by this transaction. Nothing can be
	// cached of it before its batch is visible, and what a reader reads
	// of it afterwards is this value, so it needs no pending mark; it is
	// not cached either (a create's new inode is often never read: a
	// reader's fill caches it when it is).
	fresh bool
}

type dentChange struct {
	dir  fid.FID
	name string
	e    dent
	del  bool
}

func (ch *nsChanges) empty() bool {
	return len(ch.inodes) == 0 && len(ch.dents) == 0 && len(ch.newDirs) == 0
}

// putInode notes ino's new value (a copy; a later put of the same object
// replaces it, as in the batch).
func (ch *nsChanges) putInode(ino *inode) {
	for i := range ch.inodes {
		if ch.inodes[i].ino.FID == ino.FID {
			ch.inodes[i] = inoChange{ino: *ino}
			return
		}
	}
	ch.inodes = append(ch.inodes, inoChange{ino: *ino})
}

// markFresh notes that f is created by the transaction (see inoChange).
func (ch *nsChanges) markFresh(f fid.FID) {
	for i := range ch.inodes {
		if ch.inodes[i].ino.FID == f {
			ch.inodes[i].fresh = true
		}
	}
}

// delInode notes the removal of f.
func (ch *nsChanges) delInode(f fid.FID) {
	for i := range ch.inodes {
		if ch.inodes[i].ino.FID == f {
			ch.inodes[i] = inoChange{ino: inode{FID: f}, del: true}
			return
		}
	}
	ch.inodes = append(ch.inodes, inoChange{ino: inode{FID: f}, del: true})
}

// dirs calls fn once for every directory whose entries ch changes.
func (ch *nsChanges) dirs(fn func(fid.FID)) {
	for i, d := range ch.dents {
		seen := false
		for _, e := range ch.dents[:i] {
			if e.dir == d.dir {
				seen = true
				break
			}
		}
		if !seen {
			fn(d.dir)
		}
	}
	for _, d := range ch.newDirs {
		fn(d)
	}
}

// begin marks what ch changes pending, before its batch is applied. New
// directories get a complete, empty entry set (pending until commit).
func (c *nsCache) begin(ch *nsChanges) {
	c.eachOldInode(ch, func(s *inoShard, f fid.FID) {
		s.pending[f]++
		s.gen++
	})
	for _, f := range ch.newDirs {
		s := &c.dirs[shardOf(f)]
		s.mu.Lock()
		if s.dirs[f] == nil {
			s.dirs[f] = &dcDir{ents: make(map[string]dent), complete: true}
			s.n++
		}
		s.mu.Unlock()
	}
	ch.dirs(func(f fid.FID) {
		s := &c.dirs[shardOf(f)]
		s.mu.Lock()
		cd := s.dirs[f]
		if cd == nil {
			cd = &dcDir{ents: make(map[string]dent)}
			s.dirs[f] = cd
			s.n++
		}
		cd.pending++
		cd.ver++
		s.gen++
		s.mu.Unlock()
	})
}

// commit installs ch after its batch was applied and ends begin.
func (c *nsCache) commit(ch *nsChanges) {
	for i := range ch.inodes {
		ic := &ch.inodes[i]
		if ic.fresh {
			continue
		}
		f := ic.ino.FID
		s := &c.inodes[shardOf(f)]
		s.mu.Lock()
		switch p := s.m[f]; {
		case ic.del:
			delete(s.m, f)
		case p != nil:
			*p = ic.ino
		default:
			cp := ic.ino
			s.m[f] = &cp
		}
		c.unpendInodeLocked(s, f)
		c.trimInodesLocked(s)
		s.mu.Unlock()
		if ic.del {
			c.dropDir(f)
		}
	}
	// Each directory's entries are installed and its pending mark ended
	// in one critical section.
	ch.dirs(func(f fid.FID) {
		s := &c.dirs[shardOf(f)]
		s.mu.Lock()
		if cd := s.dirs[f]; cd != nil {
			for _, d := range ch.dents {
				if d.dir != f {
					continue
				}
				_, had := cd.ents[d.name]
				switch {
				case d.del && had:
					delete(cd.ents, d.name)
					s.n--
				case !d.del:
					cd.ents[d.name] = d.e
					if !had {
						s.n++
					}
				}
			}
		}
		c.unpendDirLocked(s, f)
		s.mu.Unlock()
	})
}

// abort ends begin for a batch that was not applied: everything ch
// touched is dropped (Pebble holds the truth; the next reads refill).
func (c *nsCache) abort(ch *nsChanges) {
	c.eachOldInode(ch, func(s *inoShard, f fid.FID) {
		delete(s.m, f)
		c.unpendInodeLocked(s, f)
	})
	// Each directory is emptied and its pending mark ended in one
	// critical section, as in commit.
	ch.dirs(func(f fid.FID) {
		s := &c.dirs[shardOf(f)]
		s.mu.Lock()
		if cd := s.dirs[f]; cd != nil {
			s.n -= len(cd.ents)
			cd.ents = make(map[string]dent)
			cd.complete = false
		}
		c.unpendDirLocked(s, f)
		s.mu.Unlock()
	})
}

// eachOldInode calls fn, under the shard's lock, for each object ch
// changes that existed before the transaction (fresh ones are not cached).
func (c *nsCache) eachOldInode(ch *nsChanges, fn func(s *inoShard, f fid.FID)) {
	for i := range ch.inodes {
		if ch.inodes[i].fresh {
			continue
		}
		f := ch.inodes[i].ino.FID
		s := &c.inodes[shardOf(f)]
		s.mu.Lock()
		fn(s, f)
		s.mu.Unlock()
	}
}

func (c *nsCache) unpendInodeLocked(s *inoShard, f fid.FID) {
	if s.pending[f]--; s.pending[f] <= 0 {
		delete(s.pending, f)
	}
	s.gen++
}

// unpendDirLocked ends begin for directory f; a directory left with no
// entry and not complete is dropped.
func (c *nsCache) unpendDirLocked(s *dirShard, f fid.FID) {
	if cd := s.dirs[f]; cd != nil {
		cd.pending--
		cd.ver++
		if cd.pending == 0 && !cd.complete && len(cd.ents) == 0 {
			delete(s.dirs, f)
			s.n--
		}
	}
	s.gen++
	c.trimDirsLocked(s)
}

// dropDir forgets the entries of directory f (removed).
func (c *nsCache) dropDir(f fid.FID) {
	s := &c.dirs[shardOf(f)]
	s.mu.Lock()
	if cd := s.dirs[f]; cd != nil && cd.pending == 0 {
		delete(s.dirs, f)
		s.n -= len(cd.ents) + 1
	}
	s.gen++
	s.mu.Unlock()
}

// loadStart begins loading directory dir whole: it returns the
// directory's cache entry and version to pass to loadEnd after reading
// every entry from Pebble, or nil if the directory is complete already,
// has a change in flight, or was found too big.
func (c *nsCache) loadStart(dir fid.FID) (*dcDir, uint64) {
	s := &c.dirs[shardOf(dir)]
	s.mu.Lock()
	defer s.mu.Unlock()
	cd := s.dirs[dir]
	if cd == nil {
		cd = &dcDir{ents: make(map[string]dent)}
		s.dirs[dir] = cd
		s.n++
	}
	if cd.complete || cd.big || cd.failed >= maxLoadFailures || cd.pending != 0 {
		return nil, 0
	}
	return cd, cd.ver
}

// loadEnd installs ents as every entry of dir (complete), or marks it big,
// if no transaction touched its entries since loadStart returned cd and
// ver and cd was not evicted meanwhile.
func (c *nsCache) loadEnd(dir fid.FID, cd *dcDir, ver uint64, ents []DirEntry, big bool) {
	s := &c.dirs[shardOf(dir)]
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dirs[dir] != cd || cd.ver != ver || cd.pending != 0 {
		cd.failed++
		return
	}
	if big {
		cd.big = true
		return
	}
	s.n -= len(cd.ents)
	cd.ents = make(map[string]dent, len(ents))
	for _, de := range ents {
		cd.ents[de.Name] = dent{fid: de.FID, typ: de.Type}
	}
	s.n += len(cd.ents)
	cd.complete = true
	cd.ref.Store(true)
	c.trimDirsLocked(s)
}
