package mdt

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fidlog/fidlog/changelog"
	"github.com/fidlog/fidlog/changelog/store"
)

// BenchmarkCreate measures durable creates per second through the MDT
// with changelogs on (one user, default mask: one CREAT record per create)
// and off (no user: no record, no index), at several numbers of
// concurrent clients, on a DB in a temporary directory on disk. The
// metric that matters is the on/off ratio at equal concurrency (target
// >= 0.90); compare "ops/s" of the paired sub-benchmarks, e.g.
//
//	go test -run '^$' -bench BenchmarkCreate -count 3 ./mdt
//
// FIDLOG_BENCH_NSCACHE=off runs it without the namespace cache.
func BenchmarkCreate(b *testing.B) {
	for _, conc := range []int{1, 8, 32, 128} {
		for _, on := range []bool{true, false} {
			name := fmt.Sprintf("conc=%d/changelog=%s", conc, map[bool]string{true: "on", false: "off"}[on])
			b.Run(name, func(b *testing.B) { benchCreate(b, conc, on) })
		}
	}
}

func benchCreate(b *testing.B, conc int, on bool) {
	o := &Options{Logger: quietLogger()}
	if os.Getenv("FIDLOG_BENCH_NSCACHE") == "off" {
		o.NamespaceCacheEntries = -1 // the namespace cache's baseline
	}
	m, err := Open(b.TempDir(), o)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	if on {
		if _, err := m.SetParam("mdd.*.changelog_mask", "+hsm"); err != nil {
			b.Fatal(err)
		}
		if _, err := m.Log().Register(store.RegisterOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	for w := range conc {
		if _, err := m.Mkdir(ctx, root, fmt.Sprintf("w%d", w), 0755); err != nil {
			b.Fatal(err)
		}
	}
	base := m.Log().State().Current
	var next atomic.Int64
	b.ResetTimer()
	cpu0 := processCPU(b)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range conc {
		wg.Go(func() {
			c := Cred{UID: 0, GID: 0, JobID: "bench", NID: "192.168.1.10@tcp"}
			for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
				if _, err := m.Create(ctx, c, fmt.Sprintf("w%d/f%d", w, i), 0644, true); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := processCPU(b) - cpu0
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "ops/s")
	// CPU per create is the steadier figure on a shared machine.
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
	if got := m.Log().State().Current - base; on && got != changelog.Index(b.N) {
		b.Fatalf("%d records for %d creates", got, b.N)
	}
}

// processCPU returns the user and system CPU time the process used so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
