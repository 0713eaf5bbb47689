package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/fidlog/fidlog/changelog"
	"github.com/fidlog/fidlog/fid"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 8, 19, 9, 0, 0, 0, time.UTC)} }
func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type testEnv struct {
	t     testing.TB
	fs    vfs.FS
	dir   string
	db    *pebble.DB
	log   *Log
	clock *fakeClock
	opts  Options
}

func newEnv(t testing.TB) *testEnv {
	e := &testEnv{t: t, fs: vfs.NewMem(), dir: "db", clock: newFakeClock()}
	e.opts = Options{Device: "lustre-MDT0000", Clock: e.clock.Now, Logger: slog.New(slog.DiscardHandler)}
	e.open()
	t.Cleanup(e.close)
	return e
}

func (e *testEnv) open() {
	e.t.Helper()
	db, err := pebble.Open(e.dir, &pebble.Options{FS: e.fs, FlushDelayDeleteRange: time.Second, Logger: quietLogger{}})
	if err != nil {
		e.t.Fatal(err)
	}
	o := e.opts
	l, err := Open(db, &o)
	if err != nil {
		db.Close()
		e.t.Fatal(err)
	}
	e.db, e.log = db, l
}

func (e *testEnv) close() {
	if e.log != nil {
		e.log.Close()
		e.db.Close()
		e.log, e.db = nil, nil
	}
}

func (e *testEnv) restart() {
	e.close()
	e.open()
}

// op commits a namespace-like key and one record of type t.
func (e *testEnv) op(t changelog.Type, name string) *changelog.Record {
	e.t.Helper()
	r := &changelog.Record{Type: t, TFID: fid.FID{Seq: fid.SeqNormal, Oid: 1}, PFID: fid.Root, Name: name}
	b := e.db.NewBatch()
	defer b.Close()
	if err := b.Set([]byte("ns/"+name), []byte("x"), nil); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.log.Commit(b, []*changelog.Record{r}); err != nil {
		e.t.Fatalf("commit %s %s: %v", t, name, err)
	}
	return r
}

func (e *testEnv) register(name, mask string) changelog.User {
	e.t.Helper()
	u, err := e.log.Register(RegisterOptions{Name: name, Mask: mask, HasMask: mask != ""})
	if err != nil {
		e.t.Fatalf("register %q %q: %v", name, mask, err)
	}
	return u
}

func (e *testEnv) indices() []changelog.Index {
	e.t.Helper()
	var out []changelog.Index
	if _, err := e.log.Scan(context.Background(), ReadOptions{}, func(en Entry) error {
		out = append(out, en.Index)
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
	return out
}

func (e *testEnv) hasKey(k string) bool {
	_, c, err := e.db.Get([]byte(k))
	if err == nil {
		c.Close()
		return true
	}
	return false
}

func TestNoUsersMeansOff(t *testing.T) {
	e := newEnv(t)
	r := e.op(changelog.CLCreate, "a")
	if r.Index != 0 || e.log.State().Current != 0 || len(e.indices()) != 0 {
		t.Fatalf("recorded with no users: index %d state %+v", r.Index, e.log.State())
	}
	if !e.hasKey("ns/a") {
		t.Fatal("the namespace change must commit even with changelogs off")
	}
	e.register("", "")
	if r := e.op(changelog.CLCreate, "b"); r.Index != 1 {
		t.Fatalf("first record index = %d, want 1", r.Index)
	}
	if _, err := e.log.Deregister("cl1", false); err != nil {
		t.Fatal(err)
	}
	// sanity 160a: after deregistering the only user the index does not move.
	e.op(changelog.CLCreate, "c")
	if st := e.log.State(); st.Current != 1 || st.On || len(e.indices()) != 0 {
		t.Fatalf("after deregister: %+v, records %v", st, e.indices())
	}
	e.restart()
	if st := e.log.State(); st.Current != 1 {
		t.Fatalf("current index after restart = %d, want 1 (must survive a purge of everything)", st.Current)
	}
	u := e.register("", "")
	if u.ID != 2 || u.Index != 1 {
		t.Fatalf("new user %+v: want cl2 at index 1 (ids never reused)", u)
	}
	if r := e.op(changelog.CLCreate, "d"); r.Index != 2 {
		t.Fatalf("index after restart = %d, want 2", r.Index)
	}
}

func TestRegisterRules(t *testing.T) {
	e := newEnv(t)
	u := e.register("test_160o", "unlnk+close+open")
	if u.DisplayName() != "cl1-test_160o" || u.Mask != changelog.MaskOf(changelog.CLMark, changelog.CLUnlink, changelog.CLOpen, changelog.CLClose) {
		t.Fatalf("user %+v %s", u, u.DisplayName())
	}
	for _, tc := range []struct {
		name, mask string
		err        error
	}{
		{"Tt3_-#", "", changelog.ErrBadUser},
		{"test_160o", "", changelog.ErrUserExists},
		{"test_160toolongname", "", changelog.ErrNameTooLong},
		{"9abc", "", changelog.ErrBadUser},
		{"ok", "CREATE", changelog.ErrBadMask},
	} {
		_, err := e.log.Register(RegisterOptions{Name: tc.name, Mask: tc.mask, HasMask: tc.mask != ""})
		if !errors.Is(err, tc.err) {
			t.Errorf("register %q %q: %v, want %v", tc.name, tc.mask, err, tc.err)
		}
		if err != nil && !strings.Contains(err.Error(), tc.name) && !strings.Contains(err.Error(), tc.mask) {
			t.Errorf("error %q does not name the bad value", err)
		}
	}
	// A 16-character name is accepted and kept whole.
	u2 := e.register("abcdefghijklmnop", "")
	if u2.ID != 2 || u2.DisplayName() != "cl2-abcdefghijklmnop" {
		t.Fatalf("failed registrations must not consume ids: %+v", u2)
	}
	if n := len(e.log.Users()); n != 2 {
		t.Fatalf("users = %d", n)
	}
}

func TestUsersText(t *testing.T) {
	e := newEnv(t)
	e.register("", "MARK,UNLNK,OPEN,CLOSE")
	e.op(changelog.CLUnlink, "a")
	e.clock.Advance(2 * time.Second)
	e.register("watcher", "")
	e.register("", "")
	e.clock.Advance(3600 * time.Second)
	// A named maskless user registered under MINMASK stores DEFMASK and
	// shows it; an unnamed one shows none (mdd_changelog_user_register,
	// mdd_chlg_usermask; sanity 160q).
	want := "current_index: 1\n" +
		"ID                            index (idle) mask\n" +
		"cl1                               0 (3602) mask=MARK,UNLNK,OPEN,CLOSE\n" +
		"cl2-watcher                       1 (3600) mask=MARK,CREAT,MKDIR,HLINK,SLINK,MKNOD,UNLNK,RMDIR,RENME,RNMTO,CLOSE,LYOUT,TRUNC,SATTR,XATTR,HSM,MTIME,CTIME,MIGRT,FLRW,RESYNC\n" +
		"cl3                               1 (3600)\n"
	if got := e.log.UsersText(); got != want {
		t.Fatalf("UsersText:\n%s\nwant:\n%s", got, want)
	}
	st := e.log.State()
	_ = st
	if _, err := e.log.Clear("cl1", 0); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(e.log.UsersText(), "cl1                               1 (0)") {
		t.Fatalf("clear must reset idle time:\n%s", e.log.UsersText())
	}
}

func TestEffectiveMask(t *testing.T) {
	e := newEnv(t)
	// Server mask MINMASK: a maskless user brings DEFMASK (sanity 160q).
	e.register("", "")
	if got := e.log.State().Effective; got != changelog.DefMask {
		t.Fatalf("effective %s, want DEFMASK", got)
	}
	if _, err := e.log.Deregister("1", false); err != nil {
		t.Fatal(err)
	}
	// sanity 160o: a masked user, then the server mask MARK+HSM.
	e.register("test_160o", "unlnk+close+open")
	if _, err := e.log.SetMask("MARK+HSM"); err != nil {
		t.Fatal(err)
	}
	want := changelog.MaskOf(changelog.CLMark, changelog.CLHSM, changelog.CLUnlink, changelog.CLClose, changelog.CLOpen)
	if got := e.log.State().Effective; got != want {
		t.Fatalf("effective %s, want %s", got, want)
	}
	// A maskless user while the server mask is not minimal adds nothing.
	e.register("", "")
	if got := e.log.State().Effective; got != want {
		t.Fatalf("maskless user changed the effective mask: %s", got)
	}
	// Server mask MARK: the maskless user now contributes DEFMASK.
	if _, err := e.log.SetMask("MARK"); err != nil {
		t.Fatal(err)
	}
	if !e.log.State().Effective.Has(changelog.CLHardlink) {
		t.Fatal("HLINK missing with server mask MARK and a maskless user")
	}
	if _, err := e.log.SetMask("CLOSE,UNLNK"); err != nil {
		t.Fatal(err)
	}
	if e.log.State().Effective.Has(changelog.CLHardlink) {
		t.Fatal("HLINK must disappear with server mask CLOSE,UNLNK")
	}
	// A relative mask from MINMASK starts from DEFMASK (test-framework's +hsm).
	if _, err := e.log.SetMask("MARK"); err != nil {
		t.Fatal(err)
	}
	if m, err := e.log.SetMask("+hsm"); err != nil || m != changelog.DefMask {
		t.Fatalf("+hsm from MINMASK = %s, %v; want DEFMASK", m, err)
	}
	// A bad mask changes nothing.
	before := e.log.Settings().Mask
	if _, err := e.log.SetMask("+bogus"); !errors.Is(err, changelog.ErrBadMask) {
		t.Fatalf("bad mask: %v", err)
	}
	if e.log.Settings().Mask != before {
		t.Fatal("bad mask changed the server mask")
	}
	// The mask and users survive a restart.
	eff := e.log.State().Effective
	e.restart()
	if e.log.Settings().Mask != before || e.log.State().Effective != eff || len(e.log.Users()) != 2 {
		t.Fatalf("after restart: settings %+v state %+v", e.log.Settings(), e.log.State())
	}
}

func TestMaskFiltersRecords(t *testing.T) {
	e := newEnv(t)
	e.register("", "")
	if r := e.op(changelog.CLOpen, "a"); r.Index != 0 {
		t.Fatal("OPEN is not in DEFMASK and must not be recorded")
	}
	if r := e.op(changelog.CLCreate, "b"); r.Index != 1 {
		t.Fatalf("CREAT index %d", r.Index)
	}
	if e.log.Enabled(changelog.CLOpen) || !e.log.Enabled(changelog.CLCreate) {
		t.Fatal("Enabled disagrees with the effective mask")
	}
}

func TestClearAndPurge(t *testing.T) {
	e := newEnv(t)
	e.register("", "")
	e.register("", "")
	for i := range 10 {
		e.op(changelog.CLCreate, fmt.Sprint("f", i))
	}
	// Clear cl1 to 3: cl2 still needs everything.
	if _, err := e.log.Clear("cl1", 3); err != nil {
		t.Fatal(err)
	}
	if got := e.indices(); len(got) != 10 || got[0] != 1 {
		t.Fatalf("records after one clear: %v", got)
	}
	// Clear cl2 to 5: min is 3, so first shown = 4 (sanity 160a).
	if _, err := e.log.Clear("2", 5); err != nil {
		t.Fatal(err)
	}
	if got := e.indices(); got[0] != 4 || len(got) != 7 {
		t.Fatalf("records: %v, want 4..10", got)
	}
	if st := e.log.State(); st.First != 4 {
		t.Fatalf("first %d", st.First)
	}
	// Clearing backwards changes nothing and loses nobody (sanity 160x);
	// like Lustre's mdd_changelog_clear it reports ENOENT (ErrBehind).
	var be *changelog.BehindError
	if _, err := e.log.Clear("cl2", 2); !errors.As(err, &be) || !errors.Is(err, changelog.ErrBehind) || be.Index != 5 || be.End != 2 {
		t.Fatalf("backwards clear: %v", err)
	}
	if u, _ := e.log.User("cl2"); u.Index != 5 || len(e.log.Users()) != 2 {
		t.Fatalf("backwards clear changed a user: %+v", e.log.Users())
	}
	// Clearing to the user's own point succeeds (idempotent).
	if u, err := e.log.Clear("cl2", 5); err != nil || u.Index != 5 {
		t.Fatalf("clear to own point: %+v %v", u, err)
	}
	// Beyond the current index: an error naming the value; nothing changes.
	_, err := e.log.Clear("cl1", 1000000000)
	var re *changelog.RangeError
	if !errors.As(err, &re) || !errors.Is(err, changelog.ErrOutOfRange) || !strings.Contains(err.Error(), "1000000000") {
		t.Fatalf("clear beyond current: %v", err)
	}
	// Unknown user.
	if _, err := e.log.Clear("cl77", 0); !errors.Is(err, changelog.ErrUnknownUser) || !strings.Contains(err.Error(), "cl77") {
		t.Fatalf("unknown user: %v", err)
	}
	if _, err := e.log.Deregister("cl77", false); !errors.Is(err, changelog.ErrUnknownUser) {
		t.Fatalf("deregister unknown: %v", err)
	}
	if _, err := e.log.Deregister("bogus!", false); !errors.Is(err, changelog.ErrBadUser) {
		t.Fatalf("deregister bad ref: %v", err)
	}
	// Clear with 0 means current; deregistering cl2 then purges everything.
	if _, err := e.log.Clear("cl1", 0); err != nil {
		t.Fatal(err)
	}
	if got := e.indices(); got[0] != 6 {
		t.Fatalf("records: %v", got)
	}
	if _, err := e.log.Deregister("cl2", false); err != nil {
		t.Fatal(err)
	}
	if got := e.indices(); len(got) != 0 {
		t.Fatalf("records after all cleared: %v", got)
	}
	// Purged records are gone from the store, not just hidden.
	it, _ := e.db.NewIter(&pebble.IterOptions{LowerBound: e.log.keys.record(0), UpperBound: e.log.keys.recordEnd()})
	if it.First() {
		t.Fatalf("record key %x still stored", it.Key())
	}
	it.Close()
}

func TestDeregisterByName(t *testing.T) {
	e := newEnv(t)
	e.register("u1", "creat+unlnk")
	e.register("u2", "mkdir+rmdir")
	if _, err := e.log.Deregister("u1", false); !errors.Is(err, changelog.ErrBadUser) {
		t.Fatalf("name without byName: %v", err)
	}
	if u, err := e.log.Deregister("u1", true); err != nil || u.ID != 1 {
		t.Fatalf("by name: %+v %v", u, err)
	}
	if u, err := e.log.Deregister("cl2-whatever", false); err != nil || u.ID != 2 {
		t.Fatalf("by cl2-x: %+v %v", u, err)
	}
}

// TestConcurrentContiguous: many writers, indices contiguous, each record
// exactly once, every acknowledged record readable.
func TestConcurrentContiguous(t *testing.T) {
	e := newEnv(t)
	e.register("", "")
	const writers, per = 32, 50
	var wg sync.WaitGroup
	var mu sync.Mutex
	acked := map[changelog.Index]string{}
	for w := range writers {
		wg.Go(func() {
			for i := range per {
				name := fmt.Sprintf("w%d-%d", w, i)
				r := e.op(changelog.CLCreate, name)
				mu.Lock()
				acked[r.Index] = name
				mu.Unlock()
				if d := e.log.Durable(); d < r.Index {
					t.Errorf("acknowledged index %d above durable %d", r.Index, d)
				}
			}
		})
	}
	wg.Wait()
	recs, _, err := e.log.Read(context.Background(), ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != writers*per {
		t.Fatalf("%d records, want %d", len(recs), writers*per)
	}
	for i, r := range recs {
		if r.Index != changelog.Index(i+1) {
			t.Fatalf("record %d has index %d: gap or reorder", i, r.Index)
		}
		if acked[r.Index] != r.Name {
			t.Fatalf("index %d: name %q, acked %q", r.Index, r.Name, acked[r.Index])
		}
	}
}

// TestDurableWatermark: a record applied but not yet synced is invisible to
// readers and followers, although Pebble already shows it.
func TestDurableWatermark(t *testing.T) {
	e := newEnv(t)
	e.register("", "")
	e.op(changelog.CLCreate, "a")
	b := e.db.NewBatch()
	defer b.Close()
	p, err := e.log.Apply(b, []*changelog.Record{{Type: changelog.CLCreate, Name: "b"}})
	if err != nil {
		t.Fatal(err)
	}
	if p.First != 2 || p.Last != 2 {
		t.Fatalf("pending %+v", p)
	}
	// Pebble shows it already.
	if _, c, err := e.db.Get(e.log.keys.record(2)); err != nil {
		t.Fatalf("pebble should show the applied record: %v", err)
	} else {
		c.Close()
	}
	if got := e.indices(); len(got) != 1 {
		t.Fatalf("reader saw %v before the sync", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := e.log.WaitDurable(ctx, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("follower woke before the sync: %v", err)
	}
	done := make(chan changelog.Index)
	go func() {
		d, _ := e.log.WaitDurable(context.Background(), 1)
		done <- d
	}()
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	if d := <-done; d != 2 {
		t.Fatalf("follower woke at %d", d)
	}
	if got := e.indices(); len(got) != 2 {
		t.Fatalf("after sync: %v", got)
	}
}

func TestScanOptions(t *testing.T) {
	e := newEnv(t)
	e.register("u1", "creat+unlnk")
	e.register("u2", "mkdir+rmdir")
	for _, typ := range []changelog.Type{changelog.CLCreate, changelog.CLCreate, changelog.CLMkdir, changelog.CLMkdir, changelog.CLUnlink, changelog.CLRmdir} {
		e.op(typ, "x")
	}
	count := func(o ReadOptions) []changelog.Index {
		var out []changelog.Index
		if _, err := e.log.Scan(context.Background(), o, func(en Entry) error { out = append(out, en.Index); return nil }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	m1, _ := e.log.UserMask("u1")
	if got := count(ReadOptions{Mask: m1}); len(got) != 3 {
		t.Fatalf("u1 mask: %v", got)
	}
	req, _ := changelog.ParseMask("creat+rmdir", changelog.DefMask)
	if got := count(ReadOptions{Mask: m1 & req}); len(got) != 2 {
		t.Fatalf("u1 ∩ creat+rmdir: %v", got)
	}
	if got := count(ReadOptions{Start: 3, End: 4}); fmt.Sprint(got) != "[3 4]" {
		t.Fatalf("range: %v", got)
	}
	if got := count(ReadOptions{Start: 2, Limit: 2}); fmt.Sprint(got) != "[2 3]" {
		t.Fatalf("limit: %v", got)
	}
	next, _ := e.log.Scan(context.Background(), ReadOptions{Start: 5}, func(Entry) error { return nil })
	if next != 7 {
		t.Fatalf("next after full scan = %d", next)
	}
	if _, err := e.log.UserMask("nobody"); !errors.Is(err, changelog.ErrUnknownUser) {
		t.Fatalf("unknown user mask: %v", err)
	}
}

func TestFollowManyWaiters(t *testing.T) {
	e := newEnv(t)
	e.register("", "")
	const followers = 48
	var wg sync.WaitGroup
	got := make([]changelog.Index, followers)
	for i := range followers {
		wg.Go(func() {
			d, err := e.log.WaitDurable(context.Background(), 0)
			if err != nil {
				t.Error(err)
			}
			got[i] = d
		})
	}
	time.Sleep(10 * time.Millisecond) // let them block; correctness does not depend on it
	e.op(changelog.CLCreate, "a")
	wg.Wait()
	for i, d := range got {
		if d < 1 {
			t.Fatalf("follower %d woke with %d", i, d)
		}
	}
}

func TestOrphansDroppedOnOpen(t *testing.T) {
	e := newEnv(t)
	e.register("", "")
	for i := range 5 {
		e.op(changelog.CLCreate, fmt.Sprint(i))
	}
	// Simulate an interrupted purge: move the user's point without purging.
	b := e.db.NewBatch()
	u := e.log.Users()[0]
	u.Index = 3
	if err := e.log.putJSON(b, e.log.keys.user(u.ID), &u); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	e.restart()
	if got := e.indices(); fmt.Sprint(got) != "[4 5]" {
		t.Fatalf("after reopen: %v, want [4 5]", got)
	}
	if e.log.State().Current != 5 {
		t.Fatal("current index changed")
	}
}

func TestSettingsParams(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct{ name, value, want string }{
		{"changelog_gc", "off", "0"},
		{"changelog_gc", "Y", "1"},
		{"changelog_max_idle_time", "100", "100"},
		{"changelog_max_idle_indexes", "0x10", "16"},
		{"changelog_min_gc_interval", "2", "2"},
		{"changelog_max_records", "1000", "1000"},
	} {
		if err := e.log.UpdateSettings(func(s *Settings) error { return s.SetParam(tc.name, tc.value) }); err != nil {
			t.Fatalf("%s=%s: %v", tc.name, tc.value, err)
		}
		s := e.log.Settings()
		if got, _ := s.Param(tc.name); got != tc.want {
			t.Fatalf("%s = %q, want %q", tc.name, got, tc.want)
		}
	}
	for _, tc := range []struct{ name, value string }{
		{"changelog_gc", "maybe"}, {"changelog_max_idle_time", "0"}, {"changelog_max_idle_time", "2147483648"},
		{"changelog_min_gc_interval", "0"}, {"changelog_max_idle_indexes", "-1"}, {"changelog_bogus", "1"},
	} {
		before := e.log.Settings()
		err := e.log.UpdateSettings(func(s *Settings) error { return s.SetParam(tc.name, tc.value) })
		if !errors.Is(err, changelog.ErrBadParam) || !strings.Contains(err.Error(), tc.value) {
			t.Errorf("%s=%s: %v", tc.name, tc.value, err)
		}
		if e.log.Settings() != before {
			t.Errorf("%s=%s changed settings", tc.name, tc.value)
		}
	}
	e.restart()
	if s := e.log.Settings(); s.MaxRecords != 1000 || s.MinGCInterval != 2*time.Second {
		t.Fatalf("settings not persisted: %+v", s)
	}
}

func TestDefaults(t *testing.T) {
	s := DefaultSettings()
	for name, want := range map[string]string{
		"changelog_gc": "1", "changelog_max_idle_time": "2592000", "changelog_max_idle_indexes": "2097446912",
		"changelog_min_gc_interval": "3600", "changelog_mask": "MARK ",
	} {
		if got, _ := s.Param(name); got != want {
			t.Errorf("default %s = %q, want %q", name, got, want)
		}
	}
}

type quietLogger struct{}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}
