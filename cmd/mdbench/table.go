package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// tableConfig sizes a table run.
type tableConfig struct {
	mode       string
	phase      time.Duration // measured window of each A or B phase
	warmup     time.Duration // unmeasured start of each phase
	reps       int           // A/B repetitions per figure
	concs      []int         // T1, T1b, T2 concurrencies
	t6Conc     int           // T6 writers
	records    int           // N retained records (T3, T4, T5, T7)
	small      int           // T5 baseline retained records
	capRecords uint64        // T6 changelog_max_records
	streams    int           // T7 follow streams
	tmpdir     string
	cpuprofile string
	profile    string // CPU, block and mutex profiles and traces
	jsonPath   string
	only       []string // measures to run (all if empty)
	failOnMiss bool
	progress   io.Writer
	start      time.Time
	grpcConns  int // T1b client connections; 0 = one per client
	t3Batch    int // T3 max_batch_records; 0 = the server's default
	// reclaimTimeout bounds the wait for T4's space reclaim.
	reclaimTimeout time.Duration
	tarFiles       int    // T8 files per archive
	mdcPath        string // T8 mdc binary; "" = find it
	mount          bool   // run T8 (also when --only names it)
}

func (c *tableConfig) wants(measure string) bool {
	if len(c.only) == 0 {
		return true
	}
	for _, m := range c.only {
		if strings.EqualFold(m, measure) {
			return true
		}
	}
	return false
}

// wantsExplicit reports whether --only names measure.
func (c *tableConfig) wantsExplicit(measure string) bool {
	return len(c.only) > 0 && c.wants(measure)
}

func (c *tableConfig) logf(format string, args ...any) {
	if c.progress != nil {
		fmt.Fprintf(c.progress, "# [%5.1fs] %s\n", time.Since(c.start).Seconds(), fmt.Sprintf(format, args...))
	}
}

func newTableCmd(stdout, stderr io.Writer) *cobra.Command {
	var (
		quick, full, verbose bool
		conc                 string
		only                 string
		cfg                  tableConfig
		phase, warmup        time.Duration
		reps, records, small int
		tarFiles             int
		capRecords           uint64
	)
	cmd := &cobra.Command{
		Use:   "table [--quick|--full] [--mount] [--json FILE] [--cpuprofile DIR|--profile DIR]",
		Short: "Measure the whole table (service vs baseline, same run) and print it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if quick && full {
				return usagef("--quick and --full exclude each other")
			}
			cfg.mode = "quick"
			cfg.phase, cfg.warmup, cfg.reps = 700*time.Millisecond, 200*time.Millisecond, 3
			cfg.records, cfg.small, cfg.capRecords = 1_000_000, 10_000, 2_000
			if full {
				cfg.mode = "full"
				cfg.phase, cfg.warmup, cfg.reps = 3*time.Second, time.Second, 5
				cfg.records, cfg.capRecords = 10_000_000, 10_000
			}
			cfg.concs, cfg.t6Conc, cfg.streams = []int{1, 8, 32, 128}, 32, 64
			cfg.tarFiles = 1000
			f := cmd.Flags()
			if f.Changed("phase") {
				cfg.phase = phase
			}
			if f.Changed("warmup") {
				cfg.warmup = warmup
			}
			if f.Changed("reps") {
				cfg.reps = reps
			}
			if f.Changed("records") {
				cfg.records = records
			}
			if f.Changed("small-records") {
				cfg.small = small
			}
			if f.Changed("cap") {
				cfg.capRecords = capRecords
			}
			if f.Changed("tar-files") {
				cfg.tarFiles = tarFiles
			}
			if f.Changed("conc") {
				cfg.concs = nil
				for _, s := range strings.Split(conc, ",") {
					n, err := strconv.Atoi(strings.TrimSpace(s))
					if err != nil || n < 1 {
						return usagef("--conc: bad concurrency %q", s)
					}
					cfg.concs = append(cfg.concs, n)
				}
			}
			if only != "" {
				cfg.only = strings.Split(only, ",")
			}
			switch {
			case cfg.reps < 1:
				return usagef("--reps must be >= 1")
			case cfg.phase <= 0:
				return usagef("--phase must be > 0")
			case cfg.records < 1000 || cfg.small < 100:
				return usagef("--records must be >= 1000 and --small-records >= 100")
			case cfg.capRecords < 100:
				return usagef("--cap must be >= 100")
			case cfg.tarFiles < 1:
				return usagef("--tar-files must be >= 1")
			}
			if verbose {
				cfg.progress = stderr
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			return runTable(ctx, &cfg, stdout)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&quick, "quick", false, "CI size: 1M records, short phases, 3 repetitions (default)")
	f.BoolVar(&full, "full", false, "record size: 10M records, 3 s phases, 5 repetitions")
	f.StringVar(&cfg.jsonPath, "json", "", "also write the rows as a JSON array to `FILE`")
	f.StringVar(&cfg.cpuprofile, "cpuprofile", "", "write CPU profiles of the service phases into `DIR`")
	f.StringVar(&cfg.profile, "profile", "", "write CPU, block and mutex profiles and an execution trace of the service phases into `DIR`")
	f.StringVar(&cfg.tmpdir, "tmpdir", "", "directory for the temporary databases (default $TMPDIR); must be a real disk")
	f.BoolVarP(&verbose, "verbose", "v", false, "report progress on stderr")
	f.BoolVar(&cfg.failOnMiss, "fail-on-miss", false, "exit with status 3 if a target is missed")
	// Sizing knobs for tests and experiments.
	f.DurationVar(&phase, "phase", 0, "measured length of each A or B phase")
	f.DurationVar(&warmup, "warmup", 0, "unmeasured warm-up of each phase")
	f.IntVar(&reps, "reps", 0, "A/B repetitions")
	f.IntVar(&records, "records", 0, "retained records for T3/T4/T5/T7")
	f.IntVar(&small, "small-records", 0, "retained records of the T5 baseline")
	f.Uint64Var(&capRecords, "cap", 0, "changelog_max_records of T6")
	f.DurationVar(&cfg.reclaimTimeout, "reclaim-timeout", 15*time.Second, "how long T4 waits for space to come back")
	f.IntVar(&cfg.grpcConns, "grpc-conns", 4, "T1b client connections shared by the clients (0 = one per client)")
	f.IntVar(&cfg.t3Batch, "t3-batch", 0, "T3 max_batch_records (0 = the server's default)")
	f.IntVar(&tarFiles, "tar-files", 0, "T8 files per tar archive")
	f.BoolVar(&cfg.mount, "mount", false, "also run T8: tar x through mdc mount vs a direct client (needs root, /dev/fuse, tar)")
	f.StringVar(&cfg.mdcPath, "mdc", "", "T8: the mdc binary that mounts (default: next to mdbench, on PATH, or built with go)")
	f.StringVar(&conc, "conc", "", "comma-separated concurrencies of T1/T1b/T2")
	f.StringVar(&only, "only", "", "comma-separated measures to run (T1,T1b,T2,T3,T4,T5,T6,T7,T8); T8 also with --mount")
	for _, name := range []string{"phase", "warmup", "reps", "records", "small-records", "cap", "conc", "only", "reclaim-timeout", "grpc-conns", "t3-batch", "tar-files"} {
		_ = f.MarkHidden(name)
	}
	return cmd
}

// row is one line of the table.
type row struct {
	Measure       string             `json:"measure"`
	Config        string             `json:"config"`
	Baseline      string             `json:"baseline"`
	Service       string             `json:"service"`
	BaselineValue float64            `json:"baseline_value"`
	ServiceValue  float64            `json:"service_value"`
	Unit          string             `json:"unit"`
	Ratio         float64            `json:"ratio"`
	RatioMin      float64            `json:"ratio_min"`
	RatioMax      float64            `json:"ratio_max"`
	Reps          int                `json:"reps"`
	Target        string             `json:"target"`
	Result        string             `json:"result"` // pass, miss, info, error
	Extra         map[string]float64 `json:"extra,omitempty"`
	Error         string             `json:"error,omitempty"`
	// Run describes the run and the machine (the same in every row).
	Run *runInfo `json:"run,omitempty"`
}

// runInfo is the machine and sizing of a run.
type runInfo struct {
	Machine machine `json:"machine"`
	Mode    string  `json:"mode"`
	Phase   string  `json:"phase"`
	Warmup  string  `json:"warmup"`
	Reps    int     `json:"reps"`
	Records int     `json:"records"`
}

// judge sets Result from ok (nil: reported only).
func (r *row) judge(ok *bool) {
	switch {
	case r.Error != "":
		r.Result = "error"
	case ok == nil:
		r.Result = "info"
	case *ok:
		r.Result = "pass"
	default:
		r.Result = "miss"
	}
}

func boolp(b bool) *bool { return &b }

func runTable(ctx context.Context, cfg *tableConfig, stdout io.Writer) error {
	base := cfg.tmpdir
	if base == "" {
		base = os.TempDir()
	}
	work, err := os.MkdirTemp(base, "mdbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	cfg.tmpdir = work
	start := time.Now()
	cfg.start = start
	mach := describeMachine(work)
	prof := &profiler{dir: cfg.cpuprofile}
	if cfg.profile != "" {
		prof = &profiler{dir: cfg.profile, all: true}
	}

	var rows []row
	add := func(rs ...row) { rows = append(rows, rs...) }
	b := &bench{cfg: cfg, prof: prof}

	if cfg.wants("T1") || cfg.wants("T1b") || cfg.wants("T6") {
		if err := b.capture(); err != nil {
			return fmt.Errorf("capturing a create's batch: %w", err)
		}
	}
	steps := []struct {
		name string
		fn   func(context.Context) []row
	}{
		{"T1", b.t1},
		{"T1b", b.t1b},
		{"CPU", func(context.Context) []row { return b.layerRows() }},
		{"T2", b.t2},
		{"T6", b.t6},
		{"T3", b.logMeasures}, // T3, T7, T5, T4 share the big log
		{"T8", b.t8},
	}
	for _, s := range steps {
		if ctx.Err() != nil {
			break
		}
		if s.name == "CPU" {
			add(s.fn(ctx)...)
			continue
		}
		if s.name == "T3" {
			if !cfg.wants("T3") && !cfg.wants("T4") && !cfg.wants("T5") && !cfg.wants("T7") {
				continue
			}
		} else if s.name == "T8" && !cfg.mount && !cfg.wantsExplicit("T8") {
			continue
		} else if !cfg.wants(s.name) {
			continue
		}
		cfg.logf("%s: start (%s elapsed)", s.name, time.Since(start).Round(time.Second))
		add(s.fn(ctx)...)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	total := time.Since(start)

	writeMarkdown(stdout, mach, cfg, rows, total)
	for _, err := range prof.errs {
		fmt.Fprintf(stdout, "\nprofile error: %v\n", err)
	}
	if cfg.jsonPath != "" {
		info := &runInfo{Machine: mach, Mode: cfg.mode, Phase: cfg.phase.String(), Warmup: cfg.warmup.String(), Reps: cfg.reps, Records: cfg.records}
		for i := range rows {
			rows[i].Run = info
		}
		data, err := json.MarshalIndent(rows, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(cfg.jsonPath, append(data, '\n'), 0o644); err != nil {
			return err
		}
	}
	misses, errs := 0, 0
	for _, r := range rows {
		switch r.Result {
		case "miss":
			misses++
		case "error":
			errs++
		}
	}
	if errs > 0 {
		return fmt.Errorf("%d measure(s) failed", errs)
	}
	if misses > 0 && cfg.failOnMiss {
		return &missError{misses}
	}
	return nil
}

func writeMarkdown(w io.Writer, m machine, cfg *tableConfig, rows []row, total time.Duration) {
	fmt.Fprintf(w, "## mdbench table (%s)\n\n", cfg.mode)
	fmt.Fprintf(w, "Machine: %d CPUs, %s, %d GiB RAM, kernel %s, %s (GOGC=%d), pebble %s, grpc %s; temp dirs on %s.\n",
		m.NProc, m.CPU, m.MemGiB, m.Kernel, m.Go, m.GOGC, m.Pebble, m.GRPC, m.TempFS)
	fmt.Fprintf(w, "Run: %s phases (+%s warm-up), %d interleaved A/B repetitions, N = %d records; took %s.\n",
		cfg.phase, cfg.warmup, cfg.reps, cfg.records, total.Round(time.Second))
	fmt.Fprintf(w, "Ratio = service / baseline per repetition: median [min–max]. Only ratios are comparable across runs.\n\n")
	fmt.Fprintln(w, "| measure | config | baseline | service | ratio median [min–max] | target | result |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	for _, r := range rows {
		ratio := "—"
		if r.Reps > 0 && r.Error == "" {
			ratio = fmt.Sprintf("%.2f [%.2f–%.2f]", r.Ratio, r.RatioMin, r.RatioMax)
		}
		svc := r.Service
		if r.Error != "" {
			svc = "error: " + r.Error
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s |\n", r.Measure, r.Config, r.Baseline, svc, ratio, r.Target, r.Result)
	}
}

// fmtRate prints an operation rate with thousands separators.
func fmtRate(v float64) string {
	n := int64(v + 0.5)
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/1e6)
	default:
		return fmt.Sprintf("%.0f µs", float64(d)/1e3)
	}
}
