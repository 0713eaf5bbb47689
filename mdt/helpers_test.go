package mdt

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/goleak"

	"github.com/fidlog/fidlog/changelog"
	"github.com/fidlog/fidlog/changelog/store"
	"github.com/fidlog/fidlog/fid"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testClock is an injectable clock.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock() *testClock {
	return &testClock{t: time.Date(2026, 8, 19, 9, 13, 2, 0, time.UTC)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Microsecond)
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var (
	ctx  = context.Background()
	root = Cred{UID: 0, GID: 0, JobID: "test.0", NID: "192.168.1.10@tcp"}
)

func user(uid uint32) Cred {
	return Cred{UID: uid, GID: uid, JobID: "test." + itoa(uid), NID: "192.168.1.11@tcp"}
}

func itoa(n uint32) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for n > 0 {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
	}
	return string(b)
}

// env is an MDT on an in-memory FS with a test clock.
type env struct {
	t     testing.TB
	fs    vfs.FS
	clock *testClock
	opts  Options
	m     *MDT
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newEnv(t testing.TB, adjust ...func(*Options)) *env {
	t.Helper()
	e := &env{t: t, fs: vfs.NewMem(), clock: newTestClock()}
	e.opts = Options{FS: e.fs, Clock: e.clock.Now, Logger: quietLogger()}
	for _, f := range adjust {
		f(&e.opts)
	}
	e.open()
	t.Cleanup(func() {
		if e.m != nil {
			_ = e.m.Close()
		}
	})
	return e
}

func (e *env) open() {
	e.t.Helper()
	o := e.opts
	m, err := Open("db", &o)
	if err != nil {
		e.t.Fatalf("Open: %v", err)
	}
	e.m = m
}

func (e *env) reopen() {
	e.t.Helper()
	if err := e.m.Close(); err != nil {
		e.t.Fatalf("Close: %v", err)
	}
	e.open()
}

// register registers a changelog user as the test framework does
// (changelog_mask=+hsm first, which from MINMASK gives DEFMASK).
func (e *env) register(mask string) changelog.User {
	e.t.Helper()
	if e.m.log.Settings().Mask == changelog.MinMask {
		e.setParam("mdd.*.changelog_mask", "+hsm")
	}
	u, err := e.m.log.Register(store.RegisterOptions{Mask: mask, HasMask: mask != ""})
	if err != nil {
		e.t.Fatalf("Register: %v", err)
	}
	return u
}

func (e *env) setParam(name, value string) {
	e.t.Helper()
	if _, err := e.m.SetParam(name, value); err != nil {
		e.t.Fatalf("SetParam(%s=%s): %v", name, value, err)
	}
}

func (e *env) param(name string) string {
	e.t.Helper()
	ps, err := e.m.GetParams(name)
	if err != nil || len(ps) != 1 {
		e.t.Fatalf("GetParams(%s) = %v, %v", name, ps, err)
	}
	return ps[0].Value
}

// records returns all durable records from start.
func (e *env) records(start changelog.Index) []*changelog.Record {
	e.t.Helper()
	recs, _, err := e.m.log.Read(ctx, store.ReadOptions{Start: start})
	if err != nil {
		e.t.Fatalf("Read: %v", err)
	}
	return recs
}

// lines returns the lfs changelog lines from start with the time field
// replaced by "TIME".
func (e *env) lines(start changelog.Index) []string {
	var out []string
	for _, r := range e.records(start) {
		out = append(out, normLine(r.Line()))
	}
	return out
}

func normLine(l string) string {
	// "<index> <NN><TYPE5> HH:MM:SS.nnnnnnnnn YYYY.MM.DD <rest>"
	i := strings.IndexByte(l, ' ')
	const label, stamp = 7, 18 + 1 + 10
	if i < 0 || len(l) < i+1+label+1+stamp+1 {
		return l
	}
	return l[:i+1+label] + " TIME" + l[i+1+label+1+stamp:]
}

// types returns the record type names from start.
func (e *env) types(start changelog.Index) []string {
	var out []string
	for _, r := range e.records(start) {
		out = append(out, r.Type.String())
	}
	return out
}

func (e *env) current() changelog.Index { return e.m.log.State().Current }

func count(ss []string, s string) int {
	n := 0
	for _, x := range ss {
		if x == s {
			n++
		}
	}
	return n
}

func must[T any](t testing.TB) func(v T, err error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func ok(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErrno(t testing.TB, err error, want syscall.Errno) {
	t.Helper()
	if got := Errno(err); got != want {
		t.Fatalf("error %v: errno %d (%v), want %d (%v)", err, got, got, want, want)
	}
	var pe *PathError
	var pa *ParamError
	if err != nil && !errors.As(err, &pe) && !errors.As(err, &pa) {
		t.Fatalf("error %v (%T) is not a *PathError or *ParamError", err, err)
	}
}

// entry is one directory entry as seen from the namespace.
type entry struct {
	Parent fid.FID
	Name   string
	FID    fid.FID
	Type   FileType
}

// walkTree walks the namespace from the root with Readdir (as root) and
// returns every entry.
func walkTree(t testing.TB, m *MDT) map[entry]bool {
	t.Helper()
	out := map[entry]bool{}
	var walk func(dir fid.FID, p string)
	walk = func(dir fid.FID, p string) {
		ents, err := m.Readdir(ctx, root, p)
		if err != nil {
			t.Fatalf("readdir %q: %v", p, err)
		}
		for _, de := range ents {
			out[entry{dir, de.Name, de.FID, de.Type}] = true
			if de.Type == TypeDir {
				walk(de.FID, p+"/"+de.Name)
			}
		}
	}
	walk(fid.Root, "")
	return out
}

// assertNoKeysOf checks that no inode, link, xattr, data or orphan key of f is left.
func assertNoKeysOf(t testing.TB, m *MDT, f fid.FID) {
	t.Helper()
	for _, pre := range []byte{ksInode, ksLink, ksXattr, ksOrphan, ksData} {
		lo := fidKey(pre, f, 0)
		it, err := m.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: prefixEnd(lo)})
		if err != nil {
			t.Fatal(err)
		}
		if it.First() {
			t.Errorf("key %q of %v left behind", it.Key(), f)
		}
		_ = it.Close()
	}
}
