package main

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
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
}

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
	return files
}

// writeTar writes files as a tar archive (directory "t/" first).
func writeTar(path string, files []tarFile) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	mtime := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
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

func startMount(ctx context.Context, g *grpcEnv, mdc, dir string) (*mountEnv, error) {
	m := &mountEnv{grpcEnv: g, dir: dir, done: make(chan error, 1)}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	m.cmd = exec.Command(mdc, "--server", g.addr, "mount", dir)
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

// directPhase creates dir/t and its files with Open(CREAT|EXCL) + Write +
// Close from one gRPC client: what tar x asks of the mount, without it.
func (m *mountEnv) directPhase(files []tarFile) phaseFn {
	return func(ctx context.Context, rep int) (*phaseResult, error) {
		ns := m.conns[0].Namespace
		dir := fmt.Sprintf("direct%d", rep)
		s0, n0, t0 := m.syncs.Load(), m.rpcs.Load(), time.Now()
		res := &phaseResult{}
		for _, p := range []string{dir, dir + "/t"} {
			if _, err := ns.Mkdir(ctx, &mdtv1.MkdirRequest{Path: []byte(p), Mode: 0o755}); err != nil {
				return nil, err
			}
		}
		for _, f := range files {
			st := time.Now()
			o, err := ns.Open(ctx, &mdtv1.OpenRequest{Path: []byte(dir + "/" + f.name), Flags: openWrite | openCreat | openExcl, Mode: 0o644})
			if err != nil {
				return nil, err
			}
			if _, err := ns.Write(ctx, &mdtv1.WriteRequest{Handle: o.GetHandle(), Data: f.data}); err != nil {
				return nil, err
			}
			if _, err := ns.Close(ctx, &mdtv1.CloseRequest{Handle: o.GetHandle()}); err != nil {
				return nil, err
			}
			res.lat.add(time.Since(st))
			res.ops++
		}
		res.elapsed, res.syncs, res.rpcs = time.Since(t0), m.syncs.Load()-s0, m.rpcs.Load()-n0
		return res, nil
	}
}

// tarPhase runs conc "tar x" of the archive at once, each into its own
// new directory of the mount; ops counts the files of all of them.
func (m *mountEnv) tarPhase(archive string, nfiles, conc int, name string) phaseFn {
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
		s0, n0, t0 := m.syncs.Load(), m.rpcs.Load(), time.Now()
		for i, d := range dirs {
			wg.Go(func() {
				out, err := exec.CommandContext(ctx, "tar", "-xf", archive, "-C", d).CombinedOutput()
				if err != nil {
					errs[i] = fmt.Errorf("tar -xf into %s: %v: %s", d, err, strings.TrimSpace(string(out)))
				}
			})
		}
		wg.Wait()
		res := &phaseResult{elapsed: time.Since(t0), syncs: m.syncs.Load() - s0, rpcs: m.rpcs.Load() - n0, ops: int64(nfiles * conc)}
		if err := errors.Join(errs...); err != nil {
			return nil, err
		}
		return res, nil
	}
}

func (b *bench) t8(ctx context.Context) []row {
	n := b.cfg.tarFiles
	cfg1 := fmt.Sprintf("tar x of %s files (1–4 KiB), 1 writer", fmtRate(float64(n)))
	cfg8 := fmt.Sprintf("%d parallel tar x of %s files each, separate dirs; %d CPUs", t8Parallel, fmtRate(float64(n)), runtime.NumCPU())
	mdc, reason := b.mountSkip(ctx)
	if reason != "" {
		b.cfg.logf("T8: SKIPPED: %s", reason)
		return []row{
			{Measure: "T8 mount vs direct", Config: cfg1, Baseline: "direct gRPC client", Service: "SKIPPED: " + reason, Target: t8Target1, Result: "skipped"},
			{Measure: "T8b mount ×8", Config: cfg8, Baseline: "1 tar x", Service: "SKIPPED: " + reason, Target: t8Target8, Result: "skipped"},
		}
	}
	fail := func(err error) []row {
		return []row{
			{Measure: "T8 mount vs direct", Config: cfg1, Unit: "files/s", Error: err.Error(), Result: "error"},
			{Measure: "T8b mount ×8", Config: cfg8, Unit: "files/s", Error: err.Error(), Result: "error"},
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
	m, err := startMount(ctx, g, mdc, filepath.Join(b.cfg.tmpdir, "mnt"))
	if err != nil {
		return fail(err)
	}
	res, err := b.interleave(ctx, m.directPhase(files), m.tarPhase(archive, n, 1, "tar"), m.tarPhase(archive, n, t8Parallel, "par"))
	if uerr := m.unmount(); err == nil && uerr != nil {
		err = fmt.Errorf("mdc mount: %v: %s", uerr, strings.TrimSpace(m.out.String()))
	}
	if err != nil {
		return fail(err)
	}
	r1 := filesRow("T8 mount vs direct", cfg1, "direct gRPC client", "mdc mount + tar", res[0], res[1])
	r1.Target = t8Target1
	r1.judge(boolp(r1.Ratio >= 0.8))
	r8 := filesRow("T8b mount ×8", cfg8, "1 tar x", fmt.Sprintf("%d tar x", t8Parallel), res[1], res[2])
	r8.Target = t8Target8
	r8.judge(boolp(r8.Ratio >= 4))
	return []row{r1, r8}
}

// filesRow summarises files/s of A and B phases.
func filesRow(measure, config, nameA, nameB string, as, bs []*phaseResult) row {
	r := row{Measure: measure, Config: config, Unit: "files/s"}
	var ra, rb, ratio, rpa, rpb, spa, spb series
	for i := range as {
		ra = append(ra, as[i].rate())
		rb = append(rb, bs[i].rate())
		ratio = append(ratio, bs[i].rate()/as[i].rate())
		rpa = append(rpa, float64(as[i].rpcs)/float64(as[i].ops))
		rpb = append(rpb, float64(bs[i].rpcs)/float64(bs[i].ops))
		spa = append(spa, float64(as[i].syncs)/float64(as[i].ops))
		spb = append(spb, float64(bs[i].syncs)/float64(bs[i].ops))
	}
	r.BaselineValue, r.ServiceValue = ra.median(), rb.median()
	r.Ratio, r.RatioMin, r.RatioMax, r.Reps = ratio.median(), ratio.min(), ratio.max(), len(ratio)
	r.Baseline = fmt.Sprintf("%s: %s files/s (%.1f RPCs, %.1f fsyncs per file)", nameA, fmtRate(r.BaselineValue), rpa.median(), spa.median())
	r.Service = fmt.Sprintf("%s: %s files/s (%.1f RPCs, %.1f fsyncs per file)", nameB, fmtRate(r.ServiceValue), rpb.median(), spb.median())
	r.Extra = map[string]float64{
		"baseline_rpcs_per_file": rpa.median(), "service_rpcs_per_file": rpb.median(),
		"baseline_fsyncs_per_file": spa.median(), "service_fsyncs_per_file": spb.median(),
	}
	return r
}
