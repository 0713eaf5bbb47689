package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// phaseResult is what one timed phase of concurrent operations measured.
type phaseResult struct {
	ops      int64
	errs     int64
	firstErr error
	elapsed  time.Duration
	syncs    int64
	rpcs     int64            // RPCs served in the window (T8)
	methods  map[string]int64 // the same by method (T8)
	cpu      time.Duration    // process CPU time (user+system) in the window
	lat      hist
	handler  *hist // server-side handler times (gRPC phases), or nil
}

// cpuPerOp is the process CPU time per operation of the window, in µs:
// the whole process (clients, server, Pebble's background work).
func (p *phaseResult) cpuPerOp() float64 {
	if p.ops == 0 {
		return 0
	}
	return float64(p.cpu) / 1e3 / float64(p.ops)
}

// processCPU returns the CPU time the process used so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (p *phaseResult) rate() float64 {
	if p.elapsed <= 0 {
		return 0
	}
	return float64(p.ops) / p.elapsed.Seconds()
}

func (p *phaseResult) opsPerSync() float64 {
	if p.syncs == 0 {
		return float64(p.ops)
	}
	return float64(p.ops) / float64(p.syncs)
}

// opFunc runs operation n of client c.
type opFunc func(ctx context.Context, c int, n uint64) error

// runPhase runs op from conc goroutines: warm-up first, then a measured
// window of length dur. Only operations that start and end inside the
// window count. syncs, if not nil, is sampled at both ends of the window.
// onMeasure, if not nil, is called when the window opens and its result
// when it closes (CPU profiles).
func runPhase(ctx context.Context, conc int, warm, dur time.Duration, syncs *atomic.Int64, onMeasure func() func(), op opFunc) *phaseResult {
	const (
		warming = iota
		measuring
		stopping
	)
	var state atomic.Int32
	type local struct {
		ops, errs int64
		err       error
		lat       hist
	}
	locals := make([]*local, conc)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for c := range conc {
		l := new(local)
		locals[c] = l
		wg.Go(func() {
			for n := uint64(0); ; n++ {
				s := state.Load()
				if s == stopping {
					return
				}
				start := time.Now()
				err := op(ctx, c, n)
				d := time.Since(start)
				if s != measuring || state.Load() != measuring {
					continue
				}
				if err != nil {
					l.errs++
					if l.err == nil {
						l.err = err
					}
					continue
				}
				l.ops++
				l.lat.add(d)
			}
		})
	}
	sleepCtx(ctx, warm)
	var s0 int64
	if syncs != nil {
		s0 = syncs.Load()
	}
	var stopProf func()
	if onMeasure != nil {
		stopProf = onMeasure()
	}
	t0, cpu0 := time.Now(), processCPU()
	state.Store(measuring)
	sleepCtx(ctx, dur)
	state.Store(stopping)
	res := &phaseResult{elapsed: time.Since(t0), cpu: processCPU() - cpu0}
	if syncs != nil {
		res.syncs = syncs.Load() - s0
	}
	if stopProf != nil {
		stopProf()
	}
	cancel()
	wg.Wait()
	for _, l := range locals {
		res.ops += l.ops
		res.errs += l.errs
		if res.firstErr == nil {
			res.firstErr = l.err
		}
		res.lat.merge(&l.lat)
	}
	return res
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// profiler writes at most one set of profiles per name into dir: a CPU
// profile, and with all set also the blocking and mutex contention
// profiles and an execution trace of the measured window.
type profiler struct {
	dir  string
	all  bool
	mu   sync.Mutex
	done map[string]bool
	errs []error
}

// begin returns a function that starts the profiles named name (a no-op
// without a directory, or if that name was already profiled) and returns
// their stop function.
func (p *profiler) begin(name string) func() func() {
	if p == nil || p.dir == "" {
		return nil
	}
	return func() func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.done == nil {
			p.done = map[string]bool{}
		}
		if p.done[name] {
			return func() {}
		}
		p.done[name] = true
		if err := os.MkdirAll(p.dir, 0o755); err != nil {
			p.errs = append(p.errs, err)
			return func() {}
		}
		f, err := os.Create(filepath.Join(p.dir, name+".pprof"))
		if err != nil {
			p.errs = append(p.errs, err)
			return func() {}
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			p.errs = append(p.errs, fmt.Errorf("cpu profile %s: %w", name, err))
			return func() {}
		}
		var tf *os.File
		if p.all {
			// Every blocking event and every contended lock is
			// sampled: profiling runs only.
			runtime.SetBlockProfileRate(1)
			runtime.SetMutexProfileFraction(1)
			if tf, err = os.Create(filepath.Join(p.dir, name+".trace")); err == nil {
				if err = trace.Start(tf); err != nil {
					tf.Close()
					tf = nil
				}
			}
			if err != nil {
				p.errs = append(p.errs, fmt.Errorf("trace %s: %w", name, err))
			}
		}
		return func() {
			pprof.StopCPUProfile()
			f.Close()
			if !p.all {
				return
			}
			if tf != nil {
				trace.Stop()
				tf.Close()
			}
			for _, kind := range []string{"block", "mutex"} {
				if err := writeProfile(filepath.Join(p.dir, name+"."+kind+".pprof"), kind); err != nil {
					p.mu.Lock()
					p.errs = append(p.errs, err)
					p.mu.Unlock()
				}
			}
			runtime.SetBlockProfileRate(0)
			runtime.SetMutexProfileFraction(0)
		}
	}
}

// writeProfile writes the named runtime profile to path. The block and
// mutex profiles are cumulative: the first set also holds the warm-up.
func writeProfile(path, kind string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup(kind).WriteTo(f, 0); err != nil {
		f.Close()
		return fmt.Errorf("%s profile: %w", kind, err)
	}
	return f.Close()
}
