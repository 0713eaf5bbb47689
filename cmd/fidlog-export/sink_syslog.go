package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/fidlog/fidlog/changelog"
)

// syslogSink sends each record as an RFC 5424 message:
//
//	<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [fidlog@32473 device="D" index="N"] LINE
//
// MSGID is the record type, TIMESTAMP the record's time (UTC,
// microseconds), LINE the record in the sink's format. Over UDP one
// datagram per message; over TCP and TLS (RFC 5425) octet counting
// ("LEN SP MSG", RFC 6587). Syslog has no acknowledgement: commit flushes
// the connection and checks that the server has not closed it, so over TCP
// and TLS delivery is at least once; over UDP it is best effort.
type syslogSink struct {
	chainOpt
	raw      string
	shown    string
	network  string // "udp", "tcp" or "tls"
	addr     string
	app      string
	hostname string
	facility int
	severity int
	tls      *tls.Config
	timeout  time.Duration
	fmt      *format
	logger   *slog.Logger
	procid   string

	conn net.Conn
	w    *bufio.Writer
	msg  []byte
}

// sdID is the structured data element of each message (32473 is the
// private enterprise number RFC 5612 reserves for examples).
const sdID = "fidlog@32473"

var syslogFacilities = map[string]int{
	"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
	"uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, "ntp": 12, "audit": 13, "alert": 14, "clock": 15,
	"local0": 16, "local1": 17, "local2": 18, "local3": 19, "local4": 20, "local5": 21, "local6": 22, "local7": 23,
}

var syslogSeverities = map[string]int{
	"emerg": 0, "alert": 1, "crit": 2, "err": 3, "warning": 4, "notice": 5, "info": 6, "debug": 7,
}

func newSyslogSink(raw string, u *url.URL, q *query, env sinkEnv) (*syslogSink, error) {
	network := strings.TrimPrefix(strings.TrimPrefix(u.Scheme, "syslog"), "+")
	if network == "" {
		network = "udp"
	}
	if _, _, err := net.SplitHostPort(u.Host); err != nil || u.Hostname() == "" || u.Port() == "" {
		return nil, configErrorf("invalid sink '%s': syslog needs host:port", raw)
	}
	if u.Path != "" && u.Path != "/" {
		return nil, configErrorf("invalid sink '%s': syslog takes no path", raw)
	}
	host, _ := os.Hostname()
	s := &syslogSink{
		raw:      raw,
		shown:    u.Scheme + "://" + u.Host,
		network:  network,
		addr:     u.Host,
		app:      q.str("app", "fidlog"),
		hostname: q.str("hostname", host),
		timeout:  q.duration("timeout", 10*time.Second),
		logger:   env.logger,
		procid:   strconv.Itoa(os.Getpid()),
	}
	if s.hostname == "" {
		s.hostname = "-"
	}
	if !printUSASCII(s.app, 48) {
		q.errs = append(q.errs, fmt.Sprintf("app=%s is not 1 to 48 printable ASCII characters", s.app))
	}
	if !printUSASCII(s.hostname, 255) {
		q.errs = append(q.errs, fmt.Sprintf("hostname=%s is not 1 to 255 printable ASCII characters", s.hostname))
	}
	fac := q.str("facility", "audit")
	var ok bool
	if s.facility, ok = syslogFacilities[fac]; !ok {
		q.errs = append(q.errs, fmt.Sprintf("facility=%s is not a syslog facility (audit, local0..local7, ...)", fac))
	}
	sev := q.str("severity", "info")
	if s.severity, ok = syslogSeverities[sev]; !ok {
		q.errs = append(q.errs, fmt.Sprintf("severity=%s is not a syslog severity (info, notice, ...)", sev))
	}
	ca, cert, key := q.str("ca", ""), q.str("cert", ""), q.str("key", "")
	serverName := q.str("server_name", u.Hostname())
	if network == "tls" {
		c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
		if ca != "" {
			pem, err := os.ReadFile(ca)
			if err != nil {
				return nil, configErrorf("invalid sink '%s': ca: %v", raw, err)
			}
			c.RootCAs = x509.NewCertPool()
			if !c.RootCAs.AppendCertsFromPEM(pem) {
				return nil, configErrorf("invalid sink '%s': ca '%s' holds no PEM certificate", raw, ca)
			}
		}
		if (cert == "") != (key == "") {
			q.errs = append(q.errs, "cert and key go together")
		} else if cert != "" {
			kp, err := tls.LoadX509KeyPair(cert, key)
			if err != nil {
				return nil, configErrorf("invalid sink '%s': cert/key: %v", raw, err)
			}
			c.Certificates = []tls.Certificate{kp}
		}
		s.tls = c
	} else if ca != "" || cert != "" || key != "" {
		q.errs = append(q.errs, "ca, cert and key need syslog+tls://")
	}
	if network != "udp" && network != "tcp" && network != "tls" {
		return nil, configErrorf("invalid sink '%s': unknown scheme '%s'", raw, u.Scheme)
	}
	return s, nil
}

func printUSASCII(s string, n int) bool {
	if len(s) == 0 || len(s) > n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 33 || s[i] > 126 {
			return false
		}
	}
	return true
}

func (s *syslogSink) label() string       { return s.shown }
func (s *syslogSink) format() *format     { return s.fmt }
func (s *syslogSink) setFormat(f *format) { s.fmt = f }

// open connects lazily (at the first write): a server that is down is
// retried like any failed delivery. Syslog cannot say what it holds.
func (s *syslogSink) open(context.Context, []string) (map[string]changelog.Index, error) {
	return nil, nil
}

func (s *syslogSink) dial(ctx context.Context) error {
	d := &net.Dialer{Timeout: s.timeout}
	var (
		c   net.Conn
		err error
	)
	switch s.network {
	case "tls":
		cfg := s.tls.Clone()
		ticket := &ticketSignal{}
		cfg.ClientSessionCache = ticket
		td := &tls.Dialer{NetDialer: d, Config: cfg}
		c, err = td.DialContext(ctx, "tcp", s.addr)
		if err == nil {
			if err = awaitVerdict(c.(*tls.Conn), ticket, tlsVerdictWait); err != nil {
				c.Close()
				err = fmt.Errorf("connection to %s refused after the handshake: %w", s.addr, err)
			}
		}
	default:
		c, err = d.DialContext(ctx, s.network, s.addr)
	}
	if err != nil {
		return fmt.Errorf("syslog: %w", err)
	}
	s.conn = c
	if s.w == nil {
		s.w = bufio.NewWriterSize(c, 64<<10)
	} else {
		s.w.Reset(c)
	}
	return nil
}

// appendMessage appends e's RFC 5424 message with line as its MSG.
func (s *syslogSink) appendMessage(b []byte, e *event, line []byte) []byte {
	if !e.isRecord() {
		return s.appendChainMessage(b, e, line)
	}
	b = s.appendHeader(b, &e.rec.Time, e.rec.Type.String())
	b = append(b, " ["+sdID+" device=\""...)
	b = appendSDValue(b, e.dev)
	b = append(b, "\" index=\""...)
	b = strconv.AppendUint(b, uint64(e.rec.Index), 10)
	b = append(b, "\"] "...)
	return append(b, line...)
}

// Structured data IDs of the hash chain's messages.
const (
	sdCheckpoint = "fidlogCheckpoint@32473"
	sdAnchor     = "fidlogAnchor@32473"
)

// appendChainMessage appends the message of a checkpoint (MSGID
// CHECKPOINT, TIMESTAMP the checkpoint's time) or of the chain's anchor
// (MSGID ANCHOR, no timestamp): the device, then what the checkpoint signs
// as structured data of its own, then line (the ndjson checkpoint line,
// which the offline verifier reads) as MSG:
//
//	... CHECKPOINT [fidlog@32473 device="D"][fidlogCheckpoint@32473 seq="1" index="3" position="4" hash="..." kind="periodic" signer="ed25519:..." signature="..."] {"device":...}
func (s *syslogSink) appendChainMessage(b []byte, e *event, line []byte) []byte {
	if e.ck != nil {
		b = s.appendHeader(b, &e.ck.Time, "CHECKPOINT")
	} else {
		b = s.appendHeader(b, nil, "ANCHOR")
	}
	b = append(b, " ["+sdID+" device=\""...)
	b = appendSDValue(b, e.dev)
	b = append(b, "\"]"...)
	if c := e.ck; c != nil {
		j := c.JSON()
		b = append(b, "["+sdCheckpoint+" seq=\""...)
		b = strconv.AppendUint(b, c.Seq, 10)
		b = append(b, "\" index=\""...)
		b = strconv.AppendUint(b, uint64(c.Index), 10)
		b = append(b, "\" position=\""...)
		b = strconv.AppendUint(b, uint64(c.Position), 10)
		b = append(b, "\" hash=\""...)
		b = append(b, j.Hash...)
		b = append(b, "\" kind=\""...)
		b = append(b, j.Kind...)
		b = append(b, "\" signer=\""...)
		b = append(b, j.Signer...)
		if j.NextKey != "" {
			b = append(b, "\" next_key=\""...)
			b = append(b, j.NextKey...)
		}
		b = append(b, "\" signature=\""...)
		b = append(b, j.Signature...)
		b = append(b, "\"]"...)
	} else {
		b = append(b, "["+sdAnchor+" index=\""...)
		b = strconv.AppendUint(b, uint64(e.anchor.Index), 10)
		b = append(b, "\" hash=\""...)
		b = append(b, e.anchor.Hash.String()...)
		b = append(b, "\"]"...)
	}
	b = append(b, ' ')
	return append(b, line...)
}

// appendHeader appends the RFC 5424 header up to the MSGID: PRI, VERSION,
// TIMESTAMP (the NILVALUE "-" for a nil t), HOSTNAME, APP-NAME, PROCID
// and msgid.
func (s *syslogSink) appendHeader(b []byte, t *time.Time, msgid string) []byte {
	b = append(b, '<')
	b = strconv.AppendInt(b, int64(s.facility*8+s.severity), 10)
	b = append(b, ">1 "...)
	if t == nil {
		b = append(b, '-')
	} else {
		b = t.UTC().AppendFormat(b, "2006-01-02T15:04:05.000000Z")
	}
	b = append(b, ' ')
	b = append(b, s.hostname...)
	b = append(b, ' ')
	b = append(b, s.app...)
	b = append(b, ' ')
	b = append(b, s.procid...)
	b = append(b, ' ')
	return append(b, msgid...)
}

// appendSDValue escapes '"', '\' and ']' as RFC 5424 requires.
func appendSDValue(b []byte, v string) []byte {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == '"' || c == '\\' || c == ']' {
			b = append(b, '\\')
		}
		b = append(b, v[i])
	}
	return b
}

func (s *syslogSink) write(ctx context.Context, e *event, line []byte) error {
	if s.conn == nil {
		if err := s.dial(ctx); err != nil {
			return err
		}
	}
	s.msg = s.appendMessage(s.msg[:0], e, line)
	if s.network == "udp" {
		_, err := s.conn.Write(s.msg)
		return err
	}
	s.w.WriteString(strconv.Itoa(len(s.msg)))
	s.w.WriteByte(' ')
	_, err := s.w.Write(s.msg)
	return err
}

// commit flushes the stream and checks that the server did not close it
// (a syslog server never writes, so a read that does not time out means
// the connection is gone and what was sent may be lost).
func (s *syslogSink) commit(context.Context) error {
	if s.conn == nil || s.network == "udp" {
		return nil
	}
	_ = s.conn.SetWriteDeadline(time.Now().Add(s.timeout))
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("syslog: %w", err)
	}
	_ = s.conn.SetReadDeadline(time.Now().Add(time.Millisecond))
	var one [1]byte
	_, err := s.conn.Read(one[:])
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return nil
	}
	if err == nil {
		err = errors.New("server sent data")
	}
	return fmt.Errorf("syslog: connection to %s lost: %w", s.addr, err)
}

func (s *syslogSink) reset() {
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
}

func (s *syslogSink) close() error {
	s.reset()
	return nil
}

// tlsVerdictWait bounds how long a new TLS connection waits for the
// server's verdict on the client (see awaitVerdict).
const tlsVerdictWait = 2 * time.Second

// ticketSignal is a TLS session cache that stores nothing and only notes
// that the server sent a session ticket: a TLS 1.3 server sends its
// tickets after it has checked the client's Finished and certificate, so a
// ticket is the server's acceptance of the connection.
type ticketSignal struct {
	got  atomic.Bool
	conn atomic.Pointer[tls.Conn]
}

func (t *ticketSignal) Get(string) (*tls.ClientSessionState, bool) { return nil, false }

func (t *ticketSignal) Put(string, *tls.ClientSessionState) {
	if t.got.CompareAndSwap(false, true) {
		if c := t.conn.Load(); c != nil {
			_ = c.SetReadDeadline(time.Now()) // end awaitVerdict's read now
		}
	}
}

// awaitVerdict waits until a TLS 1.3 server has accepted or refused the
// client. In TLS 1.3 the client's handshake completes before the server has
// verified the client's certificate, and a server that refuses it (a
// syslog server requiring client certificates) says so with an alert that
// arrives later: records written meanwhile would be counted as delivered
// and cleared although the server dropped them. So the first read waits
// for an alert (refused), a session ticket (accepted) or, from a server
// that sends no tickets, up to wait. TLS 1.2 handshakes carry the verdict
// themselves.
func awaitVerdict(c *tls.Conn, t *ticketSignal, wait time.Duration) error {
	if c.ConnectionState().Version < tls.VersionTLS13 {
		return nil
	}
	t.conn.Store(c)
	defer t.conn.Store(nil)
	if err := c.SetReadDeadline(time.Now().Add(wait)); err != nil {
		return err
	}
	var one [1]byte
	_, err := c.Read(one[:])
	if err := c.SetReadDeadline(time.Time{}); err != nil {
		return err
	}
	var ne net.Error
	switch {
	case err == nil:
		return errors.New("server sent data")
	case errors.As(err, &ne) && ne.Timeout():
		return nil // a ticket, or a server that sends none and no alert
	default:
		return err
	}
}

// keepsLines: write copies the line into the message.
func (s *syslogSink) keepsLines() bool { return false }
