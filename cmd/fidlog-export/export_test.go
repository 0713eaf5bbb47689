package main

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fidlog/fidlog/changelog"
	mdtv1 "github.com/fidlog/fidlog/proto/lustre/mdt/v1"
)

// killLoops is how many times the kill -9 tests kill the exporter under
// load: 3 by default, FIDLOG_EXPORT_KILL_LOOPS (e.g. 20) for a longer run.
func killLoops() int { return envInt("FIDLOG_EXPORT_KILL_LOOPS", 3) }

// killUnderLoad runs the exporter with args while a load writes records,
// kills it with SIGKILL loops times at random moments after it made
// progress, then lets a last exporter catch up and stops it with SIGTERM.
// It returns the last index the MDT wrote.
func killUnderLoad(t *testing.T, s *mdtServer, user string, args []string) changelog.Index {
	t.Helper()
	c := s.client(t)
	ld := startLoad(t, c, "/load")
	for i := range killLoops() {
		before := userIndex(t, s, c, user)
		x := startProc(t, "fidlog-export", args...)
		waitFor(t, 60*time.Second, "the exporter clearing", func() bool {
			select {
			case <-x.done:
				t.Fatalf("exporter exited:\n%s", x.Output())
			default:
			}
			return userIndex(t, s, c, user) > before
		})
		time.Sleep(time.Duration(rand.IntN(300)) * time.Millisecond) // a random moment of the batch cycle
		x.Kill()
		t.Logf("loop %d: killed at cleared index %d", i+1, userIndex(t, s, c, user))
	}
	n := ld.Stop()
	want := currentIndex(t, s, c)
	t.Logf("load created %d files; last index %d", n, want)
	x := startProc(t, "fidlog-export", args...)
	waitFor(t, 60*time.Second, "the exporter catching up", func() bool { return userIndex(t, s, c, user) >= want })
	if code := x.Stop(); code != exitOK {
		t.Fatalf("exporter exit %d after SIGTERM:\n%s", code, x.Output())
	}
	return want
}

// TestKill9FileAndJetStream: the exporter killed with SIGKILL under load
// leaves every record exactly once, in index order, in the files (no
// half-written line, across rotations and gzip of closed files) and in the
// JetStream stream as a downstream consumer reads it.
func TestKill9FileAndJetStream(t *testing.T) {
	s := startMDT(t)
	ns := startNATS(t)
	// Signed checkpoints often, so that kills land between them too.
	c := s.client(t)
	checkpointEvery(t, s, c, 150)
	pub := pubkey(t, s, c)
	out := filepath.Join(shortTempDir(t), "audit")
	args := []string{"--mdt", s.target(), "--user", "audit", "--interval", "50ms", "--batch", "300",
		"--sink", "file://" + out + "?format=ndjson&size=32K&gzip=true",
		"--sink", "nats://" + ns.hostPort() + "?stream=AUDIT&format=lustre"}
	want := killUnderLoad(t, s, "audit", args)
	lines := dirLines(t, out, ".ndjson")
	checkExactlyOnce(t, formats["ndjson"], lines, map[string]changelog.Index{s.device: want})
	if sum := verifyExport(t, lines, want, pub); sum.Checkpoints == 0 || sum.Signed == 0 {
		t.Errorf("no checkpoint verified in the files: %+v", sum)
	}
	ents, _ := os.ReadDir(out)
	gz := 0
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".ndjson.gz") {
			gz++
		}
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("leftover %s", e.Name())
		}
	}
	if gz == 0 {
		t.Errorf("no gzipped closed file among %d files", len(ents))
	}
	t.Logf("files: %d records in %d files (%d gzipped)", len(lines), len(ents), gz)
	msgs := ns.streamLines(t, "AUDIT", formats["lustre"])
	checkExactlyOnce(t, formats["lustre"], msgs, map[string]changelog.Index{s.device: want})
	t.Logf("jetstream: %d messages", len(msgs))
}

// TestJetStreamOutage: while the NATS server is down the exporter retries
// with backoff, counts the failures and clears nothing; when it is back
// every record arrives once.
func TestJetStreamOutage(t *testing.T) {
	s := startMDT(t)
	ns := startNATS(t)
	c := s.client(t)
	sink := "nats://" + ns.hostPort() + "?stream=AUDIT&timeout=1s"
	x := startProc(t, "fidlog-export", "--mdt", s.target(), "--user", "audit", "--interval", "50ms",
		"--max-backoff", "300ms", "--lag-interval", "100ms", "--metrics", "127.0.0.1:0", "--sink", sink)
	addr := metricsAddr(t, x)
	label := `{sink="nats://` + ns.hostPort() + `"}`
	if _, err := c.Namespace.Mkdir(ctxT(t), &mdtv1.MkdirRequest{Path: []byte("/d"), Mode: 0o755}); err != nil {
		t.Fatal(err)
	}
	createFiles(t, c, "/d", "a", 50)
	cur := currentIndex(t, s, c)
	waitFor(t, 30*time.Second, "the first records cleared", func() bool { return userIndex(t, s, c, "audit") == cur })
	ns.stop()
	createFiles(t, c, "/d", "b", 50)
	waitFor(t, 30*time.Second, "failures counted", func() bool { return metric(t, addr, "fidlog_export_sink_failures_total"+label) >= 2 })
	if got := userIndex(t, s, c, "audit"); got != cur {
		t.Fatalf("cleared to %d while the sink was down, want %d", got, cur)
	}
	waitFor(t, 30*time.Second, "lag reported", func() bool {
		return metric(t, addr, `fidlog_export_lag_records{device="`+s.device+`"}`) == 50
	})
	if got := metric(t, addr, `fidlog_export_lag_seconds{device="`+s.device+`"}`); got <= 0 {
		t.Errorf("lag seconds %v while the sink is down", got)
	}
	if got := metric(t, addr, "fidlog_export_sink_up"+label); got != 0 {
		t.Errorf("sink_up %v while the sink is down", got)
	}
	ns.start()
	want := currentIndex(t, s, c)
	waitFor(t, 60*time.Second, "catching up", func() bool { return userIndex(t, s, c, "audit") == want })
	// The metric is set when the clear's reply arrives, just after the
	// server shows it.
	waitFor(t, 10*time.Second, "the cleared index metric", func() bool {
		return metric(t, addr, `fidlog_export_cleared_index{device="`+s.device+`"}`) == float64(want)
	})
	if got := metric(t, addr, "fidlog_export_records_delivered_total"+label); got < float64(want) {
		t.Errorf("delivered %v, want >= %d", got, want)
	}
	if code := x.Stop(); code != exitOK {
		t.Fatalf("exit %d:\n%s", code, x.Output())
	}
	if !strings.Contains(x.Output(), "msg=sink_failed") {
		t.Errorf("no sink_failed log:\n%s", x.Output())
	}
	checkExactlyOnce(t, formats["ndjson"], ns.streamLines(t, "AUDIT", formats["ndjson"]), map[string]changelog.Index{s.device: want})
}

// TestSyslogRsyslog: the syslog sink speaks RFC 5424 to a real rsyslogd
// over UDP, TCP with octet counting and TLS; rsyslog writes each message
// verbatim, and every record arrives once, in order, in each format.
func TestSyslogRsyslog(t *testing.T) {
	certs := makeCerts(t)
	plain := startRsyslog(t, nil, rsyslogInput{name: "tcp", kind: "tcp"}, rsyslogInput{name: "udp", kind: "udp"})
	secure := startRsyslog(t, certs, rsyslogInput{name: "tls", kind: "tls"})
	s := startMDT(t)
	c := s.client(t)
	x := startProc(t, "fidlog-export", "--mdt", s.target(), "--interval", "50ms",
		"--sink", fmt.Sprintf("syslog+tcp://127.0.0.1:%d", plain.port("tcp")),
		"--sink", fmt.Sprintf("syslog+udp://127.0.0.1:%d?format=lustre&app=lustre-audit", plain.port("udp")),
		"--sink", fmt.Sprintf("syslog+tls://127.0.0.1:%d?format=ndjson&ca=%s", secure.port("tls"), certs.ca))
	if _, err := c.Namespace.Mkdir(ctxT(t), &mdtv1.MkdirRequest{Path: []byte("/d"), Mode: 0o755}); err != nil {
		t.Fatal(err)
	}
	createFiles(t, c, "/d", "f", 200)
	want := currentIndex(t, s, c)
	waitFor(t, 30*time.Second, "all cleared", func() bool { return userIndex(t, s, c, "fidlog-export") == want })
	if code := x.Stop(); code != exitOK {
		t.Fatalf("exit %d:\n%s", code, x.Output())
	}
	devs := map[string]changelog.Index{s.device: want}
	checkExactlyOnce(t, formats["csv"], plain.syslogMsgs(t, "tcp", "fidlog", formats["csv"], int(want)), devs)
	checkExactlyOnce(t, formats["lustre"], plain.syslogMsgs(t, "udp", "lustre-audit", formats["lustre"], int(want)), devs)
	checkExactlyOnce(t, formats["ndjson"], secure.syslogMsgs(t, "tls", "fidlog", formats["ndjson"], int(want)), devs)
}

// TestSyslogOutage: with rsyslogd stopped the exporter retries, counts
// failures and clears nothing; restarted, it receives every record (at
// least once: no gap).
func TestSyslogOutage(t *testing.T) {
	r := startRsyslog(t, nil, rsyslogInput{name: "tcp", kind: "tcp"})
	s := startMDT(t)
	c := s.client(t)
	sink := fmt.Sprintf("syslog+tcp://127.0.0.1:%d", r.port("tcp"))
	x := startProc(t, "fidlog-export", "--mdt", s.target(), "--interval", "50ms", "--max-backoff", "300ms",
		"--metrics", "127.0.0.1:0", "--sink", sink)
	addr := metricsAddr(t, x)
	if _, err := c.Namespace.Mkdir(ctxT(t), &mdtv1.MkdirRequest{Path: []byte("/d"), Mode: 0o755}); err != nil {
		t.Fatal(err)
	}
	createFiles(t, c, "/d", "a", 50)
	cur := currentIndex(t, s, c)
	waitFor(t, 30*time.Second, "the first records cleared", func() bool { return userIndex(t, s, c, "fidlog-export") == cur })
	if code := r.p.Stop(); code != 0 {
		t.Fatalf("rsyslogd exit %d:\n%s", code, r.p.Output())
	}
	createFiles(t, c, "/d", "b", 50)
	label := `{sink="` + sink + `"}`
	waitFor(t, 30*time.Second, "failures counted", func() bool { return metric(t, addr, "fidlog_export_sink_failures_total"+label) >= 2 })
	if got := userIndex(t, s, c, "fidlog-export"); got != cur {
		t.Fatalf("cleared to %d while rsyslogd was down, want %d", got, cur)
	}
	r.start()
	want := currentIndex(t, s, c)
	waitFor(t, 60*time.Second, "catching up", func() bool { return userIndex(t, s, c, "fidlog-export") == want })
	if code := x.Stop(); code != exitOK {
		t.Fatalf("exit %d:\n%s", code, x.Output())
	}
	msgs := r.syslogMsgs(t, "tcp", "fidlog", formats["csv"], int(want))
	seen := map[changelog.Index]int{}
	for _, m := range msgs {
		_, idx, _ := formats["csv"].parse([]byte(m))
		seen[idx]++
	}
	dups := 0
	for i := changelog.Index(1); i <= want; i++ {
		if seen[i] == 0 {
			t.Errorf("record %d never reached rsyslogd", i)
		}
		dups += max(seen[i]-1, 0)
	}
	t.Logf("%d messages for %d records (%d re-sent after the outage: at least once)", len(msgs), want, dups)
}

// TestTwoMDTsMerged: one exporter follows two MDTs (distinct --index) into
// one file stream and one JetStream stream; each MDT's records arrive
// exactly once and in index order, each naming its device, across a
// kill -9.
func TestTwoMDTsMerged(t *testing.T) {
	s0, s1 := startMDT(t), startMDT(t, "--index", "1")
	if s0.device == s1.device {
		t.Fatalf("both MDTs are %s", s0.device)
	}
	ns := startNATS(t)
	out := filepath.Join(shortTempDir(t), "audit")
	nd := filepath.Join(shortTempDir(t), "nd")
	args := []string{"--mdt", s0.target(), "--mdt", s1.target(), "--interval", "50ms",
		"--sink", "file://" + out + "?format=csv",
		"--sink", "nats://" + ns.hostPort() + "?format=scale-json",
		"--sink", "file://" + nd + "?size=64K"} // ndjson with checkpoints
	c0, c1 := s0.client(t), s1.client(t)
	checkpointEvery(t, s0, c0, 30)
	checkpointEvery(t, s1, c1, 20)
	keys := filepath.Join(t.TempDir(), "mdts.pub")
	if err := os.WriteFile(keys, []byte(changelog.FormatPublicKey(pubkey(t, s0, c0))+"\n"+changelog.FormatPublicKey(pubkey(t, s1, c1))+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	x := startProc(t, "fidlog-export", args...)
	waitFor(t, 30*time.Second, "both users registered", func() bool {
		return strings.Count(x.Output(), "msg=mdt ") == 2
	})
	l0, l1 := startLoad(t, c0, "/load"), startLoad(t, c1, "/load")
	waitFor(t, 60*time.Second, "both MDTs exporting", func() bool {
		return userIndex(t, s0, c0, "fidlog-export") > 50 && userIndex(t, s1, c1, "fidlog-export") > 50
	})
	x.Kill()
	x = startProc(t, "fidlog-export", args...)
	waitFor(t, 60*time.Second, "exporting again", func() bool {
		return strings.Contains(x.Output(), "msg=exporting")
	})
	l0.Stop()
	l1.Stop()
	want := map[string]changelog.Index{s0.device: currentIndex(t, s0, c0), s1.device: currentIndex(t, s1, c1)}
	waitFor(t, 60*time.Second, "both caught up", func() bool {
		return userIndex(t, s0, c0, "fidlog-export") == want[s0.device] && userIndex(t, s1, c1, "fidlog-export") == want[s1.device]
	})
	if code := x.Stop(); code != exitOK {
		t.Fatalf("exit %d:\n%s", code, x.Output())
	}
	lines := dirLines(t, out, ".csv")
	checkExactlyOnce(t, formats["csv"], lines, want)
	checkExactlyOnce(t, formats["scale-json"], ns.streamLines(t, "FIDLOG", formats["scale-json"]), want)
	// Merged, not concatenated: the devices alternate in the stream.
	switches, prev := 0, ""
	for _, l := range lines {
		dev, _, _ := formats["csv"].parse([]byte(l))
		if dev != prev {
			switches++
			prev = dev
		}
	}
	if switches < 4 {
		t.Errorf("the file stream switches device only %d times in %d lines", switches, len(lines))
	}
	t.Logf("%s: %d records, %s: %d records, %d device switches", s0.device, want[s0.device], s1.device, want[s1.device], switches)
	// The merged ndjson files verify per device, each MDT's checkpoints
	// with its own key, across the kill.
	checkExactlyOnce(t, formats["ndjson"], dirLines(t, nd, ".ndjson"), want)
	code, stdout, stderr := lfsVerify(t, "--pubkey", keys, "--input", nd)
	for _, d := range []string{s0.device, s1.device} {
		if code != 0 || !strings.Contains(stdout, fmt.Sprintf("%s: records 1-%d: chain intact (%d records)\n", d, want[d], want[d])) ||
			!strings.Contains(stdout, d+": ") || !regexp.MustCompile(d+`: \d+ signed checkpoints verified`).MatchString(stdout) {
			t.Fatalf("lfs changelog_verify of the merged files: exit %d\n%s%s", code, stdout, stderr)
		}
	}
	code, stdout, _ = lfsVerify(t, "--pubkey", keys, "--device", s1.device, "--input", nd)
	if code != 0 || strings.Contains(stdout, s0.device) || !strings.Contains(stdout, s1.device+": records 1-") {
		t.Fatalf("--device %s: exit %d\n%s", s1.device, code, stdout)
	}
}

// TestEvictedSaysHowManyLost: with its only sink down the exporter cannot
// clear; mdtd's changelog GC evicts its user, and the exporter exits 3
// saying so and how many records it lost.
func TestEvictedSaysHowManyLost(t *testing.T) {
	// csv: a follow as the user; ndjson: checkpoints on, the chain is read
	// without the user and the eviction is seen by the watcher or as
	// records purged before they were read.
	for _, format := range []string{"csv", "ndjson"} {
		t.Run(format, func(t *testing.T) { testEvicted(t, format) })
	}
}

func testEvicted(t *testing.T, format string) {
	s := startMDT(t)
	c := s.client(t)
	down := freePort(t, "tcp") // nothing listens there
	x := startProc(t, "fidlog-export", "--mdt", s.target(), "--interval", "50ms", "--lag-interval", "100ms",
		"--max-backoff", "200ms", "--sink", fmt.Sprintf("syslog+tcp://127.0.0.1:%d?format=%s", down, format))
	waitFor(t, 30*time.Second, "exporting", func() bool { return strings.Contains(x.Output(), "msg=exporting") })
	for _, p := range []string{"changelog_max_idle_indexes=20", "changelog_min_gc_interval=1"} {
		name, v, _ := strings.Cut(p, "=")
		if _, err := c.SetParam(ctxT(t), "mdd."+s.device+"."+name, v); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Namespace.Mkdir(ctxT(t), &mdtv1.MkdirRequest{Path: []byte("/d"), Mode: 0o755}); err != nil {
		t.Fatal(err)
	}
	i := 0
	waitFor(t, 60*time.Second, "the exporter to exit", func() bool {
		select {
		case <-x.done:
			return true
		default:
		}
		createFiles(t, c, "/d", fmt.Sprintf("f%d-", i), 5)
		i++
		return false
	})
	if code := x.cmd.ProcessState.ExitCode(); code != exitEvicted {
		t.Fatalf("exit %d, want %d:\n%s", code, exitEvicted, x.Output())
	}
	re := regexp.MustCompile(`fidlog-export: changelog user cl1-fidlog-export was evicted from ` + s.device +
		` by the changelog garbage collector: (\d+) records \(indices 1\.\.(\d+)\) were not exported and are lost to this exporter`)
	m := re.FindStringSubmatch(x.Output())
	if m == nil {
		t.Fatalf("no eviction message:\n%s", x.Output())
	}
	t.Logf("%s", m[0])
	if m[1] != m[2] || m[1] == "0" {
		t.Errorf("lost %s records, indices 1..%s", m[1], m[2])
	}
}

// TestMutualTLS: the exporter follows an MDT over TCP with mutual TLS
// (certificates from "mdtd certs"), with the same --tls-* flags as the
// other clients; without a client certificate the server refuses it.
func TestMutualTLS(t *testing.T) {
	pki := t.TempDir()
	for _, args := range [][]string{{"ca"}, {"node", "--host", "127.0.0.1"}, {"client"}} {
		cmd := exec.Command(filepath.Join(bin, "mdtd"), append(append([]string{"certs"}, args...), "--dir", pki)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("mdtd certs %v: %v\n%s", args, err, out)
		}
	}
	f := func(n string) string { return filepath.Join(pki, n) }
	s := startMDT(t, "--listen", "127.0.0.1:0", "--tls-cert", f("node.crt"), "--tls-key", f("node.key"), "--tls-client-ca", f("ca.crt"))
	if s.tcp == "" {
		t.Fatalf("mdtd reports no TCP address:\n%s", s.Output())
	}
	c := s.client(t) // on the socket
	out := filepath.Join(shortTempDir(t), "audit")
	x := startProc(t, "fidlog-export", "--mdt", s.tcp, "--interval", "50ms",
		"--tls-ca", f("ca.crt"), "--tls-cert", f("client.crt"), "--tls-key", f("client.key"),
		"--sink", "file://"+out+"?format=lustre")
	waitFor(t, 30*time.Second, "exporting", func() bool { return strings.Contains(x.Output(), "msg=exporting") })
	if _, err := c.Namespace.Mkdir(ctxT(t), &mdtv1.MkdirRequest{Path: []byte("/d"), Mode: 0o755}); err != nil {
		t.Fatal(err)
	}
	createFiles(t, c, "/d", "f", 20)
	want := currentIndex(t, s, c)
	waitFor(t, 30*time.Second, "all cleared", func() bool { return userIndex(t, s, c, "fidlog-export") == want })
	if code := x.Stop(); code != exitOK {
		t.Fatalf("exit %d:\n%s", code, x.Output())
	}
	checkExactlyOnce(t, formats["lustre"], dirLines(t, out, ".log"), map[string]changelog.Index{s.device: want})

	// Without a client certificate: refused by the server, said clearly.
	bad := startProc(t, "fidlog-export", "--mdt", s.tcp, "--tls-ca", f("ca.crt"), "--sink", "file://"+out+"2")
	if code := bad.Wait(30 * time.Second); code != exitError {
		t.Fatalf("exit %d without a client certificate, want %d:\n%s", code, exitError, bad.Output())
	}
	if !strings.Contains(bad.Output(), "fidlog-export: "+s.tcp) {
		t.Errorf("the refusal does not name the target:\n%s", bad.Output())
	}
	t.Logf("without a client certificate: %s", strings.TrimSpace(bad.Output()))
}

// TestMDTKilled: mdtd killed with SIGKILL and restarted under the exporter:
// it reconnects, resumes after the last record it handled, and the files
// hold every record once.
func TestMDTKilled(t *testing.T) {
	s := startMDT(t)
	out := filepath.Join(shortTempDir(t), "audit")
	x := startProc(t, "fidlog-export", "--mdt", s.target(), "--interval", "50ms", "--max-backoff", "300ms",
		"--sink", "file://"+out+"?format=ndjson")
	c := s.client(t)
	if _, err := c.Namespace.Mkdir(ctxT(t), &mdtv1.MkdirRequest{Path: []byte("/d"), Mode: 0o755}); err != nil {
		t.Fatal(err)
	}
	createFiles(t, c, "/d", "a", 100)
	s.Kill()
	s.start()
	c = s.client(t)
	createFiles(t, c, "/d", "b", 100)
	want := currentIndex(t, s, c)
	waitFor(t, 60*time.Second, "all cleared after the MDT restart", func() bool { return userIndex(t, s, c, "fidlog-export") == want })
	if code := x.Stop(); code != exitOK {
		t.Fatalf("exit %d:\n%s", code, x.Output())
	}
	checkExactlyOnce(t, formats["ndjson"], dirLines(t, out, ".ndjson"), map[string]changelog.Index{s.device: want})
}

// TestSyslogMutualTLS: an rsyslogd that requires client certificates
// (x509/certvalid) refuses an exporter without one (nothing is cleared)
// and gets every record, once, from an exporter that presents one.
func TestSyslogMutualTLS(t *testing.T) {
	certs := makeCerts(t)
	certs.clientAuth = true
	r := startRsyslog(t, certs, rsyslogInput{name: "tls", kind: "tls"})
	s := startMDT(t)
	c := s.client(t)
	// Without a client certificate rsyslogd drops the connection: the
	// exporter fails, retries and clears nothing.
	bad := startProc(t, "fidlog-export", "--mdt", s.target(), "--interval", "50ms", "--max-backoff", "200ms",
		"--sink", fmt.Sprintf("syslog+tls://127.0.0.1:%d?format=lustre&ca=%s", r.port("tls"), certs.ca))
	waitFor(t, 30*time.Second, "exporting", func() bool { return strings.Contains(bad.Output(), "msg=exporting") })
	if _, err := c.Namespace.Mkdir(ctxT(t), &mdtv1.MkdirRequest{Path: []byte("/d"), Mode: 0o755}); err != nil {
		t.Fatal(err)
	}
	createFiles(t, c, "/d", "f", 30)
	waitFor(t, 30*time.Second, "the certificate-less exporter failing", func() bool { return strings.Contains(bad.Output(), "msg=sink_failed") })
	bad.Kill()
	if got := userIndex(t, s, c, "fidlog-export"); got != 0 {
		t.Fatalf("cleared to %d without a client certificate:\n%s", got, bad.Output())
	}
	x := startProc(t, "fidlog-export", "--mdt", s.target(), "--interval", "50ms",
		"--sink", fmt.Sprintf("syslog+tls://127.0.0.1:%d?format=lustre&ca=%s&cert=%s&key=%s", r.port("tls"), certs.ca, certs.clientCert, certs.clientKey))
	want := currentIndex(t, s, c)
	waitFor(t, 30*time.Second, "all cleared", func() bool { return userIndex(t, s, c, "fidlog-export") == want })
	if code := x.Stop(); code != exitOK {
		t.Fatalf("exit %d:\n%s", code, x.Output())
	}
	checkExactlyOnce(t, formats["lustre"], r.syslogMsgs(t, "tls", "fidlog", formats["lustre"], int(want)), map[string]changelog.Index{s.device: want})
}

// TestAuditTypesExported: the exporter's user is registered with mask ALL,
// so the audit records the MDT writes (OPEN here, outside Lustre's default
// user mask) are exported too.
func TestAuditTypesExported(t *testing.T) {
	s := startMDT(t)
	c := s.client(t)
	if _, err := c.SetParam(ctxT(t), "mdd."+s.device+".changelog_mask", "+OPEN"); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(shortTempDir(t), "audit")
	x := startProc(t, "fidlog-export", "--mdt", s.target(), "--interval", "50ms", "--sink", "file://"+out+"?format=lustre")
	waitFor(t, 30*time.Second, "exporting", func() bool { return strings.Contains(x.Output(), "msg=exporting") })
	ctx := ctxT(t)
	o, err := c.Namespace.Open(ctx, &mdtv1.OpenRequest{Path: []byte("/f"), Flags: 0x40 | 0x2, Mode: 0o644})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Namespace.Close(ctx, &mdtv1.CloseRequest{Handle: o.GetHandle()}); err != nil {
		t.Fatal(err)
	}
	want := currentIndex(t, s, c)
	waitFor(t, 30*time.Second, "all cleared", func() bool { return userIndex(t, s, c, "fidlog-export") == want })
	if code := x.Stop(); code != exitOK {
		t.Fatalf("exit %d:\n%s", code, x.Output())
	}
	lines := dirLines(t, out, ".log")
	checkExactlyOnce(t, formats["lustre"], lines, map[string]changelog.Index{s.device: want})
	types := map[string]bool{}
	for _, l := range lines {
		types[strings.Fields(l)[2][2:]] = true
	}
	for _, typ := range []string{"CREAT", "OPEN", "CLOSE"} {
		if !types[typ] {
			t.Errorf("no %s record exported: %q", typ, lines)
		}
	}
}

// verifyExport checks the exported ndjson lines offline as lfs
// changelog_verify --input does: the anchor links the first record, the
// hash chain links every record from the first to want, every checkpoint
// line verifies; a line altered afterwards is caught at its index. It
// returns the summary.
func verifyExport(t *testing.T, lines []string, want changelog.Index, keys ...ed25519.PublicKey) changelog.VerifySummary {
	t.Helper()
	x := changelog.NewExportVerifier("", keys...)
	recs := 0
	for i, l := range lines {
		if err := x.Line(fmt.Sprintf("line %d", i+1), []byte(l)); err != nil {
			t.Fatalf("exported line %d does not verify: %v", i+1, err)
		}
		if _, _, err := formats["ndjson"].parse([]byte(l)); err == nil {
			recs++
		}
	}
	if err := x.Finish(); err != nil {
		t.Fatal(err)
	}
	devs := x.Devices()
	if len(devs) != 1 {
		t.Fatalf("devices %q", devs)
	}
	sum := x.Summary(devs[0])
	if sum.Last != want || sum.Records != uint64(recs) || !sum.Linked {
		t.Fatalf("verified %+v, want records up to %d, linked to the anchor", sum, want)
	}
	mid := len(lines) / 2
	for errors.Is(func() error { _, _, err := formats["ndjson"].parse([]byte(lines[mid])); return err }(), errChainLine) {
		mid++
	}
	altered := append([]string(nil), lines...)
	altered[mid] = strings.Replace(altered[mid], `"type":"`, `"type":"X`, 1)
	x = changelog.NewExportVerifier("", keys...)
	var err error
	for i, l := range altered {
		if err = x.Line(fmt.Sprintf("line %d", i+1), []byte(l)); err != nil {
			break
		}
	}
	var ve *changelog.VerifyError
	_, idx, _ := formats["ndjson"].parse([]byte(lines[mid]))
	if !errors.As(err, &ve) || ve.Index != idx || ve.Problem != changelog.ProblemChanged {
		t.Fatalf("altered line %d (index %d): verify says %v", mid+1, idx, err)
	}
	return sum
}
