package mdt

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/fidlog/fidlog/changelog"
	"github.com/fidlog/fidlog/changelog/store"
	"github.com/fidlog/fidlog/fid"
)

// TestCrashConsistency: concurrent creates, a crash (clone of the synced
// state, plus random unsynced data) while they run, reopen: every
// acknowledged create exists and has its record, indices are contiguous,
// and no FID is handed out again.
func TestCrashConsistency(t *testing.T) {
	for iter := range 4 {
		t.Run(fmt.Sprint(iter), func(t *testing.T) { crashOnce(t, uint64(iter)) })
	}
}

func crashOnce(t *testing.T, seed uint64) {
	fs := vfs.NewCrashableMem()
	clock := newTestClock()
	opts := Options{FS: fs, Clock: clock.Now, Logger: quietLogger()}
	o := opts
	m, err := Open("db", &o)
	ok(t, err)
	_, err = m.SetParam("mdd.*.changelog_mask", "ALL")
	ok(t, err)
	_, err = m.log.Register(store.RegisterOptions{})
	ok(t, err)
	_, err = m.Mkdir(ctx, root, "d", 0755)
	ok(t, err)

	const workers = 8
	var (
		mu    sync.Mutex
		acked = map[string]fid.FID{}
		seen  = map[fid.FID]bool{}
		stop  atomic.Bool
		wg    sync.WaitGroup
		done  atomic.Int64
	)
	for w := range workers {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				p := fmt.Sprintf("d/w%d-%d", w, i)
				a, err := m.Create(ctx, root, p, 0644, true)
				if err != nil {
					return // the crash clone does not stop the MDT; errors end the worker
				}
				mu.Lock()
				acked[p] = a.FID
				seen[a.FID] = true
				mu.Unlock()
				done.Add(1)
			}
		})
	}
	for done.Load() < 300 {
		// Let the workers make progress; the clone is taken while they run.
		_, _ = m.Stat(ctx, root, "d")
	}
	// Snapshot what was acknowledged before the clone: anything acked
	// before CrashClone starts must survive.
	mu.Lock()
	before := make(map[string]fid.FID, len(acked))
	for k, v := range acked {
		before[k] = v
	}
	mu.Unlock()
	rng := rand.New(rand.NewPCG(seed, 7))
	crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: rng.IntN(100), RNG: rand.New(rand.NewPCG(seed, 8))})
	stop.Store(true)
	wg.Wait()
	ok(t, m.Close())

	o = opts
	o.FS = crashed
	m2, err := Open("db", &o)
	ok(t, err)
	defer m2.Close()
	recs, _, err := m2.log.Read(ctx, store.ReadOptions{})
	ok(t, err)
	byFID := map[fid.FID]*changelog.Record{}
	for i, r := range recs {
		if i > 0 && r.Index != recs[i-1].Index+1 {
			t.Fatalf("gap after crash: %d then %d", recs[i-1].Index, r.Index)
		}
		byFID[r.TFID] = r
	}
	if n := len(recs); n > 0 && recs[n-1].Index != m2.log.State().Current {
		t.Fatalf("last record %d, current %d", recs[n-1].Index, m2.log.State().Current)
	}
	for p, f := range before {
		a, err := m2.Stat(ctx, root, p)
		if err != nil {
			t.Fatalf("acknowledged %s lost: %v", p, err)
		}
		if a.FID != f {
			t.Fatalf("%s: FID %v, acknowledged %v", p, a.FID, f)
		}
		if r := byFID[f]; r == nil || r.Type != changelog.CLCreate {
			t.Fatalf("acknowledged %s has no CREAT record", p)
		}
	}
	// Every surviving entry has its record (no change without record).
	ents, err := m2.Readdir(ctx, root, "d")
	ok(t, err)
	for _, de := range ents {
		if byFID[de.FID] == nil {
			t.Fatalf("entry %s survived without its record", de.Name)
		}
	}
	// New FIDs never repeat one handed out before the crash.
	for i := range 200 {
		a, err := m2.Create(ctx, root, fmt.Sprintf("d/after%d", i), 0644, true)
		ok(t, err)
		if seen[a.FID] {
			t.Fatalf("FID %v reused after crash", a.FID)
		}
	}
	t.Logf("acked before crash %d, total %d, survived %d entries", len(before), len(acked), len(ents))
}
