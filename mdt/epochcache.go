package mdt

import (
	"fmt"
	"sync"

	"github.com/fidlog/fidlog/fid"
)

// epochCache is the time-record dedup cache: per object, the changelog
// epoch in which it last had a record. Every create with changelogs on
// adds an entry, so one LRU behind one lock was a hot lock: at 128
// writers the mutex profile put 30 % of all lock waiting on it, a cost of
// changelogs being on. It is split into shards by object, each an exact
// LRU of an equal part of the size; small caches stay one exact LRU. A
// shard keeps its entries in a slice it fills once and then reuses (the
// evicted entry's slot takes the new one), so adding allocates nothing:
// a general-purpose LRU allocated a list element per create.
type epochCache struct {
	shards []*epochShard
}

// epochShards is the number of shards of a cache of at least
// epochShardMin entries.
const (
	epochShards   = 16
	epochShardMin = 1024
)

// epochShard is one exact LRU: a doubly linked list threaded through
// nodes by index, most recently used at head.
type epochShard struct {
	mu         sync.Mutex
	size       int
	idx        map[fid.FID]int32
	nodes      []epochNode
	head, tail int32 // -1 when empty
}

type epochNode struct {
	f          fid.FID
	ep         uint64
	prev, next int32
}

func newEpochCache(size int) (*epochCache, error) {
	if size <= 0 {
		return nil, fmt.Errorf("%w: epoch cache of %d entries", ErrInvalid, size)
	}
	n := 1
	if size >= epochShardMin {
		n = epochShards
	}
	c := &epochCache{shards: make([]*epochShard, n)}
	for i := range c.shards {
		per := size / n
		c.shards[i] = &epochShard{size: per, idx: make(map[fid.FID]int32), head: -1, tail: -1}
	}
	return c, nil
}

func (c *epochCache) shard(f fid.FID) *epochShard {
	return c.shards[int(stripeOf(f))%len(c.shards)]
}

// Get returns the epoch of f's last record, if remembered.
func (c *epochCache) Get(f fid.FID) (uint64, bool) { return c.shard(f).get(f) }

// Add remembers that f had a record in epoch ep.
func (c *epochCache) Add(f fid.FID, ep uint64) { c.shard(f).add(f, ep) }

// Len returns the number of entries of the shard.
func (s *epochShard) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.idx)
}

func (s *epochShard) get(f fid.FID) (uint64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.idx[f]
	if !ok {
		return 0, false
	}
	s.toFrontLocked(i)
	return s.nodes[i].ep, true
}

func (s *epochShard) add(f fid.FID, ep uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i, ok := s.idx[f]; ok {
		s.nodes[i].ep = ep
		s.toFrontLocked(i)
		return
	}
	var i int32
	if len(s.nodes) < s.size {
		i = int32(len(s.nodes))
		s.nodes = append(s.nodes, epochNode{prev: -1, next: -1})
	} else {
		// Reuse the least recently used entry's slot.
		i = s.tail
		delete(s.idx, s.nodes[i].f)
		s.unlinkLocked(i)
	}
	s.nodes[i].f, s.nodes[i].ep = f, ep
	s.idx[f] = i
	s.pushFrontLocked(i)
}

func (s *epochShard) toFrontLocked(i int32) {
	if s.head == i {
		return
	}
	s.unlinkLocked(i)
	s.pushFrontLocked(i)
}

func (s *epochShard) unlinkLocked(i int32) {
	n := &s.nodes[i]
	if n.prev >= 0 {
		s.nodes[n.prev].next = n.next
	} else {
		s.head = n.next
	}
	if n.next >= 0 {
		s.nodes[n.next].prev = n.prev
	} else {
		s.tail = n.prev
	}
	n.prev, n.next = -1, -1
}

func (s *epochShard) pushFrontLocked(i int32) {
	n := &s.nodes[i]
	n.prev, n.next = -1, s.head
	if s.head >= 0 {
		s.nodes[s.head].prev = i
	}
	s.head = i
	if s.tail < 0 {
		s.tail = i
	}
}
