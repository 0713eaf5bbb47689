package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/fidlog/fidlog/api/client"
	"github.com/fidlog/fidlog/changelog"
	mdtv1 "github.com/fidlog/fidlog/proto/lustre/mdt/v1"
)

// bin holds the built mdtd, lfs and fidlog-export, set by TestMain.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fidlog-export-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cmd := exec.Command("go", "build", "-o", dir+"/", "../mdtd", "../lfs", ".")
	if os.Getenv("FIDLOG_EXPORT_RACE") != "" { // the exporter itself under the race detector
		cmd = exec.Command("sh", "-c", "go build -o "+dir+"/ ../mdtd ../lfs && go build -race -o "+dir+"/ .")
	}
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "fidlog-export: building mdtd, lfs and fidlog-export failed: %v\n", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	bin = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// shortTempDir returns a temporary directory with a short path (unix
// socket paths are limited to 107 bytes).
func shortTempDir(t testing.TB) string {
	d, err := os.MkdirTemp("", "fx")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// proc is a running process with its combined output.
type proc struct {
	t    testing.TB
	name string
	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	out  bytes.Buffer
	err  error
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

// Output returns everything the process printed so far.
func (p *proc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func startProc(t testing.TB, name string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, done: make(chan struct{})}
	path := name
	if !filepath.IsAbs(name) {
		path = filepath.Join(bin, name)
	}
	p.cmd = exec.Command(path, args...)
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		err := p.cmd.Wait()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(p.done)
	}()
	t.Cleanup(p.Kill)
	return p
}

// Kill sends SIGKILL and waits.
func (p *proc) Kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Stop sends SIGTERM and returns the exit code.
func (p *proc) Stop() int {
	p.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.Kill()
		p.t.Fatalf("%s did not stop within 30s of SIGTERM:\n%s", p.name, p.Output())
	}
	return p.cmd.ProcessState.ExitCode()
}

// Wait waits for the process to exit and returns its exit code.
func (p *proc) Wait(d time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		p.t.Fatalf("%s still running after %v:\n%s", p.name, d, p.Output())
	}
	return p.cmd.ProcessState.ExitCode()
}

// mdtServer is a running mdtd on a unix socket.
type mdtServer struct {
	*proc
	tb     testing.TB
	dir    string
	sock   string
	tcp    string // host:port when serving TCP
	device string
	args   []string
}

var (
	servingRe = regexp.MustCompile(`msg=serving device=(\S+)`)
	tcpRe     = regexp.MustCompile(`msg=serving .*tcp=(\S+)`)
)

// startMDT starts mdtd with its data and socket in a short temp dir.
func startMDT(t testing.TB, extra ...string) *mdtServer {
	t.Helper()
	dir := shortTempDir(t)
	s := &mdtServer{tb: t, dir: dir, sock: filepath.Join(dir, "s.sock")}
	s.args = append([]string{"--data", filepath.Join(dir, "d"), "--listen=", "--socket", s.sock}, extra...)
	s.start()
	return s
}

func (s *mdtServer) start() {
	s.proc = startProc(s.t(), "mdtd", s.args...)
	waitFor(s.t(), 30*time.Second, "mdtd serving", func() bool {
		if m := servingRe.FindStringSubmatch(s.Output()); m != nil {
			s.device = m[1]
			if m := tcpRe.FindStringSubmatch(s.Output()); m != nil {
				s.tcp = m[1]
			}
			return true
		}
		select {
		case <-s.done:
			s.t().Fatalf("mdtd exited:\n%s", s.Output())
		default:
		}
		return false
	})
}

func (s *mdtServer) t() testing.TB { return s.tb }

// target is the --mdt value.
func (s *mdtServer) target() string { return "unix:" + s.sock }

// client dials the server as root.
func (s *mdtServer) client(t testing.TB) *client.Client {
	t.Helper()
	c, err := client.Dial(s.target())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func waitFor(t testing.TB, d time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// load creates files in dir on s until stopped; each create writes one
// CREAT record.
type load struct {
	stop chan struct{}
	wg   sync.WaitGroup
	n    int
}

func startLoad(t testing.TB, c *client.Client, dir string) *load {
	t.Helper()
	ctx := ctxT(t)
	if _, err := c.Namespace.Mkdir(ctx, &mdtv1.MkdirRequest{Path: []byte(dir), Mode: 0o755}); err != nil {
		t.Fatal(err)
	}
	l := &load{stop: make(chan struct{})}
	l.wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-l.stop:
				return
			default:
			}
			if _, err := c.Namespace.Create(ctx, &mdtv1.CreateRequest{Path: []byte(fmt.Sprintf("%s/f%d", dir, i)), Mode: 0o644}); err != nil {
				t.Errorf("create: %v", err)
				return
			}
			l.n = i + 1
		}
	})
	return l
}

func (l *load) Stop() int {
	close(l.stop)
	l.wg.Wait()
	return l.n
}

// currentIndex returns the server's current changelog index.
func currentIndex(t testing.TB, s *mdtServer, c *client.Client) changelog.Index {
	t.Helper()
	st, err := c.State(ctxT(t), s.device)
	if err != nil {
		t.Fatal(err)
	}
	return changelog.Index(st.GetCurrentIndex())
}

// userIndex returns the cleared index of the changelog user named name.
func userIndex(t testing.TB, s *mdtServer, c *client.Client, name string) changelog.Index {
	t.Helper()
	r, err := c.Users(ctxT(t), s.device)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range r.GetUsers() {
		if u.GetName() == name {
			return changelog.Index(u.GetIndex())
		}
	}
	return 0
}

// dirLines returns every line of the sink files in dir, oldest file first,
// decompressing .gz files; it fails on a half-written last line.
func dirLines(t testing.TB, dir, ext string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, e := range ents { // ReadDir sorts by name: by time
		n := e.Name()
		if !strings.HasSuffix(n, ext) && !strings.HasSuffix(n, ext+".gz") {
			continue
		}
		f, err := os.Open(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		var r io.Reader = f
		if strings.HasSuffix(n, ".gz") {
			zr, err := gzip.NewReader(f)
			if err != nil {
				t.Fatalf("%s: %v", n, err)
			}
			r = zr
		}
		b, err := io.ReadAll(r)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		if len(b) > 0 && b[len(b)-1] != '\n' {
			t.Fatalf("%s ends with a half-written line", n)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
	}
	return lines
}

// checkExactlyOnce parses lines with f and checks that each device in want
// has exactly the indices 1..want[dev], in increasing order, once each.
func checkExactlyOnce(t testing.TB, f *format, lines []string, want map[string]changelog.Index) {
	t.Helper()
	last := map[string]changelog.Index{}
	dups, gaps := 0, 0
	for i, l := range lines {
		dev, idx, err := f.parse([]byte(l))
		if errors.Is(err, errChainLine) {
			continue // a checkpoint or the anchor
		}
		if err != nil {
			t.Fatalf("line %d %q: %v", i+1, l, err)
		}
		switch {
		case idx <= last[dev]:
			dups++
			if dups < 5 {
				t.Errorf("%s index %d after %d (duplicate or out of order), line %d", dev, idx, last[dev], i+1)
			}
		case idx != last[dev]+1:
			gaps++
			if gaps < 5 {
				t.Errorf("%s gap: index %d after %d, line %d", dev, idx, last[dev], i+1)
			}
		}
		last[dev] = max(last[dev], idx)
	}
	for dev, n := range want {
		if last[dev] != n {
			t.Errorf("%s: last exported index %d, want %d", dev, last[dev], n)
		}
	}
	if dups > 0 || gaps > 0 {
		t.Fatalf("%d duplicates, %d gaps in %d lines", dups, gaps, len(lines))
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// natsServer is a real NATS server with JetStream on a temp dir, embedded
// from its Go module; restart keeps its port and store.
type natsServer struct {
	t    testing.TB
	dir  string
	port int
	srv  *server.Server
}

func startNATS(t testing.TB) *natsServer {
	t.Helper()
	n := &natsServer{t: t, dir: t.TempDir(), port: -1}
	n.start()
	n.port = n.srv.Addr().(*net.TCPAddr).Port
	t.Cleanup(n.stop)
	return n
}

func (n *natsServer) start() {
	n.t.Helper()
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: n.port, JetStream: true, StoreDir: n.dir, NoLog: true, NoSigs: true,
	})
	if err != nil {
		n.t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(20 * time.Second) {
		n.t.Fatal("nats-server not ready within 20s")
	}
	n.srv = srv
}

func (n *natsServer) stop() {
	if n.srv != nil {
		n.srv.Shutdown()
		n.srv.WaitForShutdown()
		n.srv = nil
	}
}

// url is the sink URL's host part.
func (n *natsServer) hostPort() string { return fmt.Sprintf("127.0.0.1:%d", n.port) }

// streamLines reads every message of stream with an ordered consumer (a
// downstream JetStream consumer) and checks each subject against its line.
func (n *natsServer) streamLines(t testing.TB, stream string, f *format) []string {
	t.Helper()
	nc, err := nats.Connect("nats://" + n.hostPort())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	st, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for uint64(len(lines)) < info.State.Msgs {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			line := string(m.Data())
			dev, idx, err := f.parse(m.Data())
			if errors.Is(err, errChainLine) {
				checkChainMsg(t, m, line)
				lines = append(lines, line)
				continue
			}
			if err != nil {
				t.Fatalf("message %q: %v", line, err)
			}
			if id := m.Headers().Get(jetstream.MsgIDHeader); id != fmt.Sprintf("%s:%d", dev, idx) {
				t.Fatalf("message %s:%d has Nats-Msg-Id %q", dev, idx, id)
			}
			if !strings.HasPrefix(m.Subject(), "fidlog."+fsName(dev)+"."+targetName(dev)+".") {
				t.Fatalf("message %s:%d on subject %s", dev, idx, m.Subject())
			}
			lines = append(lines, line)
		}
		if got == 0 {
			t.Fatalf("stream %s: fetched %d of %d messages, then nothing", stream, len(lines), info.State.Msgs)
		}
	}
	return lines
}

// checkChainMsg checks the subject and Nats-Msg-Id of a checkpoint or
// anchor message.
func checkChainMsg(t testing.TB, m jetstream.Msg, line string) {
	t.Helper()
	dev, seq, err := parseChainLine(m.Data())
	if err != nil {
		t.Fatalf("message %q: %v", line, err)
	}
	prefix := "fidlog." + fsName(dev) + "." + targetName(dev) + "."
	id := m.Headers().Get(jetstream.MsgIDHeader)
	if seq > 0 {
		if m.Subject() != prefix+"CHECKPOINT" || id != fmt.Sprintf("%s:checkpoint:%d", dev, seq) {
			t.Fatalf("checkpoint %s:%d on subject %s with Nats-Msg-Id %q", dev, seq, m.Subject(), id)
		}
		return
	}
	var a struct {
		Anchor changelog.AnchorJSON `json:"anchor"`
	}
	if err := json.Unmarshal(m.Data(), &a); err != nil || m.Subject() != prefix+"ANCHOR" || id != fmt.Sprintf("%s:anchor:%d", dev, a.Anchor.Index) {
		t.Fatalf("anchor %q on subject %s with Nats-Msg-Id %q", line, m.Subject(), id)
	}
}

var metricsRe = regexp.MustCompile(`msg=metrics addr=(\S+)`)

// metricsAddr waits for the exporter's metrics address.
func metricsAddr(t testing.TB, x *proc) string {
	t.Helper()
	var addr string
	waitFor(t, 30*time.Second, "the metrics address", func() bool {
		if m := metricsRe.FindStringSubmatch(x.Output()); m != nil {
			addr = m[1]
			return true
		}
		return false
	})
	return addr
}

// metric returns the value of the sample named series (name and labels as
// Prometheus prints them), or -1 if it is absent.
func metric(t testing.TB, addr, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", l, err)
			}
			return f
		}
	}
	return -1
}

// createFiles creates n files named prefix0.. in dir.
func createFiles(t testing.TB, c *client.Client, dir, prefix string, n int) {
	t.Helper()
	ctx := ctxT(t)
	for i := range n {
		if _, err := c.Namespace.Create(ctx, &mdtv1.CreateRequest{Path: []byte(fmt.Sprintf("%s/%s%d", dir, prefix, i)), Mode: 0o644}); err != nil {
			t.Fatal(err)
		}
	}
}
