package mdt

import (
	"fmt"
	"sync"
	"sync/atomic"
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
func BenchmarkCreate(b *testing.B) {
	for _, conc := range []int{1, 8, 32} {
		for _, on := range []bool{true, false} {
			name := fmt.Sprintf("conc=%d/changelog=%s", conc, map[bool]string{true: "on", false: "off"}[on])
			b.Run(name, func(b *testing.B) { benchCreate(b, conc, on) })
		}
	}
}

func benchCreate(b *testing.B, conc int, on bool) {
	m, err := Open(b.TempDir(), &Options{Logger: quietLogger()})
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
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "ops/s")
	if got := m.Log().State().Current - base; on && got != changelog.Index(b.N) {
		b.Fatalf("%d records for %d creates", got, b.N)
	}
}
