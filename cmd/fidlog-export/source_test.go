package main

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fidlog/fidlog/changelog"
	"github.com/fidlog/fidlog/fid"
)

// TestEventsJoinPathsShared: a batch's paths are its directories' paths
// joined with the names (in the root, under a directory, a rename's
// source; "" when the directory is unknown), built in shared chunks, not
// one allocation a record; paths of a batch stay intact while later
// batches are joined, also past the room a chunk guessed.
func TestEventsJoinPathsShared(t *testing.T) {
	dir := fid.FID{Seq: 0x200000400, Oid: 1}
	src := &source{dev: "lustre-MDT0000", paths: newResolver(nil)}
	src.paths.cache.Add(dir, "/bench")
	src.paths.cache.Add(fid.Root, "/")
	long := strings.Repeat("n", 10*pathGuess) // past the room guessed for the batch
	var recs []*changelog.Record
	var want [][2]string
	for i := range 100 {
		r := &changelog.Record{Index: changelog.Index(i + 1), Type: changelog.CLCreate, Time: time.Unix(1795550778, 0),
			TFID: fid.FID{Seq: 0x200000400, Oid: uint32(i + 10)}, PFID: dir, Name: "r1-" + strconv.Itoa(i)}
		w := [2]string{"/bench/" + r.Name, ""}
		switch i % 10 {
		case 3:
			r.PFID, w[0] = fid.Root, "/"+r.Name
		case 5:
			r.Name, w[0] = long+r.Name, "/bench/"+long+r.Name
		case 7:
			r.Type, r.SFID, r.SPFID, r.SName = changelog.CLHardlink, r.TFID, dir, "old"
			w[1] = "/bench/old"
		case 9: // a source directory unknown (zero)
			r.Type, r.SFID, r.SName = changelog.CLHardlink, r.TFID, "old"
		}
		recs, want = append(recs, r), append(want, w)
	}
	ctx := context.Background()
	batch := func() []*event { return src.events(ctx, len(recs), func(i int) event { return event{rec: recs[i]} }) }
	first := batch()
	for range 3 {
		batch()
	}
	for i, e := range first {
		if e.path != want[i][0] || e.spath != want[i][1] {
			t.Fatalf("record %d: path %q source path %q, want %q %q", i, e.path, e.spath, want[i][0], want[i][1])
		}
	}
	recs = recs[:50:50]
	for i := range recs {
		if i%10 == 5 {
			recs[i] = recs[0]
		}
	}
	if n := testing.AllocsPerRun(10, func() { batch() }); n > 3 {
		t.Errorf("events of %d records with paths: %.0f allocations, want 3 (events, their pointers, the paths)", len(recs), n)
	}
}
