package mdt

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/fidlog/fidlog/changelog"
	"github.com/fidlog/fidlog/changelog/store"
	"github.com/fidlog/fidlog/fid"
)

// checkCache checks that the namespace cache holds exactly what Pebble
// holds for every key it caches: each cached inode equals the stored one,
// each cached entry the stored entry, a complete directory has every
// stored entry cached, nothing is left pending, and the size accounting
// matches. Call it with no operation running.
func checkCache(t testing.TB, m *MDT) {
	t.Helper()
	c := m.nsc
	if c == nil {
		return
	}
	for i := range c.inodes {
		s := &c.inodes[i]
		s.mu.RLock()
		if len(s.pending) != 0 {
			t.Errorf("inode shard %d: %d inodes left pending", i, len(s.pending))
		}
		if len(s.m) > c.inoCap {
			t.Errorf("inode shard %d: %d inodes cached, bound %d", i, len(s.m), c.inoCap)
		}
		for f, ino := range s.m {
			var stored *inode
			ok, err := get(m.db, inodeKey(f), func(v []byte) (err error) {
				stored, err = decodeInode(f, v)
				return err
			})
			switch {
			case err != nil:
				t.Errorf("reading inode %v: %v", f, err)
			case !ok:
				t.Errorf("cached inode %v is not stored", f)
			case *stored != *ino:
				t.Errorf("cached inode %v = %+v, stored %+v", f, *ino, *stored)
			}
		}
		s.mu.RUnlock()
	}
	for i := range c.dirs {
		s := &c.dirs[i]
		s.mu.RLock()
		n := 0
		for d, cd := range s.dirs {
			n += len(cd.ents) + 1
			if cd.pending != 0 {
				t.Errorf("directory %v left pending (%d)", d, cd.pending)
			}
			stored, err := m.readdir(d)
			if err != nil {
				t.Errorf("readdir %v: %v", d, err)
				continue
			}
			byName := map[string]DirEntry{}
			for _, de := range stored {
				byName[de.Name] = de
			}
			for name, e := range cd.ents {
				de, ok := byName[name]
				if !ok || de.FID != e.fid || de.Type != e.typ {
					t.Errorf("cached entry %v/%s -> %v %v, stored %+v (%v)", d, name, e.fid, e.typ, de, ok)
				}
			}
			if cd.complete && len(cd.ents) != len(stored) {
				var names []string
				for _, de := range stored {
					if _, ok := cd.ents[de.Name]; !ok {
						names = append(names, de.Name)
					}
				}
				t.Errorf("complete directory %v caches %d entries, %d stored; missing %q", d, len(cd.ents), len(stored), names)
			}
		}
		if n != s.n {
			t.Errorf("directory shard %d: counts %d, holds %d", i, s.n, n)
		}
		if s.n > c.entCap {
			t.Errorf("directory shard %d: %d cached, bound %d", i, s.n, c.entCap)
		}
		s.mu.RUnlock()
	}
}

// cacheSizes returns how many inodes and directories are cached.
func cacheSizes(m *MDT) (inodes, dirs int) {
	for i := range m.nsc.inodes {
		inodes += len(m.nsc.inodes[i].m)
	}
	for i := range m.nsc.dirs {
		dirs += len(m.nsc.dirs[i].dirs)
	}
	return inodes, dirs
}

// TestNamespaceCacheServes checks that the cache is used: after a mkdir and
// creates, the walk, the parent inode and the "name is free" check are
// answered from memory, the new directory is complete, a new file's inode
// is cached once read, and a stat of a file after a restart fills the
// cache.
func TestNamespaceCacheServes(t *testing.T) {
	e := newEnv(t)
	must[Attr](t)(e.m.Mkdir(ctx, root, "d", 0755))
	a := must[Attr](t)(e.m.Create(ctx, root, "d/f", 0644, true))
	if _, r, _ := e.m.nsc.lookup(fid.Root, "d"); r != lookupFound {
		t.Fatalf("root/d not cached after mkdir (%v)", r)
	}
	dir := must[Attr](t)(e.m.Stat(ctx, root, "d"))
	if _, r, _ := e.m.nsc.lookup(dir.FID, "nothere"); r != lookupAbsent {
		t.Fatalf("new directory not complete (%v)", r)
	}
	if d, r, _ := e.m.nsc.lookup(dir.FID, "f"); r != lookupFound || d.fid != a.FID {
		t.Fatalf("d/f cached as %v (%v), want %v", d.fid, r, a.FID)
	}
	// A new inode is cached once read, not by its create.
	if ino, _ := e.m.nsc.getInode(a.FID); ino != nil {
		t.Fatalf("inode of d/f cached by its create: %+v", ino)
	}
	_ = must[Attr](t)(e.m.Stat(ctx, root, "d/f"))
	if ino, _ := e.m.nsc.getInode(a.FID); ino == nil || ino.Mode != 0644 {
		t.Fatalf("inode of d/f cached as %+v after a stat", ino)
	}
	if ino, _ := e.m.nsc.getInode(dir.FID); ino == nil || ino.Nlink != 2 {
		t.Fatalf("inode of d cached as %+v", ino)
	}
	checkCache(t, e.m)
	_ = must[Attr](t)(e.m.Create(ctx, root, "d/g", 0644, true))
	ok(t, e.m.Unlink(ctx, root, "d/f"))
	ok(t, e.m.Rename(ctx, root, "d/g", "d/h"))
	wantErrno(t, e.m.Rmdir(ctx, root, "d"), syscall.ENOTEMPTY)
	checkCache(t, e.m)

	e.reopen()
	if _, d := cacheSizes(e.m); d != 0 {
		t.Fatalf("a new MDT starts with %d directories cached", d)
	}
	_ = must[Attr](t)(e.m.Stat(ctx, root, "d/h"))
	if _, r, _ := e.m.nsc.lookup(dir.FID, "h"); r != lookupFound {
		t.Fatalf("stat did not fill d/h (%v)", r)
	}
	if _, r, _ := e.m.nsc.lookup(dir.FID, "x"); r != lookupMiss {
		t.Fatalf("a directory loaded by lookups is complete (%v)", r)
	}
	checkCache(t, e.m)
}

// TestNamespaceCacheAcknowledged checks from concurrent readers that an
// acknowledged change is never hidden by the cache: one writer creates
// d/f<i> and then renames it to e/g<i>, publishing i after the create
// returns, before the rename starts and after it returns; readers that saw
// the create published must find d/f<i> unless its rename has started (a
// stale "complete" directory would say ENOENT) and, once the rename is
// published, must find e/g<i> and no d/f<i> (a stale entry would still
// show it). Run with -race.
func TestNamespaceCacheAcknowledged(t *testing.T) {
	for _, size := range []int{0, 16} {
		t.Run(fmt.Sprintf("entries=%d", size), func(t *testing.T) {
			e := newEnv(t, func(o *Options) { o.NamespaceCacheEntries = size })
			must[Attr](t)(e.m.Mkdir(ctx, root, "d", 0755))
			must[Attr](t)(e.m.Mkdir(ctx, root, "e", 0755))
			n := 600
			if raceEnabled {
				n = 200
			}
			var created, renaming, renamed atomic.Int64
			created.Store(-1)
			renaming.Store(-1)
			renamed.Store(-1)
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for range 3 {
				wg.Go(func() {
					for {
						select {
						case <-stop:
							return
						default:
						}
						r, c := renamed.Load(), created.Load()
						if c > r {
							// d/f<c> exists until its rename starts.
							_, err := e.m.Stat(ctx, root, fmt.Sprintf("d/f%d", c))
							if err != nil && !(errors.Is(err, ErrNotFound) && renaming.Load() >= c) {
								t.Errorf("created d/f%d: %v", c, err)
								return
							}
						}
						if r >= 0 {
							if _, err := e.m.Stat(ctx, root, fmt.Sprintf("e/g%d", r)); err != nil {
								t.Errorf("renamed e/g%d: %v", r, err)
								return
							}
							if _, err := e.m.Stat(ctx, root, fmt.Sprintf("d/f%d", r)); !errors.Is(err, ErrNotFound) {
								t.Errorf("d/f%d after its rename: %v", r, err)
								return
							}
						}
					}
				})
			}
			for i := range n {
				must[Attr](t)(e.m.Create(ctx, root, fmt.Sprintf("d/f%d", i), 0644, true))
				created.Store(int64(i))
				renaming.Store(int64(i))
				ok(t, e.m.Rename(ctx, root, fmt.Sprintf("d/f%d", i), fmt.Sprintf("e/g%d", i)))
				renamed.Store(int64(i))
			}
			close(stop)
			wg.Wait()
			checkCache(t, e.m)
		})
	}
}

// TestNamespaceCacheStress runs the concurrent stress workload (creates,
// links, renames of files and directories over existing entries, unlinks
// of open files, rmdirs on a tiny tree) with a cache so small that it
// evicts all the time, and checks the namespace and the cache against
// Pebble.
func TestNamespaceCacheStress(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.NamespaceCacheEntries = 64 })
	e.setParam("mdd.*.changelog_mask", "ALL")
	e.register("")
	per := 600
	if testing.Short() || raceEnabled {
		per = 250
	}
	runStress(t, e, 16, per)
	checkNamespace(t, e)
}

// TestNamespaceCacheOracle runs one seeded random workload on an MDT with
// the namespace cache and on one without, and requires the same outcome
// for every operation, the same records and the same attributes of every
// object.
func TestNamespaceCacheOracle(t *testing.T) {
	run := func(size int) (*env, []string) {
		e := newEnv(t, func(o *Options) { o.NamespaceCacheEntries = size })
		e.setParam("mdd.*.changelog_mask", "ALL")
		e.register("")
		w := &workload{t: t, m: e.m, rng: rand.New(rand.NewPCG(*oracleSeed, 7)), ok: map[string]int{}}
		n := 3000
		if testing.Short() || raceEnabled {
			n = 1000
		}
		var outcomes []string
		w.onErr = func(kind string, err error) {
			outcomes = append(outcomes, fmt.Sprintf("%s: %v", kind, err))
		}
		for range n {
			w.step()
		}
		return e, outcomes
	}
	on, onOut := run(0)
	off, offOut := run(-1)
	if off.m.nsc != nil || on.m.nsc == nil {
		t.Fatal("NamespaceCacheEntries did not switch the cache")
	}
	if !slices.Equal(onOut, offOut) {
		for i := range min(len(onOut), len(offOut)) {
			if onOut[i] != offOut[i] {
				t.Fatalf("operation %d: with the cache %q, without %q", i, onOut[i], offOut[i])
			}
		}
		t.Fatalf("%d operations with the cache, %d without", len(onOut), len(offOut))
	}
	if a, b := on.lines(0), off.lines(0); !slices.Equal(a, b) {
		t.Fatalf("records differ: %d with the cache, %d without", len(a), len(b))
	}
	tree := walkTree(t, on.m)
	if other := walkTree(t, off.m); len(other) != len(tree) {
		t.Fatalf("trees differ: %d entries with the cache, %d without", len(tree), len(other))
	}
	for en := range tree {
		a := must[Attr](t)(on.m.StatFID(ctx, root, en.FID))
		b := must[Attr](t)(off.m.StatFID(ctx, root, en.FID))
		if a != b {
			t.Fatalf("%v/%s: %+v with the cache, %+v without", en.Parent, en.Name, a, b)
		}
	}
	checkCache(t, on.m)
}

// TestNamespaceCacheDurable checks the cache against the durable
// watermark: while writers create files in their own directories (sharing
// group commits), a follower reads every durable CREAT record and at once
// stats the file it names, which must exist. A create's entry becomes
// readable in the changelog when its group's fsync ends, which another
// writer of the group may see before this one returns: the cache must not
// answer from the directory's old "complete" entry set by then.
func TestNamespaceCacheDurable(t *testing.T) {
	e := newEnv(t)
	e.register("")
	const writers = 8
	n := 300
	if raceEnabled {
		n = 100
	}
	for w := range writers {
		must[Attr](t)(e.m.Mkdir(ctx, root, fmt.Sprintf("w%d", w), 0755))
	}
	dirs := map[fid.FID]string{}
	for w := range writers {
		dirs[must[Attr](t)(e.m.Stat(ctx, root, fmt.Sprintf("w%d", w))).FID] = fmt.Sprintf("w%d", w)
	}
	next := e.current() + 1
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range n {
				if _, err := e.m.Create(ctx, root, fmt.Sprintf("w%d/f%d", w, i), 0644, true); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	seen := 0
	for seen < writers*n && !t.Failed() {
		recs, _, err := e.m.log.Read(ctx, store.ReadOptions{Start: next})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			next = r.Index + 1
			if r.Type != changelog.CLCreate {
				continue
			}
			seen++
			p := dirs[r.PFID] + "/" + r.Name
			if a, err := e.m.Stat(ctx, root, p); err != nil || a.FID != r.TFID {
				t.Errorf("record %d is durable but stat %s = %v, %v", r.Index, p, a.FID, err)
			}
		}
	}
	wg.Wait()
	checkCache(t, e.m)
}
