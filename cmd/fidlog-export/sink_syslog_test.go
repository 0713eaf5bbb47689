package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fidlog/fidlog/changelog"
)

// tlsSyslogServer serves TLS 1.3 on loopback, requires a client
// certificate and decides on it only after delay (as a busy syslog server
// may): accept false refuses every client. It returns the address and a
// channel of the lines accepted connections send.
func tlsSyslogServer(t *testing.T, certs *testCerts, delay time.Duration, accept bool) (string, <-chan string) {
	t.Helper()
	kp, err := tls.LoadX509KeyPair(certs.cert, certs.key)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(certs.ca)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	cfg := &tls.Config{
		Certificates: []tls.Certificate{kp}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert,
		MinVersion: tls.VersionTLS13,
		VerifyConnection: func(tls.ConnectionState) error {
			time.Sleep(delay)
			if !accept {
				return errors.New("client refused by the test server")
			}
			return nil
		},
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	lines := make(chan string, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					lines <- line
				}
			}()
		}
	}()
	return ln.Addr().String(), lines
}

// TestSyslogTLSVerdict: over TLS 1.3 the client's handshake ends before the
// server has checked the client's certificate, so a refusal arrives after
// it. The sink must wait for the server's verdict before it counts
// anything as delivered: a refused connection fails at dial (before any
// record is written and cleared), an accepted one delivers.
func TestSyslogTLSVerdict(t *testing.T) {
	certs := makeCerts(t)
	for _, accept := range []bool{false, true} {
		t.Run(fmt.Sprintf("accept=%v", accept), func(t *testing.T) {
			addr, lines := tlsSyslogServer(t, certs, 300*time.Millisecond, accept)
			raw := fmt.Sprintf("syslog+tls://%s?format=lustre&ca=%s&cert=%s&key=%s", addr, certs.ca, certs.clientCert, certs.clientKey)
			s, err := parseSink(raw, sinkEnv{})
			if err != nil {
				t.Fatal(err)
			}
			ss := s.(*syslogSink)
			defer ss.close()
			err = ss.dial(context.Background())
			if !accept {
				if err == nil || !strings.Contains(err.Error(), "refused after the handshake") {
					t.Fatalf("dial to a server that refuses the client: err = %v, want a refusal", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("dial to a server that accepts the client: %v", err)
			}
			if _, err := ss.w.WriteString("hello\n"); err != nil {
				t.Fatal(err)
			}
			if err := ss.commit(context.Background()); err != nil {
				t.Fatal(err)
			}
			select {
			case l := <-lines:
				if l != "hello\n" {
					t.Fatalf("server read %q", l)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the accepting server received nothing")
			}
		})
	}
}

// TestSyslogHeader: a record's message has its time as TIMESTAMP and its
// type as MSGID, a checkpoint's its time and CHECKPOINT, the anchor's the
// NILVALUE "-" and ANCHOR; PRI, HOSTNAME, APP-NAME and PROCID are the
// sink's, and the device's value is escaped.
func TestSyslogHeader(t *testing.T) {
	s := &syslogSink{app: "fidlog-export", hostname: "h1", facility: 13, severity: 6, procid: "42"}
	at := time.Date(2026, 11, 25, 1, 2, 3, 456789000, time.FixedZone("X", 3600))
	const dev = `lustre-MDT0000"]`
	for _, c := range []struct {
		e    *event
		want string
	}{
		{&event{dev: dev, rec: &changelog.Record{Index: 7, Type: changelog.CLCreate, Time: at}},
			`<110>1 2026-11-25T00:02:03.456789Z h1 fidlog-export 42 CREAT [fidlog@32473 device="lustre-MDT0000\"\]" index="7"] LINE`},
		{&event{dev: dev, ck: &changelog.Checkpoint{Seq: 1, Index: 3, Position: 4, Time: at, Kind: changelog.CheckpointPeriodic}},
			`<110>1 2026-11-25T00:02:03.456789Z h1 fidlog-export 42 CHECKPOINT [fidlog@32473 device="lustre-MDT0000\"\]"][fidlogCheckpoint@32473 seq="1" index="3" position="4" `},
		{&event{dev: dev, anchor: &changelog.Anchor{Index: 9}},
			`<110>1 - h1 fidlog-export 42 ANCHOR [fidlog@32473 device="lustre-MDT0000\"\]"][fidlogAnchor@32473 index="9" hash="`},
	} {
		got := string(s.appendMessage(nil, c.e, []byte("LINE")))
		if !strings.HasPrefix(got, c.want) {
			t.Errorf("message\n%s\nwant it to start with\n%s", got, c.want)
		}
	}
}
