package mdt

import (
	"testing"

	"github.com/fidlog/fidlog/fid"
)

// TestEpochCache: the sharded dedup cache remembers what was added, never
// holds more than its size, and a small one is a single exact LRU.
func TestEpochCache(t *testing.T) {
	obj := func(i int) fid.FID { return fid.FID{Seq: fid.SeqNormal, Oid: uint32(i + 1)} }
	c, err := newEpochCache(4096)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.shards) != epochShards {
		t.Fatalf("%d shards, want %d", len(c.shards), epochShards)
	}
	for i := range 100 {
		c.Add(obj(i), uint64(i))
	}
	for i := range 100 {
		if ep, ok := c.Get(obj(i)); !ok || ep != uint64(i) {
			t.Fatalf("object %d: epoch %d, %v", i, ep, ok)
		}
	}
	for i := range 100_000 {
		c.Add(obj(i), 1)
	}
	total := 0
	for _, s := range c.shards {
		total += s.Len()
	}
	if total > 4096 {
		t.Fatalf("%d entries in a cache of 4096", total)
	}
	if _, ok := c.Get(obj(99_999)); !ok {
		t.Fatal("the last object added is not remembered")
	}

	small, err := newEpochCache(2)
	if err != nil {
		t.Fatal(err)
	}
	small.Add(obj(1), 1)
	small.Add(obj(2), 2)
	small.Get(obj(1))
	small.Add(obj(3), 3) // evicts 2, the least recently used
	if _, ok := small.Get(obj(2)); ok || len(small.shards) != 1 {
		t.Fatalf("small cache: %d shards, object 2 still there: %v", len(small.shards), ok)
	}
	if _, ok := small.Get(obj(1)); !ok {
		t.Fatal("small cache lost the recently used object")
	}
}
