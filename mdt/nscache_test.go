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
		t.Fatalf("a directory filled by positive lookups is complete (%v)", r)
	}
	// A name not found loads a small directory whole.
	wantErrno(t, second(e.m.Stat(ctx, root, "d/x")), syscall.ENOENT)
	if _, r, _ := e.m.nsc.lookup(dir.FID, "y"); r != lookupAbsent {
		t.Fatalf("a negative lookup did not load the directory (%v)", r)
	}
	checkCache(t, e.m)

	// One with more than dirLoadMax entries is not loaded, nor tried
	// again.
	must[Attr](t)(e.m.Mkdir(ctx, root, "big", 0755))
	for i := range dirLoadMax + 1 {
		must[Attr](t)(e.m.Create(ctx, root, fmt.Sprintf("big/f%d", i), 0644, true))
	}
	e.reopen()
	big := must[Attr](t)(e.m.Stat(ctx, root, "big"))
	wantErrno(t, second(e.m.Stat(ctx, root, "big/x")), syscall.ENOENT)
	if _, r, _ := e.m.nsc.lookup(big.FID, "y"); r != lookupMiss {
		t.Fatalf("a directory of %d entries was loaded (%v)", dirLoadMax+1, r)
	}
	if cd := e.m.nsc.dirs[shardOf(big.FID)].dirs[big.FID]; cd == nil || !cd.big {
		t.Fatalf("directory of %d entries not marked big: %+v", dirLoadMax+1, cd)
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
		for _, reopen := range []bool{false, true} {
			t.Run(fmt.Sprintf("entries=%d/reopen=%v", size, reopen), func(t *testing.T) {
				testCacheAcknowledged(t, size, reopen)
			})
		}
	}
}

// testCacheAcknowledged is TestNamespaceCacheAcknowledged with a cache of
// size entries; with reopen the directories are not created by the MDT
// that runs the test (they are loaded by its first negative lookups while
// the writer changes them).
func testCacheAcknowledged(t *testing.T, size int, reopen bool) {
	e := newEnv(t, func(o *Options) { o.NamespaceCacheEntries = size })
	must[Attr](t)(e.m.Mkdir(ctx, root, "d", 0755))
	must[Attr](t)(e.m.Mkdir(ctx, root, "e", 0755))
	if reopen {
		e.reopen()
	}
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
	for _, reopen := range []bool{false, true} {
		t.Run(fmt.Sprintf("reopen=%v", reopen), func(t *testing.T) { testCacheDurable(t, reopen) })
	}
}

// testCacheDurable is TestNamespaceCacheDurable; with reopen the
// directories are loaded by the writers' first creates.
func testCacheDurable(t *testing.T, reopen bool) {
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
	if reopen {
		e.reopen()
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

// TestNamespaceCacheLoadRace: a directory is loaded whole by a reader's
// negative lookup while a create in it runs to completion between the
// reader's scan and the installation of what it read; the load must be
// dropped (the create would be missing from a "complete" directory) and
// the new file found.
func TestNamespaceCacheLoadRace(t *testing.T) {
	e := newEnv(t)
	must[Attr](t)(e.m.Mkdir(ctx, root, "d", 0755))
	must[Attr](t)(e.m.Create(ctx, root, "d/a", 0644, true))
	e.reopen()
	d := must[Attr](t)(e.m.Stat(ctx, root, "d"))
	raced := false
	e.m.nsc.loadHook = func(dir fid.FID) {
		if dir != d.FID || raced {
			return
		}
		raced = true
		// Another client's create, complete before the load installs.
		done := make(chan error)
		go func() {
			_, err := e.m.Create(ctx, root, "d/b", 0644, true)
			done <- err
		}()
		if err := <-done; err != nil {
			t.Errorf("create during the load: %v", err)
		}
	}
	wantErrno(t, second(e.m.Stat(ctx, root, "d/x")), syscall.ENOENT)
	if !raced {
		t.Fatal("the stat did not load the directory")
	}
	if a, err := e.m.Stat(ctx, root, "d/b"); err != nil {
		t.Fatalf("d/b created during the load: %v, %v", a, err)
	}
	// The next negative lookup loads it, with d/b.
	wantErrno(t, second(e.m.Stat(ctx, root, "d/y")), syscall.ENOENT)
	if _, r, _ := e.m.nsc.lookup(d.FID, "b"); r != lookupFound {
		t.Fatalf("d/b after the second load: %v", r)
	}
	checkCache(t, e.m)
}
