package client

import (
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/fidlog/fidlog/changelog"
	"github.com/fidlog/fidlog/fid"
	changelogv1 "github.com/fidlog/fidlog/proto/lustre/changelog/v1"
)

// TestChainItemsDecodeOnce: a chain message's records are decoded into
// one array and their strings into one buffer, not allocations a record;
// each item is its record with the bytes it was decoded from (the
// message's, not a copy), the ones handled before are left out, and the
// records of two messages do not share memory.
func TestChainItemsDecodeOnce(t *testing.T) {
	var want []*changelog.Record
	var raws [][]byte
	for i := range 100 {
		r := &changelog.Record{Index: changelog.Index(i + 1), Type: changelog.CLCreate, Time: time.Unix(1795550778, int64(i)),
			TFID: fid.FID{Seq: 0x200000400, Oid: uint32(i + 2)}, PFID: fid.Root, Name: "r1-" + strconv.Itoa(i),
			ExtraFlags: changelog.ExtraUIDGID | changelog.ExtraNID, NID: "0@lo", JobID: "job." + strconv.Itoa(i%3)}
		want = append(want, r)
		raws = append(raws, changelog.EncodeChained(r))
	}
	msg := &changelogv1.ReadResponse{RawRecords: raws}
	f := &follower{device: "lustre-MDT0000", processed: 10}
	items, err := f.chainItems(msg)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 90 || f.processed != 100 {
		t.Fatalf("%d items, processed %d; want 90, 100", len(items), f.processed)
	}
	for i, it := range items {
		if !reflect.DeepEqual(it.Record, want[i+10]) {
			t.Fatalf("item %d: %+v, want %+v", i, it.Record, want[i+10])
		}
		if raw := raws[i+10]; len(it.Raw) != len(raw) || &it.Raw[0] != &raw[0] {
			t.Fatalf("item %d: Raw %x is not the message's bytes %x", i, it.Raw, raw)
		}
	}
	f.processed = 0
	again, err := f.chainItems(msg)
	if err != nil {
		t.Fatal(err)
	}
	if again[10].Record == items[0].Record {
		t.Fatal("two messages' records share memory")
	}
	if n := testing.AllocsPerRun(10, func() {
		f.processed = 0
		if _, err := f.chainItems(msg); err != nil {
			t.Fatal(err)
		}
	}); n > 3 {
		t.Errorf("chainItems of %d records with names, NIDs and job IDs: %.0f allocations, want 3 (items, records, strings)", len(raws), n)
	}
}

// BenchmarkChainItems decodes a chain message of 1,000 chained CREATs as
// fidlog-export reads them (name, uid/gid, NID). ns/record is per record;
// B/op and allocs/op per message.
func BenchmarkChainItems(b *testing.B) {
	var raws [][]byte
	for i := range 1000 {
		r := &changelog.Record{Index: changelog.Index(i + 1), Type: changelog.CLCreate, Time: time.Unix(1795550778, int64(i)),
			TFID: fid.FID{Seq: 0x200000400, Oid: uint32(i + 2)}, PFID: fid.Root, Name: "r1-" + strconv.Itoa(i),
			ExtraFlags: changelog.ExtraUIDGID | changelog.ExtraNID, NID: "0@lo"}
		raws = append(raws, changelog.EncodeChained(r))
	}
	msg := &changelogv1.ReadResponse{RawRecords: raws}
	f := &follower{device: "lustre-MDT0000"}
	b.ReportAllocs()
	for b.Loop() {
		f.processed = 0
		if _, err := f.chainItems(msg); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(raws)), "ns/record")
}

// TestFollowRecordsDecodeOnce: a follow message's records are the ones
// Records returns (a chain's checkpoints and anchor left out), decoded into
// one array with their strings in one buffer: three allocations a message
// (records, their pointers, strings), not one a record and one a string.
func TestFollowRecordsDecodeOnce(t *testing.T) {
	var raws [][]byte
	for i := range 100 {
		r := &changelog.Record{Index: changelog.Index(i + 1), Type: changelog.CLRename, Time: time.Unix(1795550778, int64(i)),
			TFID: fid.FID{Seq: 0x200000400, Oid: uint32(i + 2)}, PFID: fid.Root, Name: "r1-" + strconv.Itoa(i),
			SFID: fid.FID{Seq: 0x200000400, Oid: 7}, SPFID: fid.Root, SName: "old-" + strconv.Itoa(i),
			ExtraFlags: changelog.ExtraUIDGID | changelog.ExtraNID | changelog.ExtraXattr, NID: "0@lo", JobID: "job." + strconv.Itoa(i%3), XattrName: "user.x"}
		raws = append(raws, changelog.EncodeChained(r))
		if i == 50 {
			raws = append(raws, changelog.AppendAnchor(nil, changelog.Anchor{Index: 50}))
		}
	}
	msg := &changelogv1.ReadResponse{RawRecords: raws}
	want, err := Records(msg)
	if err != nil {
		t.Fatal(err)
	}
	f := &follower{device: "lustre-MDT0000"}
	got, err := f.records(msg)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("records:\n got %+v\nwant %+v", got, want)
	}
	if len(got) != 100 {
		t.Fatalf("%d records, want 100", len(got))
	}
	if n := testing.AllocsPerRun(10, func() {
		if _, err := f.records(msg); err != nil {
			t.Fatal(err)
		}
	}); n > 3 {
		t.Errorf("records of a message of %d records with strings: %.0f allocations, want 3 (records, pointers, strings)", len(got), n)
	}
}
