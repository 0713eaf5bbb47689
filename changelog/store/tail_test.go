package store

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/fidlog/fidlog/changelog"
	"github.com/fidlog/fidlog/fid"
)

// TestTailMatchesPebble: reads answered from the tail (the newest records,
// tail.go) are exactly what a Pebble iteration of the same log returns,
// for every range, mask and limit, across concurrent commits, records the
// mask drops, a purge and more records than the tail keeps; and the
// newest records are read from the tail.
func TestTailMatchesPebble(t *testing.T) {
	e := newEnv(t)
	e.register("", "")
	types := []changelog.Type{changelog.CLCreate, changelog.CLMkdir, changelog.CLUnlink, changelog.CLRename, changelog.CLSetattr, changelog.CLClose}
	commit := func(w, i, n int) {
		recs := make([]*changelog.Record, n)
		for j := range recs {
			recs[j] = &changelog.Record{Type: types[(i+j)%len(types)], TFID: fid.FID{Seq: fid.SeqNormal, Oid: uint32(w*100000 + i + 1)}, PFID: fid.Root, Name: fmt.Sprintf("w%d-%d-%d", w, i, j)}
		}
		b := e.db.NewBatch()
		defer b.Close()
		if err := b.Set(fmt.Appendf(nil, "ns/w%d-%d", w, i), []byte("x"), nil); err != nil {
			t.Error(err)
			return
		}
		if _, err := e.log.Commit(b, recs); err != nil {
			t.Error(err)
		}
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 220 {
				commit(w, i, 1+i%7) // 8 x 220 commits of 1-7 records, some masked out
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	// A purge below the tail and into it.
	if _, err := e.log.Clear("cl1", 500); err != nil {
		t.Fatal(err)
	}
	st := e.log.State()
	if st.Current-st.First < tailSize {
		t.Fatalf("want more records (%d..%d) than the tail keeps (%d)", st.First, st.Current, tailSize)
	}

	rng := rand.New(rand.NewPCG(1, 2))
	var qs []ReadOptions
	for range 400 {
		end := st.Current - changelog.Index(rng.IntN(int(st.Current-st.First)))
		start := end - changelog.Index(rng.IntN(300))
		o := ReadOptions{Start: start, End: end}
		switch rng.IntN(4) {
		case 0:
			o.Mask = changelog.MaskOf(changelog.CLCreate, changelog.CLClose)
		case 1:
			o.Limit = 1 + rng.IntN(20)
		case 2:
			o.End = 0 // up to the durable index
			o.Start = st.Current - changelog.Index(rng.IntN(200))
		}
		qs = append(qs, o)
	}
	qs = append(qs, ReadOptions{Start: 1, End: 450}, ReadOptions{Start: 490, End: 510}, ReadOptions{Start: st.Current, End: st.Current})

	scanAll := func() []string {
		var out []string
		for _, o := range qs {
			var got []string
			next, err := e.log.Scan(context.Background(), o, func(en Entry) error {
				got = append(got, fmt.Sprintf("%d:%s:%x", en.Index, en.Type, en.Raw))
				return nil
			})
			out = append(out, fmt.Sprintf("%+v -> next %d err %v %v", o, next, err, got))
		}
		return out
	}
	live := scanAll()
	// The newest records come from the tail, not from Pebble: with the
	// stored record overwritten behind the log's back, a scan of it still
	// returns what was committed.
	key := e.log.keys.record(st.Current)
	orig, closer, err := e.db.Get(key)
	if err != nil {
		t.Fatal(err)
	}
	orig = bytes.Clone(orig)
	closer.Close()
	if err := e.db.Set(key, []byte("not the record"), nil); err != nil {
		t.Fatal(err)
	}
	var newest []byte
	if _, err := e.log.Scan(context.Background(), ReadOptions{Start: st.Current, End: st.Current}, func(en Entry) error {
		newest = bytes.Clone(en.Raw)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(newest, orig) {
		t.Fatalf("record %d read as %q, not from the tail", st.Current, newest)
	}
	if err := e.db.Set(key, orig, nil); err != nil {
		t.Fatal(err)
	}
	e.restart() // an empty tail: every read goes to Pebble
	if _, ok := e.log.tail.get(nil, st.Current, st.Current); ok {
		t.Fatal("the tail holds records after a restart")
	}
	cold := scanAll()
	for i := range live {
		if live[i] != cold[i] {
			t.Fatalf("query %d:\n tail:   %.400s\n pebble: %.400s", i, live[i], cold[i])
		}
	}
}

// TestScanSeesWhatItReturnsPast: a record committed and made durable while
// a scan is under way (after its Pebble iterator was made) is either
// delivered or after the index the scan says to continue from, never
// skipped.
func TestScanSeesWhatItReturnsPast(t *testing.T) {
	e := newEnv(t)
	e.register("", "")
	for i := range tailMaxRead + 10 {
		e.op(changelog.CLCreate, fmt.Sprint("f", i))
	}
	// A range longer than the tail answers, so Pebble is read.
	testAfterIter = func() {
		testAfterIter = nil
		e.op(changelog.CLCreate, "meanwhile") // committed and durable
	}
	t.Cleanup(func() { testAfterIter = nil })
	var got []changelog.Index
	next, err := e.log.Scan(context.Background(), ReadOptions{Start: 1}, func(en Entry) error {
		got = append(got, en.Index)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if last := got[len(got)-1]; next != last+1 {
		t.Fatalf("scan delivered up to %d and says to continue from %d: records in between are skipped", last, next)
	}
	if d := e.log.Durable(); changelog.Index(len(got)) != d-1 {
		t.Fatalf("delivered %d records, durable %d: want all but the one committed during the scan", len(got), d)
	}
}
