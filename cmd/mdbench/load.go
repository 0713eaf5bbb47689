package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/fidlog/fidlog/api/client"
	mdtv1 "github.com/fidlog/fidlog/proto/lustre/mdt/v1"
)

// The operations of load.
const (
	opCreate    = "create"
	opStat      = "stat"
	opUnlink    = "unlink"
	opRename    = "rename"
	opOpenClose = "openclose"
	opMixed     = "mixed"
)

var loadMixes = []string{opCreate, opStat, opUnlink, opRename, opOpenClose, opMixed}

// mixedWeights is the operation mix of --mix mixed (percent).
var mixedWeights = []struct {
	op string
	w  int
}{{opCreate, 30}, {opStat, 40}, {opOpenClose, 10}, {opRename, 10}, {opUnlink, 10}}

type loadConfig struct {
	conn     client.Flags // --server, --tls-ca, --tls-cert, --tls-key
	server   string
	clients  int
	duration time.Duration
	mix      string
	dir      string
	files    int
	output   string
}

func newLoadCmd(stdout, stderr io.Writer) *cobra.Command {
	var cfg loadConfig
	cmd := &cobra.Command{
		Use:   "load [--server TARGET] [--tls-ca F --tls-cert F --tls-key F] [--clients N] [--duration D] [--mix MIX] [--dir PREFIX]",
		Short: "Generate mdtest-style metadata load against a running mdtd",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.server = cfg.conn.Target()
			switch {
			case cfg.clients < 1:
				return usagef("--clients must be >= 1")
			case cfg.duration <= 0:
				return usagef("--duration must be > 0")
			case !slices.Contains(loadMixes, cfg.mix):
				return usagef("--mix %q: want one of %v", cfg.mix, loadMixes)
			case cfg.files < 1:
				return usagef("--files must be >= 1")
			case cfg.output != "text" && cfg.output != "json":
				return usagef("--output %q: want text or json", cfg.output)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			return runLoad(ctx, &cfg, stdout, stderr)
		},
	}
	f := cmd.Flags()
	cfg.conn.Register(f)
	f.IntVar(&cfg.clients, "clients", 4, "concurrent clients, one connection each")
	f.DurationVar(&cfg.duration, "duration", 10*time.Second, "measured duration")
	f.StringVar(&cfg.mix, "mix", opCreate, "operations: create|stat|unlink|rename|openclose|mixed")
	f.StringVar(&cfg.dir, "dir", "mdbench", "directory (under the root) that holds this run's client directories")
	f.IntVar(&cfg.files, "files", 1000, "files each client pre-creates for stat, unlink, rename, openclose and mixed")
	f.StringVar(&cfg.output, "output", "text", "text or json")
	_ = cmd.RegisterFlagCompletionFunc("mix", cobra.FixedCompletions(loadMixes, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// opStats are one operation's results.
type opStats struct {
	ops, errs int64
	lat       hist
	firstErr  error
}

// loadClient is one client: its connection, directory and file pool.
type loadClient struct {
	c     *client.Client
	dir   string
	pool  []string // existing file names in dir
	next  uint64   // next new file number
	rng   *rand.Rand
	stats map[string]*opStats
}

func (lc *loadClient) newName() string {
	lc.next++
	return "f" + strconv.FormatUint(lc.next, 10)
}

func (lc *loadClient) path(name string) string { return lc.dir + "/" + name }

func (lc *loadClient) create(ctx context.Context) error {
	name := lc.newName()
	_, err := lc.c.Namespace.Create(ctx, &mdtv1.CreateRequest{Path: []byte(lc.path(name)), Mode: 0o644, Exclusive: true})
	if err == nil {
		lc.pool = append(lc.pool, name)
	}
	return err
}

// do runs one operation of kind op; ok is false if the pool cannot serve
// it (unlink of an empty pool).
func (lc *loadClient) do(ctx context.Context, op string, n uint64) (bool, error) {
	ns := lc.c.Namespace
	if op != opCreate && len(lc.pool) == 0 {
		return false, nil
	}
	pick := func() int {
		if op == opStat || op == opOpenClose {
			return int(n % uint64(len(lc.pool)))
		}
		return lc.rng.IntN(len(lc.pool))
	}
	switch op {
	case opCreate:
		return true, lc.create(ctx)
	case opStat:
		_, err := ns.Stat(ctx, &mdtv1.StatRequest{Path: []byte(lc.path(lc.pool[pick()]))})
		return true, err
	case opOpenClose:
		r, err := ns.Open(ctx, &mdtv1.OpenRequest{Path: []byte(lc.path(lc.pool[pick()])), Flags: uint32(mdtv1.OpenFlag_OPEN_FLAG_READ)})
		if err != nil {
			return true, err
		}
		_, err = ns.Close(ctx, &mdtv1.CloseRequest{Handle: r.GetHandle()})
		return true, err
	case opRename:
		i := pick()
		to := lc.newName()
		_, err := ns.Rename(ctx, &mdtv1.RenameRequest{SrcPath: []byte(lc.path(lc.pool[i])), DstPath: []byte(lc.path(to))})
		if err == nil {
			lc.pool[i] = to
		}
		return true, err
	case opUnlink:
		i := len(lc.pool) - 1
		_, err := ns.Unlink(ctx, &mdtv1.UnlinkRequest{Path: []byte(lc.path(lc.pool[i]))})
		if err == nil {
			lc.pool = lc.pool[:i]
		}
		return true, err
	}
	return false, fmt.Errorf("unknown op %q", op)
}

func (lc *loadClient) choose(mix string) string {
	if mix != opMixed {
		return mix
	}
	x := lc.rng.IntN(100)
	for _, w := range mixedWeights {
		if x < w.w {
			return w.op
		}
		x -= w.w
	}
	return opStat
}

// loadReport is load's result (JSON view).
type loadReport struct {
	Server   string        `json:"server"`
	Mix      string        `json:"mix"`
	Clients  int           `json:"clients"`
	Dir      string        `json:"dir"`
	Duration float64       `json:"duration_s"`
	Ops      []loadOpStats `json:"ops"`
	Total    loadOpStats   `json:"total"`
}

type loadOpStats struct {
	Op     string  `json:"op"`
	Ops    int64   `json:"ops"`
	Rate   float64 `json:"ops_per_s"`
	P50us  float64 `json:"p50_us"`
	P99us  float64 `json:"p99_us"`
	Errors int64   `json:"errors"`
	Error  string  `json:"first_error,omitempty"`
}

func runLoad(ctx context.Context, cfg *loadConfig, stdout, stderr io.Writer) error {
	run := fmt.Sprintf("%s/run-%d", cfg.dir, time.Now().UnixNano())
	var clients []*loadClient
	defer func() {
		for _, lc := range clients {
			lc.c.Close()
		}
	}()
	for i := range cfg.clients {
		c, err := cfg.conn.Dial(client.WithUID(0), client.WithGID(0), client.WithJobID("mdbench"))
		if err != nil {
			return err
		}
		clients = append(clients, &loadClient{c: c, dir: fmt.Sprintf("%s/c%d", run, i), rng: rand.New(rand.NewPCG(uint64(i), uint64(time.Now().UnixNano()))), stats: map[string]*opStats{}})
	}
	ns := clients[0].c.Namespace
	for _, d := range []string{cfg.dir, run} {
		if _, err := ns.Mkdir(ctx, &mdtv1.MkdirRequest{Path: []byte(d), Mode: 0o755}); err != nil {
			if _, serr := ns.Stat(ctx, &mdtv1.StatRequest{Path: []byte(d)}); serr != nil {
				return fmt.Errorf("setup: mkdir %s: %w", d, err)
			}
		}
	}
	// Setup (not measured): client directories and file pools.
	var wg sync.WaitGroup
	errs := make([]error, len(clients))
	for i, lc := range clients {
		wg.Go(func() {
			if _, err := lc.c.Namespace.Mkdir(ctx, &mdtv1.MkdirRequest{Path: []byte(lc.dir), Mode: 0o755}); err != nil {
				errs[i] = fmt.Errorf("setup: mkdir %s: %w", lc.dir, err)
				return
			}
			if cfg.mix == opCreate {
				return
			}
			for range cfg.files {
				if err := lc.create(ctx); err != nil {
					errs[i] = fmt.Errorf("setup: create in %s: %w", lc.dir, err)
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}

	deadline := time.Now().Add(cfg.duration)
	start := time.Now()
	ends := make([]time.Time, len(clients))
	for i, lc := range clients {
		wg.Go(func() {
			defer func() { ends[i] = time.Now() }()
			for n := uint64(0); ctx.Err() == nil && time.Now().Before(deadline); n++ {
				op := lc.choose(cfg.mix)
				t0 := time.Now()
				ok, err := lc.do(ctx, op, n)
				d := time.Since(t0)
				if !ok {
					if cfg.mix == opMixed {
						continue
					}
					return // pool exhausted (unlink)
				}
				s := lc.stats[op]
				if s == nil {
					s = new(opStats)
					lc.stats[op] = s
				}
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					s.errs++
					if s.firstErr == nil {
						s.firstErr = err
					}
					continue
				}
				s.ops++
				s.lat.add(d)
			}
		})
	}
	wg.Wait()
	elapsed := slices.MaxFunc(ends, func(a, b time.Time) int { return a.Compare(b) }).Sub(start)

	rep := loadReport{Server: cfg.server, Mix: cfg.mix, Clients: cfg.clients, Dir: run, Duration: elapsed.Seconds()}
	merged := map[string]*opStats{}
	var total opStats
	for _, lc := range clients {
		for op, s := range lc.stats {
			m := merged[op]
			if m == nil {
				m = new(opStats)
				merged[op] = m
			}
			m.ops += s.ops
			m.errs += s.errs
			m.lat.merge(&s.lat)
			if m.firstErr == nil {
				m.firstErr = s.firstErr
			}
			total.ops += s.ops
			total.errs += s.errs
			total.lat.merge(&s.lat)
			if total.firstErr == nil {
				total.firstErr = s.firstErr
			}
		}
	}
	view := func(op string, s *opStats) loadOpStats {
		v := loadOpStats{Op: op, Ops: s.ops, Rate: float64(s.ops) / elapsed.Seconds(),
			P50us: float64(s.lat.quantile(.5)) / 1e3, P99us: float64(s.lat.quantile(.99)) / 1e3, Errors: s.errs}
		if s.firstErr != nil {
			v.Error = s.firstErr.Error()
		}
		return v
	}
	for _, op := range loadMixes {
		if s := merged[op]; s != nil {
			rep.Ops = append(rep.Ops, view(op, s))
		}
	}
	rep.Total = view("total", &total)

	if cfg.output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(stdout, "mix %s, %d clients, %.2f s, dir %s, server %s\n", rep.Mix, rep.Clients, rep.Duration, rep.Dir, rep.Server)
		fmt.Fprintf(stdout, "%-10s %10s %12s %10s %10s %8s\n", "op", "ops", "ops/s", "p50", "p99", "errors")
		for _, v := range append(rep.Ops, rep.Total) {
			fmt.Fprintf(stdout, "%-10s %10d %12.1f %10s %10s %8d\n", v.Op, v.Ops, v.Rate,
				fmtDur(time.Duration(v.P50us*1e3)), fmtDur(time.Duration(v.P99us*1e3)), v.Errors)
		}
	}
	if total.errs > 0 {
		for _, v := range rep.Ops {
			if v.Error != "" {
				fmt.Fprintf(stderr, "mdbench: %s: %d errors, first: %s\n", v.Op, v.Errors, v.Error)
			}
		}
		return fmt.Errorf("%d operations failed", total.errs)
	}
	return nil
}
