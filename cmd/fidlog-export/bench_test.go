package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/fidlog/fidlog/changelog"
	"github.com/fidlog/fidlog/fid"
	mdtv1 "github.com/fidlog/fidlog/proto/lustre/mdt/v1"
)

// BenchmarkExport measures, in one run and interleaved, the rate at which
// the exporter moves records to files and to JetStream (from its start to
// the changelog cleared through the last record, fid2path on) against the
// raw rate of `lfs changelog` reading the same records to /dev/null. Each
// iteration writes FIDLOG_EXPORT_BENCH_RECORDS (default 50,000) new
// records; the users are registered before, so each sees all of them.
// Besides the rates it reports the CPU (user + system) each process spent
// per record, steadier than the rates on a loaded machine; with
// FIDLOG_EXPORT_BENCH_PROFILE=DIR the exporters to files write CPU
// profiles there (--cpuprofile, DIR/file-REP.pprof, file-plain-REP.pprof).
// FIDLOG_EXPORT_BENCH_BASELINE=PATH names another fidlog-export binary
// (an older build) that each repetition also runs to files, before or
// after this one in turn, for an A/B comparison in the same run
// (baseline_* metrics, file/baseline); FIDLOG_EXPORT_BENCH_AB=N (default
// 1) runs the two N times each per repetition, alternating, over the same
// records (each run's figures are logged, with -v).
//
//	go test -run '^$' -bench Export -benchtime 3x ./cmd/fidlog-export
func BenchmarkExport(b *testing.B) {
	n := envInt("FIDLOG_EXPORT_BENCH_RECORDS", 50000)
	s := startMDT(b)
	ns := startNATS(b)
	c := s.client(b)
	ctx := ctxT(b)
	if _, err := c.Namespace.Mkdir(ctx, &mdtv1.MkdirRequest{Path: []byte("/bench"), Mode: 0o755}); err != nil {
		b.Fatal(err)
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer devnull.Close()
	var lfsT, fileT, plainT, jsT, ceilT time.Duration
	var lfsCPU, fileCPU, plainCPU time.Duration
	profDir := os.Getenv("FIDLOG_EXPORT_BENCH_PROFILE")
	baseline := os.Getenv("FIDLOG_EXPORT_BENCH_BASELINE")
	var baseT, baseCPU time.Duration
	ab := 1
	if baseline != "" {
		ab = envInt("FIDLOG_EXPORT_BENCH_AB", 1)
	}
	total := 0
	rep := 0
	for b.Loop() {
		rep++
		// Each repetition has its own two minutes: with many records
		// (FIDLOG_EXPORT_BENCH_RECORDS) several of them outlast one.
		ctx := ctxT(b)
		users := []string{fmt.Sprintf("file%d", rep), fmt.Sprintf("js%d", rep), fmt.Sprintf("plain%d", rep)}
		for k := range ab {
			if k > 0 {
				users = append(users, fmt.Sprintf("file%d-%d", rep, k))
			}
			if baseline != "" {
				users = append(users, fmt.Sprintf("base%d-%d", rep, k))
			}
		}
		for _, u := range users {
			if _, err := c.Register(ctx, s.device, u, ""); err != nil {
				b.Fatal(err)
			}
		}
		first := currentIndex(b, s, c) + 1
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Go(func() {
				for i := w; i < n; i += 8 {
					if _, err := c.Namespace.Create(ctx, &mdtv1.CreateRequest{Path: []byte(fmt.Sprintf("/bench/r%d-%d", rep, i)), Mode: 0o644}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		last := currentIndex(b, s, c)
		total += int(last - first + 1)

		t0 := time.Now()
		lfs := exec.Command(filepath.Join(bin, "lfs"), "--server", s.target(), "changelog", s.device,
			strconv.FormatUint(uint64(first), 10), strconv.FormatUint(uint64(last), 10))
		var stderr strings.Builder
		lfs.Stdout, lfs.Stderr = devnull, &stderr
		if err := lfs.Run(); err != nil {
			b.Fatalf("lfs changelog: %v\n%s", err, stderr.String())
		}
		lfsT += time.Since(t0)
		lfsCPU += lfs.ProcessState.UserTime() + lfs.ProcessState.SystemTime()

		out := filepath.Join(shortTempDir(b), "audit")
		prof := func(name string) string {
			if profDir == "" {
				return ""
			}
			return filepath.Join(profDir, fmt.Sprintf("%s-%d.pprof", name, rep))
		}
		n := float64(last - first + 1)
		for k := range ab {
			runBaseline := func() {
				if baseline == "" {
					return
				}
				d, cpu, faults := timeExportWith(b, baseline, s, fmt.Sprintf("base%d-%d", rep, k), last, fmt.Sprintf("file://%s-base%d?format=ndjson", out, k), "")
				baseT, baseCPU = baseT+d, baseCPU+cpu
				b.Logf("rep %d run %d: baseline %.0f CPU ns a record, %.0f records/s, %.3f page faults a record", rep, k, float64(cpu.Nanoseconds())/n, n/d.Seconds(), float64(faults)/n)
			}
			user, profile := users[0], prof("file")
			if k > 0 {
				user, profile = fmt.Sprintf("file%d-%d", rep, k), ""
			}
			if (rep+k)%2 == 1 {
				runBaseline()
			}
			d, cpu, faults := timeExportWith(b, "fidlog-export", s, user, last, fmt.Sprintf("file://%s%d?format=ndjson", out, k), profile)
			fileT, fileCPU = fileT+d, fileCPU+cpu
			b.Logf("rep %d run %d: this build %.0f CPU ns a record, %.0f records/s, %.3f page faults a record", rep, k, float64(cpu.Nanoseconds())/n, n/d.Seconds(), float64(faults)/n)
			if (rep+k)%2 == 0 {
				runBaseline()
			}
		}
		// The same without the hash chain's evidence (no checkpoint or
		// anchor lines, a follow as the user): the chain's cost.
		d, cpu := timeExport(b, s, users[2], last, "file://"+out+"-plain?format=ndjson&checkpoints=false", prof("file-plain"))
		plainT, plainCPU = plainT+d, plainCPU+cpu
		d, _ = timeExport(b, s, users[1], last, "nats://"+ns.hostPort()+"?stream=BENCH&format=ndjson", "")
		jsT += d
		ceilT += publishCeiling(b, ns, rep, int(last-first+1))
	}
	rate := func(d time.Duration) float64 { return float64(total) / d.Seconds() }
	// The exporter to files (and the baseline) ran ab times a repetition.
	fileT, fileCPU, baseT, baseCPU = fileT/time.Duration(ab), fileCPU/time.Duration(ab), baseT/time.Duration(ab), baseCPU/time.Duration(ab)
	b.ReportMetric(rate(lfsT), "lfs_rec/s")
	b.ReportMetric(rate(fileT), "file_rec/s")
	b.ReportMetric(rate(jsT), "jetstream_rec/s")
	b.ReportMetric(lfsT.Seconds()/fileT.Seconds(), "file/lfs")
	b.ReportMetric(rate(plainT), "file_nochain_rec/s")
	b.ReportMetric(plainT.Seconds()/fileT.Seconds(), "file_chain/nochain")
	b.ReportMetric(lfsT.Seconds()/jsT.Seconds(), "jetstream/lfs")
	b.ReportMetric(rate(ceilT), "nats_ceiling_rec/s")
	b.ReportMetric(ceilT.Seconds()/jsT.Seconds(), "jetstream/ceiling")
	cpu := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(total) }
	b.ReportMetric(cpu(lfsCPU), "lfs_cpu_ns/rec")
	b.ReportMetric(cpu(fileCPU), "file_cpu_ns/rec")
	b.ReportMetric(cpu(plainCPU), "file_nochain_cpu_ns/rec")
	if baseline != "" {
		b.ReportMetric(rate(baseT), "baseline_file_rec/s")
		b.ReportMetric(cpu(baseCPU), "baseline_file_cpu_ns/rec")
		b.ReportMetric(baseT.Seconds()/fileT.Seconds(), "file/baseline")
		b.ReportMetric(lfsT.Seconds()/baseT.Seconds(), "baseline_file/lfs")
	}
}

// BenchmarkExportRecord is the exporter's CPU per record to an ndjson file
// without the I/O: decoding a batch of 1,000 chained CREATs as the client
// does for a chain follow (into one array, their strings into one buffer,
// each with the bytes received), making their events and resolving their
// paths (the directory's in the resolver's cache, as in BenchmarkExport),
// rendering the lines of the delivery and writing them to a buffered
// writer. ns/record is per
// record; B/op and allocs/op are per batch of 1,000.
func BenchmarkExportRecord(b *testing.B) {
	const n = 1000
	dir := fid.FID{Seq: 0x200000400, Oid: 1}
	raws := make([][]byte, n)
	var prev changelog.Hash
	for i := range raws {
		r := &changelog.Record{Index: changelog.Index(100001 + i), Type: changelog.CLCreate, Time: time.Unix(1795550778, int64(i)*1000),
			TFID: fid.FID{Seq: 0x200000400, Oid: uint32(100002 + i)}, PFID: dir, Name: fmt.Sprintf("r1-%d", i),
			ExtraFlags: changelog.ExtraUIDGID | changelog.ExtraNID, NID: "0@lo"}
		raws[i] = changelog.EncodeChained(r)
		prev = changelog.Seal(raws[i], prev)
	}
	src := &source{dev: "lustre-MDT0000", paths: newResolver(nil)}
	src.paths.cache.Add(dir, "/bench")
	w := bufio.NewWriterSize(io.Discard, 1<<20)
	ctx := context.Background()
	var lb lineBuffers // reused, as for a file sink
	b.ReportAllocs()
	room := 0
	for _, raw := range raws {
		room += changelog.StringBytes(raw)
	}
	strs := new(strings.Builder) // kept, as the client keeps it
	for b.Loop() {
		recs := make([]changelog.Record, n)
		*strs = strings.Builder{}
		strs.Grow(room)
		for i, raw := range raws {
			if err := changelog.DecodeIntoShared(&recs[i], raw, strs); err != nil {
				b.Fatal(err)
			}
		}
		evs := src.events(ctx, n, func(i int) event { return event{rec: &recs[i], raw: raws[i]} })
		for _, l := range formats["ndjson"].lines(evs, &lb) {
			w.Write(l)
			w.WriteByte('\n')
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
}

// publishCeiling times what JetStream alone accepts on this machine: n
// messages of an ndjson line's size, each with a Nats-Msg-Id, published
// asynchronously by one client awaiting the PubAcks every 1,000 messages,
// no fidlog involved (a fresh stream, the same server).
func publishCeiling(b *testing.B, ns *natsServer, rep, n int) time.Duration {
	b.Helper()
	nc, err := nats.Connect("nats://" + ns.hostPort())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(8192))
	if err != nil {
		b.Fatal(err)
	}
	ctx := ctxT(b)
	name := fmt.Sprintf("CEIL%d", rep)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{name + ".>"}, Duplicates: time.Hour}); err != nil {
		b.Fatal(err)
	}
	data := []byte(`{"schemaVersion":"1.0","time":"2026-11-24T20:06:18.603400155Z","device":"lustre-MDT0000","index":2,"type":"CREAT","flags":"0x0","target":"[0x200000400:0x2:0x0]","parent":"[0x200000400:0x1:0x0]","name":"r1-1234","path":"/bench/r1-1234","uid":0,"gid":0,"nid":"0@lo"}`)
	t0 := time.Now()
	fs := make([]jetstream.PubAckFuture, 0, 1000)
	wait := func() {
		for _, f := range fs {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				b.Fatal(err)
			}
		}
		fs = fs[:0]
	}
	for i := range n {
		m := nats.NewMsg(name + ".lustre.MDT0000.CREAT")
		m.Data = data
		f, err := js.PublishMsgAsync(m, jetstream.WithMsgID(fmt.Sprintf("lustre-MDT0000:%d", i+1)))
		if err != nil {
			b.Fatal(err)
		}
		if fs = append(fs, f); len(fs) == cap(fs) { // as the exporter: PubAcks awaited every 1,000
			wait()
		}
	}
	wait()
	return time.Since(t0)
}

// timeExport runs an exporter as user with sink until it cleared through
// last, and returns how long that took from its start and the CPU the
// process used (until it stopped); with a profile path, the exporter
// writes its CPU profile there.
func timeExport(b *testing.B, s *mdtServer, user string, last changelog.Index, sink, profile string) (time.Duration, time.Duration) {
	b.Helper()
	d, cpu, _ := timeExportWith(b, "fidlog-export", s, user, last, sink, profile)
	return d, cpu
}

// timeExportWith is timeExport with the exporter binary exe (a path, or
// a name in bin); it also returns the process's page faults (minor and
// major).
func timeExportWith(b *testing.B, exe string, s *mdtServer, user string, last changelog.Index, sink, profile string) (time.Duration, time.Duration, int64) {
	b.Helper()
	cl := s.client(b)
	args := []string{"--mdt", s.target(), "--user", user, "--sink", sink}
	if profile != "" {
		args = append(args, "--cpuprofile", profile)
	}
	t0 := time.Now()
	x := startProc(b, exe, args...)
	for userIndex(b, s, cl, user) < last {
		select {
		case <-x.done:
			b.Fatalf("exporter exited:\n%s", x.Output())
		default:
		}
		time.Sleep(5 * time.Millisecond)
	}
	d := time.Since(t0)
	if code := x.Stop(); code != exitOK {
		b.Fatalf("exporter exit %d:\n%s", code, x.Output())
	}
	var faults int64
	if ru, ok := x.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		faults = ru.Minflt + ru.Majflt
	}
	b.Logf("%s: user %v system %v", exe, x.cmd.ProcessState.UserTime(), x.cmd.ProcessState.SystemTime())
	return d, x.cmd.ProcessState.UserTime() + x.cmd.ProcessState.SystemTime(), faults
}
