package store

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/fidlog/fidlog/changelog"
)

// TestCrash crashes the filesystem (pebble's crashable MemFS, keeping a
// random share of unsynced data) while 32 writers commit, reopens the
// clone, and checks: every acknowledged record and its namespace key are
// there, indices are contiguous, the index never goes back, users and their
// points are intact. "announced": the writers announce themselves as the
// gRPC server does (Expect), and one announced writer never applies, so
// syncs are held (see "Held syncs") and released by count and by time.
func TestCrash(t *testing.T) {
	t.Run("direct", func(t *testing.T) { testCrash(t, false) })
	t.Run("announced", func(t *testing.T) { testCrash(t, true) })
}

func testCrash(t *testing.T, announce bool) {
	iterations := 20
	if testing.Short() {
		iterations = 5
	}
	rng := rand.New(rand.NewPCG(1, 2))
	fs := vfs.NewCrashableMem()
	var prevCurrent changelog.Index
	opts := func(fs vfs.FS) *pebble.Options {
		return &pebble.Options{FS: fs, Logger: quietLogger{}, FlushDelayDeleteRange: time.Second, MemTableSize: 256 << 10}
	}
	lopts := &Options{Logger: slog.New(slog.DiscardHandler)}
	for it := range iterations {
		db, err := pebble.Open("db", opts(fs))
		if err != nil {
			t.Fatalf("iteration %d: open: %v", it, err)
		}
		l, err := Open(db, lopts)
		if err != nil {
			t.Fatalf("iteration %d: changelog open: %v", it, err)
		}
		st := l.State()
		if st.Current < prevCurrent {
			t.Fatalf("iteration %d: current index went back: %d < %d", it, st.Current, prevCurrent)
		}
		if len(l.Users()) == 0 {
			if _, err := l.Register(RegisterOptions{Name: "crash"}); err != nil {
				t.Fatal(err)
			}
		}
		userBefore := l.Users()[0]

		if announce {
			l.Expect() // a writer on its way that never arrives
		}
		var mu sync.Mutex
		acked := map[changelog.Index]string{}
		var stop atomic.Bool
		var wg sync.WaitGroup
		for w := range 32 {
			wg.Go(func() {
				for i := 0; !stop.Load(); i++ {
					name := fmt.Sprintf("it%d-w%d-%d", it, w, i)
					b := db.NewBatch()
					_ = b.Set([]byte("ns/"+name), []byte(name), nil)
					r := &changelog.Record{Type: changelog.CLCreate, Name: name}
					if announce {
						l.Expect()
					}
					_, err := l.Commit(b, []*changelog.Record{r})
					if announce {
						l.ExpectDone()
					}
					b.Close()
					if err != nil {
						return
					}
					mu.Lock()
					acked[r.Index] = name
					mu.Unlock()
				}
			})
		}
		time.Sleep(time.Duration(5+rng.IntN(20)) * time.Millisecond)
		// Only acknowledgements that happened before the crash must survive.
		mu.Lock()
		mustHave := make(map[changelog.Index]string, len(acked))
		for k, v := range acked {
			mustHave[k] = v
		}
		mu.Unlock()
		crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: rng.IntN(100), RNG: rng})
		stop.Store(true)
		wg.Wait()
		l.Close()
		db.Close()
		fs = crashed

		db, err = pebble.Open("db", opts(fs))
		if err != nil {
			t.Fatalf("iteration %d: reopen after crash: %v", it, err)
		}
		l, err = Open(db, lopts)
		if err != nil {
			t.Fatalf("iteration %d: changelog reopen: %v", it, err)
		}
		recs, _, err := l.Read(context.Background(), ReadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got := map[changelog.Index]string{}
		for i, r := range recs {
			if i > 0 && r.Index != recs[i-1].Index+1 {
				t.Fatalf("iteration %d: index gap %d -> %d", it, recs[i-1].Index, r.Index)
			}
			got[r.Index] = r.Name
			if _, c, err := db.Get([]byte("ns/" + r.Name)); err != nil {
				t.Fatalf("iteration %d: record %d (%s) without its namespace change", it, r.Index, r.Name)
			} else {
				c.Close()
			}
		}
		for idx, name := range mustHave {
			if got[idx] != name {
				t.Fatalf("iteration %d: acknowledged record %d (%s) lost after crash (got %q)", it, idx, name, got[idx])
			}
		}
		st = l.State()
		var maxAcked changelog.Index
		for idx := range mustHave {
			maxAcked = max(maxAcked, idx)
		}
		if st.Current < maxAcked {
			t.Fatalf("iteration %d: current %d below acknowledged %d", it, st.Current, maxAcked)
		}
		if len(recs) > 0 && recs[len(recs)-1].Index != st.Current {
			t.Fatalf("iteration %d: last record %d != current %d", it, recs[len(recs)-1].Index, st.Current)
		}
		users := l.Users()
		if len(users) != 1 || users[0].ID != userBefore.ID || users[0].Index != userBefore.Index {
			t.Fatalf("iteration %d: users %+v, before %+v", it, users, userBefore)
		}
		prevCurrent = st.Current
		// Clear half of the log now and then so purges are crashed too.
		if it%3 == 2 {
			if _, err := l.Clear(users[0].DisplayName(), st.Current/2+userBefore.Index/2); err != nil {
				t.Fatal(err)
			}
		}
		l.Close()
		db.Close()
	}
}
