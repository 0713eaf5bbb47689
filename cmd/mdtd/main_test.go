package main

import (
	"bufio"
	"bytes"
	"context"
	"github.com/fidlog/fidlog/mdt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fidlog/fidlog/api/client"
	changelogv1 "github.com/fidlog/fidlog/proto/lustre/changelog/v1"
	mdtv1 "github.com/fidlog/fidlog/proto/lustre/mdt/v1"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// shortTemp returns a directory with a short path (unix socket limit).
func shortTemp(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "mdtd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var servingRE = regexp.MustCompile(`msg=serving device=(\S+)(?: tcp=(\S+))? socket=(\S+)(?: metrics=(\S+))?`)

func TestRunExitCodes(t *testing.T) {
	dir := shortTemp(t)
	notSock := filepath.Join(dir, "file")
	os.WriteFile(notSock, nil, 0o600)
	base := []string{"--data", filepath.Join(dir, "d"), "--socket", filepath.Join(dir, "s.sock")}
	tcp := append(append([]string(nil), base...), "--listen", "127.0.0.1:0")
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"--help"}, exitOK, ""},
		{[]string{"--bogus"}, exitUsage, "unknown flag"},
		{[]string{"extra"}, exitUsage, "unknown command"},
		{[]string{"--index", "x"}, exitUsage, "invalid argument"},
		{append(base, "--fsname", "muchtoolongname"), exitError, "muchtoolongname"},
		{append(base, "--socket", "/tmp/"+strings.Repeat("s", 110)), exitError, "107-byte limit"},
		{append(base, "--socket", notSock), exitError, "not a socket"},
		{append(base, "--log-level", "loud"), exitError, "loud"},
		{append(base, "--log-format", "xml"), exitError, "xml"},
		{append(base, "--namespace-cache", "-1"), exitError, "invalid --namespace-cache '-1'"},
		{append(base, "--socket", "none"), exitError, "nothing to serve"},
		{append(base, "--socket-mode", "0999"), exitError, "invalid --socket-mode '0999'"},
		{append(base, "--data", filepath.Join(notSock, "d")), exitError, "data directory '" + filepath.Join(notSock, "d") + "': "},
		{append(base, "--ballast-size", "lots"), exitError, "--ballast-size: invalid size 'lots'"},
		{append(base, "--ballast-size", "-1M"), exitError, "--ballast-size: invalid size '-1M'"},
		{append(base, "--ballast-size", "99999999999T"), exitError, "--ballast-size: invalid size '99999999999T'"},
		{append(base, "--socket-mode", "01777"), exitError, "invalid --socket-mode '01777'"},
		// TCP only with mutual TLS or an explicit --insecure.
		{tcp, exitError, "--listen 127.0.0.1:0: TCP needs mutual TLS (--tls-cert FILE --tls-key FILE --tls-client-ca FILE"},
		{tcp, exitError, "or --insecure"},
		{append(tcp, "--tls-cert", "c.pem", "--tls-key", "k.pem"), exitError, "needs all of --tls-cert, --tls-key and --tls-client-ca"},
		{append(tcp, "--tls-cert", "c.pem", "--tls-key", "k.pem", "--tls-client-ca", "ca.pem", "--insecure"), exitError, "exclude each other"},
		{append(base, "--tls-cert", "c.pem", "--tls-key", "k.pem", "--tls-client-ca", "ca.pem"), exitError, "give --listen too"},
		{append(tcp, "--tls-cert", "c.pem", "--tls-key", "k.pem", "--tls-client-ca", "ca.pem"), exitError, "loading TLS key pair"},
	} {
		var out, errb bytes.Buffer
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // anything that starts stops at once
		if code := runContext(ctx, tc.args, &out, &errb); code != tc.code || !strings.Contains(errb.String(), tc.msg) {
			t.Errorf("mdtd %q = %d, stderr %q; want %d and %q", tc.args, code, errb.String(), tc.code, tc.msg)
		}
	}
}

// start runs mdtd in-process until the returned stop is called.
func start(t *testing.T, args ...string) (logs *syncBuffer, m []string, stop func() int) {
	t.Helper()
	logs = &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- runContext(ctx, args, io.Discard, logs) }()
	deadline := time.Now().Add(20 * time.Second)
	for m == nil {
		m = servingRE.FindStringSubmatch(logs.String())
		select {
		case code := <-done:
			cancel()
			t.Fatalf("mdtd exited %d: %s", code, logs)
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("no serving line: %s", logs)
		}
		time.Sleep(5 * time.Millisecond)
	}
	var once sync.Once
	code := -1
	stop = func() int {
		once.Do(func() { cancel(); code = <-done })
		return code
	}
	t.Cleanup(func() { stop() })
	return logs, m, stop
}

func TestRunInProcess(t *testing.T) {
	dir := shortTemp(t)
	data := filepath.Join(dir, "data")
	os.MkdirAll(data, 0o700)
	// A stale socket left by a crash is replaced.
	sock := filepath.Join(dir, "mdtd.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()

	logs, m, stop := start(t, "--data", data, "--socket", sock, "--listen", "127.0.0.1:0", "--insecure", "--fsname", "testfs", "--index", "1", "--heartbeat", "50ms")
	if m[1] != "testfs-MDT0001" || m[3] != sock {
		t.Fatalf("serving line %q", m[0])
	}
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Perm() != 0o666 {
		t.Fatalf("socket mode: %v %v", fi, err)
	}
	// A second server on the same socket is refused.
	var errb bytes.Buffer
	if code := runContext(context.Background(), []string{"--data", filepath.Join(dir, "other"), "--socket", sock}, io.Discard, &errb); code != exitError || !strings.Contains(errb.String(), "in use") {
		t.Fatalf("second server: %d %s", code, errb.String())
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, target := range []string{m[2], "unix:" + m[3]} {
		c, err := client.Dial(target)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Healthy(ctx); err != nil {
			t.Fatalf("%s: %v", target, err)
		}
	}
	c, _ := client.Dial("unix:" + m[3])
	defer c.Close()
	if _, err := c.Register(ctx, "testfs-MDT0001", "watch", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Namespace.Mkdir(ctx, &mdtv1.MkdirRequest{Path: []byte("d")}); err != nil {
		t.Fatal(err)
	}
	st, err := c.Changelog.Read(ctx, &changelogv1.ReadRequest{Device: "testfs-MDT0001", Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	if msg, err := st.Recv(); err != nil || len(msg.GetRecords()) != 1 {
		t.Fatalf("first message %v %v", msg, err)
	}
	if code := stop(); code != exitOK {
		t.Fatalf("exit %d: %s", code, logs)
	}
	for {
		if _, err := st.Recv(); err != nil {
			if status.Code(err) != codes.Unavailable {
				t.Fatalf("follow stream ended with %v", err)
			}
			break
		}
	}
	for _, want := range []string{"changelog_user_registered", "changelog_on", "shutting_down", "stopped"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %s:\n%s", want, logs)
		}
	}
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left behind: %v", err)
	}
}

// TestBinarySIGTERM builds mdtd, runs it with an ephemeral port and
// metrics, and stops it with SIGTERM while a follow stream is open.
func TestBinarySIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := shortTemp(t)
	bin := filepath.Join(dir, "mdtd")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "--data", filepath.Join(dir, "data"), "--socket", filepath.Join(dir, "s.sock"), "--socket-mode", "0600",
		"--listen", "127.0.0.1:0", "--insecure", "--metrics", "127.0.0.1:0", "--log-format", "text")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var m []string
	sawWarning := false
	timeout := time.After(20 * time.Second)
	for m == nil {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("mdtd exited before serving")
			}
			m = servingRE.FindStringSubmatch(l)
		case <-timeout:
			t.Fatal("no serving line")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for !sawWarning { // the warning follows the serving line
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("mdtd exited after serving")
			}
			sawWarning = strings.Contains(l, "msg=insecure_tcp")
		case <-timeout:
			t.Fatal("--insecure logged no insecure_tcp warning")
		}
	}
	if fi, err := os.Stat(m[3]); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("--socket-mode 0600: %v %v", fi, err)
	}
	c, err := client.Dial(m[2]) // --insecure: plain TCP as before
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Healthy(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Register(ctx, m[1], "", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Namespace.Create(ctx, &mdtv1.CreateRequest{Path: []byte("f")}); err != nil {
		t.Fatal(err)
	}
	st, err := c.Changelog.Read(ctx, &changelogv1.ReadRequest{Device: m[1], Follow: true, Raw: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + m[4] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"mdt_changelog_current_index 1", "mdt_changelog_durable_index 1", "mdt_changelog_first_index 1",
		`mdt_changelog_user_lag{user="cl1"} 1`, `mdt_changelog_records_appended_total{type="CREAT"} 1`,
		"mdt_changelog_streams 1", "mdt_commit_latency_seconds_count", "mdt_fsyncs_total", "mdtd_tcp_insecure 1"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); status.Code(err) != codes.Unavailable {
		t.Fatalf("follow stream ended with %v", err)
	}
	errc := make(chan error, 1)
	go func() {
		for range lines {
		}
		errc <- cmd.Wait()
	}()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("mdtd exit: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("mdtd did not exit after SIGTERM")
	}
}

// TestNamespaceCacheFlag: --namespace-cache 0 turns the MDT's cache off
// (mdt.Options wants a negative number for that; its 0 is the default).
func TestNamespaceCacheFlag(t *testing.T) {
	for in, want := range map[int]int{0: -1, 1: 1, mdt.DefaultNamespaceCacheEntries: mdt.DefaultNamespaceCacheEntries} {
		if got := nsCacheEntries(in); got != want {
			t.Errorf("nsCacheEntries(%d) = %d, want %d", in, got, want)
		}
	}
}

// TestParseSize: --ballast-size's sizes.
func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "4096": 4096, "128M": 128 << 20, "128MiB": 128 << 20, "1g": 1 << 30, " 2K ": 2048, "1T": 1 << 40} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "M", "1.5G", "-1", "1P", "0x10", "99999999999T"} {
		if _, err := parseSize(in); err == nil || !strings.Contains(err.Error(), "'"+in+"'") {
			t.Errorf("parseSize(%q): %v, want an error naming it", in, err)
		}
	}
}

// TestStopWhileOpening: an open that cannot finish (Pebble retries the
// flush of the recovered log while its writes fail) does not make mdtd
// deaf to SIGTERM: it stops, says so, and exits 1; once the fault is gone
// the MDT it was opening is closed again and the data directory opens.
func TestStopWhileOpening(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "d")
	args := []string{"--data", data, "--socket", filepath.Join(dir, "s.sock"), "--ballast-size", "0"}
	// The first start's writes stay in the WAL, unflushed: the next open
	// must flush them.
	_, _, stop := start(t, args...)
	if code := stop(); code != 0 {
		t.Fatalf("stop: exit %d", code)
	}

	failing := &errorfs.Toggle{Injector: errorfs.InjectorFunc(func(op errorfs.Op) error {
		if strings.HasSuffix(op.Path, ".sst") && op.Kind.ReadOrWrite() == errorfs.OpIsWrite {
			return errorfs.ErrInjected
		}
		return nil
	})}
	failing.On()
	testMDTOptions = func(o *mdt.Options) { o.FS = errorfs.Wrap(o.FS, failing) }
	defer func() { testMDTOptions = nil }()
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- runContext(ctx, args, io.Discard, logs) }()
	time.Sleep(500 * time.Millisecond)
	select {
	case code := <-done:
		t.Fatalf("mdtd exited %d with its flushes failing: %s", code, logs)
	default:
	}
	cancel()
	select {
	case code := <-done:
		if code != exitError || !strings.Contains(logs.String(), "open_interrupted") || !strings.Contains(logs.String(), "stopped while opening") {
			t.Fatalf("mdtd stopped while opening: exit %d, logs:\n%s", code, logs)
		}
	case <-time.After(openStopGrace + 10*time.Second):
		t.Fatalf("mdtd still opening %v after the stop: %s", openStopGrace+10*time.Second, logs)
	}
	// The fault goes; the abandoned open finishes and is closed again, so
	// the data directory opens and serves.
	failing.Off()
	testMDTOptions = nil
	deadline := time.Now().Add(20 * time.Second)
	for !servesOnce(t, args) {
		if time.Now().After(deadline) {
			t.Fatal("the data directory is still held 20 s after the fault went")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// servesOnce runs mdtd until it serves and stops it; false if it exited
// first because its data directory is in use.
func servesOnce(t *testing.T, args []string) bool {
	t.Helper()
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() { done <- runContext(ctx, args, io.Discard, logs) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case code := <-done:
			if code == exitError && (strings.Contains(logs.String(), "in use") || strings.Contains(logs.String(), "lock held")) {
				return false
			}
			t.Fatalf("mdtd exited %d: %s", code, logs)
		default:
		}
		if servingRE.MatchString(logs.String()) {
			cancel()
			if code := <-done; code != exitOK {
				t.Fatalf("stop: exit %d: %s", code, logs)
			}
			return true
		}
		if time.Now().After(deadline) {
			t.Fatalf("no serving line: %s", logs)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
