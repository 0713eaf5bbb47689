package integration

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fidlog/fidlog/api/client"
)

// Issue 10: nobody reads, forges or erases the audit trail without the
// right to. Every client here is a real process started as uid 65534.

const nobody = 65534

// requireRoot skips, loudly, unless the test may start processes as
// another uid (CI runs as root, so there it never skips).
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED: starting client processes as uid 65534 needs root; CI runs these tests as root")
	}
}

// openDir returns a short temporary directory uid 65534 may enter.
func openDir(t *testing.T) string {
	t.Helper()
	d := shortTempDir(t)
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// RunAs runs a built command as uid:gid (no supplementary groups) with a
// minimal environment plus env.
func RunAs(t *testing.T, uid, gid uint32, env []string, name string, args ...string) Result {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, name), args...)
	cmd.Env = append([]string{"PATH=/usr/bin:/bin", "HOME=/"}, env...)
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: []uint32{}}}
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s %v as uid %d: %v", name, args, uid, err)
	}
	return Result{Stdout: out.String(), Stderr: errb.String(), Code: code}
}

// wantEPERM checks that r failed with EPERM (exit 1, "Operation not
// permitted").
func wantEPERM(t *testing.T, what string, r Result) {
	t.Helper()
	if r.Code != int(syscall.EPERM) || !strings.Contains(r.Stderr, "Operation not permitted") {
		t.Errorf("%s: want EPERM, got %s", what, r)
	}
}

// wantAbsent checks, as the local administrator, that path does not exist.
func wantAbsent(t *testing.T, s *Server, path string) {
	t.Helper()
	if r := sock(t, s, "mdc", "stat", path); r.Code != int(syscall.ENOENT) {
		t.Errorf("%s exists after a refused request: %s", path, r)
	}
}

// wantOwner checks, as the local administrator, that path is owned by
// uid:gid.
func wantOwner(t *testing.T, s *Server, path string, uid, gid int) {
	t.Helper()
	out := mustSock(t, s, "mdc", "stat", path)
	if want := regexp.MustCompile(`Uid: ` + itoa(uid) + `\s+Gid: ` + itoa(gid) + `\b`); !want.MatchString(out) {
		t.Errorf("%s not owned by %d:%d:\n%s", path, uid, gid, out)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// wantUntouched checks that cl1 is still registered at index 0 and the
// changelog still starts at record 1.
func wantUntouched(t *testing.T, s *Server) {
	t.Helper()
	if users := mustSock(t, s, "lctl", "get_param", "-n", "mdd."+device+".changelog_users"); !regexp.MustCompile(`(?m)^cl1 +0 `).MatchString(users) {
		t.Errorf("changelog user cl1 moved or went away:\n%s", users)
	}
	if out := mustSock(t, s, "lfs", "changelog", device); !strings.HasPrefix(out, "1 ") {
		t.Errorf("records were purged:\n%s", out)
	}
}

// TestAuthSocketUnprivileged: over the unix socket a uid 65534 process
// acts as itself; it cannot claim root or another identity, read, follow,
// clear, register, deregister or administer; its creates are its own; the
// root peer stays the administrator after nodemap_activate 1 with a
// restrictive default nodemap.
func TestAuthSocketUnprivileged(t *testing.T) {
	requireRoot(t)
	dir := openDir(t)
	s := StartServerAt(t, filepath.Join(dir, "data"), filepath.Join(dir, "s.sock"))
	mustSock(t, s, "lctl", "--device", device, "changelog_register")
	mustSock(t, s, "mdc", "mkdir", "-m", "0700", "secret")
	mustSock(t, s, "mdc", "touch", "secret/plan")
	mustSock(t, s, "mdc", "mkdir", "-m", "0777", "pub")
	mask := mustSock(t, s, "lctl", "get_param", "-n", "mdd."+device+".changelog_mask")
	nob := func(name string, args ...string) Result {
		return RunAs(t, nobody, nobody, nil, name, append([]string{"--server", "unix:" + s.Socket}, args...)...)
	}

	// Another identity is refused and changes nothing.
	wantEPERM(t, "mdc --uid 0", nob("mdc", "--uid", "0", "mkdir", "pub/asroot"))
	wantEPERM(t, "mdc --gid 0", nob("mdc", "--gid", "0", "touch", "pub/asgid"))
	wantEPERM(t, "mdc --uid 1000", nob("mdc", "--uid", "1000", "touch", "pub/as1000"))
	wantEPERM(t, "mdc --groups 0", nob("mdc", "--groups", "0", "touch", "pub/asgroup"))
	for _, p := range []string{"pub/asroot", "pub/asgid", "pub/as1000", "pub/asgroup"} {
		wantAbsent(t, s, p)
	}
	// Permissions apply to it as to uid 65534.
	if r := nob("mdc", "ls", "secret"); r.Code != int(syscall.EACCES) {
		t.Errorf("nobody lists a 0700 root directory: %s", r)
	}
	// The changelog is not its to read or change.
	for _, args := range [][]string{
		{"lfs", "changelog", device},
		{"lfs", "changelog", "--follow", device},
		{"lfs", "changelog_clear", device, "cl1", "0"},
		{"lctl", "--device", device, "changelog_deregister", "cl1"},
		{"lctl", "--device", device, "changelog_register"},
		{"lctl", "set_param", "mdd." + device + ".changelog_mask=-ALL"},
		{"lctl", "nodemap_activate", "1"},
	} {
		wantEPERM(t, strings.Join(args, " "), nob(args[0], args[1:]...))
	}
	// The reason is the server's, without the Go package's "api: " prefix.
	if r := nob("lctl", "nodemap_add", "x"); !strings.HasPrefix(r.Stderr, "error: nodemap_add: permission denied: nodemap_add needs root (") {
		t.Errorf("nodemap_add as nobody: %s", r)
	}
	wantUntouched(t, s)
	if got := mustSock(t, s, "lctl", "get_param", "-n", "mdd."+device+".changelog_mask"); got != mask {
		t.Errorf("changelog_mask changed from %q to %q", mask, got)
	}
	// Its creates are its own.
	if r := nob("mdc", "touch", "pub/mine"); r.Code != 0 {
		t.Fatalf("nobody cannot create in a 0777 directory: %s", r)
	}
	wantOwner(t, s, "pub/mine", nobody, nobody)
	if out := mustSock(t, s, "lfs", "changelog", device); !regexp.MustCompile(`(?m)^\d+ 01CREAT .* u=65534:65534 nid=0@lo .*\bmine$`).MatchString(out) {
		t.Errorf("no CREAT by u=65534:65534 nid=0@lo:\n%s", out)
	}

	// The root peer is never squashed: a default nodemap as restrictive as
	// it gets, nodemaps active, and root still administers.
	for _, p := range [][2]string{{"admin", "0"}, {"trusted", "0"}, {"rbac", "none"}, {"deny_unknown", "1"}} {
		mustSock(t, s, "lctl", "nodemap_modify", "--name", "default", "--property", p[0], "--value", p[1])
	}
	mustSock(t, s, "lctl", "nodemap_activate", "1")
	mustSock(t, s, "mdc", "mkdir", "rootdir")
	wantOwner(t, s, "rootdir", 0, 0)
	if out := mustSock(t, s, "lfs", "changelog", device); !regexp.MustCompile(`(?m)^\d+ 02MKDIR .* u=0:0 nid=0@lo .*\brootdir$`).MatchString(out) {
		t.Errorf("root's mkdir after nodemap_activate 1 not recorded as u=0:0:\n%s", out)
	}
	mustSock(t, s, "lctl", "set_param", "mdd."+device+".changelog_mask=+OPEN")
	mustSock(t, s, "lfs", "changelog_clear", device, "cl1", "0")
	mustSock(t, s, "lctl", "--device", device, "changelog_register", "-u", "second")
	// A local user is not mapped by nodemaps either: still itself, still
	// refused the changelog.
	if r := nob("mdc", "touch", "pub/after"); r.Code != 0 {
		t.Fatalf("nobody after nodemap_activate 1: %s", r)
	}
	wantOwner(t, s, "pub/after", nobody, nobody)
	wantEPERM(t, "lfs changelog after nodemap_activate 1", nob("lfs", "changelog", device))
}

// writeExpired signs, with the CA in pki, a client certificate that
// expired yesterday, and writes NAME.crt and NAME.key into dir.
func writeExpired(t *testing.T, dir, name string) {
	t.Helper()
	ca, err := tls.LoadX509KeyPair(pkiFile("ca.crt"), pkiFile("ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(ca.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, ca.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for f, b := range map[string][]byte{
		name + ".crt": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		name + ".key": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}),
	} {
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// giveTo copies files into dir (made if needed) and makes everything in
// it owned by uid 65534.
func giveTo(t *testing.T, dir string, files ...string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chown(p, nobody, nobody)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestAuthTCPUnprivileged: TCP serves only clients with a certificate from
// the configured CA. A uid 65534 process without one, with an expired one,
// with one from another CA, or unable to read the node's root-only key is
// refused and nothing changes. Given a certificate of its own, it acts as
// itself (u=65534:65534) and still cannot read, clear or deregister; the
// uid 0 a node asserts is squashed by a nodemap with admin=0.
func TestAuthTCPUnprivileged(t *testing.T) {
	requireRoot(t)
	dir := openDir(t)
	s := StartServerAt(t, filepath.Join(dir, "data"), filepath.Join(dir, "s.sock"))
	mustSock(t, s, "lctl", "--device", device, "changelog_register")
	mustSock(t, s, "mdc", "mkdir", "-m", "0777", "pub")

	mine, other := filepath.Join(dir, "nobody"), filepath.Join(dir, "other")
	if err := makePKI(other); err != nil {
		t.Fatal(err)
	}
	giveTo(t, mine, pkiFile("ca.crt"), pkiFile("client.crt"), pkiFile("client.key"))
	writeExpired(t, mine, "expired")
	giveTo(t, mine, filepath.Join(other, "client.crt"), filepath.Join(other, "client.key"))
	if err := os.Rename(filepath.Join(mine, "client.crt"), filepath.Join(mine, "other.crt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(mine, "client.key"), filepath.Join(mine, "other.key")); err != nil {
		t.Fatal(err)
	}
	giveTo(t, mine, pkiFile("client.crt"), pkiFile("client.key")) // its own copy of a node certificate
	ca := "MDT_TLS_CA=" + filepath.Join(mine, "ca.crt")
	files := func(d, name string) []string {
		return []string{ca, "MDT_TLS_CERT=" + filepath.Join(d, name+".crt"), "MDT_TLS_KEY=" + filepath.Join(d, name+".key")}
	}
	tcp := func(env []string, name string, args ...string) Result {
		return RunAs(t, nobody, nobody, env, name, append([]string{"--server", s.Addr}, args...)...)
	}

	for _, tc := range []struct {
		name string
		env  []string
	}{
		{"no-certificate", []string{ca}},
		{"plain-text", nil},
		{"expired", files(mine, "expired")},
		{"other-ca", files(mine, "other")},
		{"root-only-node-key", files(pki, "client")},
	} {
		r := tcp(tc.env, "mdc", "--uid", "0", "mkdir", "pub/"+tc.name)
		if r.Code == 0 {
			t.Errorf("%s: served: %s", tc.name, r)
		}
		wantAbsent(t, s, "pub/"+tc.name)
		if r := tcp(tc.env, "lfs", "changelog_clear", device, "cl1", "0"); r.Code == 0 {
			t.Errorf("%s: clear served: %s", tc.name, r)
		}
	}
	wantUntouched(t, s)

	// With a certificate, it is a node: it asserts its own uid.
	own := files(mine, "client")
	if r := tcp(own, "mdc", "touch", "pub/tcpmine"); r.Code != 0 {
		t.Fatalf("with a certificate: %s", r)
	}
	wantOwner(t, s, "pub/tcpmine", nobody, nobody)
	// The same with flags instead of the environment.
	if r := tcp(nil, "mdc", "--tls-ca", filepath.Join(mine, "ca.crt"), "--tls-cert", filepath.Join(mine, "client.crt"),
		"--tls-key", filepath.Join(mine, "client.key"), "touch", "pub/byflags"); r.Code != 0 {
		t.Fatalf("with --tls-* flags: %s", r)
	}
	wantOwner(t, s, "pub/byflags", nobody, nobody)
	for _, args := range [][]string{
		{"lfs", "changelog", device},
		{"lfs", "changelog_clear", device, "cl1", "0"},
		{"lctl", "--device", device, "changelog_deregister", "cl1"},
	} {
		wantEPERM(t, "over TCP: "+strings.Join(args, " "), tcp(own, args[0], args[1:]...))
	}
	// A node asserting uid 0 from a nodemap with admin=0 is squashed.
	mustSock(t, s, "lctl", "nodemap_add", "c0")
	mustSock(t, s, "lctl", "nodemap_add_range", "--name", "c0", "--range", "127.0.0.1@tcp")
	mustSock(t, s, "lctl", "nodemap_modify", "--name", "c0", "--property", "trusted", "--value", "1")
	mustSock(t, s, "lctl", "nodemap_activate", "1")
	if r := tcp(own, "mdc", "--uid", "0", "--gid", "0", "touch", "pub/squashed"); r.Code != 0 {
		t.Fatalf("squashed root cannot create in a 0777 directory: %s", r)
	}
	wantOwner(t, s, "pub/squashed", nobody, nobody)
	wantEPERM(t, "squashed root reads", tcp(own, "lfs", "changelog", device))
	wantUntouched(t, s)
	out := mustSock(t, s, "lfs", "changelog", device)
	for _, name := range []string{"tcpmine", "squashed"} {
		if !regexp.MustCompile(`(?m)^\d+ 01CREAT .* u=65534:65534 nid=127\.0\.0\.1@tcp .*\b` + name + `$`).MatchString(out) {
			t.Errorf("no CREAT of %s by u=65534:65534 nid=127.0.0.1@tcp:\n%s", name, out)
		}
	}
}

// TestAuthInsecure: with --insecure, TCP behaves as before authentication
// existed: a warning at start, and any process may claim root.
func TestAuthInsecure(t *testing.T) {
	requireRoot(t)
	dir := openDir(t)
	s := StartServerAt(t, filepath.Join(dir, "data"), filepath.Join(dir, "s.sock"), "--insecure")
	// The warning follows the serving line.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(s.Logs(), "msg=insecure_tcp"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no insecure_tcp warning:\n%s", s.Logs())
		}
	}
	mustSock(t, s, "lctl", "--device", device, "changelog_register")
	if r := RunAs(t, nobody, nobody, nil, "mdc", "--server", s.Addr, "--uid", "0", "--gid", "0", "mkdir", "claimed"); r.Code != 0 {
		t.Fatalf("--insecure refused a plain TCP client: %s", r)
	}
	wantOwner(t, s, "claimed", 0, 0)
	if out := mustSock(t, s, "lfs", "changelog", device); !regexp.MustCompile(`(?m)^1 02MKDIR .* u=0:0 nid=127\.0\.0\.1@tcp .*\bclaimed$`).MatchString(out) {
		t.Errorf("insecure mkdir not recorded as u=0:0:\n%s", out)
	}
}

// socketInUse reports whether a server answers on path.
func socketInUse(path string) bool {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return false
	}
	return c.Close() == nil
}

// TestAuthDefaultSocket runs a bare "mdtd": as root it serves
// client.DefaultSocket, as another user client.FallbackSocket, and the
// commands find either with no --server and no MDT_SERVER, for root and
// for other users. The server's own user is the local administrator of
// its server.
func TestAuthDefaultSocket(t *testing.T) {
	requireRoot(t)
	for _, p := range []string{client.DefaultSocket, client.FallbackSocket} {
		if socketInUse(p) {
			t.Skipf("SKIPPED: a server already answers on %s; this test needs the default sockets free", p)
		}
	}
	noEnv := []string{} // no MDT_SERVER, no MDT_TLS_*
	asRoot := func(name string, args ...string) Result { return RunAs(t, 0, 0, noEnv, name, args...) }
	asNobody := func(name string, args ...string) Result { return RunAs(t, nobody, nobody, noEnv, name, args...) }

	// Root's server: /run/fidlog/mdtd.sock.
	dir := openDir(t)
	s := &Server{t: t, Data: filepath.Join(dir, "root"), Socket: client.DefaultSocket, args: []string{"--data", filepath.Join(dir, "root")}}
	s.start()
	t.Cleanup(s.Kill)
	if !strings.Contains(s.Logs(), "socket="+client.DefaultSocket) || strings.Contains(s.Logs(), "tcp=") {
		t.Fatalf("bare mdtd as root does not serve only %s:\n%s", client.DefaultSocket, s.Logs())
	}
	if fi, err := os.Stat(client.DefaultSocket); err != nil || fi.Mode().Perm() != 0o666 {
		t.Fatalf("default socket mode: %v %v", fi, err)
	}
	if r := asRoot("lctl", "--device", device, "changelog_register"); r.Code != 0 {
		t.Fatalf("root, no flags: %s", r)
	}
	if r := asRoot("mdc", "mkdir", "pics"); r.Code != 0 {
		t.Fatalf("root, no flags: %s", r)
	}
	wantEPERM(t, "nobody, no flags, reads", asNobody("lfs", "changelog", device))
	if r := asNobody("mdc", "mkdir", "x"); r.Code != int(syscall.EACCES) {
		t.Errorf("nobody, no flags, mkdir in / (0755 root): %s", r)
	}
	wantAbsent(t, s, "x")
	if r := asRoot("lfs", "changelog", device); r.Code != 0 || !regexp.MustCompile(`^1 02MKDIR .* u=0:0 nid=0@lo .*\bpics\n$`).MatchString(r.Stdout) {
		t.Errorf("root reads, no flags: %s", r)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}

	// A user's own server: /tmp/fidlog-mdtd.sock; that user administers it
	// (acting as uid 0, as the README walkthrough shows), others do not.
	data := filepath.Join(dir, "mine")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(data, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	u := &Server{t: t, Data: data, Socket: client.FallbackSocket, args: []string{"--data", data}, as: &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}}}
	u.start()
	t.Cleanup(u.Kill)
	if !strings.Contains(u.Logs(), "socket="+client.FallbackSocket) {
		t.Fatalf("bare mdtd as uid %d does not serve %s:\n%s", nobody, client.FallbackSocket, u.Logs())
	}
	for _, args := range [][]string{
		{"lctl", "--device", device, "changelog_register"},
		{"mdc", "mkdir", "-m", "0777", "pics"},
		{"mdc", "--uid", "500", "--gid", "500", "mkdir", "-m", "0700", "pics/p500"},
		{"lfs", "changelog_clear", device, "cl1", "1"},
	} {
		if r := asNobody(args[0], args[1:]...); r.Code != 0 {
			t.Fatalf("the server's own user, no flags, %v: %s", args, r)
		}
	}
	if r := asNobody("lfs", "changelog", device); r.Code != 0 || !regexp.MustCompile(`(?m)^2 02MKDIR .* u=500:500 nid=0@lo .*\bp500$`).MatchString(r.Stdout) {
		t.Errorf("the server's own user reads: %s", r)
	}
	other := func(name string, args ...string) Result { return RunAs(t, 1000, 1000, noEnv, name, args...) }
	wantEPERM(t, "another user reads", other("lfs", "changelog", device))
	wantEPERM(t, "another user clears", other("lfs", "changelog_clear", device, "cl1", "0"))
	wantEPERM(t, "another user deregisters", other("lctl", "--device", device, "changelog_deregister", "cl1"))
	if r := asNobody("lctl", "get_param", "-n", "mdd."+device+".changelog_users"); r.Code != 0 || !regexp.MustCompile(`(?m)^cl1 +1 `).MatchString(r.Stdout) {
		t.Errorf("another user's refused clear/deregister moved cl1 off 1: %s", r)
	}
	if err := u.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(client.FallbackSocket); !os.IsNotExist(err) {
		t.Errorf("the fallback socket is left behind: %v", err)
	}
}

// TestAuthSocketModeDenied: a caller the socket's mode keeps out is told
// so with EACCES (exit 13), as connect(2) says, not the ENOTCONN of a
// server that went away.
func TestAuthSocketModeDenied(t *testing.T) {
	requireRoot(t)
	sock := filepath.Join(openDir(t), "s.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	if err := os.Chmod(sock, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"lfs", "changelog", "lustre-MDT0000"},
		{"lctl", "dl"},
		{"mdc", "ls"},
	} {
		r := RunAs(t, nobody, nobody, []string{"MDT_SERVER=unix:" + sock}, args[0], args[1:]...)
		if r.Code != int(syscall.EACCES) || !strings.Contains(r.Stderr, "cannot connect to MDT server 'unix:"+sock+"': permission denied") {
			t.Errorf("%v as uid %d on a 0600 socket: want exit 13 and permission denied, got %s", args, nobody, r)
		}
	}
}
