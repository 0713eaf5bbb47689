package store

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/fidlog/fidlog/changelog"
)

// groupReq builds a queued request the way Apply does: a batch with one
// namespace key and one encoded create record.
func groupReq(t *testing.T, e *testEnv, name string) (*applyReq, *pebble.Batch) {
	t.Helper()
	b := e.db.NewBatch()
	t.Cleanup(func() { b.Close() })
	if err := b.Set([]byte("ns/"+name), []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	r := &changelog.Record{Type: changelog.CLCreate, Name: name, Time: e.clock.Now()}
	return &applyReq{b: b, recs: []*changelog.Record{r}, bufs: [][]byte{changelog.Encode(r)}}, b
}

// TestGroupCommit: the requests of one group get contiguous indices in
// queue order, share one Pebble commit and one sync, and their records
// are durable and readable after Wait.
func TestGroupCommit(t *testing.T) {
	e := newEnv(t)
	e.register("", "")
	e.op(changelog.CLCreate, "first")
	var reqs []*applyReq
	for i := range 5 {
		r, _ := groupReq(t, e, fmt.Sprint("g", i))
		reqs = append(reqs, r)
	}
	e.log.commitGroup(reqs)
	g := reqs[0].p.g
	for i, r := range reqs {
		if r.err != nil {
			t.Fatalf("request %d: %v", i, r.err)
		}
		want := changelog.Index(i + 2)
		if r.p.First != want || r.p.Last != want || r.recs[0].Index != want {
			t.Fatalf("request %d: pending %d-%d, record %d, want %d", i, r.p.First, r.p.Last, r.recs[0].Index, want)
		}
		if r.p.g != g {
			t.Fatalf("request %d is not in the group of request 0", i)
		}
	}
	if d := e.log.Durable(); d != 1 {
		t.Fatalf("durable %d before any Wait", d)
	}
	if err := reqs[3].p.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := reqs[0].p.Wait(); err != nil {
		t.Fatal(err)
	}
	if d := e.log.Durable(); d != 6 {
		t.Fatalf("durable %d after the group's sync, want 6", d)
	}
	if got := e.indices(); len(got) != 6 || got[5] != 6 {
		t.Fatalf("records %v", got)
	}
	for i := range 5 {
		if !e.hasKey(fmt.Sprint("ns/g", i)) {
			t.Fatalf("namespace key of request %d not committed", i)
		}
	}
}

// TestGroupCommitCapacity: when making room for a request's records would
// evict users, the records of the requests before it in the group commit
// first, exactly as one by one; a request refused for space fails alone.
func TestGroupCommitCapacity(t *testing.T) {
	e := newEnv(t)
	e.register("", "")
	if err := e.log.UpdateSettings(func(s *Settings) error { return s.SetParam("changelog_max_records", "4") }); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		e.op(changelog.CLCreate, fmt.Sprint(i))
	}
	r1, _ := groupReq(t, e, "r1")
	r2, _ := groupReq(t, e, "r2")
	r3, _ := groupReq(t, e, "r3")
	e.log.commitGroup([]*applyReq{r1, r2, r3})
	for i, r := range []*applyReq{r1, r2, r3} {
		if r.err != nil {
			t.Fatalf("request %d: %v", i+1, r.err)
		}
		if err := r.p.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	// r1 fits (4 retained); r2 needs room: the only user is evicted, so
	// changelogs are off and neither r2 nor r3 is recorded.
	if r1.recs[0].Index != 4 || r2.recs[0].Index != 0 || r3.recs[0].Index != 0 {
		t.Fatalf("indices %d %d %d, want 4 0 0", r1.recs[0].Index, r2.recs[0].Index, r3.recs[0].Index)
	}
	if r1.p.g == r2.p.g {
		t.Fatal("the records before the eviction did not commit first")
	}
	st := e.log.State()
	if st.On || st.Current != 4 || st.First != 5 {
		t.Fatalf("state %+v, want off, current 4, nothing retained", st)
	}
	for _, k := range []string{"ns/r1", "ns/r2", "ns/r3"} {
		if !e.hasKey(k) {
			t.Fatalf("%s not committed", k)
		}
	}
	e.restart()
	if got := e.indices(); len(got) != 0 {
		t.Fatalf("records %v retained with no user", got)
	}

	// With space GC off a request at the cap fails alone; the others in
	// its group commit.
	e.register("", "")
	if err := e.log.UpdateSettings(func(s *Settings) error { return s.SetParam("changelog_free_space_gc", "0") }); err != nil {
		t.Fatal(err)
	}
	var reqs []*applyReq
	for i := range 6 {
		r, _ := groupReq(t, e, fmt.Sprint("c", i))
		reqs = append(reqs, r)
	}
	e.log.commitGroup(reqs)
	for i, r := range reqs {
		if i < 4 {
			if r.err != nil || r.recs[0].Index != changelog.Index(5+i) {
				t.Fatalf("request %d: %v, index %d", i, r.err, r.recs[0].Index)
			}
			if err := r.p.Wait(); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if !errors.Is(r.err, changelog.ErrNoSpace) || r.p != nil {
			t.Fatalf("request %d at the cap: %v", i, r.err)
		}
		if e.hasKey(fmt.Sprint("ns/c", i)) {
			t.Fatalf("refused request %d committed its batch", i)
		}
	}
	if got := e.indices(); len(got) != 4 || got[0] != 5 || got[3] != 8 {
		t.Fatalf("records %v, want 5..8", got)
	}
}

// TestHeldSyncs: while announced callers are on their way, a group is
// applied (visible, indices assigned) without a sync and held: its Wait
// does not return and the durable watermark does not move. The held
// groups share one sync, issued when nobody announced is on the way any
// more, when holdOps callers are held, when the hold has lasted its limit,
// or when the log closes; the watermark then covers exactly them.
func TestHeldSyncs(t *testing.T) {
	e := newEnv(t)
	e.register("", "")
	e.log.hold.limit = time.Hour
	apply := func(name string) (*Pending, changelog.Index) {
		t.Helper()
		b := e.db.NewBatch()
		defer b.Close()
		if err := b.Set([]byte("ns/"+name), []byte("x"), nil); err != nil {
			t.Fatal(err)
		}
		r := &changelog.Record{Type: changelog.CLCreate, Name: name}
		p, err := e.log.Apply(b, []*changelog.Record{r})
		if err != nil {
			t.Fatal(err)
		}
		return p, r.Index
	}
	waitAsync := func(p *Pending) chan error {
		ch := make(chan error, 1)
		go func() { ch <- p.Wait() }()
		return ch
	}
	notYet := func(ch chan error, what string) {
		t.Helper()
		select {
		case err := <-ch:
			t.Fatalf("%s: Wait returned (%v) while its sync is held", what, err)
		case <-time.After(30 * time.Millisecond):
		}
	}
	done := func(ch chan error, what string) {
		t.Helper()
		select {
		case err := <-ch:
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: Wait did not return after the release", what)
		}
	}

	// Released when nobody announced is on the way any more.
	e.log.Expect()
	e.log.Expect()
	e.log.Expect()
	pa, ia := apply("a")
	wa := waitAsync(pa)
	pb, ib := apply("b")
	wb := waitAsync(pb)
	if n := e.log.hold.n.Load(); n != 2 || ib != ia+1 {
		t.Fatalf("%d groups held, indices %d %d", n, ia, ib)
	}
	if !e.hasKey("ns/a") || !e.hasKey("ns/b") {
		t.Fatal("a held group is not applied")
	}
	notYet(wa, "a")
	notYet(wb, "b")
	if d := e.log.Durable(); d >= ia {
		t.Fatalf("durable %d covers held record %d", d, ia)
	}
	e.log.ExpectDone() // the third announced caller gives up
	done(wa, "a")
	done(wb, "b")
	if d := e.log.Durable(); d != ib {
		t.Fatalf("durable %d after the release, want %d", d, ib)
	}
	e.log.ExpectDone()
	e.log.ExpectDone()

	// Released by count: holdOps callers held.
	for range holdOps + 10 {
		e.log.Expect()
	}
	var waits []chan error
	for i := range holdOps - 1 {
		p, _ := apply(fmt.Sprint("c", i))
		waits = append(waits, waitAsync(p))
	}
	notYet(waits[0], "c0")
	p, last := apply("c-last")
	waits = append(waits, waitAsync(p))
	for i, w := range waits {
		done(w, fmt.Sprint("c", i))
	}
	if d := e.log.Durable(); d != last {
		t.Fatalf("durable %d, want %d", d, last)
	}

	// Released by time.
	e.log.hold.Lock()
	e.log.hold.limit = 20 * time.Millisecond
	e.log.hold.Unlock()
	p, last = apply("timed")
	start := time.Now()
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 10*time.Millisecond {
		t.Fatalf("released after %v, before the hold's limit", el)
	}
	if d := e.log.Durable(); d != last {
		t.Fatalf("durable %d, want %d", d, last)
	}

	// Released by Close.
	e.log.hold.Lock()
	e.log.hold.limit = time.Hour
	e.log.hold.Unlock()
	p, last = apply("closing")
	w := waitAsync(p)
	notYet(w, "closing")
	if err := e.log.Close(); err != nil {
		t.Fatal(err)
	}
	done(w, "closing")
	if d := e.log.Durable(); d != last {
		t.Fatalf("durable %d, want %d", d, last)
	}
}
