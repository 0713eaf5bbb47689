package main

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	mdtv1 "github.com/fidlog/fidlog/proto/lustre/mdt/v1"
)

// T8: files per second of "tar x" of small files through "mdc mount"
// (FUSE) against the same creates and writes from one direct gRPC client,
// and eight parallel "tar x" against one.

const (
	t8Parallel = 8
	t8Target1  = "≥ 0.80 (mount ≤ 25 % over direct)"
	t8Target8  = "≥ 4.0"
	// Lustre MDS open flags (namespace.proto OpenRequest).
	openWrite = 0x2
	openCreat = 0x40
	openExcl  = 0x80
)

// tarFile is one member of the benchmark's archive.
type tarFile struct {
	name string
	data []byte
	// writes are the sizes of the write(2) calls GNU tar makes for the
	// data: it reads the archive in records of tarRecord bytes and writes
	// what each record holds, so data that crosses a record boundary is
	// written in two calls.
	writes []int
}

// t8Mtime is the mtime of every member of the archive.
var t8Mtime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// tarRecord is GNU tar's default record size (blocking factor 20).
const tarRecord = 20 * 512

// t8Files returns n files of 1-4 KiB with fixed pseudo-random content.
func t8Files(n int) []tarFile {
	rng := rand.New(rand.NewPCG(8, uint64(n)))
	files := make([]tarFile, n)
	for i := range files {
		data := make([]byte, 1024+rng.IntN(3*1024+1))
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		files[i] = tarFile{name: fmt.Sprintf("t/f%05d", i), data: data}
	}
	// The archive: the directory's header, then per file a header and
	// the data padded to 512 bytes (writeTar).
	off := 512
	for i := range files {
		start, end := off+512, off+512+len(files[i].data)
		for start < end {
			next := min(end, (start/tarRecord+1)*tarRecord)
			files[i].writes = append(files[i].writes, next-start)
			start = next
		}
		off += 512 + (len(files[i].data)+511)/512*512
	}
	return files
}

// writeTar writes files as a tar archive (directory "t/" first).
func writeTar(path string, files []tarFile) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	mtime := t8Mtime
	err = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "t/", Mode: 0o755, ModTime: mtime, Format: tar.FormatUSTAR})
	for _, file := range files {
		if err != nil {
			break
		}
		if err = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: file.name, Mode: 0o644, Size: int64(len(file.data)), ModTime: mtime, Format: tar.FormatUSTAR}); err == nil {
			_, err = tw.Write(file.data)
		}
	}
	if err == nil {
		err = tw.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// mountSkip says why the mount cannot run here ("" if it can) and finds
// the mdc binary: --mdc, next to this executable, on PATH, or built with
// the go tool from the module mdbench runs in.
func (b *bench) mountSkip(ctx context.Context) (mdc, reason string) {
	if os.Geteuid() != 0 {
		return "", "needs root (mdc mount mounts /dev/fuse directly)"
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return "", fmt.Sprintf("no /dev/fuse (%v)", err)
	}
	if _, err := exec.LookPath("tar"); err != nil {
		return "", "no tar on PATH"
	}
	if b.cfg.mdcPath != "" {
		if _, err := os.Stat(b.cfg.mdcPath); err != nil {
			return "", fmt.Sprintf("--mdc: %v", err)
		}
		return b.cfg.mdcPath, ""
	}
	if exe, err := os.Executable(); err == nil {
		if p := filepath.Join(filepath.Dir(exe), "mdc"); isFile(p) {
			return p, ""
		}
	}
	if p, err := exec.LookPath("mdc"); err == nil {
		return p, ""
	}
	if _, err := exec.LookPath("go"); err == nil {
		p := filepath.Join(b.cfg.tmpdir, "mdc")
		out, err := exec.CommandContext(ctx, "go", "build", "-o", p, "github.com/fidlog/fidlog/cmd/mdc").CombinedOutput()
		if err == nil {
			return p, ""
		}
		return "", fmt.Sprintf("no mdc binary (not next to mdbench, not on PATH, go build failed: %s)", strings.TrimSpace(string(out)))
	}
	return "", "no mdc binary (pass --mdc, or put mdc next to mdbench or on PATH)"
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// mountEnv is "mdc mount" of an in-process server, and the server's
// direct client.
type mountEnv struct {
	*grpcEnv
	dir  string
	cmd  *exec.Cmd
	out  strings.Builder
	done chan error
}

func startMount(ctx context.Context, g *grpcEnv, mdc, dir string, args ...string) (*mountEnv, error) {
	m := &mountEnv{grpcEnv: g, dir: dir, done: make(chan error, 1)}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	m.cmd = exec.Command(mdc, append(append([]string{"--server", g.addr, "mount"}, args...), dir)...)
	m.cmd.Stdout, m.cmd.Stderr = &m.out, &m.out
	if err := m.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { m.done <- m.cmd.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	for !m.mounted() {
		select {
		case err := <-m.done:
			return nil, fmt.Errorf("mdc mount exited: %v: %s", err, strings.TrimSpace(m.out.String()))
		case <-ctx.Done():
			m.unmount()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			m.unmount()
			return nil, fmt.Errorf("the mount did not appear at %s: %s", dir, m.out.String())
		}
	}
	return m, nil
}

func (m *mountEnv) mounted() bool {
	b, err := os.ReadFile("/proc/self/mounts")
	return err == nil && strings.Contains(string(b), " "+m.dir+" fuse.fidlog ")
}

// unmount unmounts (lazily if busy) and waits for mdc to exit.
func (m *mountEnv) unmount() error {
	if m.mounted() {
		if err := syscall.Unmount(m.dir, 0); err != nil {
			_ = syscall.Unmount(m.dir, syscall.MNT_DETACH)
		}
	}
	select {
	case err := <-m.done:
		return err
	case <-time.After(10 * time.Second):
		_ = m.cmd.Process.Kill()
		return errors.New("mdc mount did not exit after the unmount")
	}
}

// directPhase creates dir/t and its files from one gRPC client. With
// tarOps it makes, per file, the operations of the system calls GNU tar
// makes as root (strace of tar -xf): Open(WRITE|CREAT|EXCL, 0600), one
// Write per write(2) (tarFile.writes), Setattr(mtime) (futimens),
// Setattr(uid, gid) (fchown), Setattr(mode) (fchmod), Close; and for the
// directory Mkdir(0700) and, after its files, the same three Setattr
// calls. Without tarOps it makes only the creates and writes: Mkdir,
// then Open(WRITE|CREAT|EXCL, 0644), one Write, Close per file.
func (m *mountEnv) directPhase(files []tarFile, tarOps bool) phaseFn {
	name := "min"
	if tarOps {
		name = "direct"
	}
	return func(ctx context.Context, rep int) (*phaseResult, error) {
		ns := m.conns[0].Namespace
		dir := fmt.Sprintf("%s%d", name, rep)
		if _, err := ns.Mkdir(ctx, &mdtv1.MkdirRequest{Path: []byte(dir), Mode: 0o755}); err != nil {
			return nil, err
		}
		mtime := t8Mtime.UnixNano()
		var root uint32
		restore := func(p string, mode uint32) error {
			for _, req := range []*mdtv1.SetattrRequest{
				{Path: []byte(p), MtimeNs: &mtime},
				{Path: []byte(p), Uid: &root, Gid: &root},
				{Path: []byte(p), Mode: &mode},
			} {
				if _, err := ns.Setattr(ctx, req); err != nil {
					return err
				}
			}
			return nil
		}
		res := &phaseResult{}
		start := m.sample()
		dmode := uint32(0o755)
		if tarOps {
			dmode = 0o700
		}
		if _, err := ns.Mkdir(ctx, &mdtv1.MkdirRequest{Path: []byte(dir + "/t"), Mode: dmode}); err != nil {
			return nil, err
		}
		for _, f := range files {
			st := time.Now()
			p := dir + "/" + f.name
			mode := uint32(0o644)
			if tarOps {
				mode = 0o600
			}
			o, err := ns.Open(ctx, &mdtv1.OpenRequest{Path: []byte(p), Flags: openWrite | openCreat | openExcl, Mode: mode})
			if err != nil {
				return nil, err
			}
			writes := []int{len(f.data)}
			if tarOps {
				writes = f.writes
			}
			off := 0
			for _, n := range writes {
				if _, err := ns.Write(ctx, &mdtv1.WriteRequest{Handle: o.GetHandle(), Offset: uint64(off), Data: f.data[off : off+n]}); err != nil {
					return nil, err
				}
				off += n
			}
			if tarOps {
				if err := restore(p, 0o644); err != nil {
					return nil, err
				}
			}
			if _, err := ns.Close(ctx, &mdtv1.CloseRequest{Handle: o.GetHandle()}); err != nil {
				return nil, err
			}
			res.lat.add(time.Since(st))
			res.ops++
		}
		if tarOps {
			if err := restore(dir+"/t", 0o755); err != nil {
				return nil, err
			}
		}
		m.finish(res, start)
		return res, nil
	}
}

// t8Sample is what a T8 phase measures at its start and end.
type t8Sample struct {
	t       time.Time
	syncs   int64
	rpcs    int64
	methods map[string]int64
	cpu     time.Duration
}

// sample reads the counters: fsyncs, RPCs, and the CPU of this process
// (server and direct client), its waited-for children (tar) and mdc
// mount (FUSE daemon).
func (m *mountEnv) sample() t8Sample {
	s := t8Sample{t: time.Now(), syncs: m.syncs.Load(), rpcs: m.rpcs.Load(), methods: m.methodCounts()}
	var ru syscall.Rusage
	for _, who := range []int{syscall.RUSAGE_SELF, syscall.RUSAGE_CHILDREN} {
		if syscall.Getrusage(who, &ru) == nil {
			s.cpu += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
	}
	s.cpu += procCPU(m.cmd.Process.Pid)
	return s
}

// finish fills res with the differences since start.
func (m *mountEnv) finish(res *phaseResult, start t8Sample) {
	end := m.sample()
	res.elapsed, res.syncs, res.rpcs, res.cpu = end.t.Sub(start.t), end.syncs-start.syncs, end.rpcs-start.rpcs, end.cpu-start.cpu
	res.methods = map[string]int64{}
	for k, v := range end.methods {
		if d := v - start.methods[k]; d > 0 {
			res.methods[k] = d
		}
	}
}

// procCPU is the user+system CPU time of process pid (/proc/PID/stat,
// in clock ticks of 10 ms), 0 if unreadable.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name in parentheses: state is field 3,
	// utime and stime fields 14 and 15.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// tarPhase runs conc "tar x" of the archive at once, each into its own
// new directory of the mount; ops counts the files of all of them.
// With prof, the first repetition's window is profiled (the in-process
// server and the direct client; mdc mount profiles itself).
func (m *mountEnv) tarPhase(archive string, nfiles, conc int, name string, prof func() func()) phaseFn {
	return func(ctx context.Context, rep int) (*phaseResult, error) {
		dirs := make([]string, conc)
		for i := range dirs {
			dirs[i] = filepath.Join(m.dir, fmt.Sprintf("%s%d-%d", name, rep, i))
			if err := os.Mkdir(dirs[i], 0o755); err != nil {
				return nil, err
			}
		}
		errs := make([]error, conc)
		var wg sync.WaitGroup
		if prof != nil {
			defer prof()()
		}
		start := m.sample()
		for i, d := range dirs {
			wg.Go(func() {
				out, err := exec.CommandContext(ctx, "tar", "-xf", archive, "-C", d).CombinedOutput()
				if err != nil {
					errs[i] = fmt.Errorf("tar -xf into %s: %v: %s", d, err, strings.TrimSpace(string(out)))
				}
			})
		}
		wg.Wait()
		res := &phaseResult{ops: int64(nfiles * conc)}
		m.finish(res, start)
		if err := errors.Join(errs...); err != nil {
			return nil, err
		}
		return res, nil
	}
}

func (b *bench) t8(ctx context.Context) []row {
	n := b.cfg.tarFiles
	cfg1 := fmt.Sprintf("tar x of %s files (1–4 KiB), 1 writer", fmtRate(float64(n)))
	cfgMin := fmt.Sprintf("tar x of %s files (1–4 KiB), 1 writer; baseline without tar's restores", fmtRate(float64(n)))
	cfg8 := fmt.Sprintf("%d parallel tar x of %s files each, separate dirs; %d CPUs", t8Parallel, fmtRate(float64(n)), runtime.NumCPU())
	const m1, mMin, m8 = "T8 mount vs direct", "T8m mount vs creates and writes only", "T8b mount ×8"
	mdc, reason := b.mountSkip(ctx)
	if reason != "" {
		b.cfg.logf("T8: SKIPPED: %s", reason)
		return []row{
			{Measure: m1, Config: cfg1, Baseline: "direct gRPC client", Service: "SKIPPED: " + reason, Target: t8Target1, Result: "skipped"},
			{Measure: mMin, Config: cfgMin, Baseline: "direct gRPC client", Service: "SKIPPED: " + reason, Target: "reported", Result: "skipped"},
			{Measure: m8, Config: cfg8, Baseline: "1 tar x", Service: "SKIPPED: " + reason, Target: t8Target8, Result: "skipped"},
		}
	}
	fail := func(err error) []row {
		return []row{
			{Measure: m1, Config: cfg1, Unit: "files/s", Error: err.Error(), Result: "error"},
			{Measure: mMin, Config: cfgMin, Unit: "files/s", Error: err.Error(), Result: "error"},
			{Measure: m8, Config: cfg8, Unit: "files/s", Error: err.Error(), Result: "error"},
		}
	}
	files := t8Files(n)
	archive := filepath.Join(b.cfg.tmpdir, "t8.tar")
	if err := writeTar(archive, files); err != nil {
		return fail(err)
	}
	g, err := openGRPC(ctx, b.tempDir("mount"), mdtConfig{changelogOn: true}, 1)
	if err != nil {
		return fail(err)
	}
	defer g.close()
	var mountArgs []string
	if b.prof.dir != "" {
		if err := os.MkdirAll(b.prof.dir, 0o755); err != nil {
			return fail(err)
		}
		mountArgs = append(mountArgs, "--cpuprofile", filepath.Join(b.prof.dir, "T8-mdc-mount.pprof"))
	}
	m, err := startMount(ctx, g, mdc, filepath.Join(b.cfg.tmpdir, "mnt"), mountArgs...)
	if err != nil {
		return fail(err)
	}
	res, err := b.interleave(ctx, m.directPhase(files, true), m.tarPhase(archive, n, 1, "tar", b.prof.begin("T8-tar1")), m.tarPhase(archive, n, t8Parallel, "par", b.prof.begin("T8-tar8")), m.directPhase(files, false))
	if uerr := m.unmount(); err == nil && uerr != nil {
		err = fmt.Errorf("mdc mount: %v: %s", uerr, strings.TrimSpace(m.out.String()))
	}
	if err != nil {
		return fail(err)
	}
	r1 := filesRow(m1, cfg1, "direct gRPC client, tar's operations", "mdc mount + tar", res[0], res[1])
	r1.Target = t8Target1
	r1.judge(boolp(r1.Ratio >= 0.8))
	rMin := filesRow(mMin, cfgMin, "direct gRPC client, Open+Write+Close", "mdc mount + tar", res[3], res[1])
	rMin.Target = "reported"
	rMin.judge(nil)
	r8 := filesRow(m8, cfg8, "1 tar x", fmt.Sprintf("%d tar x", t8Parallel), res[1], res[2])
	r8.Target = t8Target8
	r8.judge(boolp(r8.Ratio >= 4))
	return []row{r1, rMin, r8}
}

// filesRow summarises files/s of A and B phases.
func filesRow(measure, config, nameA, nameB string, as, bs []*phaseResult) row {
	r := row{Measure: measure, Config: config, Unit: "files/s"}
	var ra, rb, ratio, rpa, rpb, spa, spb, ca, cb series
	for i := range as {
		ra = append(ra, as[i].rate())
		rb = append(rb, bs[i].rate())
		ratio = append(ratio, bs[i].rate()/as[i].rate())
		rpa = append(rpa, float64(as[i].rpcs)/float64(as[i].ops))
		rpb = append(rpb, float64(bs[i].rpcs)/float64(bs[i].ops))
		spa = append(spa, float64(as[i].syncs)/float64(as[i].ops))
		spb = append(spb, float64(bs[i].syncs)/float64(bs[i].ops))
		ca = append(ca, float64(as[i].cpu)/1e3/float64(as[i].ops))
		cb = append(cb, float64(bs[i].cpu)/1e3/float64(bs[i].ops))
	}
	r.BaselineValue, r.ServiceValue = ra.median(), rb.median()
	r.Ratio, r.RatioMin, r.RatioMax, r.Reps = ratio.median(), ratio.min(), ratio.max(), len(ratio)
	r.Baseline = fmt.Sprintf("%s: %s files/s (%.1f RPCs%s, %.1f fsyncs, %.0f µs CPU per file)", nameA, fmtRate(r.BaselineValue), rpa.median(), byMethod(as), spa.median(), ca.median())
	r.Service = fmt.Sprintf("%s: %s files/s (%.1f RPCs%s, %.1f fsyncs, %.0f µs CPU per file)", nameB, fmtRate(r.ServiceValue), rpb.median(), byMethod(bs), spb.median(), cb.median())
	r.Extra = map[string]float64{
		"baseline_rpcs_per_file": rpa.median(), "service_rpcs_per_file": rpb.median(),
		"baseline_fsyncs_per_file": spa.median(), "service_fsyncs_per_file": spb.median(),
		"baseline_cpu_us_per_file": ca.median(), "service_cpu_us_per_file": cb.median(),
	}
	return r
}

// byMethod lists the median RPCs per file of each method, most first:
// ": Open 1.0, Write 1.2, ...".
func byMethod(ps []*phaseResult) string {
	per := map[string]series{}
	for _, p := range ps {
		for k, v := range p.methods {
			per[k] = append(per[k], float64(v)/float64(p.ops))
		}
	}
	type mc struct {
		name string
		n    float64
	}
	var l []mc
	for k, s := range per {
		for len(s) < len(ps) { // absent in some repetitions: 0 there
			s = append(s, 0)
		}
		if v := s.median(); v >= 0.05 {
			l = append(l, mc{k, v})
		}
	}
	sort.Slice(l, func(i, j int) bool { return l[i].n > l[j].n || l[i].n == l[j].n && l[i].name < l[j].name })
	var b strings.Builder
	for i, e := range l {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %.1f", e.name, e.n)
	}
	return b.String()
}
