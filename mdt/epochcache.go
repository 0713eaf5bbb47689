package mdt

import (
	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/fidlog/fidlog/fid"
)

// epochCache is the time-record dedup cache: per object, the changelog
// epoch in which it last had a record. Every create with changelogs on
// adds an entry, so one LRU behind one lock was a hot lock: at 128
// writers the mutex profile put 30 % of all lock waiting on it, a cost of
// changelogs being on. It is split into shards by object, each an LRU of
// an equal part of the size; small caches stay one exact LRU.
type epochCache struct {
	shards []*lru.Cache[fid.FID, uint64]
}

// epochShards is the number of shards of a cache of at least
// epochShardMin entries.
const (
	epochShards   = 16
	epochShardMin = 1024
)

func newEpochCache(size int) (*epochCache, error) {
	n := 1
	if size >= epochShardMin {
		n = epochShards
	}
	c := &epochCache{shards: make([]*lru.Cache[fid.FID, uint64], n)}
	for i := range c.shards {
		s, err := lru.New[fid.FID, uint64](size / n)
		if err != nil {
			return nil, err
		}
		c.shards[i] = s
	}
	return c, nil
}

func (c *epochCache) shard(f fid.FID) *lru.Cache[fid.FID, uint64] {
	return c.shards[int(stripeOf(f))%len(c.shards)]
}

// Get returns the epoch of f's last record, if remembered.
func (c *epochCache) Get(f fid.FID) (uint64, bool) { return c.shard(f).Get(f) }

// Add remembers that f had a record in epoch ep.
func (c *epochCache) Add(f fid.FID, ep uint64) { c.shard(f).Add(f, ep) }
