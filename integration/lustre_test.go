package integration

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// cl runs commands against one server and checks lfs changelog output.
type cl struct {
	t *testing.T
	s *Server
}

func newCL(t *testing.T) *cl {
	return &cl{t: t, s: StartServer(t, shortTempDir(t))}
}

// do runs "cmd arg..." (split on spaces) and fails unless it exits 0.
func (c *cl) do(cmdline string) string {
	c.t.Helper()
	f := strings.Fields(cmdline)
	return MustRun(c.t, c.s, f[0], f[1:]...)
}

// lines returns the normalised lfs changelog lines from start.
func (c *cl) lines(args ...string) []string {
	c.t.Helper()
	return changelogLines(MustRun(c.t, c.s, "lfs", append(append([]string{"changelog"}, args...), device)...))
}

// since returns the lines with an index above idx.
func (c *cl) since(idx int) []string {
	var out []string
	for _, l := range c.lines() {
		var n int
		fmt.Sscan(l, &n)
		if n > idx {
			out = append(out, l)
		}
	}
	return out
}

func (c *cl) current() int {
	var n int
	fmt.Sscanf(getParam(c.t, c.s, "mdd."+device+".changelog_users"), "current_index: %d", &n)
	return n
}

// expect checks that lines match the patterns one to one, in order.
func (c *cl) expect(what string, lines []string, patterns ...string) {
	c.t.Helper()
	if len(lines) != len(patterns) {
		c.t.Fatalf("%s: %d lines, want %d:\n%s", what, len(lines), len(patterns), strings.Join(lines, "\n"))
	}
	for i, p := range patterns {
		if !regexp.MustCompile(p).MatchString(lines[i]) {
			c.t.Fatalf("%s: line %d\n  %s\ndoes not match\n  %s\nall:\n%s", what, i, lines[i], p, strings.Join(lines, "\n"))
		}
	}
}

func field(line string, n int) string {
	f := strings.Fields(line)
	if n-1 < len(f) {
		return f[n-1]
	}
	return ""
}

// sanity 160c: with TRUNC masked a truncate is not TRUNC (SATTR instead);
// after +TRUNC the next truncate gives exactly one TRUNC.
func TestSanity160c(t *testing.T) {
	c := newCL(t)
	c.do("lctl --device " + device + " changelog_register")
	c.do("mdc touch f")
	c.do("lctl set_param mdd." + device + ".changelog_mask=-TRUNC")
	cur := c.current()
	c.do("mdc truncate -s 100 f")
	c.expect("160c masked", c.since(cur), `^\d+ 14SATTR .* 0xe t=`)
	c.do("lctl set_param mdd." + device + ".changelog_mask=+TRUNC")
	cur = c.current()
	c.do("mdc truncate -s 200 f")
	c.expect("160c unmasked", c.since(cur), `^\d+ 13TRUNC .* 0xe t=`)
}

// sanity 160o/160q: user names and masks, effective mask rules.
func TestSanity160oq(t *testing.T) {
	c := newCL(t)
	if out := c.do("lctl --device " + device + " changelog_register -u test_160o -m unlnk+close+open"); out != "lustre-MDT0000: Registered changelog userid 'cl1-test_160o'\n" {
		t.Fatalf("register: %q", out)
	}
	for _, tc := range []struct {
		args string
		code int
		msg  string
	}{
		{"-u Tt3_-#", 22, "error: changelog_register: invalid changelog user 'Tt3_-#': "},
		{"-u test_160o", 17, "error: changelog_register: User exists"},
		{"-u test_160toolongname", 36, "error: changelog_register: changelog user name 'test_160toolongname' is longer than 16 characters: File name too long"},
	} {
		r := Run(t, c.s, "lctl", append([]string{"--device", device, "changelog_register"}, strings.Fields(tc.args)...)...)
		if r.Code != tc.code || !strings.Contains(r.Stderr, tc.msg) {
			t.Errorf("register %s: want %d %q, got %s", tc.args, tc.code, tc.msg, r)
		}
	}
	c.do("lctl set_param mdd." + device + ".changelog_mask=MARK+HSM")
	c.do("mdc mkdir d")
	cur := c.current()
	c.do("mdc touch d/f")
	got := c.since(cur)
	if n := len(got); n != 2 || !strings.Contains(got[0], "10OPEN") || !strings.Contains(got[1], "11CLOSE") {
		t.Fatalf("touch with MARK+HSM and user mask unlnk+close+open: want 1 OPEN and 1 CLOSE, got:\n%s", strings.Join(got, "\n"))
	}
	eff := getParam(t, c.s, "mdd."+device+".changelog_current_mask")
	c.do("lctl --device " + device + " changelog_register")
	if got := getParam(t, c.s, "mdd."+device+".changelog_current_mask"); got != eff {
		t.Fatalf("maskless user changed the effective mask: %q -> %q", eff, got)
	}
	c.do("lctl set_param mdd." + device + ".changelog_mask=MARK")
	if !strings.Contains(getParam(t, c.s, "mdd."+device+".changelog_current_mask"), "HLINK") {
		t.Fatal("160q: server mask MARK + maskless user must give DEFMASK (HLINK)")
	}
	c.do("lctl set_param mdd." + device + ".changelog_mask=CLOSE,UNLNK")
	if strings.Contains(getParam(t, c.s, "mdd."+device+".changelog_current_mask"), "HLINK") {
		t.Fatal("HLINK must disappear with server mask CLOSE,UNLNK")
	}
	if out := c.do("lctl --device " + device + " changelog_deregister -u test_160o"); out != "lustre-MDT0000: Deregistered changelog user #1\n" {
		t.Fatalf("deregister by name: %q", out)
	}
}

// sanity 160u: RENME fields 12 (new name) and 15 (old name) on the
// MDT-prefixed line, as the test helper builds it.
func TestSanity160u(t *testing.T) {
	c := newCL(t)
	c.do("lctl --device " + device + " changelog_register")
	c.do("mdc mkdir rename")
	c.do("mdc mkdir rename/a")
	c.do("mdc touch rename/hw")
	c.do("mdc mv rename/hw rename/a/a.hw")
	var renme string
	for _, l := range strings.Split(MustRun(t, c.s, "lfs", "changelog", device), "\n") {
		if strings.Contains(l, "08RENME") {
			renme = device + "." + l
		}
	}
	if field(renme, 12) != "a.hw" || field(renme, 15) != "hw" || field(renme, 5) != "0x0" || field(renme, 6) != "t=[0:0x0:0x0]" {
		t.Fatalf("RENME line %q: field 12 %q, 15 %q", renme, field(renme, 12), field(renme, 15))
	}
}

// sanity 160w: reader filtering by user mask and requested mask.
func TestSanity160w(t *testing.T) {
	c := newCL(t)
	c.do("lctl --device " + device + " changelog_register -u u1 -m creat+unlnk")
	c.do("lctl --device " + device + " changelog_register -u u2 -m mkdir+rmdir")
	for _, cmd := range []string{"mdc touch f1", "mdc touch f2", "mdc mkdir d1", "mdc mkdir d2", "mdc rm f1", "mdc rmdir d1"} {
		c.do(cmd)
	}
	c.expect("--user u1", c.lines("--user", "u1"), `01CREAT .* f1$`, `01CREAT .* f2$`, `06UNLNK .* f1$`)
	if n := len(changelogLines(MustRun(t, c.s, "lfs", "changelog", "--user", "cl1", device, "0"))); n != 3 {
		t.Fatalf("--user cl1 with start 0: %d records", n)
	}
	c.expect("--user u2 --mask mkdir+rmdir", c.lines("--user", "u2", "--mask", "mkdir+rmdir"), `02MKDIR .* d1$`, `02MKDIR .* d2$`, `07RMDIR .* d1$`)
	c.expect("--user u1 --mask creat+rmdir", c.lines("--user", "u1", "--mask", "creat+rmdir"), `01CREAT .* f1$`, `01CREAT .* f2$`)
	c.do("lctl --device " + device + " changelog_deregister -u u1")
	c.do("lctl --device " + device + " changelog_deregister -u u2")
}

// sanity 160x: with mask ALL and 3 users, clearing cl1 to 200 then back to
// 100 loses nobody. The backwards clear fails with ENOENT (exit 2) as
// Lustre's mdd_changelog_clear returns it, and changes nothing.
func TestSanity160x(t *testing.T) {
	c := newCL(t)
	for range 3 {
		c.do("lctl --device " + device + " changelog_register -m ALL")
	}
	for i := range 70 {
		c.do(fmt.Sprintf("mdc touch f%d", i))
	}
	if c.current() < 200 {
		t.Fatalf("current index %d < 200", c.current())
	}
	c.do("lfs changelog_clear " + device + " cl1 200")
	if r := Run(t, c.s, "lfs", "changelog_clear", device, "cl1", "100"); r.Code != 2 ||
		!strings.Contains(r.Stderr, "changelog_clear: no changelog user: cl1\n") {
		t.Fatalf("backwards clear: %v", r)
	}
	users := getParam(t, c.s, "mdd."+device+".changelog_users")
	for _, u := range []string{"\ncl1 ", "\ncl2 ", "\ncl3 "} {
		if !strings.Contains(users, u) {
			t.Fatalf("user%s lost:\n%s", u, users)
		}
	}
	if !strings.Contains(users, "\ncl1                             200 (") {
		t.Fatalf("cl1 must stay at 200:\n%s", users)
	}
}

// sanity 161a: 5 links give 5 fid2path lines; --link 1 follows the new
// order after removals and a rename.
func TestSanity161a(t *testing.T) {
	c := newCL(t)
	c.do("mdc mkdir d")
	c.do("mdc touch d/f")
	for i := 1; i < 5; i++ {
		c.do(fmt.Sprintf("mdc ln d/f d/l%d", i))
	}
	f := strings.TrimSpace(c.do("lfs path2fid d/f"))
	if got := c.do("lfs fid2path lustre " + f); got != "d/f\nd/l1\nd/l2\nd/l3\nd/l4\n" {
		t.Fatalf("fid2path of 5 links:\n%s", got)
	}
	c.do("mdc rm d/f")
	c.do("mdc rm d/l1")
	c.do("mdc mv d/l2 d/moved")
	if got := c.do("lfs fid2path --link 1 lustre " + f); got != "d/l4\n" && got != "d/moved\n" {
		t.Fatalf("fid2path --link 1 after removals/rename: %q", got)
	}
	all := strings.Split(strings.TrimSpace(c.do("lfs fid2path lustre "+f)), "\n")
	if len(all) != 3 {
		t.Fatalf("links after removals: %v", all)
	}
	if got := c.do("lfs fid2path --link 1 lustre " + f); got != all[1]+"\n" {
		t.Fatalf("--link 1 = %q, all = %v", got, all)
	}
	if got := c.do("lfs fid2path lustre [0x200000007:0x1:0x0]"); got != "/\n" {
		t.Fatalf("fid2path of the root: %q", got)
	}
}

// sanity 161c: RENME and UNLNK flags.
func TestSanity161c(t *testing.T) {
	c := newCL(t)
	c.do("lctl --device " + device + " changelog_register")
	c.do("mdc touch a")
	c.do("mdc touch b")
	cur := c.current()
	c.do("mdc mv a b") // target nlink 1
	c.expect("rename over last link", c.since(cur), `08RENME .* 0x1 t=\[0x2`)
	c.do("mdc touch c")
	c.do("mdc ln c c2")
	c.do("mdc touch d")
	cur = c.current()
	c.do("mdc mv d c") // target nlink 2
	c.expect("rename over a linked target", c.since(cur), `08RENME .* 0x0 t=\[0x2`)
	cur = c.current()
	c.do("mdc mv b e") // no overwrite
	c.expect("rename without overwrite", c.since(cur), `08RENME .* 0x0 t=\[0:0x0:0x0\]`)
	cur = c.current()
	c.do("mdc rm e")
	c.expect("unlink last link", c.since(cur), `06UNLNK .* 0x1 t=`)
	c.do("mdc ln c2 c3")
	cur = c.current()
	c.do("mdc rm c2")
	c.expect("unlink with other links", c.since(cur), `06UNLNK .* 0x0 t=`)
	h := strings.TrimSpace(c.do("mdc open -r c3"))
	c.do("mdc rm c")
	cur = c.current()
	c.do("mdc rm c3") // last link of a still-open file
	c.expect("unlink of an open last link", c.since(cur), `06UNLNK .* 0x1 t=`)
	c.do("mdc close " + h)
}

// sanity-hsm 600-605: audit records (uid/gid, nid, OPEN/CLOSE rules,
// GXATR, NOPEN with changelog_deniednext, OPEN/CLOSE dedup).
func TestSanityHSM600to605(t *testing.T) {
	c := newCL(t)
	c.do("lctl --device " + device + " changelog_register -m ALL")
	c.do("mdc mkdir -m 0777 d")
	// 600: CREAT by a non-root user carries its uid/gid and the client NID.
	cur := c.current()
	c.do("mdc --uid 500 --gid 500 touch d/f")
	got := c.since(cur)
	if len(got) == 0 || !regexp.MustCompile(`^\d+ 01CREAT T D 0x0 t=\S+ j=touch\.500 ef=0x13 u=500:500 nid=127\.0\.0\.1@tcp p=\S+ f$`).MatchString(got[0]) {
		t.Fatalf("600: %v", got)
	}
	// 601: cat gives OPEN with m=r--.
	cur = c.current()
	c.do("mdc cat d/f")
	c.expect("601/602 cat with OPEN in mask", c.since(cur), `10OPEN  .* ef=0x17 .* m=r--$`, `11CLOSE .* ef=0x13 `)
	// 602: without OPEN, a read-only cat gives no CLOSE; a write does.
	c.do("lctl set_param mdd." + device + ".changelog_mask=-OPEN")
	c.do("lctl --device " + device + " changelog_deregister cl1")
	c.do("lctl --device " + device + " changelog_register -m ALL-OPEN")
	cur = c.current()
	c.do("mdc cat d/f")
	c.expect("602 read without OPEN", c.since(cur))
	h := strings.TrimSpace(c.do("mdc open -w d/f"))
	c.do("mdc close " + h)
	c.expect("602 write without OPEN", c.since(cur), `11CLOSE .* 0x2 t=`)
	c.do("lctl --device " + device + " changelog_deregister cl2")
	c.do("lctl --device " + device + " changelog_register -m ALL")
	// 603: getfattr of a user xattr gives GXATR.
	c.do("mdc setfattr -n user.xattr1 -v v d/f")
	cur = c.current()
	c.do("mdc getfattr -n user.xattr1 d/f")
	c.expect("603", c.since(cur), `23GXATR .* ef=0x1b .* x=user\.xattr1$`)
	// 604: denied opens, rate-limited by changelog_deniednext.
	c.do("mdc chmod 0600 d/f")
	c.do("lctl set_param mdd." + device + ".changelog_deniednext=20")
	cur = c.current()
	for range 2 {
		if r := Run(t, c.s, "mdc", "--uid", "501", "--gid", "501", "cat", "d/f"); r.Code != 13 {
			t.Fatalf("604 denied cat: %s", r)
		}
	}
	c.expect("604", c.since(cur), `24NOPEN .* 0x1 t=\S+ j=cat\.501 ef=0x17 u=501:501 nid=127\.0\.0\.1@tcp m=r--$`)
	// 605: OPEN/CLOSE dedup per (uid, gid, mode).
	c.do("mdc chmod 0666 d/f")
	cur = c.current()
	fd3 := strings.TrimSpace(c.do("mdc open -rw d/f"))
	c.expect("605 first rw open", c.since(cur), `10OPEN  .* m=rw-$`)
	cur = c.current()
	h2 := strings.TrimSpace(c.do("mdc open -rw d/f"))
	c.do("mdc close " + h2)
	c.expect("605 second rw open and its close", c.since(cur))
	c.do("mdc cat d/f")
	c.expect("605 cat", c.since(cur), `10OPEN  .* m=r--$`, `11CLOSE `)
	cur = c.current()
	c.do("mdc --uid 502 --gid 502 cat d/f")
	c.expect("605 cat by another user", c.since(cur), `10OPEN  .* u=502:502 .* m=r--$`, `11CLOSE .* u=502:502 `)
	cur = c.current()
	c.do("mdc close " + fd3)
	c.expect("605 last rw close", c.since(cur), `11CLOSE .* 0x3 t=`)
}
