package mdt

import (
	"math/rand/v2"
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

// TestEpochCacheModel drives a one-shard cache with random adds and gets
// and compares every answer and the final contents with a plain LRU model
// (a slice, most recent last).
func TestEpochCacheModel(t *testing.T) {
	const size = 8
	c, err := newEpochCache(size)
	if err != nil {
		t.Fatal(err)
	}
	type ent struct {
		f  fid.FID
		ep uint64
	}
	var model []ent
	find := func(f fid.FID) int {
		for i, e := range model {
			if e.f == f {
				return i
			}
		}
		return -1
	}
	touch := func(i int) {
		e := model[i]
		model = append(append(model[:i:i], model[i+1:]...), e)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for step := range 20000 {
		f := fid.FID{Seq: fid.SeqNormal, Oid: uint32(rng.IntN(20) + 1)}
		if rng.IntN(2) == 0 {
			ep := uint64(step)
			c.Add(f, ep)
			if i := find(f); i >= 0 {
				model[i].ep = ep
				touch(i)
			} else {
				if len(model) == size {
					model = model[1:]
				}
				model = append(model, ent{f, ep})
			}
			continue
		}
		ep, ok := c.Get(f)
		i := find(f)
		if ok != (i >= 0) || ok && ep != model[i].ep {
			t.Fatalf("step %d: Get(%v) = %d, %v; model %v", step, f, ep, ok, i >= 0)
		}
		if i >= 0 {
			touch(i)
		}
	}
	if n := c.shards[0].Len(); n != len(model) {
		t.Fatalf("%d entries, model %d", n, len(model))
	}
	for _, e := range model {
		if ep, ok := c.Get(e.f); !ok || ep != e.ep {
			t.Fatalf("%v: %d, %v; model %d", e.f, ep, ok, e.ep)
		}
	}
}
