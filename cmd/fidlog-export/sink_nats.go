package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/fidlog/fidlog/changelog"
)

// natsSink publishes each record to a NATS JetStream stream, on subject
// <subject>.<fsname>.<target>.<TYPE> (fidlog.lustre.MDT0000.CREAT), with
// header Nats-Msg-Id "<device>:<index>" so the stream drops a record it
// already stored within its Duplicates window. commit waits for every
// PubAck; the exporter clears only after it.
type natsSink struct {
	chainOpt
	raw     string
	shown   string
	servers string
	stream  string
	subject string
	window  time.Duration
	timeout time.Duration
	opts    []nats.Option
	fmt     *format
	logger  *slog.Logger

	nc      *nats.Conn
	js      jetstream.JetStream
	ready   bool // the stream is known to exist with our window
	futures []jetstream.PubAckFuture
	dups    int // PubAcks of this commit the stream marked duplicate
}

// defaultDupeWindow is the Duplicates window the sink gives a stream it
// creates: far longer than an exporter restart.
const defaultDupeWindow = time.Hour

func newNATSSink(raw string, u *url.URL, q *query, env sinkEnv) (*natsSink, error) {
	if u.Host == "" {
		return nil, configErrorf("invalid sink '%s': nats:// needs host:port", raw)
	}
	var servers []string
	for _, h := range strings.Split(u.Host, ",") {
		if h == "" {
			return nil, configErrorf("invalid sink '%s': empty server in '%s'", raw, u.Host)
		}
		servers = append(servers, "nats://"+h)
	}
	s := &natsSink{
		raw:     raw,
		shown:   "nats://" + u.Host,
		servers: strings.Join(servers, ","),
		stream:  q.str("stream", "FIDLOG"),
		subject: q.str("subject", "fidlog"),
		window:  q.duration("dupe_window", defaultDupeWindow),
		timeout: q.duration("timeout", 10*time.Second),
		logger:  env.logger,
	}
	if s.stream == "" || strings.ContainsAny(s.stream, ".*> \t") {
		q.errs = append(q.errs, fmt.Sprintf("stream=%s is not a stream name", s.stream))
	}
	if s.subject == "" || strings.ContainsAny(s.subject, "*> \t") || strings.HasSuffix(s.subject, ".") {
		q.errs = append(q.errs, fmt.Sprintf("subject=%s is not a subject prefix", s.subject))
	}
	if s.window <= 0 {
		q.errs = append(q.errs, "dupe_window must be positive")
	}
	if s.timeout <= 0 {
		q.errs = append(q.errs, "timeout must be positive")
	}
	s.opts = []nats.Option{
		nats.Name("fidlog-export"),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
	}
	if u.User != nil {
		pw, _ := u.User.Password()
		s.opts = append(s.opts, nats.UserInfo(u.User.Username(), pw))
	}
	if ca := q.str("ca", ""); ca != "" {
		s.opts = append(s.opts, nats.RootCAs(ca))
	}
	cert, key := q.str("cert", ""), q.str("key", "")
	if (cert == "") != (key == "") {
		q.errs = append(q.errs, "cert and key go together")
	} else if cert != "" {
		s.opts = append(s.opts, nats.ClientCert(cert, key))
	}
	if creds := q.str("creds", ""); creds != "" {
		s.opts = append(s.opts, nats.UserCredentials(creds))
	}
	return s, nil
}

func (s *natsSink) label() string       { return s.shown }
func (s *natsSink) format() *format     { return s.fmt }
func (s *natsSink) setFormat(f *format) { s.fmt = f }

func (s *natsSink) open(ctx context.Context, _ []string) (map[string]changelog.Index, error) {
	nc, err := nats.Connect(s.servers, s.opts...)
	if err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(8192), jetstream.WithPublishAsyncTimeout(s.timeout))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("nats: %w", err)
	}
	s.nc, s.js = nc, js
	// The stream deduplicates what a restarted exporter sends again.
	return nil, nil
}

// ensureStream creates the stream, or widens an existing stream's
// Duplicates window to ours.
func (s *natsSink) ensureStream(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	st, err := s.js.Stream(ctx, s.stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		_, err = s.js.CreateStream(ctx, jetstream.StreamConfig{
			Name:       s.stream,
			Subjects:   []string{s.subject + ".>"},
			Storage:    jetstream.FileStorage,
			Duplicates: s.window,
		})
		if err != nil {
			return fmt.Errorf("nats: creating stream %s: %w", s.stream, err)
		}
		s.logger.Info("nats_stream_created", "stream", s.stream, "subjects", s.subject+".>", "duplicates", s.window)
		s.ready = true
		return nil
	}
	if err != nil {
		return fmt.Errorf("nats: stream %s: %w", s.stream, err)
	}
	cfg := st.CachedInfo().Config
	if cfg.Duplicates < s.window {
		old := cfg.Duplicates
		cfg.Duplicates = s.window
		if _, err := s.js.UpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("nats: widening stream %s's Duplicates window from %v to %v: %w", s.stream, old, s.window, err)
		}
		s.logger.Info("nats_stream_window", "stream", s.stream, "duplicates", s.window, "was", old)
	}
	s.ready = true
	return nil
}

// natsSubject is the subject of e under prefix: the record type's, or
// CHECKPOINT and ANCHOR for the hash chain's evidence.
func natsSubject(prefix string, e *event) string {
	last := "ANCHOR"
	switch {
	case e.isRecord():
		last = e.rec.Type.String()
	case e.ck != nil:
		last = "CHECKPOINT"
	}
	return prefix + "." + fsName(e.dev) + "." + targetName(e.dev) + "." + last
}

// natsMsgID is the Nats-Msg-Id of e: "<device>:<index>" for a record,
// "<device>:checkpoint:<seq>" and "<device>:anchor:<index>" otherwise.
func natsMsgID(e *event) string {
	switch {
	case e.isRecord():
		return e.dev + ":" + strconv.FormatUint(uint64(e.rec.Index), 10)
	case e.ck != nil:
		return e.dev + ":checkpoint:" + strconv.FormatUint(e.ck.Seq, 10)
	}
	return e.dev + ":anchor:" + strconv.FormatUint(uint64(e.anchor.Index), 10)
}

func (s *natsSink) write(ctx context.Context, e *event, line []byte) error {
	if !s.ready {
		if err := s.ensureStream(ctx); err != nil {
			return err
		}
	}
	m := nats.NewMsg(natsSubject(s.subject, e))
	m.Data = line
	f, err := s.js.PublishMsgAsync(m, jetstream.WithMsgID(natsMsgID(e)))
	if err != nil {
		return fmt.Errorf("nats: publish: %w", err)
	}
	s.futures = append(s.futures, f)
	return nil
}

func (s *natsSink) commit(ctx context.Context) error {
	if len(s.futures) == 0 {
		return nil
	}
	t := time.NewTimer(s.timeout + time.Second)
	defer t.Stop()
	dups := 0
	for _, f := range s.futures {
		select {
		case ack := <-f.Ok():
			if ack.Duplicate {
				dups++
			}
		case err := <-f.Err():
			return fmt.Errorf("nats: no PubAck for %s: %w", f.Msg().Header.Get(jetstream.MsgIDHeader), err)
		case <-t.C:
			return fmt.Errorf("nats: no PubAck within %v", s.timeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if dups > 0 {
		s.logger.Info("nats_duplicates_dropped", "stream", s.stream, "records", dups)
	}
	s.futures = s.futures[:0]
	return nil
}

func (s *natsSink) reset() {
	s.futures = s.futures[:0]
	s.ready = false
}

func (s *natsSink) close() error {
	if s.nc != nil {
		s.nc.Close()
	}
	return nil
}

// keepsLines: a published message holds its line as its data until
// nats.go is done with it, which may be after a failed commit.
func (s *natsSink) keepsLines() bool { return true }
