package mdt

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/fidlog/fidlog/changelog"
	"github.com/fidlog/fidlog/fid"
)

// stressPath returns a random path of 1 to 3 components from a tiny
// alphabet, so that concurrent operations keep hitting the same entries
// and directories (and directories get renamed into and over each other).
func stressPath(rng *rand.Rand) string {
	names := [...]string{"a", "b", "c", "f", "g"}
	n := 1 + rng.IntN(3)
	comps := make([]string, n)
	for i := range comps {
		comps[i] = names[rng.IntN(len(names))]
	}
	return strings.Join(comps, "/")
}

// TestConcurrentStress runs 16 goroutines of random creates, mkdirs,
// links, renames (files and directories, over existing entries), unlinks
// (also of open files), rmdirs, setattrs and xattr changes on a tiny shared
// tree, bounded in time (a deadlock fails the test with every goroutine's
// stack), and then checks that the changelog replayed in index order
// rebuilds the namespace, that every object's nlink and links match its
// entries, and that no object or orphan is left over.
func TestConcurrentStress(t *testing.T) {
	e := newEnv(t)
	e.setParam("mdd.*.changelog_mask", "ALL")
	e.register("")
	per := 1500
	if testing.Short() || raceEnabled {
		per = 400
	}
	runStress(t, e, 16, per)
	checkNamespace(t, e)
	e.reopen()
	checkNamespace(t, e)
}

// runStress runs the stress workload: workers goroutines of per random
// operations each on a tiny shared tree, bounded in time.
func runStress(t *testing.T, e *env, workers, per int) {
	t.Helper()
	var (
		mu     sync.Mutex
		ok     = map[string]int{}
		failed = map[string]int{}
	)
	done := make(chan struct{})
	var wg sync.WaitGroup
	for g := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(*oracleSeed, uint64(g)+1000))
			c := root
			c.JobID = fmt.Sprintf("stress.%d", g)
			local := map[string]int{}
			bad := map[string]int{}
			for range per {
				p, q := stressPath(rng), stressPath(rng)
				var kind string
				var err error
				switch n := rng.IntN(100); {
				case n < 18:
					kind = "create"
					_, err = e.m.Create(ctx, c, p, 0644, rng.IntN(2) == 0)
				case n < 32:
					kind = "mkdir"
					_, err = e.m.Mkdir(ctx, c, p, 0755)
				case n < 42:
					kind = "link"
					_, err = e.m.Link(ctx, c, p, q)
				case n < 62:
					kind = "rename"
					if a, serr := e.m.Stat(ctx, c, p); serr == nil && a.Type == TypeDir {
						kind = "rename-dir"
					}
					err = e.m.Rename(ctx, c, p, q)
				case n < 74:
					kind = "unlink"
					err = e.m.Unlink(ctx, c, p)
				case n < 84:
					kind = "rmdir"
					err = e.m.Rmdir(ctx, c, p)
				case n < 88:
					kind = "setattr"
					_, err = e.m.Setattr(ctx, c, p, SetattrArgs{Mtime: ptr(time.Unix(int64(rng.IntN(1<<30)), 0))})
				case n < 92:
					kind = "xattr"
					err = e.m.Setxattr(ctx, c, p, "user.s", []byte("v"), 0)
				default:
					// Open (maybe creating), maybe unlink while open, close.
					kind = "open"
					var h uint64
					h, _, err = e.m.Open(ctx, c, p, changelog.OpenWrite|changelog.OpenCreate, 0644)
					if err == nil {
						if rng.IntN(2) == 0 {
							_ = e.m.Unlink(ctx, c, p)
						}
						if cerr := e.m.CloseFile(ctx, c, h); cerr != nil {
							t.Errorf("close: %v", cerr)
						}
					}
				}
				switch {
				case err == nil:
					local[kind]++
				case Errno(err) == syscall.EIO || Errno(err) == syscall.ENOSPC:
					t.Errorf("%s %s %s: %v", kind, p, q, err)
				default:
					bad[kind]++
				}
			}
			mu.Lock()
			for k, v := range local {
				ok[k] += v
			}
			for k, v := range bad {
				failed[k] += v
			}
			mu.Unlock()
		})
	}
	go func() { wg.Wait(); close(done) }()
	limit := 2 * time.Minute
	select {
	case <-done:
	case <-time.After(limit):
		buf := make([]byte, 1<<22)
		buf = buf[:runtime.Stack(buf, true)]
		t.Fatalf("workers still running after %v (deadlock?):\n%s", limit, buf)
	}
	t.Logf("successful: %v; failed (expected errors): %v", ok, failed)
	for _, k := range []string{"create", "mkdir", "link", "rename", "rename-dir", "unlink", "rmdir", "open"} {
		if ok[k] == 0 {
			t.Errorf("workload never succeeded at %s", k)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

// checkNamespace checks the changelog replay against the namespace, link
// counts and link records against the entries, and that the DB holds
// exactly the reachable objects and no orphan, and the namespace cache
// against Pebble.
func checkNamespace(t *testing.T, e *env) {
	t.Helper()
	recs := e.records(0)
	if len(recs) > 0 && recs[len(recs)-1].Index != e.current() {
		t.Fatalf("records end at %d, current %d", recs[len(recs)-1].Index, e.current())
	}
	mm := replay(t, recs)
	server := walkTree(t, e.m)
	names := map[fid.FID]map[[2]string]bool{}
	subdirs := map[fid.FID]uint32{fid.Root: 0}
	types := map[fid.FID]FileType{fid.Root: TypeDir}
	for en := range server {
		if got := mm.entries[[2]string{en.Parent.String(), en.Name}]; got != en.FID {
			t.Errorf("server has %v/%s -> %v, mirror %v", en.Parent, en.Name, en.FID, got)
		}
		if mm.kinds[en.FID] != kindOf(en.Type) {
			t.Errorf("%v: server kind %s, mirror %s", en.FID, kindOf(en.Type), mm.kinds[en.FID])
		}
		if names[en.FID] == nil {
			names[en.FID] = map[[2]string]bool{}
		}
		names[en.FID][[2]string{en.Parent.String(), en.Name}] = true
		types[en.FID] = en.Type
		if en.Type == TypeDir {
			subdirs[en.Parent]++
			subdirs[en.FID] += 0
		}
	}
	if len(server) != len(mm.entries) {
		t.Errorf("server has %d entries, mirror %d", len(server), len(mm.entries))
	}
	for f, typ := range types {
		a, err := e.m.StatFID(ctx, root, f)
		if err != nil {
			t.Errorf("stat %v: %v", f, err)
			continue
		}
		want := uint32(len(names[f]))
		if typ == TypeDir {
			want = 2 + subdirs[f]
		}
		if a.Nlink != want {
			t.Errorf("%v (%v): nlink %d, want %d", f, typ, a.Nlink, want)
		}
		if f == fid.Root {
			continue
		}
		ls, err := e.m.links(f)
		if err != nil {
			t.Fatal(err)
		}
		if len(ls) != len(names[f]) {
			t.Errorf("%v: %d link records, %d entries", f, len(ls), len(names[f]))
		}
		for _, l := range ls {
			if !names[f][[2]string{l.parent.String(), l.name}] {
				t.Errorf("%v: link record %v/%s has no entry", f, l.parent, l.name)
			}
		}
	}
	// Every stored object is reachable; nothing is left as an orphan.
	for _, pre := range []byte{ksInode, ksOrphan} {
		it, err := e.m.db.NewIter(&pebble.IterOptions{LowerBound: []byte{pre}, UpperBound: []byte{pre + 1}})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for it.First(); it.Valid(); it.Next() {
			f, err := fid.FromKey(it.Key()[1:])
			if err != nil {
				t.Errorf("bad key %q", it.Key())
				continue
			}
			if _, live := types[f]; !live || pre == ksOrphan {
				t.Errorf("%c key of unreachable object %v left behind", pre, f)
			}
			n++
		}
		_ = it.Close()
		if pre == ksInode && n != len(types) {
			t.Errorf("%d inodes stored, %d reachable", n, len(types))
		}
	}
	if e.m.OpenHandles() != 0 {
		t.Errorf("%d handles left open", e.m.OpenHandles())
	}
	// The namespace cache agrees with what is stored.
	checkCache(t, e.m)
	if t.Failed() {
		t.FailNow()
	}
}
