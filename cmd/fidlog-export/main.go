// Command fidlog-export is a long-running changelog consumer that sends
// audit records to the places operators already read them: rotated files,
// syslog and NATS JetStream.
//
//	fidlog-export --mdt TARGET [--mdt TARGET...] --sink URL [--sink URL...]
//	              [--user fidlog-export] [--batch 1000] [--interval 1s]
//	              [--paths=true] [--metrics ADDR] [--tls-ca FILE --tls-cert FILE --tls-key FILE]
//
// For each MDT (unix:PATH or host:port) it uses one changelog user,
// registered on first start, follows the changelog from that user's cleared
// point, renders every record in each sink's format, delivers it to every
// sink and clears the changelog only up to the highest index every sink
// has committed. See the README's "Exporting the audit trail" section.
//
// Invariants: a device's changelog is cleared only up to the highest index
// every sink has committed (fsync, PubAck, flushed and live connection);
// each device's records reach each sink in index order, and a sink that
// already holds a record (a file sink reads its files back at start) is not
// sent it again. With checkpoints on (ndjson sinks by default), every
// record is read (no mask) with the hash chain's anchor and signed
// checkpoints, which reach each such sink in stream order with the records
// (a checkpoint just before the record at its position), once: a sink is
// not sent a checkpoint at or before a record it holds or one it already
// holds (the file sink reads back its checkpoint lines), nor the anchor
// once it holds records of the device. One goroutine (exporter.run) owns
// the pending batch, the sinks and the clear points; one goroutine per MDT
// follows its changelog and blocks while the sinks are behind; a watcher
// samples lag and notices eviction (with checkpoints on, the only way a
// follow learns of it before its records are purged). exporter.mu only guards the copies the watcher reads; it is
// never held across I/O.
//
// Exit codes: 0 after SIGINT or SIGTERM (pending records delivered and
// cleared), 1 on a runtime failure, 2 on a bad flag, target or sink URL
// (nothing was started), 3 when an MDT's changelog GC evicted the user
// (the message says how many records were lost).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/fidlog/fidlog/api/client"
	"github.com/fidlog/fidlog/changelog"
)

// Exit codes.
const (
	exitOK      = 0
	exitError   = 1
	exitUsage   = 2
	exitEvicted = 3
)

// config is the command line.
type config struct {
	mdts    []string
	user    string
	mask    string
	maskSet bool // --mask was given
	sinks   []string
	// chain: some sink carries the hash chain's checkpoints, so every
	// record is read, with the chain's anchor and checkpoints.
	chain       bool
	batch       int
	interval    time.Duration
	paths       bool
	metrics     string
	tls         client.TLSFiles
	minBackoff  time.Duration
	maxBackoff  time.Duration
	lagInterval time.Duration
	logLevel    string
	cpuprofile  string
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return runContext(ctx, args, stdout, stderr)
}

// newRootCmd builds the command; running it sets *code to the exporter's
// exit code.
func newRootCmd(stdout, stderr io.Writer) (cmd *cobra.Command, code *int) {
	cfg := &config{}
	code = new(int)
	cmd = &cobra.Command{
		Use:   "fidlog-export --mdt TARGET --sink URL [flags]",
		Short: "Export changelog records to files, syslog and NATS JetStream, exactly once",
		Long: `fidlog-export follows the changelog of one or several MDTs (--mdt, repeated;
unix:PATH or host:port) with one changelog user per MDT (--user, registered
on first start), renders each record in each sink's format, delivers it to
every sink (--sink URL, repeated) and clears each MDT's changelog only up to
the highest index every sink has committed, every --batch records or
--interval.

Sinks:
  file:///DIR?format=ndjson&rotate=1h&size=256M&gzip=false&prefix=fidlog
      rotated files; fsync before clear; read back on restart (exactly once)
  nats://HOST:PORT?stream=FIDLOG&subject=fidlog&format=ndjson&dupe_window=1h
      JetStream; subject fidlog.FSNAME.MDTnnnn.TYPE, Nats-Msg-Id
      DEVICE:INDEX, clear after the PubAck (exactly once)
  syslog+udp|tcp|tls://HOST:PORT?format=csv&app=fidlog&facility=audit
      RFC 5424; TCP/TLS octet counting (at least once; UDP best effort)
Formats: ndjson, scale-json, csv, lustre. Kafka is not supported.

Tamper evidence: an ndjson sink also carries the MDT's signed checkpoints
and the hash chain's anchor, each a line of its own in order with the
records ({"device":...,"checkpoint":{...}}, {"device":...,"anchor":{...}};
JetStream subjects ...CHECKPOINT and ...ANCHOR; syslog MSGID CHECKPOINT
and ANCHOR), which 'lfs changelog_verify --pubkey FILE --input DIR' checks
offline. Then every record is exported, whatever the user's mask (--mask is
refused). checkpoints=false turns it off; other formats cannot carry
checkpoints (checkpoints=true is refused).

Exit status: 0 after SIGINT/SIGTERM, 1 runtime failure, 2 bad flag, target,
sink URL or format (nothing started), 3 the user was evicted by the MDT's
changelog GC (the message says how many records were lost).`,
		Example: `  fidlog-export --mdt unix:/run/fidlog/mdtd.sock \
      --sink 'file:///var/log/fidlog?format=ndjson&rotate=15m&gzip=true'
  fidlog-export --mdt mds1:7988 --mdt mds2:7988 --tls-ca ca.crt --tls-cert export.crt --tls-key export.key \
      --sink 'nats://127.0.0.1:4222?stream=AUDIT' --sink 'syslog+tcp://loghost:514?format=csv' --metrics :9110`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	f := cmd.Flags()
	f.StringArrayVar(&cfg.mdts, "mdt", nil, "MDT server to follow: unix:PATH or host:port (repeat for several MDTs)")
	f.StringArrayVar(&cfg.sinks, "sink", nil, "destination URL: file:///DIR?format=ndjson&rotate=1h&size=256M&gzip=true, syslog+udp|tcp|tls://HOST:PORT?format=csv, nats://HOST:PORT?stream=FIDLOG (repeat for several)")
	f.StringVar(&cfg.user, "user", "fidlog-export", "name of the changelog user on each MDT (registered on first start)")
	f.StringVar(&cfg.mask, "mask", "ALL", "the user's record mask when it is registered (Lustre mask syntax); ALL: every type the MDT records, audit types included")
	f.IntVar(&cfg.batch, "batch", 1000, "deliver and clear at least every this many records")
	f.DurationVar(&cfg.interval, "interval", time.Second, "deliver and clear at least this often")
	f.BoolVar(&cfg.paths, "paths", true, "resolve each record's full path with fid2path")
	f.StringVar(&cfg.metrics, "metrics", "", "serve Prometheus metrics on this address (host:port)")
	f.StringVar(&cfg.tls.CA, "tls-ca", "", "CA certificate (PEM) that signed the TCP MDT servers' certificates (env "+client.EnvTLSCA+")")
	f.StringVar(&cfg.tls.Cert, "tls-cert", "", "client certificate (PEM) for mutual TLS (env "+client.EnvTLSCert+")")
	f.StringVar(&cfg.tls.Key, "tls-key", "", "client key (PEM) for mutual TLS (env "+client.EnvTLSKey+")")
	f.DurationVar(&cfg.minBackoff, "min-backoff", 100*time.Millisecond, "first retry delay of a failing sink")
	f.DurationVar(&cfg.maxBackoff, "max-backoff", 10*time.Second, "longest retry delay of a failing sink")
	f.DurationVar(&cfg.lagInterval, "lag-interval", 5*time.Second, "how often the lag metrics are sampled")
	f.StringVar(&cfg.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.StringVar(&cfg.cpuprofile, "cpuprofile", "", "write a CPU profile of the exporter to this file until it exits (diagnostics)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg.maskSet = cmd.Flags().Changed("mask")
		*code = export(cmd.Context(), cfg, stderr)
		return nil
	}
	return cmd, code
}

func runContext(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd, code := newRootCmd(stdout, stderr)
	cmd.SetArgs(args)
	if err := cmd.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(stderr, "fidlog-export: %v\n", err)
		fmt.Fprintln(stderr, "Run 'fidlog-export --help' for usage.")
		return exitUsage
	}
	return *code
}

// validate checks the flags and builds the sinks, reporting the first bad
// value.
func (cfg *config) validate(senv sinkEnv) ([]sink, error) {
	if len(cfg.mdts) == 0 {
		return nil, configErrorf("no --mdt given")
	}
	seen := map[string]bool{}
	for _, t := range cfg.mdts {
		if err := checkTarget(t); err != nil {
			return nil, err
		}
		if seen[t] {
			return nil, configErrorf("--mdt '%s' given twice", t)
		}
		seen[t] = true
	}
	if len(cfg.sinks) == 0 {
		return nil, configErrorf("no --sink given")
	}
	if cfg.user == "" || strings.ContainsAny(cfg.user, " \t\n") {
		return nil, configErrorf("invalid --user '%s'", cfg.user)
	}
	if _, err := changelog.ParseMask(cfg.mask, changelog.DefMask); err != nil || cfg.mask == "" {
		return nil, configErrorf("invalid --mask '%s'", cfg.mask)
	}
	if cfg.batch <= 0 {
		return nil, configErrorf("invalid --batch %d: must be positive", cfg.batch)
	}
	if cfg.interval <= 0 || cfg.minBackoff <= 0 || cfg.maxBackoff < cfg.minBackoff || cfg.lagInterval <= 0 {
		return nil, configErrorf("invalid --interval, --min-backoff, --max-backoff or --lag-interval: must be positive, max >= min")
	}
	// A flag given wins over its environment variable.
	env := client.TLSFilesFromEnv()
	for _, p := range []struct{ flag, env *string }{{&cfg.tls.CA, &env.CA}, {&cfg.tls.Cert, &env.Cert}, {&cfg.tls.Key, &env.Key}} {
		if *p.flag == "" {
			*p.flag = *p.env
		}
	}
	if !cfg.tls.IsZero() {
		if _, err := cfg.tls.Config(); err != nil {
			return nil, configErrorf("invalid --tls-ca/--tls-cert/--tls-key: %v", err)
		}
	}
	var sinks []sink
	for _, raw := range cfg.sinks {
		s, err := parseSink(raw, senv)
		if err != nil {
			return nil, err
		}
		sinks = append(sinks, s)
		cfg.chain = cfg.chain || s.checkpoints()
	}
	if cfg.chain && cfg.maskSet {
		return nil, configErrorf("--mask '%s' filters records, but a sink carries checkpoints (ndjson sinks do unless checkpoints=false) and a chain with gaps cannot be verified: every record is exported then; drop --mask or add checkpoints=false to the ndjson sinks", cfg.mask)
	}
	return sinks, nil
}

// checkTarget accepts unix:PATH and host:port.
func checkTarget(t string) error {
	if p, ok := strings.CutPrefix(t, "unix:"); ok {
		if p == "" {
			return configErrorf("invalid --mdt '%s': unix: needs a socket path", t)
		}
		return nil
	}
	host, port, err := net.SplitHostPort(t)
	if err != nil || host == "" || port == "" {
		return configErrorf("invalid --mdt '%s': expect unix:PATH or host:port", t)
	}
	return nil
}

// export runs the exporter and returns the exit code.
func export(ctx context.Context, cfg *config, stderr io.Writer) int {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.logLevel)); err != nil {
		fmt.Fprintf(stderr, "fidlog-export: invalid --log-level '%s'\n", cfg.logLevel)
		return exitUsage
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	fail := func(err error) int {
		var ce *configError
		if errors.As(err, &ce) {
			fmt.Fprintf(stderr, "fidlog-export: %v\n", err)
			return exitUsage
		}
		var ev *errEvicted
		if errors.As(err, &ev) {
			log.Error("evicted", "device", ev.dev, "user", ev.user, "lost_records", uint64(max(ev.last, ev.delivered)-ev.delivered))
			fmt.Fprintf(stderr, "fidlog-export: %v\n", err)
			return exitEvicted
		}
		fmt.Fprintf(stderr, "fidlog-export: %v\n", err)
		return exitError
	}
	sinks, err := cfg.validate(sinkEnv{logger: log})
	if err != nil {
		return fail(err)
	}
	if cfg.cpuprofile != "" {
		f, err := os.Create(cfg.cpuprofile)
		if err == nil {
			if err = pprof.StartCPUProfile(f); err != nil {
				f.Close()
			}
		}
		if err != nil {
			return fail(configErrorf("invalid --cpuprofile '%s': %v", cfg.cpuprofile, err))
		}
		defer func() {
			pprof.StopCPUProfile()
			_ = f.Close()
		}()
	}
	met := newMetrics()
	if cfg.metrics != "" {
		ln, err := net.Listen("tcp", cfg.metrics)
		if err != nil {
			return fail(configErrorf("invalid --metrics '%s': %v", cfg.metrics, err))
		}
		srv := &http.Server{Handler: promhttp.HandlerFor(met.reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
		log.Info("metrics", "addr", ln.Addr().String())
	}
	var sources []*source
	defer func() {
		for _, s := range sources {
			s.c.Close()
		}
	}()
	devs := map[string]string{}
	for _, t := range cfg.mdts {
		c, err := client.Dial(t, client.WithTLSFiles(cfg.tls))
		if err != nil {
			return fail(configErrorf("invalid --mdt '%s': %v", t, err))
		}
		src := &source{target: t, c: c}
		sources = append(sources, src)
		if err := retry(ctx, log, cfg, c, t, src.discover); err != nil {
			return fail(fmt.Errorf("%s: %w", t, err))
		}
		if other, ok := devs[src.dev]; ok {
			return fail(configErrorf("--mdt '%s' and '%s' both serve %s", other, t, src.dev))
		}
		devs[src.dev] = t
		var registered bool
		err = retry(ctx, log, cfg, c, t, func(ctx context.Context) error {
			var err error
			registered, err = src.ensureUser(ctx, cfg.user, cfg.mask)
			return err
		})
		if err != nil {
			return fail(fmt.Errorf("%s: changelog user '%s': %w", src.dev, cfg.user, err))
		}
		if cfg.paths {
			src.paths = newResolver(c)
		}
		mask := src.mask
		if cfg.chain {
			mask = "every record (checkpoints on; the user's mask " + src.mask + " is not applied)"
		}
		log.Info("mdt", "target", t, "device", src.dev, "user", src.user, "registered", registered, "mask", mask, "cleared", uint64(src.start))
	}
	x := newExporter(cfg, log, met, sources, sinks)
	defer func() {
		for _, st := range x.sinks {
			if err := st.s.close(); err != nil {
				log.Warn("sink_close_failed", "sink", st.s.label(), "err", err)
			}
		}
	}()
	if err := x.openSinks(ctx); err != nil {
		return fail(err)
	}
	labels := make([]string, len(sinks))
	for i, s := range sinks {
		labels[i] = s.label() + " (" + s.format().name + ")"
	}
	log.Info("exporting", "mdts", len(sources), "sinks", strings.Join(labels, ", "))
	err = x.run(ctx)
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		log.Info("stopped")
		return exitOK
	}
	return fail(err)
}

// retry calls f until it succeeds, ctx ends, or it fails with something
// other than a server that is not there (yet): nothing listening, no
// socket file. A server that is there but refuses the connection (TLS
// handshake, a certificate it does not accept) ends the retries.
func retry(ctx context.Context, log *slog.Logger, cfg *config, c *client.Client, target string, f func(context.Context) error) error {
	backoff := cfg.minBackoff
	for {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := c.Err(f(cctx))
		cancel()
		var ce *client.ConnError
		if err == nil || ctx.Err() != nil || !errors.As(err, &ce) || ce.Errno != syscall.ECONNREFUSED {
			return err
		}
		log.Warn("mdt_unreachable", "target", target, "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, cfg.maxBackoff)
	}
}
