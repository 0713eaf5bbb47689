package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fidlog/fidlog/changelog"
)

// sink is one destination. The exporter drives it from one goroutine:
// write queues rendered events, commit makes them durable at the
// destination (or as durable as the protocol can say), reset drops what
// was written since the last commit after a failure.
type sink interface {
	// label names the sink in logs and metrics (its URL without query or
	// secrets).
	label() string
	// format is the sink's rendering; setFormat sets it once the URL is
	// checked.
	format() *format
	setFormat(f *format)
	// checkpoints reports whether the sink carries the hash chain's
	// checkpoints and anchor (checkpoints= in its URL).
	checkpoints() bool
	setCheckpoints(on bool)
	// open prepares the sink. It returns, per device, the highest index the
	// destination already holds and that must not be sent again (a file
	// sink reads its files back); nil if it cannot tell.
	open(ctx context.Context, devs []string) (map[string]changelog.Index, error)
	// write queues one event with its rendered line (no newline).
	write(ctx context.Context, e *event, line []byte) error
	// commit returns once everything written is acknowledged by the
	// destination: fsync for files, PubAck for JetStream, a flushed
	// connection for syslog.
	commit(ctx context.Context) error
	// reset forgets what was written since the last commit, after a
	// failed write or commit; the exporter writes it again.
	reset()
	// keepsLines reports whether the sink may read a line it was given
	// after the delivery that wrote it returned (a JetStream publish can
	// be retried by the client library); if not, the exporter renders the
	// next delivery into the same buffer.
	keepsLines() bool
	// close releases the sink after a last commit.
	close() error
}

// configError is a bad --sink, --mdt or flag value: exit code 2.
type configError struct{ msg string }

func (e *configError) Error() string { return e.msg }

func configErrorf(format string, args ...any) error {
	return &configError{msg: fmt.Sprintf(format, args...)}
}

// query reads a sink URL's parameters and remembers which were used, so
// unknown ones are refused.
type query struct {
	raw  string
	v    url.Values
	used map[string]bool
	errs []string
}

func newQuery(raw string, v url.Values) *query {
	return &query{raw: raw, v: v, used: map[string]bool{}}
}

func (q *query) str(key, def string) string {
	q.used[key] = true
	if vs, ok := q.v[key]; ok && len(vs) > 0 {
		return vs[len(vs)-1]
	}
	return def
}

func (q *query) duration(key string, def time.Duration) time.Duration {
	s := q.str(key, "")
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		q.errs = append(q.errs, fmt.Sprintf("%s=%s is not a duration (like 15m or 1h)", key, s))
		return def
	}
	return d
}

func (q *query) bool(key string, def bool) bool {
	s := q.str(key, "")
	if s == "" {
		return def
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		q.errs = append(q.errs, fmt.Sprintf("%s=%s is not true or false", key, s))
		return def
	}
	return b
}

// size reads a byte count: a number with an optional K, M, G (powers of
// 1024, optionally followed by "iB" or "B").
func (q *query) size(key string, def int64) int64 {
	s := q.str(key, "")
	if s == "" {
		return def
	}
	n, err := parseSize(s)
	if err != nil {
		q.errs = append(q.errs, fmt.Sprintf("%s=%s is not a size (like 64M or 1G)", key, s))
		return def
	}
	return n
}

func parseSize(s string) (int64, error) {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(s), "B"), "I")
	mul := int64(1)
	switch {
	case strings.HasSuffix(t, "K"):
		mul, t = 1<<10, t[:len(t)-1]
	case strings.HasSuffix(t, "M"):
		mul, t = 1<<20, t[:len(t)-1]
	case strings.HasSuffix(t, "G"):
		mul, t = 1<<30, t[:len(t)-1]
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 {
		return 0, errors.New("bad size")
	}
	return n * mul, nil
}

// done reports unknown parameters and bad values, all at once.
func (q *query) done() error {
	var unknown []string
	for k := range q.v {
		if !q.used[k] {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	errs := q.errs
	if len(unknown) > 0 {
		errs = append(errs, "unknown parameter "+strings.Join(unknown, ", "))
	}
	if len(errs) > 0 {
		return configErrorf("invalid sink '%s': %s", q.raw, strings.Join(errs, "; "))
	}
	return nil
}

// sinkEnv is what sinks get from the exporter.
type sinkEnv struct {
	logger *slog.Logger
}

// parseSink builds the sink a --sink URL describes, refusing unknown
// schemes, formats and parameters with a message naming the value.
func parseSink(raw string, env sinkEnv) (sink, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, configErrorf("invalid sink '%s': %v", raw, err)
	}
	q := newQuery(raw, u.Query())
	fname := q.str("format", "")
	var s sink
	switch u.Scheme {
	case "file":
		if fname == "" {
			fname = "ndjson"
		}
		s, err = newFileSink(raw, u, q, env)
	case "syslog", "syslog+udp", "syslog+tcp", "syslog+tls":
		if fname == "" {
			fname = "csv"
		}
		s, err = newSyslogSink(raw, u, q, env)
	case "nats":
		if fname == "" {
			fname = "ndjson"
		}
		s, err = newNATSSink(raw, u, q, env)
	case "":
		return nil, configErrorf("invalid sink '%s': no scheme (file://, syslog+udp://, syslog+tcp://, syslog+tls:// or nats://)", raw)
	default:
		return nil, configErrorf("invalid sink '%s': unknown scheme '%s' (file, syslog, syslog+udp, syslog+tcp, syslog+tls or nats; Kafka is not supported)", raw, u.Scheme)
	}
	if err != nil {
		return nil, err
	}
	f, ok := formats[fname]
	if !ok {
		return nil, configErrorf("invalid sink '%s': unknown format '%s' (%s)", raw, fname, formatNames)
	}
	ck := q.bool("checkpoints", f.appendChain != nil)
	if ck && f.appendChain == nil {
		q.errs = append(q.errs, fmt.Sprintf("checkpoints=true: format %s cannot carry the hash chain's checkpoints (its lines lack each record's hash and stored bytes, which verification needs); use format=ndjson", fname))
	}
	if err := q.done(); err != nil {
		return nil, err
	}
	s.setFormat(f)
	s.setCheckpoints(ck)
	return s, nil
}

// chainOpt is the checkpoints= setting every sink embeds.
type chainOpt struct{ on bool }

func (c *chainOpt) checkpoints() bool      { return c.on }
func (c *chainOpt) setCheckpoints(on bool) { c.on = on }

// checkpointHolder is a sink that reads back, at open, the sequence number
// of the last checkpoint it holds of each device and which devices' anchor
// it holds (a file sink), so that a restarted exporter does not write them
// twice.
type checkpointHolder interface {
	heldChain() (cks map[string]uint64, anchors map[string]bool)
}
