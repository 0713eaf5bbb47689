package api

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/fidlog/fidlog/changelog"
	"github.com/fidlog/fidlog/changelog/store"
	"github.com/fidlog/fidlog/mdt"
)

// TestBatchSizedByDurable: a batch reserves room for the records durable
// now, not for a full batch. A follow stream woken for one record once
// reserved a 1 MiB arena and a 4096-entry slice; with 64 follow streams
// that was ~70 MB of allocation per commit (follow latency p50 90 ms).
func TestBatchSizedByDurable(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	m, err := mdt.Open("db", &mdt.Options{FS: vfs.NewMem(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	s, err := New(m, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	if _, err := m.Log().Register(store.RegisterOptions{}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, name := range []string{"a", "b", "c"} {
		if _, err := m.Create(ctx, mdt.Cred{}, name, 0o644, true); err != nil {
			t.Fatal(err)
		}
	}
	c := &changelogService{s: s}
	var rec changelog.Record
	for _, raw := range []bool{true, false} {
		msg, next, err := c.batch(ctx, m.Log(), readPlan{start: 3, batch: DefaultBatchRecords, raw: raw}, 3, 0, &rec)
		if err != nil {
			t.Fatal(err)
		}
		if next != 4 || len(msg.GetRawRecords())+len(msg.GetRecords()) != 1 {
			t.Fatalf("raw=%v: next %d, message %v", raw, next, msg)
		}
		if raw && cap(msg.RawRecords) > 4 || !raw && cap(msg.Records) > 4 {
			t.Fatalf("raw=%v: one durable record reserved room for %d/%d", raw, cap(msg.RawRecords), cap(msg.Records))
		}
	}
	// A batch over all three still carries them all, contiguous.
	msg, next, err := c.batch(ctx, m.Log(), readPlan{start: 1, batch: DefaultBatchRecords, raw: true}, 1, 0, &rec)
	if err != nil || next != 4 || len(msg.GetRawRecords()) != 3 {
		t.Fatalf("next %d, %d records, %v", next, len(msg.GetRawRecords()), err)
	}
	for i, r := range msg.GetRawRecords() {
		if idx, ok := changelog.PeekIndex(r); !ok || idx != changelog.Index(i+1) {
			t.Fatalf("record %d has index %d", i, idx)
		}
	}
}
