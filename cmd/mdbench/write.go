package main

import (
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fidlog/fidlog/api"
	"github.com/fidlog/fidlog/api/client"
	"github.com/fidlog/fidlog/changelog"
	"github.com/fidlog/fidlog/changelog/store"
	mdtv1 "github.com/fidlog/fidlog/proto/lustre/mdt/v1"
)

// bench holds what the measures of one table run share.
type bench struct {
	cfg   *tableConfig
	prof  *profiler
	shape *batchShape
	seq   atomic.Int64
	// cpu is the median CPU µs per operation of each layer and
	// concurrency measured so far ("raw", "mdt", "grpc", "noop"), for the
	// per-layer row.
	cpu map[string]map[int]float64
}

func (b *bench) noteCPU(layer string, conc int, rs []*phaseResult) {
	if b.cpu == nil {
		b.cpu = map[string]map[int]float64{}
	}
	if b.cpu[layer] == nil {
		b.cpu[layer] = map[int]float64{}
	}
	b.cpu[layer][conc] = medianCPU(rs)
}

func (b *bench) tempDir(name string) string {
	return filepath.Join(b.cfg.tmpdir, fmt.Sprintf("%s-%d", name, b.seq.Add(1)))
}

func (b *bench) capture() error {
	s, err := captureShape(b.tempDir("shape"))
	if err != nil {
		return err
	}
	b.shape = s
	b.cfg.logf("a create commits %d keys, %d bytes", len(s.kvs), s.bytes)
	return nil
}

// phaseFn runs one A or B phase of repetition rep.
type phaseFn func(ctx context.Context, rep int) (*phaseResult, error)

// ab runs A and B alternately (ABBA order) for cfg.reps repetitions.
func (b *bench) ab(ctx context.Context, runA, runB phaseFn) (as, bs []*phaseResult, err error) {
	res, err := b.interleave(ctx, runA, runB)
	if err != nil {
		return nil, nil, err
	}
	return res[0], res[1], nil
}

// interleave runs every phase once per repetition for cfg.reps
// repetitions; the order rotates (two phases: ABBA) so that no phase
// always runs first. res[i] are the results of fns[i].
func (b *bench) interleave(ctx context.Context, fns ...phaseFn) (res [][]*phaseResult, err error) {
	res = make([][]*phaseResult, len(fns))
	for rep := range b.cfg.reps {
		for k := range fns {
			i := (k + rep) % len(fns)
			if len(fns) == 2 && rep%2 == 1 {
				i = 1 - k
			}
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			r, err := fns[i](ctx, rep)
			if err == nil && r.errs > 0 {
				err = fmt.Errorf("%d failed operations, first: %w", r.errs, r.firstErr)
			}
			if err == nil && r.ops == 0 {
				err = fmt.Errorf("no operation completed in the measured window")
			}
			if err != nil {
				return nil, err
			}
			res[i] = append(res[i], r)
		}
	}
	return res, nil
}

// rateRow summarises A/B phase results as ops/s figures.
func rateRow(measure, config string, as, bs []*phaseResult, err error) row {
	r := row{Measure: measure, Config: config, Unit: "ops/s"}
	if err != nil {
		r.Error = err.Error()
		return r
	}
	var ra, rb, ratio, spa, spb, ca, cb series
	var ha, hb, sa, sb hist
	for i := range as {
		if as[i].handler != nil {
			sa.merge(as[i].handler)
		}
		if bs[i].handler != nil {
			sb.merge(bs[i].handler)
		}
		ra = append(ra, as[i].rate())
		rb = append(rb, bs[i].rate())
		ratio = append(ratio, bs[i].rate()/as[i].rate())
		spa = append(spa, as[i].opsPerSync())
		spb = append(spb, bs[i].opsPerSync())
		ca = append(ca, as[i].cpuPerOp())
		cb = append(cb, bs[i].cpuPerOp())
		ha.merge(&as[i].lat)
		hb.merge(&bs[i].lat)
	}
	r.BaselineValue, r.ServiceValue = ra.median(), rb.median()
	r.Ratio, r.RatioMin, r.RatioMax, r.Reps = ratio.median(), ratio.min(), ratio.max(), len(ratio)
	r.Baseline = fmt.Sprintf("%s ops/s (p50 %s, p99 %s, %s, %.0f µs CPU/op)", fmtRate(r.BaselineValue), fmtDur(ha.quantile(.5)), fmtDur(ha.quantile(.99)), fmtPerSync(as, spa), ca.median())
	r.Service = fmt.Sprintf("%s ops/s (p50 %s, p99 %s, %s, %.0f µs CPU/op)", fmtRate(r.ServiceValue), fmtDur(hb.quantile(.5)), fmtDur(hb.quantile(.99)), fmtPerSync(bs, spb), cb.median())
	r.Extra = map[string]float64{
		"baseline_p50_us": float64(ha.quantile(.5)) / 1e3, "baseline_p99_us": float64(ha.quantile(.99)) / 1e3,
		"service_p50_us": float64(hb.quantile(.5)) / 1e3, "service_p99_us": float64(hb.quantile(.99)) / 1e3,
		"baseline_ops_per_fsync": spa.median(), "service_ops_per_fsync": spb.median(),
		"baseline_cpu_us_per_op": ca.median(), "service_cpu_us_per_op": cb.median(),
		"p99_ratio": float64(hb.quantile(.99)) / float64(max(ha.quantile(.99), 1)),
	}
	// Over gRPC: the server's part of the latency (handler p50).
	for _, x := range []struct {
		h   *hist
		s   *string
		key string
	}{{&sa, &r.Baseline, "baseline"}, {&sb, &r.Service, "service"}} {
		if x.h.n > 0 {
			*x.s += fmt.Sprintf("; server handler p50 %s", fmtDur(x.h.quantile(.5)))
			r.Extra[x.key+"_handler_p50_us"] = float64(x.h.quantile(.5)) / 1e3
		}
	}
	return r
}

// fmtPerSync prints the operations per fsync, or that there was none (a
// no-op RPC).
func fmtPerSync(rs []*phaseResult, s series) string {
	for _, r := range rs {
		if r.syncs > 0 {
			return fmt.Sprintf("%.1f ops/fsync", s.median())
		}
	}
	return "no fsync"
}

// medianCPU is the median CPU µs per operation of rs.
func medianCPU(rs []*phaseResult) float64 {
	var s series
	for _, r := range rs {
		s = append(s, r.cpuPerOp())
	}
	return s.median()
}

// rawPhase runs synced raw-Pebble batches of a create's shape.
func (b *bench) rawPhase(conc int) phaseFn {
	return func(ctx context.Context, _ int) (*phaseResult, error) {
		e, err := openRaw(b.tempDir("raw"), b.shape)
		if err != nil {
			return nil, err
		}
		res := runPhase(ctx, conc, b.cfg.warmup, b.cfg.phase, &e.syncs, nil, e.commitOp)
		return res, e.close()
	}
}

// mdtPhase runs exclusive creates through the metadata server.
func (b *bench) mdtPhase(conc int, on bool, prof string) phaseFn {
	return b.mdtPhaseCfg(conc, mdtConfig{changelogOn: on}, prof)
}

// mdtPhaseCfg is mdtPhase with the MDT configured by cfg.
func (b *bench) mdtPhaseCfg(conc int, cfg mdtConfig, prof string) phaseFn {
	on := cfg.changelogOn
	return func(ctx context.Context, _ int) (*phaseResult, error) {
		e, err := openMDT(b.tempDir("mdt"), cfg)
		if err != nil {
			return nil, err
		}
		if err := e.mkdirs(ctx, conc); err != nil {
			e.close()
			return nil, err
		}
		res := runPhase(ctx, conc, b.cfg.warmup, b.cfg.phase, &e.syncs, b.prof.begin(prof), e.createOp)
		if on && e.m.Log().State().Current == 0 {
			e.close()
			return nil, fmt.Errorf("changelog on but no record was written")
		}
		if !on && e.m.Log().State().Current != 0 {
			e.close()
			return nil, fmt.Errorf("changelog off but records were written")
		}
		if on {
			// The last record is chained exactly when the chain is on.
			cur := e.m.Log().State().Current
			chained := false
			if _, err := e.m.Log().Scan(ctx, store.ReadOptions{Start: cur, End: cur}, func(en store.Entry) error {
				chained = changelog.Chained(en.Raw)
				return nil
			}); err != nil {
				e.close()
				return nil, err
			}
			if chained == cfg.noChain {
				e.close()
				return nil, fmt.Errorf("hash chain %v but record %d chained=%v", !cfg.noChain, cur, chained)
			}
		}
		return res, e.close()
	}
}

// t1: durable creates through the MDT (changelog on) vs raw synced Pebble
// batches of the same bytes.
func (b *bench) t1(ctx context.Context) []row {
	var rows []row
	for _, conc := range b.cfg.concs {
		b.cfg.logf("T1 conc=%d", conc)
		as, bs, err := b.ab(ctx, b.rawPhase(conc), b.mdtPhase(conc, true, fmt.Sprintf("t1-c%d", conc)))
		if err == nil {
			b.noteCPU("raw", conc, as)
			b.noteCPU("mdt", conc, bs)
		}
		r := rateRow("T1 durable creates (mdt.Create) ÷ raw Pebble Commit(Sync)", fmt.Sprintf("conc=%d, changelog on (1 user), %d B/op", conc, b.shape.bytes), as, bs, err)
		want := 0.8
		if conc >= 32 {
			want = 0.9
		}
		r.Target = fmt.Sprintf("≥ %.2f×", want)
		r.judge(boolp(r.Ratio >= want))
		rows = append(rows, r)
	}
	return rows
}

// grpcEnv is an MDT served over loopback TCP (plain text: the benchmark
// measures the service, in-process, with no other client) with one
// client connection per benchmark client.
type grpcEnv struct {
	*mdtEnv
	srv   *api.Server
	addr  string
	conns []*client.Client
	done  chan error
	// handler is the server-side time of the RPCs (interceptor to
	// handler return) while recording is set: what the transport adds
	// is the client's latency minus this.
	recording atomic.Bool
	hmu       sync.Mutex
	handler   hist
	// rpcs counts the RPCs served (T8: RPCs per file), and byMethod
	// each method's (T8: where they go).
	rpcs     atomic.Int64
	mmu      sync.Mutex
	byMethod map[string]int64
}

// methodCounts returns a copy of the RPCs served so far by method name
// (the last element of the full gRPC method).
func (g *grpcEnv) methodCounts() map[string]int64 {
	g.mmu.Lock()
	defer g.mmu.Unlock()
	return maps.Clone(g.byMethod)
}

// measure wraps a phase's onMeasure hook so that handler times are
// recorded in the measured window only.
func (g *grpcEnv) measure(inner func() func()) func() func() {
	return func() func() {
		var stop func()
		if inner != nil {
			stop = inner()
		}
		g.recording.Store(true)
		return func() {
			g.recording.Store(false)
			if stop != nil {
				stop()
			}
		}
	}
}

func startServer(e *mdtEnv, onRPC ...func(string, time.Duration, error)) (*api.Server, string, chan error, error) {
	opts := api.Options{Logger: discard, Insecure: true}
	if len(onRPC) > 0 {
		opts.OnRPC = onRPC[0]
	}
	srv, err := api.New(e.m, opts)
	if err != nil {
		return nil, "", nil, err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", nil, err
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	return srv, lis.Addr().String(), done, nil
}

func openGRPC(ctx context.Context, dir string, cfg mdtConfig, conns int) (*grpcEnv, error) {
	e, err := openMDT(dir, cfg)
	if err != nil {
		return nil, err
	}
	g := &grpcEnv{mdtEnv: e, byMethod: map[string]int64{}}
	g.srv, g.addr, g.done, err = startServer(e, func(method string, d time.Duration, err error) {
		g.rpcs.Add(1)
		g.mmu.Lock()
		g.byMethod[method[strings.LastIndexByte(method, '/')+1:]]++
		g.mmu.Unlock()
		if err == nil && g.recording.Load() {
			g.hmu.Lock()
			g.handler.add(d)
			g.hmu.Unlock()
		}
	})
	if err != nil {
		e.close()
		return nil, err
	}
	for range conns {
		c, err := dialRoot(g.addr)
		if err != nil {
			g.close()
			return nil, err
		}
		g.conns = append(g.conns, c)
		if err := c.Healthy(ctx); err != nil {
			g.close()
			return nil, err
		}
	}
	return g, nil
}

func dialRoot(addr string) (*client.Client, error) {
	return client.Dial(addr, client.WithUID(0), client.WithGID(0), client.WithJobID("mdbench"))
}

func (g *grpcEnv) close() error {
	for _, c := range g.conns {
		c.Close()
	}
	g.srv.Stop()
	<-g.done
	return g.mdtEnv.close()
}

func (g *grpcEnv) createOp(ctx context.Context, c int, n uint64) error {
	_, err := g.conns[c%len(g.conns)].Namespace.Create(ctx, &mdtv1.CreateRequest{Path: []byte(filePath(c, n)), Mode: 0o644, Exclusive: true})
	return err
}

func (g *grpcEnv) noopOp(ctx context.Context, c int, _ uint64) error {
	return g.conns[c%len(g.conns)].Healthy(ctx)
}

// t1b: T1 end to end over gRPC, against raw Pebble and against a no-op
// unary RPC (the health check, through the same server, interceptors and
// connections) at the same concurrency: the transport's own cost on
// machines where client and server share the CPUs.
func (b *bench) t1b(ctx context.Context) []row {
	var rows []row
	for _, conc := range b.cfg.concs {
		b.cfg.logf("T1b conc=%d", conc)
		conns := conc
		if b.cfg.grpcConns > 0 {
			conns = min(conc, b.cfg.grpcConns)
		}
		phase := func(noop bool) phaseFn {
			return func(ctx context.Context, _ int) (*phaseResult, error) {
				g, err := openGRPC(ctx, b.tempDir("grpc"), mdtConfig{changelogOn: true}, conns)
				if err != nil {
					return nil, err
				}
				var prof func() func()
				op := g.noopOp
				if !noop {
					if err := g.mkdirs(ctx, conc); err != nil {
						g.close()
						return nil, err
					}
					op, prof = g.createOp, b.prof.begin(fmt.Sprintf("t1b-c%d", conc))
				}
				res := runPhase(ctx, conc, b.cfg.warmup, b.cfg.phase, &g.syncs, g.measure(prof), op)
				res.handler = &g.handler
				return res, g.close()
			}
		}
		res, err := b.interleave(ctx, b.rawPhase(conc), phase(true), phase(false))
		var raws, noops, svcs []*phaseResult
		if err == nil {
			raws, noops, svcs = res[0], res[1], res[2]
			b.noteCPU("raw", conc, raws)
			b.noteCPU("noop", conc, noops)
			b.noteCPU("grpc", conc, svcs)
		}
		r := rateRow("T1b creates over gRPC (loopback TCP) ÷ raw Pebble Commit(Sync)", fmt.Sprintf("conc=%d over %d conns, changelog on", conc, conns), raws, svcs, err)
		switch {
		case conc == 1:
			r.Target = "≥ 0.70×"
			r.judge(boolp(r.Ratio >= 0.7))
		case conc >= 128:
			r.Target = "≥ 30 creates/fsync"
			r.judge(boolp(r.Extra["service_ops_per_fsync"] >= 30))
		default:
			r.Target = "reported"
			r.judge(nil)
		}
		rows = append(rows, r)
		r = rateRow("T1c creates over gRPC ÷ no-op unary RPC (health check)", fmt.Sprintf("conc=%d over %d conns, same server and interceptors", conc, conns), noops, svcs, err)
		if conc >= 32 {
			r.Target = "≥ 0.70×"
			r.judge(boolp(r.Ratio >= 0.7))
		} else {
			r.Target = "reported"
			r.judge(nil)
		}
		rows = append(rows, r)
	}
	return rows
}

// layerRows reports the CPU cost of a create in each layer measured (the
// whole process: clients, server and Pebble's background work).
func (b *bench) layerRows() []row {
	var rows []row
	for _, conc := range b.cfg.concs {
		raw, ok := b.cpu["raw"][conc]
		if !ok {
			continue
		}
		r := row{Measure: "CPU µs per create by layer (process CPU ÷ ops)", Config: fmt.Sprintf("conc=%d, medians of the T1/T1b phases", conc),
			Unit: "µs CPU/op", BaselineValue: raw, Baseline: fmt.Sprintf("raw Pebble %.0f µs", raw), Target: "reported", Extra: map[string]float64{"raw": raw}}
		var parts []string
		for _, l := range []struct{ key, name string }{{"mdt", "mdt"}, {"grpc", "gRPC create"}, {"noop", "no-op RPC"}} {
			if v, ok := b.cpu[l.key][conc]; ok {
				parts = append(parts, fmt.Sprintf("%s %.0f µs", l.name, v))
				r.Extra[l.key] = v
			}
		}
		r.Service = strings.Join(parts, ", ")
		r.judge(nil)
		rows = append(rows, r)
	}
	return rows
}

// t2: changelog on vs off through the same service.
func (b *bench) t2(ctx context.Context) []row {
	var rows []row
	for _, conc := range b.cfg.concs {
		b.cfg.logf("T2 conc=%d", conc)
		as, bs, err := b.ab(ctx, b.mdtPhase(conc, false, ""), b.mdtPhase(conc, true, fmt.Sprintf("t2-c%d", conc)))
		r := rateRow("T2 mdt creates changelog on ÷ off", fmt.Sprintf("conc=%d, on = 1 user, off = no user", conc), as, bs, err)
		r.Target = "≥ 0.95×"
		r.judge(boolp(r.Ratio >= 0.95))
		rows = append(rows, r)

		// T2c: what the hash chain (and its signed checkpoints) costs,
		// changelog on in both phases.
		b.cfg.logf("T2c conc=%d", conc)
		as, bs, err = b.ab(ctx, b.mdtPhaseCfg(conc, mdtConfig{changelogOn: true, noChain: true}, ""),
			b.mdtPhaseCfg(conc, mdtConfig{changelogOn: true}, ""))
		r = rateRow("T2c mdt creates hash chain on ÷ off", fmt.Sprintf("conc=%d, changelog on; on = chain + signed checkpoints, off = unchained records", conc), as, bs, err)
		r.Target = "≥ 0.95×"
		r.judge(boolp(r.Ratio >= 0.95))
		rows = append(rows, r)
	}
	return rows
}

// t6: writers while one consumer is stalled under a retained-records cap
// (capacity GC evicts it, it re-registers and stalls again) vs writers
// with every consumer keeping up.
func (b *bench) t6(ctx context.Context) []row {
	conc, limit := b.cfg.t6Conc, b.cfg.capRecords
	var evictions series
	var maxRetained uint64
	phase := func(stalled bool) phaseFn {
		return func(ctx context.Context, _ int) (*phaseResult, error) {
			set := store.DefaultSettings()
			set.MaxRecords = limit
			e, err := openMDT(b.tempDir("t6"), mdtConfig{settings: &set})
			if err != nil {
				return nil, err
			}
			defer e.close()
			if err := e.mkdirs(ctx, conc); err != nil {
				return nil, err
			}
			l := e.m.Log()
			keeper, err := l.Register(store.RegisterOptions{Name: "keeper"})
			if err != nil {
				return nil, err
			}
			other, err := l.Register(store.RegisterOptions{Name: "other"})
			if err != nil {
				return nil, err
			}
			// Consumers: keepers clear to the durable index every 2 ms;
			// the stalled one never clears and re-registers when evicted.
			cctx, cancel := context.WithCancel(ctx)
			var wg sync.WaitGroup
			var cerr atomic.Pointer[error]
			var maxR atomic.Uint64
			wg.Go(func() {
				names := []string{keeper.DisplayName(), other.DisplayName()}
				t := time.NewTicker(2 * time.Millisecond)
				defer t.Stop()
				for {
					select {
					case <-cctx.Done():
						return
					case <-t.C:
					}
					st := l.State()
					if r := uint64(st.Current) - uint64(st.First-1); r > maxR.Load() {
						maxR.Store(r)
					}
					for i, name := range names {
						if i == 1 && stalled {
							if _, err := l.User(name); err != nil {
								u, err := l.Register(store.RegisterOptions{Name: "stalled"})
								if err != nil {
									cerr.Store(&err)
									return
								}
								names[1] = u.DisplayName()
							}
							continue
						}
						if _, err := l.Clear(name, l.Durable()); err != nil {
							cerr.Store(&err)
							return
						}
					}
				}
			})
			res := runPhase(ctx, conc, b.cfg.warmup, b.cfg.phase, &e.syncs, nil, e.createOp)
			cancel()
			wg.Wait()
			if p := cerr.Load(); p != nil {
				return nil, fmt.Errorf("consumer: %w", *p)
			}
			if stalled {
				evictions = append(evictions, float64(e.evicted.Load()))
				maxRetained = max(maxRetained, maxR.Load())
			}
			return res, nil
		}
	}
	b.cfg.logf("T6 conc=%d cap=%d", conc, limit)
	as, bs, err := b.ab(ctx, phase(false), phase(true))
	r := rateRow("T6 writers with a stalled consumer under the cap ÷ all consumers keeping up",
		fmt.Sprintf("conc=%d, changelog_max_records=%d, 1 keeper + 1 stalled (re-registers when evicted)", conc, limit), as, bs, err)
	r.Target = "≥ 0.95×, retained ≤ cap, ≥ 1 eviction"
	if err == nil {
		r.Service += fmt.Sprintf("; evictions/phase %.0f, max retained %d", evictions.median(), maxRetained)
		r.Extra["evictions_per_phase"] = evictions.median()
		r.Extra["max_retained"] = float64(maxRetained)
		r.Extra["cap"] = float64(limit)
	}
	r.judge(boolp(r.Ratio >= 0.95 && maxRetained <= limit && evictions.min() >= 1))
	return []row{r}
}

var _ = os.RemoveAll
