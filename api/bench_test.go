package api_test

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/fidlog/fidlog/api/client"
	"github.com/fidlog/fidlog/changelog"
	"github.com/fidlog/fidlog/changelog/store"
	"github.com/fidlog/fidlog/fid"
	changelogv1 "github.com/fidlog/fidlog/proto/lustre/changelog/v1"
	mdtv1 "github.com/fidlog/fidlog/proto/lustre/mdt/v1"
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

// BenchmarkExecCall measures the transport's cost per call: 64 concurrent
// Stat calls of one file (no fsync, the MDT's part small) over loopback
// TCP, through the Exec stream and as unary RPCs, reporting the process's
// CPU per call (client and server together).
//
//	go test -run '^$' -bench ExecCall -benchtime 100000x ./api
func BenchmarkExecCall(b *testing.B) {
	for _, mode := range []string{"exec", "unary"} {
		b.Run(mode, func(b *testing.B) {
			e := newEnv(b)
			var opts []client.Option
			if mode == "unary" {
				opts = append(opts, client.WithUnary())
			}
			c := e.dial(e.tcp, opts...)
			ctx := context.Background()
			if _, err := c.Namespace.Create(ctx, &mdtv1.CreateRequest{Path: []byte("/f"), Mode: 0o644}); err != nil {
				b.Fatal(err)
			}
			var next atomic.Int64
			var wg sync.WaitGroup
			cpu0 := processCPU(b)
			start := time.Now()
			for range 64 {
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						if _, err := c.Namespace.Stat(ctx, &mdtv1.StatRequest{Path: []byte("/f")}); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			el, cpu := time.Since(start), processCPU(b)-cpu0
			b.ReportMetric(float64(b.N)/el.Seconds(), "calls/s")
			b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(b.N), "cpu-µs/call")
		})
	}
}

// processCPU is the user and system CPU time the process used so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
