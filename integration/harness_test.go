package integration

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/fidlog/fidlog/api/client"
	changelogv1 "github.com/fidlog/fidlog/proto/lustre/changelog/v1"
	mdtv1 "github.com/fidlog/fidlog/proto/lustre/mdt/v1"
)

// bin holds the built binaries, set by TestMain.
var bin string

// pki holds the certificates "mdtd certs" made in TestMain: ca.crt,
// node.crt (127.0.0.1) and client.crt, with their keys.
var pki string

// pkiFile returns the path of a file in pki.
func pkiFile(name string) string { return filepath.Join(pki, name) }

// makePKI runs "mdtd certs" to make a CA, a server certificate for
// 127.0.0.1 and a client certificate in dir.
func makePKI(dir string) error {
	for _, args := range [][]string{{"ca"}, {"node", "--host", "127.0.0.1"}, {"client"}} {
		out, err := exec.Command(filepath.Join(bin, "mdtd"), append(append([]string{"certs"}, args...), "--dir", dir)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("mdtd certs %v: %v\n%s", args, err, out)
		}
	}
	return nil
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fidlog-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cmd := exec.Command("go", "build", "-o", dir+"/", "../cmd/mdtd", "../cmd/lfs", "../cmd/lctl", "../cmd/mdc")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "integration: building the binaries failed: %v\n", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	bin = dir
	pki = filepath.Join(dir, "pki")
	if err := makePKI(pki); err != nil {
		fmt.Fprintf(os.Stderr, "integration: %v\n", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	os.Chmod(dir, 0o755) // unprivileged test processes exec the binaries
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// shortTempDir returns a temporary directory with a short path (unix
// socket paths are limited to 107 bytes).
func shortTempDir(t testing.TB) string {
	d, err := os.MkdirTemp("", "fl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// Server is a running mdtd process.
type Server struct {
	t      testing.TB
	Data   string
	Addr   string // host:port of the TCP listener
	Socket string
	// TLS is true when TCP needs the client certificate of pki.
	TLS  bool
	as   *syscall.Credential // run mdtd as this user; nil: as the test
	args []string
	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	logs bytes.Buffer
	exit error
}

var tcpRe = regexp.MustCompile(`tcp["=:]+"?((?:\[[0-9a-fA-F:.]+\]|[0-9.]+):[0-9]+)`)

// StartServer starts mdtd on data (created if needed) with extra flags.
// It serves the socket and TCP with mutual TLS (the certificates of pki),
// or plain TCP if extra holds --insecure.
func StartServer(t testing.TB, data string, extra ...string) *Server {
	t.Helper()
	return StartServerAt(t, data, filepath.Join(data, "s.sock"), extra...)
}

// StartServerAt is StartServer with the unix socket at sock.
func StartServerAt(t testing.TB, data, sock string, extra ...string) *Server {
	t.Helper()
	s := &Server{t: t, Data: data, Socket: sock, TLS: !slices.Contains(extra, "--insecure")}
	s.args = []string{"--data", data, "--listen", "127.0.0.1:0", "--socket", s.Socket}
	if s.TLS {
		s.args = append(s.args, "--tls-cert", pkiFile("node.crt"), "--tls-key", pkiFile("node.key"), "--tls-client-ca", pkiFile("ca.crt"))
	}
	s.args = append(s.args, extra...)
	s.start()
	t.Cleanup(func() { s.Kill() })
	return s
}

func (s *Server) start() {
	s.t.Helper()
	s.cmd = exec.Command(filepath.Join(bin, "mdtd"), s.args...)
	if s.as != nil {
		s.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.as}
		s.cmd.Dir = "/"
	}
	pr, pw := io.Pipe()
	s.cmd.Stdout, s.cmd.Stderr = pw, pw
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start mdtd: %v", err)
	}
	s.done = make(chan struct{})
	addr := make(chan string, 1)
	scanned := make(chan struct{}) // every line of the output is in s.logs
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.logs.WriteString(line + "\n")
			s.mu.Unlock()
			// The serving line gives the TCP address, if any.
			if strings.Contains(line, "msg=serving") && !sent {
				a := ""
				if m := tcpRe.FindStringSubmatch(line); m != nil {
					a = m[1]
				}
				addr <- a
				sent = true
			}
		}
	}()
	go func() {
		err := s.cmd.Wait()
		pw.Close()
		// done means the process is gone and its last lines are in Logs.
		<-scanned
		s.mu.Lock()
		s.exit = err
		s.mu.Unlock()
		close(s.done)
	}()
	select {
	case a := <-addr:
		s.Addr = a
	case <-s.done:
		s.t.Fatalf("mdtd exited at start: %v\n%s", s.exit, s.Logs())
	case <-time.After(30 * time.Second):
		s.t.Fatalf("mdtd did not report its address within 30s:\n%s", s.Logs())
	}
}

// Logs returns everything the server printed.
func (s *Server) Logs() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logs.String()
}

// Kill sends SIGKILL and waits.
func (s *Server) Kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
}

// Stop sends SIGTERM and returns the exit error.
func (s *Server) Stop() error {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		s.Kill()
		return errors.New("mdtd did not stop within 30s of SIGTERM")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.exit
}

// exitCode waits for s to exit and returns its status.
func exitCode(t *testing.T, s *Server, within time.Duration) int {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(within):
		t.Fatalf("mdtd still running after %v\n%s", within, s.Logs())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var ee *exec.ExitError
	if errors.As(s.exit, &ee) {
		return ee.ExitCode()
	}
	if s.exit == nil {
		return 0
	}
	t.Fatalf("mdtd: %v", s.exit)
	return -1
}

// Restart starts the server again on the same data directory.
func (s *Server) Restart() {
	s.t.Helper()
	s.start()
}

// Target returns the --server value for the TCP listener.
func (s *Server) Target() string { return s.Addr }

// Result is a finished command.
type Result struct {
	Stdout, Stderr string
	Code           int
}

func (r Result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%sstderr:\n%s", r.Code, r.Stdout, r.Stderr)
}

// Run runs one of the built commands against s (s may be nil).
func Run(t testing.TB, s *Server, name string, args ...string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, name), args...)
	cmd.Env = os.Environ()
	if s != nil {
		cmd.Env = append(cmd.Env, "MDT_SERVER="+s.Target())
		if s.TLS {
			cmd.Env = append(cmd.Env, "MDT_TLS_CA="+pkiFile("ca.crt"), "MDT_TLS_CERT="+pkiFile("client.crt"), "MDT_TLS_KEY="+pkiFile("client.key"))
		}
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s %v: %v", name, args, err)
	}
	return Result{Stdout: out.String(), Stderr: errb.String(), Code: code}
}

// MustRun runs a command and fails the test unless it exits 0.
func MustRun(t testing.TB, s *Server, name string, args ...string) string {
	t.Helper()
	r := Run(t, s, name, args...)
	if r.Code != 0 {
		t.Fatalf("%s %s: %s", name, strings.Join(args, " "), r)
	}
	return r.Stdout
}

// Conn is a gRPC connection to a server with a caller identity.
type Conn struct {
	*grpc.ClientConn
	NS mdtv1.NamespaceServiceClient
	CL changelogv1.ChangelogServiceClient
	md metadata.MD
}

// Creds are the transport credentials of a TCP client of s: the client
// certificate of pki, or none with --insecure.
func (s *Server) Creds(t testing.TB) credentials.TransportCredentials {
	t.Helper()
	if !s.TLS {
		return insecure.NewCredentials()
	}
	cfg, err := client.TLSFiles{CA: pkiFile("ca.crt"), Cert: pkiFile("client.crt"), Key: pkiFile("client.key")}.Config()
	if err != nil {
		t.Fatal(err)
	}
	return credentials.NewTLS(cfg)
}

// Dial connects to s over TCP as uid/gid.
func Dial(t testing.TB, s *Server, uid, gid uint32) *Conn {
	t.Helper()
	cc, err := grpc.NewClient(s.Target(), grpc.WithTransportCredentials(s.Creds(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return &Conn{ClientConn: cc, NS: mdtv1.NewNamespaceServiceClient(cc), CL: changelogv1.NewChangelogServiceClient(cc),
		md: metadata.Pairs("lustre-uid", strconv.Itoa(int(uid)), "lustre-gid", strconv.Itoa(int(gid)), "lustre-jobid", "itest."+strconv.Itoa(int(uid)))}
}

// Ctx returns a context carrying the connection's identity.
func (c *Conn) Ctx(ctx context.Context) context.Context {
	return metadata.NewOutgoingContext(ctx, c.md)
}

// changelogLines returns the lfs changelog output lines with the time
// fields replaced by "T", so they can be compared exactly.
func changelogLines(out string) []string {
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if l == "" {
			continue
		}
		if m := lineRe.FindStringSubmatch(l); m != nil {
			l = m[1] + " " + m[2] + " T D " + m[3]
		}
		lines = append(lines, l)
	}
	return lines
}

const device = "lustre-MDT0000"

// lineRe splits an lfs changelog line around its time and date fields; the
// type label is "%02d%-5s" and may end in spaces ("10OPEN  ").
var lineRe = regexp.MustCompile(`^(\d+) (\d\d\S+ *) \S+ \S+ (.*)$`)
