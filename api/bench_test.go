package api_test

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/fidlog/fidlog/changelog"
	"github.com/fidlog/fidlog/changelog/store"
	"github.com/fidlog/fidlog/fid"
	changelogv1 "github.com/fidlog/fidlog/proto/lustre/changelog/v1"
)

// BenchmarkStream measures catch-up streaming of a retained log to one
// consumer over gRPC (raw mode, unix socket, the client checks the
// contiguity of the stored records' indices) against a scan of the same records straight from Pebble
// (Log.Scan copying each value), interleaved in the same run. It reports
// both rates and their ratio (target >= 0.5).
func BenchmarkStream(b *testing.B) {
	const n = 100_000
	e := newEnvFS(b, vfs.NewMem(), "db")
	c := e.local()
	register(b, c, "", "")
	l := e.m.Log()
	for i := 0; i < n; i += 1000 {
		recs := make([]*changelog.Record, 1000)
		for j := range recs {
			recs[j] = &changelog.Record{
				Type: changelog.CLCreate, TFID: fid.FID{Seq: fid.SeqNormal, Oid: uint32(i + j + 1)}, PFID: fid.Root,
				Name: fmt.Sprintf("file-%08d", i+j), JobID: "bench.0", ExtraFlags: changelog.ExtraUIDGID | changelog.ExtraNID,
				UID: 1000, GID: 1000, NID: "192.168.1.10@tcp",
			}
		}
		batch := e.m.DB().NewBatch()
		if _, err := l.Commit(batch, recs); err != nil {
			b.Fatal(err)
		}
		batch.Close()
	}
	ctx := context.Background()
	var grpcTime, scanTime time.Duration
	var msgs int
	for b.Loop() {
		start := time.Now()
		next := changelog.Index(1)
		st, err := c.Changelog.Read(ctx, &changelogv1.ReadRequest{Device: device, Raw: true})
		if err != nil {
			b.Fatal(err)
		}
		for {
			msg, err := st.Recv()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			msgs++
			for _, raw := range msg.GetRawRecords() {
				if idx, ok := changelog.PeekIndex(raw); !ok || idx != next {
					b.Fatalf("got %d, want %d", idx, next)
				}
				next++
			}
		}
		if next != n+1 {
			b.Fatalf("stream ended at %d", next)
		}
		grpcTime += time.Since(start)

		start = time.Now()
		next = 1
		var buf []byte
		_, err = l.Scan(ctx, store.ReadOptions{}, func(en store.Entry) error {
			if en.Index != next {
				return fmt.Errorf("got %d, want %d", en.Index, next)
			}
			buf = append(buf[:0], en.Raw...)
			next++
			return nil
		})
		if err != nil || next != n+1 {
			b.Fatalf("scan: %v at %d", err, next)
		}
		scanTime += time.Since(start)
	}
	grpcRate := float64(b.N*n) / grpcTime.Seconds()
	scanRate := float64(b.N*n) / scanTime.Seconds()
	b.ReportMetric(grpcRate, "grpc_rec/s")
	b.ReportMetric(scanRate, "scan_rec/s")
	b.ReportMetric(grpcRate/scanRate, "ratio")
	b.ReportMetric(float64(n*b.N)/float64(msgs), "rec/msg")
}
