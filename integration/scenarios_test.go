package integration

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	changelogv1 "github.com/fidlog/fidlog/proto/lustre/changelog/v1"
	mdtv1 "github.com/fidlog/fidlog/proto/lustre/mdt/v1"
)

// DialFrom connects to s over TCP from a chosen loopback source address,
// so nodemaps can tell clients apart.
func DialFrom(t *testing.T, s *Server, local string, uid, gid uint32) *Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	cc, err := grpc.NewClient("passthrough:///"+s.Target(), grpc.WithTransportCredentials(s.Creds(t)),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return &Conn{ClientConn: cc, NS: mdtv1.NewNamespaceServiceClient(cc), CL: changelogv1.NewChangelogServiceClient(cc),
		md: metadata.Pairs("lustre-uid", strconv.Itoa(int(uid)), "lustre-gid", strconv.Itoa(int(gid)), "lustre-jobid", "itest."+strconv.Itoa(int(uid)))}
}

// sock runs a command against the server's unix socket (the local
// administrator).
func sock(t *testing.T, s *Server, name string, args ...string) Result {
	t.Helper()
	return Run(t, nil, name, append([]string{"--server", "unix:" + s.Socket}, args...)...)
}

func mustSock(t *testing.T, s *Server, name string, args ...string) string {
	t.Helper()
	r := sock(t, s, name, args...)
	if r.Code != 0 {
		t.Fatalf("%s %s: %s", name, strings.Join(args, " "), r)
	}
	return r.Stdout
}

func getParam(t *testing.T, s *Server, name string) string {
	return strings.TrimSpace(MustRun(t, s, "lctl", "get_param", "-n", name))
}

// sanity 160a end to end: the user appears in changelog_users; masking
// MKDIR and CLOSE suppresses them and re-adding restores them; CREAT t=
// equals path2fid and fid2path of p= is the parent; clearing +3 moves the
// user by 3; the first record shown is min user index + 1; current_index
// survives a restart; after deregistering, touch does not move it.
func TestSanity160a(t *testing.T) {
	s := StartServer(t, shortTempDir(t))
	out := MustRun(t, s, "lctl", "--device", device, "changelog_register", "-n")
	user := strings.TrimSpace(out)
	if user != "cl1" {
		t.Fatalf("changelog_register -n printed %q", out)
	}
	if !strings.Contains(MustRun(t, s, "lctl", "get_param", "mdd."+device+".changelog_users"), "\ncl1 ") {
		t.Fatal("cl1 missing from changelog_users")
	}
	MustRun(t, s, "mdc", "mkdir", "d1")
	MustRun(t, s, "mdc", "touch", "d1/f1")
	MustRun(t, s, "lctl", "set_param", "mdd."+device+".changelog_mask=-MKDIR")
	MustRun(t, s, "lctl", "set_param", "mdd."+device+".changelog_mask=-CLOSE")
	MustRun(t, s, "mdc", "mkdir", "d1/nomk")
	MustRun(t, s, "mdc", "touch", "d1/noclose")
	MustRun(t, s, "lctl", "set_param", "mdd."+device+".changelog_mask=+MKDIR")
	MustRun(t, s, "lctl", "set_param", "mdd."+device+".changelog_mask=+CLOSE")
	MustRun(t, s, "mdc", "mkdir", "d1/mk")
	MustRun(t, s, "mdc", "touch", "d1/f2")
	MustRun(t, s, "mdc", "ln", "d1/f2", "d1/f2.hl")
	MustRun(t, s, "mdc", "ln", "-s", "f2", "d1/f2.sl")
	MustRun(t, s, "mdc", "mv", "d1/f2", "d1/f3")
	MustRun(t, s, "mdc", "rm", "d1/f1")
	lines := changelogLines(MustRun(t, s, "lfs", "changelog", device))
	count := func(typ string) int {
		n := 0
		for _, l := range lines {
			if strings.Fields(l)[1] == typ {
				n++
			}
		}
		return n
	}
	if count("02MKDIR") != 2 || count("11CLOSE") != 2 {
		t.Fatalf("want 2 MKDIR (d1, d1/mk) and 2 CLOSE (f1, f2):\n%s", strings.Join(lines, "\n"))
	}
	for _, typ := range []string{"01CREAT", "03HLINK", "04SLINK", "08RENME", "06UNLNK"} {
		if count(typ) == 0 {
			t.Fatalf("no %s record:\n%s", typ, strings.Join(lines, "\n"))
		}
	}
	// CREAT t= is path2fid of the file; fid2path of p= is the parent.
	fidF3 := strings.TrimSpace(MustRun(t, s, "lfs", "path2fid", "d1/f3"))
	var creat string
	for _, l := range lines {
		if strings.Contains(l, "01CREAT") && strings.HasSuffix(l, " f2") {
			creat = l
		}
	}
	if !strings.Contains(creat, "t="+fidF3+" ") {
		t.Fatalf("CREAT of f2 %q does not carry t=%s", creat, fidF3)
	}
	pf := creat[strings.Index(creat, " p=")+3:]
	pf = pf[:strings.Index(pf, " ")]
	if got := strings.TrimSpace(MustRun(t, s, "lfs", "fid2path", "lustre", pf)); got != "d1" {
		t.Fatalf("fid2path of p=%s = %q, want d1", pf, got)
	}
	// Clearing +3 moves the user index by exactly 3; first shown = min+1.
	MustRun(t, s, "lfs", "changelog_clear", device, user, "3")
	users := getParam(t, s, "mdd."+device+".changelog_users")
	if !strings.Contains(users, "\ncl1                               3 (") {
		t.Fatalf("changelog_users after clear:\n%s", users)
	}
	if first := strings.Fields(changelogLines(MustRun(t, s, "lfs", "changelog", device))[0])[0]; first != "4" {
		t.Fatalf("first record after clearing to 3 is %s", first)
	}
	// current_index survives a restart.
	cur := strings.Split(users, "\n")[0]
	if err := s.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	s.Restart()
	if got := strings.Split(getParam(t, s, "mdd."+device+".changelog_users"), "\n")[0]; got != cur {
		t.Fatalf("after restart %q, before %q", got, cur)
	}
	// After deregistering, a touch does not move current_index.
	MustRun(t, s, "lctl", "--device", device, "changelog_deregister", user)
	MustRun(t, s, "mdc", "touch", "d1/after")
	if got := strings.Split(getParam(t, s, "mdd."+device+".changelog_users"), "\n")[0]; got != cur {
		t.Fatalf("with no users the index moved: %q, was %q", got, cur)
	}
	if r := Run(t, s, "lfs", "changelog", device); r.Code != 0 || r.Stdout != "" {
		t.Fatalf("log after deregistering the last user: %s", r)
	}
}

// sanity 160e: exit codes of bad requests.
func TestSanity160e(t *testing.T) {
	s := StartServer(t, shortTempDir(t))
	MustRun(t, s, "lctl", "--device", device, "changelog_register")
	for _, tc := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"lctl", "--device", device, "changelog_deregister"}, 4, ""}, // CMD_HELP: help on stdout
		{[]string{"lctl", "--device", device, "changelog_deregister", "cl77"}, 2, "error: changelog_deregister: User not found"},
		{[]string{"lfs", "changelog_clear", device, "cl1", "1000000000"}, 22, "changelog_clear: record out of range: 1000000000"},
		{[]string{"lfs", "changelog_clear", device, "cl77", "0"}, 2, "changelog_clear: no changelog user: cl77"},
		{[]string{"lfs", "changelog"}, 4, "lfs changelog: mdtname must be specified"},
		{[]string{"lfs", "changelog", "--mask", "CREATE", device}, 4, "invalid changelog mask 'CREATE'"},
		{[]string{"lfs", "changelog", "nosuch-MDT0007"}, 2, "lfs changelog: cannot start changelog: No such file or directory"},
		{[]string{"lfs", "fid2path", "lustre", "[0x200000400:zz:0x0]"}, 22, "lfs fid2path: invalid FID '[0x200000400:zz:0x0]'"},
		{[]string{"lfs", "fid2path", "lustre", "[0x200000400:0x7777:0x0]"}, 2, "No such file or directory"},
		{[]string{"lctl", "set_param", "mdd." + device + ".changelog_mask=+BOGUS"}, 22, "error: set_param: setting mdd." + device + ".changelog_mask=+BOGUS: Invalid argument"},
		{[]string{"lctl", "set_param", "mdd." + device + ".changelog_max_idle_time=0"}, 34, "changelog_max_idle_time=0"},
		{[]string{"lctl", "get_param", "mdd." + device + ".no_such_param"}, 2, "no_such_param"},
		{[]string{"lctl", "nodemap_add_range", "--name", "default", "--range", "192.168.1.[1,5]@tcp"}, 22, "contiguous"},
		{[]string{"lctl", "--device", device, "changelog_register", "-u", "Tt3_-#"}, 22, "error: changelog_register"},
	} {
		r := Run(t, s, tc.args[0], tc.args[1:]...)
		if r.Code != tc.code || !strings.Contains(r.Stderr, tc.err) {
			t.Errorf("%s: want exit %d and %q on stderr, got %s", strings.Join(tc.args, " "), tc.code, tc.err, r)
		}
		// Lustre's CMD_HELP (exit 4) prints the command's help on stdout.
		if tc.code == 4 && !strings.Contains(r.Stdout, "usage: ") {
			t.Errorf("%s: usage error without help on stdout: %s", strings.Join(tc.args, " "), r)
		}
	}
	// Nothing above changed the log or its user.
	if got := getParam(t, s, "mdd."+device+".changelog_users"); !strings.HasPrefix(got, "current_index: 0\n") || !strings.Contains(got, "\ncl1 ") {
		t.Fatalf("bad input changed state:\n%s", got)
	}
}

// sanity 160g end to end: idle-index GC removes the lagging user and keeps
// the one that cleared; the first record is the kept user's index + 1.
func TestSanity160g(t *testing.T) {
	s := StartServer(t, shortTempDir(t))
	MustRun(t, s, "lctl", "--device", device, "changelog_register")
	MustRun(t, s, "lctl", "--device", device, "changelog_register")
	MustRun(t, s, "lctl", "set_param", "mdd."+device+".changelog_max_idle_indexes=2", "mdd."+device+".changelog_min_gc_interval=1")
	for i := range 3 {
		MustRun(t, s, "mdc", "mkdir", fmt.Sprint("d", i))
	}
	// GC checks after a write, at most once per changelog_min_gc_interval:
	// keep writing until it has run. cl1 keeps clearing (never more than
	// one record behind); cl2 never does.
	var users string
	for i := range 100 {
		MustRun(t, s, "lfs", "changelog_clear", device, "cl1", "0")
		MustRun(t, s, "mdc", "mkdir", fmt.Sprint("trigger", i))
		users = getParam(t, s, "mdd."+device+".changelog_users")
		if !strings.Contains(users, "\ncl2 ") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if strings.Contains(users, "\ncl2 ") || !strings.Contains(users, "\ncl1 ") {
		t.Fatalf("after GC:\n%s", users)
	}
	var cl1 int
	for _, l := range strings.Split(users, "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == "cl1" {
			cl1, _ = strconv.Atoi(f[1])
		}
	}
	if first := strings.Fields(changelogLines(MustRun(t, s, "lfs", "changelog", device))[0])[0]; first != strconv.Itoa(cl1+1) {
		t.Fatalf("first record %s, want cl1's index %d + 1\n%s", first, cl1, users)
	}
	r := Run(t, s, "lfs", "changelog_clear", device, "cl2", "0")
	if r.Code == 0 || !strings.Contains(r.Stderr, "evicted") {
		t.Fatalf("evicted user's clear: %s", r)
	}
}

// sanity-sec 35: with nodemaps active, root on a non-admin nodemap cannot
// read or clear the changelog; the local administrator (unix socket) can.
func TestSanitySec35(t *testing.T) {
	s := StartServer(t, shortTempDir(t))
	MustRun(t, s, "lctl", "--device", device, "changelog_register")
	MustRun(t, s, "mdc", "mkdir", "d")
	if out := MustRun(t, s, "lfs", "changelog", device); !strings.Contains(out, "MKDIR") {
		t.Fatalf("admin client cannot read before nodemaps: %q", out)
	}
	mustSock(t, s, "lctl", "nodemap_add", "c0")
	mustSock(t, s, "lctl", "nodemap_add_range", "--name", "c0", "--range", "127.0.0.1@tcp")
	mustSock(t, s, "lctl", "nodemap_modify", "--name", "c0", "--property", "trusted", "--value", "1")
	mustSock(t, s, "lctl", "nodemap_modify", "--name", "c0", "--property", "admin", "--value", "0")
	mustSock(t, s, "lctl", "nodemap_activate", "1")
	if got := strings.TrimSpace(mustSock(t, s, "lctl", "nodemap_test_nid", "--nid", "127.0.0.1@tcp")); got != "c0" {
		t.Fatalf("nodemap_test_nid = %q", got)
	}
	r := Run(t, s, "lfs", "changelog", device)
	if r.Code != 1 || !strings.Contains(r.Stderr, "Operation not permitted") {
		t.Fatalf("dump from a non-admin nodemap: %s", r)
	}
	r = Run(t, s, "lfs", "changelog_clear", device, "cl1", "0")
	if r.Code != 1 {
		t.Fatalf("clear from a non-admin nodemap: %s", r)
	}
	r = Run(t, s, "lctl", "set_param", "mdd."+device+".changelog_mask=ALL")
	if r.Code != 1 {
		t.Fatalf("set_param from a non-admin nodemap: %s", r)
	}
	if out := mustSock(t, s, "lfs", "changelog", device); !strings.Contains(out, "MKDIR") {
		t.Fatalf("local administrator cannot read: %q", out)
	}
	mustSock(t, s, "lctl", "nodemap_modify", "--name", "c0", "--property", "admin", "--value", "1")
	if out := MustRun(t, s, "lfs", "changelog", device); !strings.Contains(out, "MKDIR") {
		t.Fatalf("admin nodemap cannot read: %q", out)
	}

	// sanity-sec 64e: an admin nodemap without the chlg_ops role cannot
	// read, clear, register or deregister; with it (and nothing else) it
	// can, but administration (set_param, nodemaps) needs local_admin.
	mustSock(t, s, "lctl", "nodemap_modify", "--name", "c0", "--property", "rbac", "--value", "file_perms,byfid_ops")
	for _, args := range [][]string{
		{"lfs", "changelog", device}, {"lfs", "changelog_clear", device, "cl1", "0"},
		{"lctl", "--device", device, "changelog_register"}, {"lctl", "--device", device, "changelog_deregister", "cl1"},
	} {
		if r := Run(t, s, args[0], args[1:]...); r.Code != 1 || !strings.Contains(r.Stderr, "Operation not permitted") {
			t.Fatalf("%v without chlg_ops: %s", args, r)
		}
	}
	fidD := strings.TrimSpace(mustSock(t, s, "lfs", "path2fid", "d"))
	if got := strings.TrimSpace(MustRun(t, s, "lfs", "fid2path", "lustre", fidD)); got != "d" {
		t.Fatalf("fid2path with byfid_ops = %q", got)
	}
	mustSock(t, s, "lctl", "nodemap_modify", "--name", "c0", "--property", "rbac", "--value", "chlg_ops")
	if r := Run(t, s, "lfs", "fid2path", "lustre", fidD); r.Code != 1 || !strings.Contains(r.Stderr, "Operation not permitted") {
		t.Fatalf("fid2path without byfid_ops: %s", r)
	}
	if out := MustRun(t, s, "lfs", "changelog", device); !strings.Contains(out, "MKDIR") {
		t.Fatalf("chlg_ops cannot read: %q", out)
	}
	MustRun(t, s, "lfs", "changelog_clear", device, "cl1", "0")
	if r := Run(t, s, "lctl", "set_param", "mdd."+device+".changelog_mask=ALL"); r.Code != 1 {
		t.Fatalf("set_param with chlg_ops only: %s", r)
	}
	if r := Run(t, s, "lctl", "nodemap_activate", "0"); r.Code != 1 {
		t.Fatalf("nodemap_activate with chlg_ops only: %s", r)
	}
}

// A nodemap with audit_mode=0 keeps every record caused by its clients out
// of the changelog, while other clients' records are kept.
func TestAuditModeZero(t *testing.T) {
	s := StartServer(t, shortTempDir(t))
	mustSock(t, s, "lctl", "--device", device, "changelog_register", "-m", "ALL")
	for _, nm := range []struct{ name, rng, audit string }{{"backup", "127.0.0.2@tcp", "0"}, {"clients", "127.0.0.3@tcp", "1"}} {
		mustSock(t, s, "lctl", "nodemap_add", nm.name)
		mustSock(t, s, "lctl", "nodemap_add_range", "--name", nm.name, "--range", nm.rng)
		for _, p := range []string{"admin=1", "trusted=1", "audit_mode=" + nm.audit} {
			mustSock(t, s, "lctl", "nodemap_modify", "--name", nm.name, "--property", p)
		}
	}
	mustSock(t, s, "lctl", "nodemap_activate", "1")
	backup := DialFrom(t, s, "127.0.0.2", 0, 0)
	client := DialFrom(t, s, "127.0.0.3", 501, 501)
	ctx := context.Background()
	if _, err := backup.NS.Mkdir(backup.Ctx(ctx), &mdtv1.MkdirRequest{Path: []byte("hidden"), Mode: 0o777}); err != nil {
		t.Fatal(err)
	}
	if _, err := backup.NS.Create(backup.Ctx(ctx), &mdtv1.CreateRequest{Path: []byte("hidden/f"), Mode: 0o644}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.NS.Create(client.Ctx(ctx), &mdtv1.CreateRequest{Path: []byte("hidden/g"), Mode: 0o644}); err != nil {
		t.Fatal(err)
	}
	if _, err := backup.NS.Unlink(backup.Ctx(ctx), &mdtv1.UnlinkRequest{Path: []byte("hidden/g")}); err != nil {
		t.Fatal(err)
	}
	lines := changelogLines(mustSock(t, s, "lfs", "changelog", device))
	if len(lines) != 1 || !strings.Contains(lines[0], "01CREAT") || !strings.Contains(lines[0], "u=501:501 nid=127.0.0.3@tcp") || !strings.HasSuffix(lines[0], " g") {
		t.Fatalf("want exactly the audited client's CREAT of g, got:\n%s", strings.Join(lines, "\n"))
	}
	// The unaudited changes happened all the same.
	if _, err := client.NS.Stat(client.Ctx(ctx), &mdtv1.StatRequest{Path: []byte("hidden/f")}); err != nil {
		t.Fatal(err)
	}
}
