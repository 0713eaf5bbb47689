// Command mdtd serves one MDT: the namespace, its changelog, the parameter
// tree and nodemaps over gRPC, on a unix socket and, for authenticated
// nodes, on a TCP address.
//
//	mdtd [--fsname lustre] [--index 0] [--data ./mdt-data]
//	     [--socket /run/fidlog/mdtd.sock] [--socket-mode 0666]
//	     [--listen ADDR (--tls-cert FILE --tls-key FILE --tls-client-ca FILE | --insecure)]
//	     [--metrics ADDR] [--log-level info] [--log-format text] [--heartbeat 5s]
//	     [--namespace-cache 262144]
//	     [--config FILE] [--print-config]
//	mdtd certs ca|node|client [--dir certs] ...
//
// On the socket the kernel says who each caller is (SO_PEERCRED); TCP
// serves only clients with a certificate from --tls-client-ca, or anyone
// with --insecure. On start it logs one line with msg=serving and the real
// addresses (device=, tcp=, socket=, metrics=); SIGINT or SIGTERM drains
// follow streams, stops gracefully and exits 0.
//
// Every flag can also come from the environment (MDTD_<FLAG>, e.g.
// MDTD_LOG_LEVEL) and from a TOML file (--config or MDTD_CONFIG; keys are
// the flag names): flags over environment over file; --print-config shows
// the result. Under systemd (Type=notify, dist/systemd/mdtd.service) it
// sends READY=1 once it serves and STOPPING=1 when it drains. The metrics
// listener also serves a status page at "/" (status.go).
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"

	"github.com/fidlog/fidlog/api"
	"github.com/fidlog/fidlog/api/client"
	"github.com/fidlog/fidlog/changelog"
	"github.com/fidlog/fidlog/changelog/store"
	"github.com/fidlog/fidlog/cmd/internal/cli"
	"github.com/fidlog/fidlog/cmd/internal/gctune"
	"github.com/fidlog/fidlog/mdt"
)

// DefaultSocketMode is the mode of the unix socket: every local user may
// connect, and the kernel tells the server who they are.
const DefaultSocketMode = 0o666

// maxSocketPath is the longest unix socket path Linux accepts
// (sizeof(sun_path) - 1).
const maxSocketPath = 107

// Exit codes. A fatal storage error exits with mdt.ExitStorageFailure (74).
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

func main() {
	gctune.Apply()
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run runs mdtd until SIGINT or SIGTERM and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return runContext(ctx, args, stdout, stderr)
}

// runContext runs mdtd until ctx ends.
func runContext(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd, cfg := newRootCmd(stdout, stderr)
	cmd.SetArgs(args)
	var ran bool
	cmd.AddCommand(newCertsCmd(stdout, &ran))
	addExamples(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if cfg.printConfig {
			return printConfig(stdout, cmd.Flags(), cfg.configFile, cfg.sources)
		}
		ran = true
		return serve(ctx, cfg, stderr)
	}
	if err := cmd.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(stderr, "mdtd: %v\n", err)
		if !ran {
			fmt.Fprintln(stderr, "Run 'mdtd --help' for usage.")
			return exitUsage
		}
		return exitError
	}
	return exitOK
}

// config holds the command line.
type config struct {
	fsname     string
	index      uint32
	data       string
	listen     string
	socket     string
	metrics    string
	socketMode string
	tlsCert    string
	tlsKey     string
	tlsCA      string
	insecure   bool
	logLevel   string
	logFormat  string
	heartbeat  time.Duration
	nsCache    int
	ballast    string

	configFile  string // --config (or MDTD_CONFIG): TOML settings
	printConfig bool   // --print-config
	// sources says where each setting came from (applyConfig).
	sources map[string]settingSource
}

func newRootCmd(stdout, stderr io.Writer) (*cobra.Command, *config) {
	cfg := &config{}
	cmd := &cobra.Command{
		Use:   "mdtd",
		Short: "Serve one MDT (namespace, changelog, parameters, nodemaps) over gRPC",
		Long: `mdtd serves the MDT <fsname>-MDT<index as 4 hex digits> from an embedded
Pebble store in --data.

It always serves a unix socket (--socket; default ` + client.DefaultSocket + `, or
` + client.FallbackSocket + ` when that cannot be created, e.g. not run as root;
the clients look in both places). The kernel tells the server who each
caller is: a user acts as itself, root is the local administrator.

TCP (--listen) serves only nodes that present a certificate signed by
--tls-client-ca (mutual TLS with --tls-cert and --tls-key; "mdtd certs"
makes them), or, with --insecure, anyone in plain text claiming any
identity. A bare "mdtd" serves the socket only.`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	f := cmd.Flags()
	f.StringVar(&cfg.fsname, "fsname", "lustre", "file system name (at most 8 characters)")
	f.Var(cli.NewUint32Value(&cfg.index, 0), "index", "MDT index")
	f.StringVar(&cfg.data, "data", "./mdt-data", "data directory (Pebble store)")
	f.StringVar(&cfg.listen, "listen", "", "TCP address to serve on (port 0: any free port); needs --tls-cert, --tls-key and --tls-client-ca, or --insecure (default: no TCP)")
	f.StringVar(&cfg.socket, "socket", "", "unix socket path (default "+client.DefaultSocket+", else "+client.FallbackSocket+"); \"none\": no socket")
	f.StringVar(&cfg.socketMode, "socket-mode", fmt.Sprintf("%#o", DefaultSocketMode), "permissions of the unix socket (octal)")
	f.StringVar(&cfg.metrics, "metrics", "", "address for Prometheus metrics on /metrics (default off)")
	f.StringVar(&cfg.tlsCert, "tls-cert", "", "server certificate (PEM) for the TCP listener")
	f.StringVar(&cfg.tlsKey, "tls-key", "", "server key (PEM) for the TCP listener")
	f.StringVar(&cfg.tlsCA, "tls-client-ca", "", "CA certificate (PEM): TCP clients must present a certificate it signed")
	f.BoolVar(&cfg.insecure, "insecure", false, "serve TCP in plain text: any client may claim any identity")
	f.StringVar(&cfg.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.StringVar(&cfg.logFormat, "log-format", "text", "log format: text or json")
	f.DurationVar(&cfg.heartbeat, "heartbeat", api.DefaultHeartbeatInterval, "heartbeat interval of idle follow streams")
	f.IntVar(&cfg.nsCache, "namespace-cache", mdt.DefaultNamespaceCacheEntries, "inodes and directory entries kept in memory (up to this many of each, about 250 bytes per pair when full); 0: no cache, every lookup reads the store")
	f.StringVar(&cfg.ballast, "ballast-size", "128M", "emergency ballast: bytes kept allocated in --data (file "+ballastName+"), deleted at a start that finds less free space than that, so that mdtd can start on a full disk and the consumer that filled it can be cleared; allocated again once twice its size is free; with less than twice its size free and at least its size in records, space GC evicts the consumer that lags most; 0: none")
	f.StringVar(&cfg.configFile, "config", "", "TOML file of settings, keys named as these flags (env "+EnvPrefix+"CONFIG); every flag can also come from "+EnvPrefix+"<FLAG> (MDTD_LOG_LEVEL); flags > environment > file")
	f.BoolVar(&cfg.printConfig, "print-config", false, "print the effective settings as a TOML config file and exit")
	cmd.PreRunE = func(cmd *cobra.Command, _ []string) error {
		if v, ok := os.LookupEnv(EnvPrefix + "CONFIG"); ok && !cmd.Flags().Changed("config") {
			cfg.configFile = v
		}
		src, err := applyConfig(cmd.Flags(), cfg.configFile, os.LookupEnv)
		cfg.sources = src
		return err
	}
	_ = cmd.RegisterFlagCompletionFunc("log-level", cobra.FixedCompletions([]string{"debug", "info", "warn", "error"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("log-format", cobra.FixedCompletions([]string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd, cfg
}

func newLogger(cfg *config, w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(cfg.logLevel)); err != nil {
		return nil, fmt.Errorf("invalid --log-level '%s': want debug, info, warn or error", cfg.logLevel)
	}
	o := &slog.HandlerOptions{Level: lvl}
	switch cfg.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(w, o)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, o)), nil
	}
	return nil, fmt.Errorf("invalid --log-format '%s': want text or json", cfg.logFormat)
}

// listenUnix listens on path with mode, replacing a stale socket but
// nothing else.
func listenUnix(path string, mode os.FileMode) (net.Listener, error) {
	if len(path) > maxSocketPath {
		return nil, fmt.Errorf("socket path '%s' is %d bytes, longer than the %d-byte limit of unix sockets; use --socket with a shorter path", path, len(path), maxSocketPath)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("socket path '%s' exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			_ = c.Close() // a probe: nothing was sent
			return nil, fmt.Errorf("socket '%s' is in use by another server", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("removing stale socket: %w", err)
		}
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, mode); err != nil {
		return nil, errors.Join(err, l.Close())
	}
	return l, nil
}

// nsCacheEntries maps --namespace-cache to mdt.Options, where 0 is the
// default and negative turns the cache off.
func nsCacheEntries(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

func serve(ctx context.Context, cfg *config, logw io.Writer) (err error) {
	log, err := newLogger(cfg, logw)
	if err != nil {
		return err
	}
	tlsCfg, err := serverTLS(cfg)
	if err != nil {
		return err
	}
	if cfg.listen == "" && cfg.socket == "none" {
		return errors.New("nothing to serve on: no --listen and --socket is none")
	}
	if cfg.nsCache < 0 {
		return fmt.Errorf("invalid --namespace-cache '%d': want 0 (no cache) or a positive number of entries", cfg.nsCache)
	}
	ballastSize, err := parseSize(cfg.ballast)
	if err != nil {
		return fmt.Errorf("--ballast-size: %w", err)
	}
	mode, err := cli.ParseOctal(cfg.socketMode, 0o777)
	if err != nil {
		return fmt.Errorf("invalid --socket-mode '%s': want octal permissions such as 0666 or 0660", cfg.socketMode)
	}
	dd, err := prepareDataDir(cfg.data)
	if err != nil {
		return err
	}
	served := false
	defer func() {
		if err != nil && !served {
			dd.undo() // a failed start leaves no half-made data directory
		}
	}()
	if h := lockHolder(cfg.data); h != nil {
		return h
	}
	sock := cfg.socket
	if sock == "" {
		sock = defaultSocket()
	}
	bl := newBallast(cfg.data, ballastSize, log)
	bl.atStart()

	met := newMetrics()
	m, err := openMDT(ctx, cfg.data, log, &mdt.Options{
		FSName: cfg.fsname, Index: cfg.index, Logger: log,
		NamespaceCacheEntries: nsCacheEntries(cfg.nsCache),
		FS:                    met.fs(),
		ChangelogEvents:       changelogEvents(log, met),
		// A fatal storage error (logged by mdt as pebble_fatal) ends the
		// process: no operation is acknowledged after it, acknowledged
		// ones are durable, and a restart recovers from the WAL. The
		// failing goroutine may hold the changelog's lock, so there is no
		// graceful drain; clients see the connection close.
		OnFatal: func(ferr error) {
			log.Error("storage_failure_exit", "err", ferr, "status", mdt.ExitStorageFailure)
			if sock != "none" {
				_ = os.Remove(sock)
			}
			os.Exit(mdt.ExitStorageFailure)
		},
		// The checkpoint signing key, created on first start.
		ChangelogKeyFile: filepath.Join(cfg.data, "changelog.key"),
		// A disk nearly full of records evicts their laggard (space GC).
		ChangelogDiskLow:         bl.low,
		ChangelogDiskLowMinBytes: uint64(ballastSize),
	})
	if err != nil {
		if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EACCES) {
			if h := lockHolder(cfg.data); h != nil {
				return h
			}
			return &HeldError{Dir: cfg.data}
		}
		return fmt.Errorf("opening MDT in %s: %w", cfg.data, err)
	}
	defer func() {
		if cerr := m.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	srv, err := api.New(m, api.Options{Logger: log, HeartbeatInterval: cfg.heartbeat, TLS: tlsCfg, Insecure: cfg.insecure, OnRPC: met.onRPC, UnaryInterceptors: met.unaryInterceptors(), ServerOptions: met.serverOptions()})
	if err != nil {
		return err
	}
	met.register(m, srv)

	var lis []net.Listener
	closeAll := func() {
		srv.Stop() // its handler goroutines (stream workers) end
		for _, l := range lis {
			_ = l.Close() // after Stop or a failed start; the server owns no state in them
		}
	}
	attrs := []any{"device", m.Device()}
	if cfg.listen != "" {
		l, err := net.Listen("tcp", cfg.listen)
		if err != nil {
			closeAll()
			return err
		}
		lis = append(lis, l)
		attrs = append(attrs, "tcp", l.Addr().String())
	}
	if sock != "none" {
		l, err := listenUnix(sock, os.FileMode(mode))
		if err != nil {
			closeAll()
			return err
		}
		lis = append(lis, l)
		shown := sock
		if abs, err := filepath.Abs(sock); err == nil {
			shown = abs
		}
		attrs = append(attrs, "socket", shown)
	}
	var hs *http.Server
	var ml net.Listener
	if cfg.metrics != "" {
		if ml, err = net.Listen("tcp", cfg.metrics); err != nil {
			closeAll()
			return err
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(met.reg, promhttp.HandlerOpts{Registry: met.reg}))
		status := newStatusPage(m, time.Now)
		defer status.Close()
		mux.Handle("/", status)
		hs = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		attrs = append(attrs, "metrics", ml.Addr().String())
	}
	switch {
	case tlsCfg != nil:
		attrs = append(attrs, "tls", "mutual")
	case cfg.insecure && cfg.listen != "":
		attrs = append(attrs, "tls", "none")
	}
	met.insecureTCP(cfg.insecure && cfg.listen != "")

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { bl.keep(gctx); return nil })
	for _, l := range lis {
		g.Go(func() error {
			// A stop that came before this Serve began (a SIGTERM
			// right after the serving line) is a stop, not a failure.
			if err := srv.Serve(l); !errors.Is(err, grpc.ErrServerStopped) {
				return err
			}
			return nil
		})
	}
	if hs != nil {
		g.Go(func() error {
			if err := hs.Serve(ml); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
	}
	served = true
	log.Info("serving", attrs...)
	if cfg.insecure && cfg.listen != "" {
		log.Warn("insecure_tcp", "risk", "--insecure: TCP clients are not authenticated; any of them may claim any uid, root included, and read, clear or deregister the changelog")
	}
	sd := newNotifier()
	if err := sd.notify("READY=1", "STATUS=serving "+m.Device(), fmt.Sprintf("MAINPID=%d", os.Getpid())); err != nil {
		log.Warn("sd_notify", "err", err)
	}
	g.Go(func() error {
		<-gctx.Done()
		log.Info("shutting_down", "streams", srv.Streams())
		if err := sd.notify("STOPPING=1", "STATUS=shutting down"); err != nil {
			log.Warn("sd_notify", "err", err)
		}
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		if hs != nil {
			_ = hs.Shutdown(sctx)
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return err
	}
	if sock != "none" {
		_ = os.Remove(sock)
	}
	log.Info("stopped")
	return nil
}

// openStopGrace is how long a stop waits for an open in progress before
// mdtd gives up on it.
const openStopGrace = 5 * time.Second

// testMDTOptions, when a test sets it, changes the MDT's options before
// the open (a storage fault under the real command).
var testMDTOptions func(*mdt.Options)

// openMDT opens the MDT in dir unless ctx ends first (SIGINT, SIGTERM):
// an open that cannot finish (a storage failure Pebble retries) must not
// make mdtd deaf to a stop. An MDT that opens after that is closed again.
func openMDT(ctx context.Context, dir string, log *slog.Logger, o *mdt.Options) (*mdt.MDT, error) {
	if testMDTOptions != nil {
		testMDTOptions(o)
	}
	type opened struct {
		m   *mdt.MDT
		err error
	}
	c := make(chan opened, 1)
	go func() {
		m, err := mdt.Open(dir, o)
		c <- opened{m, err}
	}()
	select {
	case r := <-c:
		return r.m, r.err
	case <-ctx.Done():
	}
	// A stop during a normal open waits for it (the rest of the start
	// then ends as it does after a stop).
	select {
	case r := <-c:
		return r.m, r.err
	case <-time.After(openStopGrace):
		go func() {
			if r := <-c; r.m != nil {
				_ = r.m.Close()
			}
		}()
		log.Warn("open_interrupted", "data", dir)
		return nil, fmt.Errorf("stopped while opening the MDT in %s", dir)
	}
}

// serverTLS checks the TCP flags and builds the mutual TLS configuration
// (nil for no TLS).
func serverTLS(cfg *config) (*tls.Config, error) {
	n := 0
	for _, f := range []string{cfg.tlsCert, cfg.tlsKey, cfg.tlsCA} {
		if f != "" {
			n++
		}
	}
	switch {
	case n > 0 && cfg.insecure:
		return nil, errors.New("--insecure and --tls-cert/--tls-key/--tls-client-ca exclude each other")
	case n > 0 && n < 3:
		return nil, errors.New("mutual TLS needs all of --tls-cert, --tls-key and --tls-client-ca")
	case n > 0 && cfg.listen == "":
		return nil, errors.New("--tls-cert, --tls-key and --tls-client-ca secure the TCP listener: give --listen too")
	case n == 0 && cfg.listen != "" && !cfg.insecure:
		return nil, fmt.Errorf("--listen %s: TCP needs mutual TLS (--tls-cert FILE --tls-key FILE --tls-client-ca FILE; \"mdtd certs\" makes them) or --insecure for plain text where anyone may claim any identity", cfg.listen)
	case n == 0:
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(cfg.tlsCert, cfg.tlsKey)
	if err != nil {
		return nil, fmt.Errorf("loading TLS key pair: %w", err)
	}
	pem, err := os.ReadFile(cfg.tlsCA)
	if err != nil {
		return nil, fmt.Errorf("--tls-client-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--tls-client-ca '%s' holds no PEM certificate", cfg.tlsCA)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		MinVersion:   tls.VersionTLS12,
	}, nil
}

// defaultSocket is client.DefaultSocket if its directory can be made and
// written (root), else client.FallbackSocket.
func defaultSocket() string {
	dir := filepath.Dir(client.DefaultSocket)
	if err := os.MkdirAll(dir, 0o755); err == nil && unix.Access(dir, unix.W_OK|unix.X_OK) == nil {
		return client.DefaultSocket
	}
	return client.FallbackSocket
}

// changelogEvents turns changelog events into logs and metrics. They make
// no call back into the log (most run with its lock held).
func changelogEvents(log *slog.Logger, met *metrics) store.EventListener {
	return store.EventListener{
		UserRegistered: func(u changelog.User) {
			log.Info("changelog_user_registered", "user", u.DisplayName(), "index", uint64(u.Index), "mask", u.Mask.String())
		},
		UserDeregistered: func(u changelog.User) {
			log.Info("changelog_user_deregistered", "user", u.DisplayName(), "index", uint64(u.Index))
		},
		UserEvicted: func(u changelog.User, reason string, unprocessed uint64) {
			met.evicted.WithLabelValues(reason).Inc()
		},
		Purged: func(from, to changelog.Index) {
			log.Debug("changelog_purged", "from", uint64(from), "to", uint64(to))
			met.purged.Add(float64(to - from + 1))
		},
		Appended: func(recs []*changelog.Record) {
			for _, r := range recs {
				met.appended.WithLabelValues(r.Type.String()).Inc()
			}
		},
		WriteError: func(err error) {
			log.Error("changelog_write_error", "err", err)
		},
		Checkpointed: func(c *changelog.Checkpoint) {
			met.checkpoints.WithLabelValues(c.Kind.String()).Inc()
			met.ckIndex.Set(float64(c.Index))
			log.Debug("changelog_checkpoint", "seq", c.Seq, "index", uint64(c.Index), "kind", c.Kind.String())
		},
	}
}

// mutating lists the RPCs whose latency is the commit latency.
func mutating(method string) bool {
	i := strings.LastIndexByte(method, '/')
	switch method[i+1:] {
	case "Mkdir", "Create", "Mknod", "Link", "Symlink", "Unlink", "Rmdir", "Rename",
		"Open", "Close", "Setattr", "Setxattr", "Removexattr", "Register", "Deregister", "Clear":
		return true
	}
	return false
}
