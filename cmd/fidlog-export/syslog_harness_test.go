package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// rsyslogInput is one listener of a test rsyslogd: kind tcp, udp or tls;
// what it receives goes verbatim (%rawmsg%) to <name>.log.
type rsyslogInput struct {
	name string
	kind string
	port int
}

// rsyslogd is a real rsyslogd from Debian's package, started with its own
// config on loopback high ports.
type rsyslogd struct {
	t      testing.TB
	dir    string
	conf   string
	inputs []rsyslogInput
	p      *proc
}

func freePort(t testing.TB, network string) int {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startRsyslog writes a config for inputs and starts rsyslogd -n. A tls
// input needs certs (a CA, and the server's cert and key files).
func startRsyslog(t testing.TB, certs *testCerts, inputs ...rsyslogInput) *rsyslogd {
	t.Helper()
	if _, err := exec.LookPath("rsyslogd"); err != nil {
		t.Skip("SKIPPED LOUDLY: rsyslogd is not installed (apt-get install rsyslog rsyslog-openssl; .ci/run installs them)")
	}
	r := &rsyslogd{t: t, dir: t.TempDir()}
	var b strings.Builder
	tlsIn := false
	for i := range inputs {
		if inputs[i].port == 0 {
			inputs[i].port = freePort(t, strings.Replace(inputs[i].kind, "tls", "tcp", 1))
		}
		tlsIn = tlsIn || inputs[i].kind == "tls"
	}
	r.inputs = inputs
	if tlsIn {
		if _, err := os.Stat("/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_ossl.so"); err != nil {
			if _, err := exec.Command("sh", "-c", "ls /usr/lib/*/rsyslog/lmnsd_ossl.so").Output(); err != nil {
				t.Skip("SKIPPED LOUDLY: rsyslog's OpenSSL driver is not installed (apt-get install rsyslog-openssl; .ci/run installs it)")
			}
		}
		fmt.Fprintf(&b, "global(workDirectory=%q DefaultNetstreamDriverCAFile=%q DefaultNetstreamDriverCertFile=%q DefaultNetstreamDriverKeyFile=%q)\n",
			r.dir, certs.ca, certs.cert, certs.key)
		mode := "anon"
		if certs.clientAuth {
			mode = "x509/certvalid" // clients must present a certificate the CA signed
		}
		fmt.Fprintf(&b, "module(load=\"imtcp\" StreamDriver.Name=\"ossl\" StreamDriver.Mode=\"1\" StreamDriver.AuthMode=%q)\n", mode)
	} else {
		fmt.Fprintf(&b, "global(workDirectory=%q)\n", r.dir)
		b.WriteString(`module(load="imtcp")` + "\n")
	}
	b.WriteString(`module(load="imudp")` + "\n")
	b.WriteString(`template(name="raw" type="string" string="%rawmsg%\n")` + "\n")
	for _, in := range inputs {
		typ := "imtcp"
		if in.kind == "udp" {
			typ = "imudp"
		}
		if tlsIn && in.kind == "tcp" {
			t.Fatal("test rsyslogd: plain tcp and tls inputs need separate instances")
		}
		fmt.Fprintf(&b, "input(type=%q address=\"127.0.0.1\" port=\"%d\" ruleset=%q)\n", typ, in.port, in.name)
		fmt.Fprintf(&b, "ruleset(name=%q) { action(type=\"omfile\" file=%q template=\"raw\") }\n", in.name, r.out(in.name))
	}
	r.conf = filepath.Join(r.dir, "rsyslog.conf")
	if err := os.WriteFile(r.conf, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	r.start()
	return r
}

func (r *rsyslogd) out(name string) string { return filepath.Join(r.dir, name+".log") }

func (r *rsyslogd) start() {
	r.t.Helper()
	path, _ := exec.LookPath("rsyslogd")
	r.p = startProc(r.t, path, "-n", "-f", r.conf, "-i", filepath.Join(r.dir, "rsyslogd.pid"))
	for _, in := range r.inputs {
		if in.kind == "udp" {
			continue
		}
		waitFor(r.t, 30*time.Second, "rsyslogd listening", func() bool {
			select {
			case <-r.p.done:
				r.t.Fatalf("rsyslogd exited:\n%s", r.p.Output())
			default:
			}
			c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", in.port))
			if err != nil {
				return false
			}
			c.Close()
			return true
		})
	}
}

// port returns the port of input name.
func (r *rsyslogd) port(name string) int {
	for _, in := range r.inputs {
		if in.name == name {
			return in.port
		}
	}
	r.t.Fatalf("no input %s", name)
	return 0
}

// rfc5424ChainRe matches a checkpoint's or the anchor's message.
var rfc5424ChainRe = regexp.MustCompile(`^<\d+>1 \S+ \S+ \S+ \d+ (CHECKPOINT|ANCHOR) \[fidlog@32473 device="([^"]+)"\](\[fidlog(?:Checkpoint|Anchor)@32473 [^\]]*\]) (\{.*\})$`)

var rfc5424Re = regexp.MustCompile(`^<(\d+)>1 (\S+) (\S+) (\S+) (\d+) (\S+) \[fidlog@32473 device="([^"]+)" index="(\d+)"\] (.*)$`)

// syslogMsgs reads what input name received and checks each message's
// RFC 5424 header (priority, timestamp, app-name, procid, msgid = type,
// structured data = the line's device and index); it returns the MSG
// parts.
func (r *rsyslogd) syslogMsgs(t testing.TB, name, app string, f *format, want int) []string {
	t.Helper()
	var lines []string
	waitFor(t, 30*time.Second, fmt.Sprintf("%d messages at %s", want, name), func() bool {
		b, _ := os.ReadFile(r.out(name))
		lines = strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		recs := 0
		for _, l := range lines {
			if !rfc5424ChainRe.MatchString(l) {
				recs++
			}
		}
		return len(b) > 0 && recs >= want
	})
	var msgs []string
	for _, l := range lines {
		if m := rfc5424ChainRe.FindStringSubmatch(l); m != nil {
			// A checkpoint or the anchor: its structured data says what
			// its MSG (the ndjson line) says.
			dev, seq, err := parseChainLine([]byte(m[4]))
			if err != nil || dev != m[2] || (m[1] == "CHECKPOINT") != (seq > 0) {
				t.Fatalf("%s: chain message %q: %v", name, l, err)
			}
			if seq > 0 && !strings.Contains(m[3], fmt.Sprintf(`seq="%d" `, seq)) {
				t.Fatalf("%s: checkpoint %d with structured data %s", name, seq, m[3])
			}
			msgs = append(msgs, m[4])
			continue
		}
		m := rfc5424Re.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("%s: not an RFC 5424 message from fidlog-export: %q", name, l)
		}
		if m[1] != "110" { // facility audit (13) * 8 + info (6)
			t.Errorf("%s: priority %s, want 110", name, m[1])
		}
		if _, err := time.Parse(time.RFC3339Nano, m[2]); err != nil {
			t.Errorf("%s: timestamp %s: %v", name, m[2], err)
		}
		if m[4] != app {
			t.Errorf("%s: app-name %s, want %s", name, m[4], app)
		}
		dev, idx, err := f.parse([]byte(m[9]))
		if err != nil {
			t.Fatalf("%s: MSG %q: %v", name, m[9], err)
		}
		if dev != m[7] || strconv.FormatUint(uint64(idx), 10) != m[8] {
			t.Errorf("%s: structured data %s:%s, line %s:%d", name, m[7], m[8], dev, idx)
		}
		if !strings.Contains(m[9], m[6]) {
			t.Errorf("%s: msgid %s is not the record type of %q", name, m[6], m[9])
		}
		msgs = append(msgs, m[9])
	}
	return msgs
}

// testCerts are PEM files of a test CA, a server certificate for 127.0.0.1
// and a client certificate it signed; clientAuth makes a test rsyslogd
// require client certificates.
type testCerts struct {
	ca, cert, key         string
	clientCert, clientKey string
	clientAuth            bool
}

func makeCerts(t testing.TB) *testCerts {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fidlog test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	ckey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ctmpl := &x509.Certificate{
		SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "fidlog-export"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	cder, err := x509.CreateCertificate(rand.Reader, ctmpl, caCert, &ckey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ckeyDER, err := x509.MarshalECPrivateKey(ckey)
	if err != nil {
		t.Fatal(err)
	}
	c := &testCerts{ca: filepath.Join(dir, "ca.pem"), cert: filepath.Join(dir, "cert.pem"), key: filepath.Join(dir, "key.pem"),
		clientCert: filepath.Join(dir, "client.pem"), clientKey: filepath.Join(dir, "client-key.pem")}
	for p, blk := range map[string]*pem.Block{
		c.ca: {Type: "CERTIFICATE", Bytes: caDER}, c.cert: {Type: "CERTIFICATE", Bytes: der}, c.key: {Type: "EC PRIVATE KEY", Bytes: keyDER},
		c.clientCert: {Type: "CERTIFICATE", Bytes: cder}, c.clientKey: {Type: "EC PRIVATE KEY", Bytes: ckeyDER},
	} {
		if err := os.WriteFile(p, pem.EncodeToMemory(blk), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return c
}
