package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/fidlog/fidlog/api/client"
	"github.com/fidlog/fidlog/changelog"
	"github.com/fidlog/fidlog/changelog/store"
	"github.com/fidlog/fidlog/fid"
	"github.com/fidlog/fidlog/mdt"
	changelogv1 "github.com/fidlog/fidlog/proto/lustre/changelog/v1"
)

// recordLo and recordHi bound the changelog's record keys in the MDT's DB
// (mdt's changelog prefix "c", changelog's record keyspace "r"). The raw
// scan checks that it finds exactly the records the log reports.
var recordLo, recordHi = []byte("cr"), []byte("cs")

// benchRecord is a CREATE record as the MDT writes it for a client.
func benchRecord(i uint64) *changelog.Record {
	return &changelog.Record{
		Type: changelog.CLCreate, TFID: fid.FID{Seq: fid.SeqNormal + 1 + i>>20, Oid: uint32(i&(1<<20-1)) + 1},
		PFID: fid.FID{Seq: fid.SeqNormal, Oid: 2}, Name: "f" + pad(i, 10), JobID: "mdbench",
		ExtraFlags: changelog.ExtraUIDGID | changelog.ExtraNID | changelog.ExtraNIDBE, NID: rootCred.NID,
	}
}

// fillLog appends n CREATE records to m's changelog in batches of 1000
// (durable at the end) and returns the time taken.
func fillLog(m *mdt.MDT, n int) (time.Duration, error) {
	start := time.Now()
	l := m.Log()
	var p *store.Pending
	for i := 0; i < n; i += 1000 {
		recs := make([]*changelog.Record, 0, 1000)
		for j := i; j < min(i+1000, n); j++ {
			recs = append(recs, benchRecord(uint64(j)))
		}
		b := m.DB().NewBatch()
		var err error
		p, err = l.Apply(b, recs)
		b.Close()
		if err != nil {
			return 0, err
		}
	}
	if p != nil {
		if err := p.Wait(); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

// settle waits (at most max) until no compaction has run for 300 ms.
func settle(ctx context.Context, db *pebble.DB, max time.Duration) {
	deadline := time.Now().Add(max)
	idle := 0
	for idle < 3 && time.Now().Before(deadline) && ctx.Err() == nil {
		if db.Metrics().Compact.NumInProgress == 0 {
			idle++
		} else {
			idle = 0
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// logMeasures runs T3, T7, T5 and T4 on one log of cfg.records records.
func (b *bench) logMeasures(ctx context.Context) []row {
	var rows []row
	cfg := b.cfg
	fail := func(measure string, err error) []row {
		return append(rows, row{Measure: measure, Error: err.Error(), Result: "error"})
	}
	bigDir := b.tempDir("big")
	e, err := openMDT(bigDir, mdtConfig{changelogOn: true})
	if err != nil {
		return fail("T3", err)
	}
	cfg.logf("filling %d records", cfg.records)
	write, err := fillLog(e.m, cfg.records)
	if err != nil {
		e.close()
		return fail("T3", err)
	}
	if err := e.m.DB().Flush(); err != nil {
		e.close()
		return fail("T3", err)
	}
	if cfg.wants("T3") {
		// The compactions the fill started would otherwise run during
		// whichever T3 phase comes first: CPU profiles of the stream
		// phase had 30 % of their samples in them.
		settle(ctx, e.m.DB(), 30*time.Second)
		cfg.logf("T3 catch-up stream")
		rows = append(rows, b.t3(ctx, e))
		cfg.logf("T3 follow latency")
		rows = append(rows, b.t3follow(ctx))
	}
	if cfg.wants("T7") {
		cfg.logf("T7 RSS")
		rows = append(rows, b.t7(ctx, e))
	}
	if err := e.m.Close(); err != nil {
		return fail("T5", err)
	}
	if cfg.wants("T5") {
		cfg.logf("T5 restart")
		rows = append(rows, b.t5(ctx, bigDir))
	}
	if cfg.wants("T4") {
		cfg.logf("T4 purge")
		rows = append(rows, b.t4(ctx, bigDir, write)...)
	} else {
		e.close()
	}
	return rows
}

// scanRaw iterates the record keys of db from first, copying each value
// and checking that indices are contiguous; it returns the count.
func scanRaw(db *pebble.DB, first changelog.Index) (int, error) {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: recordLo, UpperBound: recordHi})
	if err != nil {
		return 0, err
	}
	buf := make([]byte, 0, 512)
	want, n := first, 0
	for it.First(); it.Valid(); it.Next() {
		buf = append(buf[:0], it.Value()...)
		idx, ok := changelog.PeekIndex(buf)
		if !ok || idx != want {
			it.Close()
			return n, fmt.Errorf("raw scan: record %d where %d was expected", idx, want)
		}
		want++
		n++
	}
	return n, it.Close()
}

// streamAll reads [first, last] over one raw stream, checking contiguity.
func streamAll(ctx context.Context, c *client.Client, dev string, first, last changelog.Index, batch int) (int, int, error) {
	st, err := c.Changelog.Read(ctx, &changelogv1.ReadRequest{Device: dev, StartIndex: uint64(first), EndIndex: uint64(last), Raw: true, MaxBatchRecords: uint32(batch)})
	if err != nil {
		return 0, 0, err
	}
	want, n, msgs := first, 0, 0
	for {
		msg, err := st.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return n, msgs, err
		}
		msgs++
		if len(msg.GetRecords()) > 0 {
			return n, msgs, fmt.Errorf("stream: structured records in a raw stream")
		}
		for _, raw := range msg.GetRawRecords() {
			idx, ok := changelog.PeekIndex(raw)
			if !ok || idx != want {
				return n, msgs, fmt.Errorf("stream: record %d where %d was expected (gap or reorder)", idx, want)
			}
			want++
			n++
		}
		if msg.GetNextIndex() != 0 && changelog.Index(msg.GetNextIndex()) != want {
			return n, msgs, fmt.Errorf("stream: next_index %d after record %d", msg.GetNextIndex(), want-1)
		}
	}
	if want != last+1 {
		return n, msgs, fmt.Errorf("stream ended at %d, want %d", want-1, last)
	}
	return n, msgs, nil
}

// t3: catch-up streaming to one raw consumer over gRPC vs a raw Pebble
// scan of the same records.
func (b *bench) t3(ctx context.Context, e *mdtEnv) row {
	r := row{Measure: "T3 catch-up stream rec/s (gRPC, raw, 1 consumer) ÷ raw Pebble scan", Unit: "rec/s", Target: "≥ 0.60×"}
	st := e.m.Log().State()
	first, last := st.First, st.Durable
	batch := "server's default batch"
	if b.cfg.t3Batch > 0 {
		batch = fmt.Sprintf("max_batch_records=%d", b.cfg.t3Batch)
	}
	r.Config = fmt.Sprintf("%d records, client checks contiguity, %s", last-first+1, batch)
	srv, addr, done, err := startServer(e)
	if err != nil {
		r.Error = err.Error()
		r.judge(nil)
		return r
	}
	defer func() { srv.Stop(); <-done }()
	c, err := dialRoot(addr)
	if err != nil {
		r.Error = err.Error()
		r.judge(nil)
		return r
	}
	defer c.Close()
	var ra, rb, ratio, msgs, ca, cb series
	for rep := range b.cfg.reps {
		var a, s float64
		for _, isA := range [][]bool{{true, false}, {false, true}}[rep%2] {
			start, cpu0 := time.Now(), processCPU()
			if isA {
				n, err := scanRaw(e.m.DB(), first)
				if err == nil && n != int(last-first+1) {
					err = fmt.Errorf("raw scan found %d records, the log holds %d", n, last-first+1)
				}
				if err != nil {
					r.Error = err.Error()
					r.judge(nil)
					return r
				}
				a = float64(n) / time.Since(start).Seconds()
				ca = append(ca, float64(processCPU()-cpu0)/float64(n))
				continue
			}
			stop := func() {}
			if rep == 0 {
				if f := b.prof.begin("t3-stream"); f != nil {
					stop = f()
				}
			}
			n, m, err := streamAll(ctx, c, e.m.Device(), first, last, b.cfg.t3Batch)
			stop()
			if err != nil {
				r.Error = err.Error()
				r.judge(nil)
				return r
			}
			s = float64(n) / time.Since(start).Seconds()
			cb = append(cb, float64(processCPU()-cpu0)/float64(n))
			msgs = append(msgs, float64(n)/float64(max(m, 1)))
		}
		ra, rb, ratio = append(ra, a), append(rb, s), append(ratio, s/a)
	}
	r.BaselineValue, r.ServiceValue = ra.median(), rb.median()
	r.Ratio, r.RatioMin, r.RatioMax, r.Reps = ratio.median(), ratio.min(), ratio.max(), len(ratio)
	r.Baseline = fmt.Sprintf("%s rec/s (%.0f ns CPU/rec)", fmtRate(r.BaselineValue), ca.median())
	r.Service = fmt.Sprintf("%s rec/s (%.0f rec/msg, %.0f ns CPU/rec, server and client)", fmtRate(r.ServiceValue), msgs.median(), cb.median())
	r.Extra = map[string]float64{"records_per_message": msgs.median(), "baseline_cpu_ns_per_rec": ca.median(), "service_cpu_ns_per_rec": cb.median()}
	r.judge(boolp(r.Ratio >= 0.6))
	return r
}

// t3follow: latency from a create's acknowledgement to its record's
// delivery to follow-mode consumers over gRPC (cfg.streams streams over 8
// connections, every stream checked for contiguity, every delivery
// timed), under a moderate load (4 writers, 1 ms think time), against the
// box's fdatasync latency.
func (b *bench) t3follow(ctx context.Context) row {
	nstreams := max(b.cfg.streams, 1)
	r := row{Measure: "T3 follow latency (create ack → follow consumer receives)", Unit: "µs"}
	r.Config = fmt.Sprintf("4 writers with 1 ms think time, in-process creates, %d raw follow streams over gRPC", nstreams)
	probe, err := fsyncProbe(b.cfg.tmpdir, 400)
	if err != nil {
		r.Error = err.Error()
		r.judge(nil)
		return r
	}
	fs50, fs99 := probe.quantile(.5), probe.quantile(.99)
	r.Baseline = fmt.Sprintf("fdatasync p50 %s, p99 %s", fmtDur(fs50), fmtDur(fs99))
	r.BaselineValue = float64(fs50) / 1e3
	r.Target = fmt.Sprintf("p50 ≤ fsync p50 + 0.5 ms (%s), p99 ≤ 10 ms", fmtDur(fs50+time.Millisecond/2))

	e, err := openMDT(b.tempDir("follow"), mdtConfig{changelogOn: true})
	if err != nil {
		r.Error = err.Error()
		r.judge(nil)
		return r
	}
	defer e.close()
	const writers = 4
	if err := e.mkdirs(ctx, writers); err != nil {
		r.Error = err.Error()
		r.judge(nil)
		return r
	}
	srv, addr, done, err := startServer(e)
	if err != nil {
		r.Error = err.Error()
		r.judge(nil)
		return r
	}
	defer func() { srv.Stop(); <-done }()
	conns := make([]*client.Client, min(8, nstreams))
	for i := range conns {
		if conns[i], err = dialRoot(addr); err != nil {
			r.Error = err.Error()
			r.judge(nil)
			return r
		}
		defer conns[i].Close()
	}

	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := e.m.Log().State().Current + 1
	type seen struct {
		f fid.FID
		t time.Time
	}
	recv := make(chan []seen, nstreams)
	errs := make(chan error, nstreams)
	reached := make([]atomic.Uint64, nstreams) // highest index each stream received
	for i := range nstreams {
		st, err := conns[i%len(conns)].Changelog.Read(sctx, &changelogv1.ReadRequest{Device: e.m.Device(), StartIndex: uint64(start), Follow: true, Raw: true})
		if err != nil {
			r.Error = err.Error()
			r.judge(nil)
			return r
		}
		go func() {
			var out []seen
			var rec changelog.Record
			want := start
			defer func() { recv <- out }()
			for {
				msg, err := st.Recv()
				if err != nil {
					if sctx.Err() == nil {
						errs <- err
					}
					return
				}
				now := time.Now()
				for _, raw := range msg.GetRawRecords() {
					if err := changelog.DecodeInto(&rec, raw); err != nil {
						errs <- err
						return
					}
					if rec.Index != want {
						errs <- fmt.Errorf("follow: record %d where %d was expected", rec.Index, want)
						return
					}
					want++
					out = append(out, seen{rec.TFID, now})
				}
				reached[i].Store(uint64(want - 1))
			}
		}()
	}
	acks := make([][]seen, writers)
	var wg sync.WaitGroup
	var werr atomic.Pointer[error]
	dur := time.Duration(b.cfg.reps) * b.cfg.phase
	deadline := time.Now().Add(dur)
	stopProf := func() {}
	if f := b.prof.begin("t3-follow"); f != nil {
		stopProf = f()
	}
	for w := range writers {
		wg.Go(func() {
			for n := uint64(0); time.Now().Before(deadline); n++ {
				a, err := e.m.Create(ctx, rootCred, filePath(w, n), 0o644, true)
				if err != nil {
					werr.Store(&err)
					return
				}
				acks[w] = append(acks[w], seen{a.FID, time.Now()})
				time.Sleep(time.Millisecond)
			}
		})
	}
	wg.Wait()
	stopProf()
	// Let the last records arrive, then stop the streams.
	target := e.m.Log().State().Current
	for i := 0; i < 200 && e.m.Log().Durable() < target; i++ {
		time.Sleep(5 * time.Millisecond)
	}
	// Every stream must get there; a stream that does not within 10 s
	// (on a loaded machine 64 streams can lag) is reported as missing.
	for wait := time.Now().Add(10 * time.Second); time.Now().Before(wait); time.Sleep(5 * time.Millisecond) {
		all := true
		for i := range reached {
			if reached[i].Load() < uint64(target) {
				all = false
				break
			}
		}
		if all {
			break
		}
	}
	cancel()
	got := make([][]seen, nstreams)
	for i := range got {
		got[i] = <-recv
	}
	if p := werr.Load(); p != nil {
		r.Error = (*p).Error()
		r.judge(nil)
		return r
	}
	select {
	case err := <-errs:
		r.Error = err.Error()
		r.judge(nil)
		return r
	default:
	}
	var h hist
	missing, early, total := 0, 0, 0
	for _, g := range got {
		at := make(map[fid.FID]time.Time, len(g))
		for _, s := range g {
			at[s.f] = s.t
		}
		for _, ws := range acks {
			for _, a := range ws {
				total++
				t, ok := at[a.f]
				if !ok {
					missing++
					continue
				}
				d := t.Sub(a.t)
				if d < 0 {
					early++ // delivered before the writer saw its ack
					d = 0
				}
				h.add(d)
			}
		}
	}
	creates := total / nstreams
	if missing > 0 {
		r.Error = fmt.Sprintf("%d of %d acknowledged creates × streams never reached their follower", missing, total)
		r.judge(nil)
		return r
	}
	p50, p99 := h.quantile(.5), h.quantile(.99)
	r.ServiceValue = float64(p50) / 1e3
	r.Service = fmt.Sprintf("p50 %s, p99 %s (%d creates, %.0f/s, × %d streams; %d deliveries before the ack returned)", fmtDur(p50), fmtDur(p99), creates, float64(creates)/dur.Seconds(), nstreams, early)
	r.Extra = map[string]float64{"p50_us": float64(p50) / 1e3, "p99_us": float64(p99) / 1e3, "fsync_p50_us": float64(fs50) / 1e3, "fsync_p99_us": float64(fs99) / 1e3, "creates": float64(creates), "streams": float64(nstreams)}
	r.judge(boolp(p50 <= fs50+time.Millisecond/2 && p99 <= 10*time.Millisecond))
	return r
}

// t7: RSS with the big log retained and 64 follow streams open (each
// catching up over the last 16k records, then following live creates).
func (b *bench) t7(ctx context.Context, e *mdtEnv) row {
	n := b.cfg.streams
	r := row{Measure: "T7 RSS (VmHWM) with N retained records and follow streams", Unit: "MiB", Target: "≤ 1024 MiB"}
	st := e.m.Log().State()
	r.Config = fmt.Sprintf("%d retained, %d raw follow streams (16k catch-up each) + 8 writers", st.Current-st.First+1, n)
	r.Baseline = "—"
	runtime.GC()
	debug.FreeOSMemory()
	reset := resetPeakRSS()
	srv, addr, done, err := startServer(e)
	if err != nil {
		r.Error = err.Error()
		r.judge(nil)
		return r
	}
	defer func() { srv.Stop(); <-done }()
	const conns = 8
	var cs []*client.Client
	for range conns {
		c, err := dialRoot(addr)
		if err != nil {
			r.Error = err.Error()
			r.judge(nil)
			return r
		}
		defer c.Close()
		cs = append(cs, c)
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	from := st.First
	if st.Current > 16384 && st.Current-16383 > from {
		from = st.Current - 16383
	}
	var caught atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			s, err := cs[i%conns].Changelog.Read(sctx, &changelogv1.ReadRequest{Device: e.m.Device(), StartIndex: uint64(from), Follow: true, Raw: true})
			if err != nil {
				errs <- err
				return
			}
			reached := false
			for {
				msg, err := s.Recv()
				if err != nil {
					if sctx.Err() == nil {
						errs <- err
					}
					return
				}
				if !reached && msg.GetNextIndex() > uint64(st.Current) {
					reached = true
					caught.Add(1)
				}
			}
		})
	}
	deadline := time.Now().Add(time.Minute)
	for caught.Load() < int64(n) && time.Now().Before(deadline) && len(errs) == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	// Live traffic while every stream follows.
	if err := e.mkdirs(ctx, 8); err == nil {
		runPhase(ctx, 8, 0, b.cfg.phase, nil, nil, e.createOp)
	}
	rss, _ := procStatus("/proc/self/status", "VmRSS")
	hwm, _ := procStatus("/proc/self/status", "VmHWM")
	cancel()
	wg.Wait()
	select {
	case err := <-errs:
		r.Error = err.Error()
		r.judge(nil)
		return r
	default:
	}
	if caught.Load() < int64(n) {
		r.Error = fmt.Sprintf("only %d of %d streams caught up", caught.Load(), n)
		r.judge(nil)
		return r
	}
	r.ServiceValue = float64(hwm) / 1024
	note := "peak since T7 start"
	if !reset {
		note = "process peak (clear_refs unavailable)"
	}
	r.Service = fmt.Sprintf("VmHWM %.0f MiB (%s), VmRSS %.0f MiB", float64(hwm)/1024, note, float64(rss)/1024)
	r.Extra = map[string]float64{"vmrss_mib": float64(rss) / 1024, "vmhwm_mib": float64(hwm) / 1024, "streams": float64(n)}
	r.judge(boolp(hwm <= 1<<20))
	return r
}

// t5: mdt.Open with the big log vs a log of cfg.small records, alternated.
func (b *bench) t5(ctx context.Context, bigDir string) row {
	r := row{Measure: "T5 restart (mdt.Open) with N retained ÷ with few", Unit: "ms", Target: "≤ 2×"}
	r.Config = fmt.Sprintf("%d vs %d retained records, clean close, warm page cache", b.cfg.records, b.cfg.small)
	smallDir := b.tempDir("small")
	e, err := openMDT(smallDir, mdtConfig{changelogOn: true})
	if err == nil {
		_, err = fillLog(e.m, b.cfg.small)
		if err == nil {
			err = e.m.DB().Flush()
		}
		if cerr := e.m.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		r.Error = err.Error()
		r.judge(nil)
		return r
	}
	open := func(dir string) (time.Duration, error) {
		start := time.Now()
		m, err := mdt.Open(dir, &mdt.Options{Logger: discard})
		if err != nil {
			return 0, err
		}
		d := time.Since(start)
		if m.Log().State().Users != 1 {
			err = fmt.Errorf("reopened log has %d users", m.Log().State().Users)
		}
		if cerr := m.Close(); err == nil {
			err = cerr
		}
		return d, err
	}
	var ta, tb, ratio series
	for rep := range max(b.cfg.reps, 5) {
		var a, s time.Duration
		for _, isA := range [][]bool{{true, false}, {false, true}}[rep%2] {
			var err error
			if isA {
				a, err = open(smallDir)
			} else {
				s, err = open(bigDir)
			}
			if err != nil {
				r.Error = err.Error()
				r.judge(nil)
				return r
			}
		}
		ta, tb = append(ta, float64(a)/1e6), append(tb, float64(s)/1e6)
		ratio = append(ratio, float64(s)/float64(a))
	}
	r.BaselineValue, r.ServiceValue = ta.median(), tb.median()
	r.Ratio, r.RatioMin, r.RatioMax, r.Reps = ratio.median(), ratio.min(), ratio.max(), len(ratio)
	r.Baseline = fmt.Sprintf("%.1f ms", r.BaselineValue)
	r.Service = fmt.Sprintf("%.1f ms", r.ServiceValue)
	r.judge(boolp(r.Ratio <= 2))
	return r
}

// t4: clear every record (one DeleteRange): the clear's commit time, and
// the time until live sstable bytes fall to <= 10 % of before, against
// the time it took to write the records. Repetition 0 purges the big
// log; later ones fill and purge fresh logs of the same size.
func (b *bench) t4(ctx context.Context, bigDir string, write0 time.Duration) []row {
	commitRow := row{Measure: "T4 purge: clear + DeleteRange commit", Unit: "ms", Target: "≤ 10 ms"}
	reclaimRow := row{Measure: "T4 purge: live sstable bytes ≤ 10 % after clear ÷ time to write", Unit: "s", Target: "reclaim ≤ 5 s"}
	commitRow.Config = fmt.Sprintf("%d records, 1 user clears all", b.cfg.records)
	reclaimRow.Config = commitRow.Config
	var writes, commits, reclaims, ratio, before, after series
	reps := b.cfg.reps
	for rep := range reps {
		if ctx.Err() != nil {
			break
		}
		dir, write := bigDir, write0
		var e *mdtEnv
		var err error
		if rep == 0 {
			e, err = openMDT(dir, mdtConfig{})
		} else {
			dir = b.tempDir("purge")
			e, err = openMDT(dir, mdtConfig{changelogOn: true})
			if err == nil {
				write, err = fillLog(e.m, b.cfg.records)
			}
		}
		if err == nil {
			err = e.m.DB().Flush()
		}
		var c, rc time.Duration
		var bef, aft int64
		if err == nil {
			c, rc, bef, aft, err = purge(e, b.cfg.reclaimTimeout)
		}
		if e != nil && e.lsm != "" {
			b.cfg.logf("T4: space not back after %s; LSM:\n%s", b.cfg.reclaimTimeout, e.lsm)
		}
		if e != nil {
			if cerr := e.close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			commitRow.Error, reclaimRow.Error = err.Error(), err.Error()
			break
		}
		timedOut := rc < 0
		writes = append(writes, write.Seconds())
		commits = append(commits, float64(c)/1e6)
		if rc < 0 {
			rc = 1000 * time.Hour // never: sorts last, reported as "> timeout"
		}
		reclaims = append(reclaims, rc.Seconds())
		ratio = append(ratio, rc.Seconds()/write.Seconds())
		before, after = append(before, float64(bef)/(1<<20)), append(after, float64(aft)/(1<<20))
		if timedOut {
			break // a miss; more repetitions would only wait again
		}
	}
	if commitRow.Error == "" {
		commitRow.Baseline = "—"
		commitRow.ServiceValue = commits.median()
		commitRow.Service = fmt.Sprintf("%.2f ms (max %.2f ms)", commits.median(), commits.max())
		commitRow.Extra = map[string]float64{"commit_ms_max": commits.max()}
		commitRow.judge(boolp(commits.max() <= 10))

		reclaimRow.BaselineValue, reclaimRow.ServiceValue = writes.median(), reclaims.median()
		reclaimRow.Baseline = fmt.Sprintf("write %.2f s (%s rec/s)", writes.median(), fmtRate(float64(b.cfg.records)/writes.median()))
		reclaimRow.Service = fmt.Sprintf("reclaim %s (max %s; %.1f → %.1f MiB)", fmtReclaim(reclaims.median(), b.cfg.reclaimTimeout), fmtReclaim(reclaims.max(), b.cfg.reclaimTimeout), before.median(), after.median())
		if reclaims.max() <= b.cfg.reclaimTimeout.Seconds() {
			reclaimRow.Ratio, reclaimRow.RatioMin, reclaimRow.RatioMax, reclaimRow.Reps = ratio.median(), ratio.min(), ratio.max(), len(ratio)
		}
		reclaimRow.Extra = map[string]float64{"sst_before_mib": before.median(), "sst_after_mib": after.median(), "reclaim_s_max": reclaims.max()}
		reclaimRow.judge(boolp(reclaims.max() <= 5))
	} else {
		commitRow.judge(nil)
		reclaimRow.judge(nil)
	}
	return []row{commitRow, reclaimRow}
}

// purge waits for compactions to settle, clears every record of the only
// user and times the commit and the reclaim of live sstable bytes.
func purge(e *mdtEnv, timeout time.Duration) (commit, reclaim time.Duration, before, after int64, err error) {
	db := e.m.DB()
	for i := 0; i < 500 && db.Metrics().Compact.NumInProgress > 0; i++ {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	before = db.Metrics().Total().TablesSize
	users := e.m.Log().Users()
	if len(users) != 1 {
		return 0, 0, 0, 0, fmt.Errorf("purge: log has %d users, want 1", len(users))
	}
	start := time.Now()
	if _, err := e.m.Log().Clear(users[0].DisplayName(), 0); err != nil {
		return 0, 0, 0, 0, err
	}
	commit = time.Since(start)
	for {
		after = db.Metrics().Total().TablesSize
		if after <= before/10 {
			return commit, time.Since(start), before, after, nil
		}
		if time.Since(start) > timeout {
			e.lsm = db.Metrics().String()
			return commit, -1, before, after, nil
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func fmtReclaim(s float64, timeout time.Duration) string {
	if s > timeout.Seconds()*2 {
		return "> " + timeout.String()
	}
	return fmt.Sprintf("%.2f s", s)
}
