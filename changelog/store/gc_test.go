package store

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/fidlog/fidlog/changelog"
	"github.com/fidlog/fidlog/fid"
)

// sanity 160g: with changelog_max_idle_indexes=2 the lagging user goes and
// the one that cleared recently stays; first record = kept user's index + 1.
func TestGCIdleIndexes(t *testing.T) {
	e := newEnv(t)
	e.register("", "")
	e.register("", "")
	if err := e.log.UpdateSettings(func(s *Settings) error { return s.SetParam("changelog_max_idle_indexes", "2") }); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		e.op(changelog.CLCreate, fmt.Sprint(i))
	}
	if _, err := e.log.Clear("cl1", 3); err != nil { // 1 behind: fine
		t.Fatal(err)
	}
	n, err := e.log.RunGC()
	if err != nil || n != 1 {
		t.Fatalf("RunGC = %d, %v", n, err)
	}
	users := e.log.Users()
	if len(users) != 1 || users[0].ID != 1 {
		t.Fatalf("users after GC: %+v", users)
	}
	if got := e.indices(); got[0] != 4 {
		t.Fatalf("first record %d, want 4", got[0])
	}
	// The evicted user is told so, by name, on clear and on lookup.
	_, err = e.log.Clear("cl2", 0)
	var ev *changelog.EvictedError
	if !errors.As(err, &ev) || !errors.Is(err, changelog.ErrEvicted) || ev.User != "cl2" || !strings.Contains(err.Error(), "cl2") {
		t.Fatalf("clear by evicted user: %v", err)
	}
	if _, err := e.log.UserMask("2"); !errors.Is(err, changelog.ErrEvicted) {
		t.Fatalf("lookup of evicted user: %v", err)
	}
	e.restart()
	if _, err := e.log.Clear("cl2", 0); !errors.Is(err, changelog.ErrEvicted) {
		t.Fatalf("eviction not remembered across restart: %v", err)
	}
}

// sanity 160f-like: idle time.
func TestGCIdleTime(t *testing.T) {
	e := newEnv(t)
	e.register("", "")
	e.register("keeper", "")
	if err := e.log.UpdateSettings(func(s *Settings) error { return s.SetParam("changelog_max_idle_time", "10") }); err != nil {
		t.Fatal(err)
	}
	e.op(changelog.CLCreate, "a")
	e.clock.Advance(11 * time.Second)
	if _, err := e.log.Clear("keeper", 0); err != nil {
		t.Fatal(err)
	}
	e.op(changelog.CLCreate, "b")
	if n, _ := e.log.RunGC(); n != 1 {
		t.Fatalf("evicted %d", n)
	}
	if u := e.log.Users(); len(u) != 1 || u[0].Name != "keeper" {
		t.Fatalf("users %+v", u)
	}
}

// sanity 160s: idle 10 days with 5e8 unprocessed indexes at default limits
// is too idle by the product rule alone.
func TestIdleProductRule(t *testing.T) {
	s := DefaultSettings()
	now := time.Unix(1e9, 0)
	u := &changelog.User{Index: 1, Time: now.Add(-10 * 24 * time.Hour)}
	if !tooIdle(&s, 1+5e8, u, now) {
		t.Fatal("10 days × 5e8 indexes must be too idle")
	}
	if tooIdle(&s, 1+5e8, &changelog.User{Index: 1, Time: now.Add(-time.Hour)}, now) {
		t.Fatal("1 hour × 5e8 indexes must not be too idle")
	}
	// Caught-up users are never too idle.
	if tooIdle(&s, 1, &changelog.User{Index: 1, Time: now.Add(-100 * 24 * time.Hour)}, now) {
		t.Fatal("caught-up user evicted")
	}
}

// GC runs by itself after writes once min_gc_interval passed.
func TestGCTriggeredByWrites(t *testing.T) {
	e := newEnv(t)
	e.register("", "")
	e.register("", "")
	if err := e.log.UpdateSettings(func(s *Settings) error {
		if err := s.SetParam("changelog_min_gc_interval", "1"); err != nil {
			return err
		}
		return s.SetParam("changelog_max_idle_indexes", "1")
	}); err != nil {
		t.Fatal(err)
	}
	e.op(changelog.CLCreate, "a") // first write after start checks: 1 behind is fine
	e.op(changelog.CLCreate, "b") // 2 behind, but within min_gc_interval: no check
	if len(e.log.Users()) != 2 {
		t.Fatal("GC ran before min_gc_interval passed")
	}
	e.clock.Advance(2 * time.Second)
	e.op(changelog.CLCreate, "c")
	deadline := time.Now().Add(5 * time.Second)
	for len(e.log.Users()) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("GC did not run: %s", e.log.UsersText())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if st := e.log.State(); st.On {
		t.Fatal("changelog must be off after the last user was evicted")
	}
}

// At the cap, the most lagging user is evicted; with space GC off, the
// append fails with ErrNoSpace and the caller's batch does not commit.
func TestCapacity(t *testing.T) {
	e := newEnv(t)
	e.register("", "")
	e.register("", "")
	if err := e.log.UpdateSettings(func(s *Settings) error { return s.SetParam("changelog_max_records", "5") }); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		e.op(changelog.CLCreate, fmt.Sprint(i))
	}
	if _, err := e.log.Clear("cl2", 2); err != nil {
		t.Fatal(err)
	}
	// cl1 (index 0) lags most and is evicted to make room.
	e.op(changelog.CLCreate, "5")
	if u := e.log.Users(); len(u) != 1 || u[0].ID != 2 {
		t.Fatalf("users %+v", u)
	}
	if _, err := e.log.Clear("cl1", 0); !errors.Is(err, changelog.ErrEvicted) || !strings.Contains(err.Error(), "capacity") {
		t.Fatalf("evicted user: %v", err)
	}
	if got := e.indices(); got[0] != 3 || len(got) != 4 {
		t.Fatalf("records %v", got)
	}

	// Now with space GC off: fill to the cap, then appends fail.
	if err := e.log.UpdateSettings(func(s *Settings) error { return s.SetParam("changelog_free_space_gc", "0") }); err != nil {
		t.Fatal(err)
	}
	e.op(changelog.CLCreate, "6") // 5 retained
	cur := e.log.State().Current
	b := e.db.NewBatch()
	_ = b.Set([]byte("ns/full"), []byte("x"), nil)
	_, err := e.log.Apply(b, []*changelog.Record{{Type: changelog.CLCreate, Name: "full"}})
	b.Close()
	if !errors.Is(err, changelog.ErrNoSpace) {
		t.Fatalf("append at cap: %v", err)
	}
	if e.hasKey("ns/full") || e.log.State().Current != cur {
		t.Fatal("a failed append committed the caller's batch or moved the index")
	}
	// Clearing frees room.
	if _, err := e.log.Clear("cl2", 0); err != nil {
		t.Fatal(err)
	}
	if r := e.op(changelog.CLCreate, "full"); r.Index != cur+1 {
		t.Fatalf("index after recovery = %d, want %d (no gap)", r.Index, cur+1)
	}
}

// After a large purge the space is actually given back (the reclaimer
// compacts the purged span), not just hidden behind a range tombstone.
func TestPurgeReclaimsSpace(t *testing.T) {
	e := newEnv(t)
	u := e.register("", "")
	for i := 0; i < 40000; i += 1000 {
		recs := make([]*changelog.Record, 1000)
		for j := range recs {
			recs[j] = &changelog.Record{Type: changelog.CLCreate, Name: fmt.Sprintf("file-%08d", i+j), JobID: "j"}
		}
		b := e.db.NewBatch()
		if _, err := e.log.Commit(b, recs); err != nil {
			t.Fatal(err)
		}
		b.Close()
	}
	if err := e.db.Flush(); err != nil {
		t.Fatal(err)
	}
	before := e.db.Metrics().Total().TablesSize
	if _, err := e.log.Clear(u.DisplayName(), 0); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		after := e.db.Metrics().Total().TablesSize
		if after <= before/10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("live sstable bytes %d after purge, %d before: space not reclaimed", after, before)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// When making room evicts every user, changelogs are off: the operation
// goes through but records nothing and the index does not move, whatever
// the server mask says.
func TestCapacityEvictsLastUser(t *testing.T) {
	e := newEnv(t)
	e.register("", "")
	if _, err := e.log.SetMask("ALL"); err != nil {
		t.Fatal(err)
	}
	if err := e.log.UpdateSettings(func(s *Settings) error { return s.SetParam("changelog_max_records", "3") }); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		e.op(changelog.CLCreate, fmt.Sprint(i))
	}
	r := e.op(changelog.CLCreate, "evicts")
	if st := e.log.State(); st.On || st.Current != 3 || r.Index != 0 {
		t.Fatalf("after evicting the last user: state %+v, record index %d", st, r.Index)
	}
	if !e.hasKey("ns/evicts") {
		t.Fatal("the operation itself must commit")
	}
	if got := e.indices(); len(got) != 0 {
		t.Fatalf("records left: %v", got)
	}
}

// sanity 160f (catalog almost full): with changelog_min_free_cat_entries=3
// and only 3 free catalog entries left under the cap, GC evicts the most
// lagging user, idle or not, and only that one (one per emergency, as
// mdd_chlg_garbage_collect leaves emergency mode after one eviction).
func TestGCMinFreeCatEntries(t *testing.T) {
	e := newEnv(t)
	for _, kv := range [][2]string{
		{"changelog_max_records", fmt.Sprint(5 * RecordsPerCatalogEntry)},
		{"changelog_min_free_cat_entries", "3"},
		{"changelog_min_gc_interval", "2"},
	} {
		if err := e.log.UpdateSettings(func(s *Settings) error { return s.SetParam(kv[0], kv[1]) }); err != nil {
			t.Fatal(err)
		}
	}
	e.register("", "")
	e.register("", "")
	e.register("", "")
	recs := make([]*changelog.Record, RecordsPerCatalogEntry)
	fill := func() {
		for i := range recs {
			recs[i] = &changelog.Record{Type: changelog.CLCreate, TFID: fid.FID{Seq: fid.SeqNormal, Oid: 1}, PFID: fid.Root, Name: "f"}
		}
		b := e.db.NewBatch()
		defer b.Close()
		p, err := e.log.Apply(b, recs)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	fill() // 4 free entries: no emergency
	if _, err := e.log.Clear("cl1", 2); err != nil {
		t.Fatal(err)
	}
	if _, err := e.log.Clear("cl3", 10); err != nil {
		t.Fatal(err)
	}
	fill() // 3 free entries, but the GC check ran less than 2 s ago
	if n := len(e.log.Users()); n != 3 {
		t.Fatalf("GC ran before the check interval: %d users", n)
	}
	e.clock.Advance(3 * time.Second)
	e.op(changelog.CLCreate, "x") // the GC check of this write sees 3 free entries
	deadline := time.Now().Add(10 * time.Second)
	for len(e.log.Users()) == 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	users := e.log.Users()
	if len(users) != 2 || users[0].ID != 1 || users[1].ID != 3 {
		t.Fatalf("users after the emergency GC: %+v, want cl1 and cl3", users)
	}
	if _, err := e.log.Clear("cl2", 0); !errors.Is(err, changelog.ErrEvicted) || !strings.Contains(err.Error(), "capacity") {
		t.Fatalf("evicted user: %v", err)
	}
	// One eviction per emergency: cl1 (index 2) lags too, but stays until
	// the next check finds the entries still short.
	if got := e.indices(); got[0] != 3 {
		t.Fatalf("first record %d, want 3 (cl1's index + 1)", got[0])
	}
}

// TestGCDiskLow: with the file system nearly full (Options.DiskLow) and
// the retained records taking at least DiskLowMinBytes on disk, a write's
// GC check evicts the most lagging user, one per check and at most one a
// second; not while the disk has room, not with space GC or GC off, and
// not when the records are too small to matter (a disk filled by other
// data keeps its consumers).
func TestGCDiskLow(t *testing.T) {
	var low atomic.Bool
	e := &testEnv{t: t, fs: vfs.NewMem(), dir: "db", clock: newFakeClock()}
	e.opts = Options{Device: "lustre-MDT0000", Clock: e.clock.Now, Logger: slog.New(slog.DiscardHandler),
		DiskLow: low.Load, DiskLowMinBytes: 1}
	e.open()
	t.Cleanup(e.close)
	e.register("", "")
	e.register("", "")
	e.register("", "")
	for i := range 4 {
		e.op(changelog.CLCreate, fmt.Sprint("f", i))
	}
	if _, err := e.log.Clear("cl1", 2); err != nil {
		t.Fatal(err)
	}
	if _, err := e.log.Clear("cl3", 4); err != nil {
		t.Fatal(err)
	}
	// The records on disk (EstimateDiskUsage counts sstables).
	if err := e.db.Flush(); err != nil {
		t.Fatal(err)
	}
	users := func() (ids []uint32) {
		for _, u := range e.log.Users() {
			ids = append(ids, u.ID)
		}
		return ids
	}
	waitUsers := func(want ...uint32) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !slices.Equal(users(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("users %v, want %v", users(), want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	set := func(k, v string) {
		t.Helper()
		if err := e.log.UpdateSettings(func(s *Settings) error { return s.SetParam(k, v) }); err != nil {
			t.Fatal(err)
		}
	}
	e.clock.Advance(2 * time.Second)
	e.op(changelog.CLCreate, "room") // the disk has room
	low.Store(true)
	for _, k := range []string{"changelog_free_space_gc", "changelog_gc"} {
		set(k, "0")
		e.clock.Advance(2 * time.Second)
		e.op(changelog.CLCreate, "off")
		set(k, "1")
	}
	e.log.opts.DiskLowMinBytes = 1 << 40 // the records are too small to matter
	e.clock.Advance(2 * time.Second)
	e.op(changelog.CLCreate, "small")
	time.Sleep(50 * time.Millisecond)
	waitUsers(1, 2, 3)

	e.log.opts.DiskLowMinBytes = 1
	e.clock.Advance(2 * time.Second)
	e.op(changelog.CLCreate, "full") // cl2 (index 0) lags most
	waitUsers(1, 3)
	if _, err := e.log.Clear("cl2", 0); !errors.Is(err, changelog.ErrEvicted) || !strings.Contains(err.Error(), "capacity") {
		t.Fatalf("evicted user: %v", err)
	}
	e.op(changelog.CLCreate, "again") // within the second: no check
	time.Sleep(50 * time.Millisecond)
	waitUsers(1, 3)
	e.clock.Advance(2 * time.Second)
	e.op(changelog.CLCreate, "next") // cl1 (index 2) next
	waitUsers(3)
}
