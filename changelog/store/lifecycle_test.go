package store

import (
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/fidlog/fidlog/changelog"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestCloseAwaitsGoroutines: when Close returns, no goroutine of this
// package is left, even with the reclaimer woken by a large purge and
// waiting to compact (its cancellation watcher used to outlive Close).
func TestCloseAwaitsGoroutines(t *testing.T) {
	for range 20 {
		e := newEnv(t)
		e.register("", "")
		for i := range reclaimThreshold + 10 {
			e.op(changelog.CLCreate, "f"+strconv.Itoa(i))
		}
		if _, err := e.log.Clear("cl1", 0); err != nil {
			t.Fatal(err)
		}
		if err := e.log.Close(); err != nil {
			t.Fatal(err)
		}
		if s := goroutinesIn("changelog/store.(*Log)"); s != "" {
			t.Fatalf("goroutines of the log left after Close:\n%s", s)
		}
		e.close()
	}
}

// goroutinesIn returns the stacks of the goroutines with a frame
// containing fn.
func goroutinesIn(fn string) string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, fn) && !strings.Contains(g, "TestCloseAwaitsGoroutines") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}

// TestAppendedEventOutsideLock: the Appended event (metrics, on every
// write) runs after the log's lock is released, so a callback may read the
// log's state; under the lock it deadlocked.
func TestAppendedEventOutsideLock(t *testing.T) {
	e := newEnv(t)
	e.close()
	var l *Log
	seen := make(chan State, 16)
	e.opts.Events.Appended = func(recs []*changelog.Record) { seen <- l.State() }
	e.open()
	l = e.log
	e.register("", "")
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.op(changelog.CLCreate, "a")
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("commit blocked: Appended runs under the log's lock")
	}
	if st := <-seen; st.Current != 1 {
		t.Fatalf("Appended saw current index %d, want 1", st.Current)
	}
}

// TestStateChangesReported: every change that starts a new time-record
// epoch in the MDT is reported, in order.
func TestStateChangesReported(t *testing.T) {
	e := newEnv(t)
	e.close()
	var got []StateChange
	e.opts.OnStateChange = func(c StateChange) { got = append(got, c) }
	e.open()
	e.register("", "")
	e.op(changelog.CLCreate, "a")
	if _, err := e.log.Clear("cl1", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := e.log.Clear("cl1", 0); err != nil { // nothing to purge
		t.Fatal(err)
	}
	if _, err := e.log.Deregister("cl1", false); err != nil {
		t.Fatal(err)
	}
	want := []StateChange{ChangelogOn, RecordsPurged, UserCleared, UserCleared, UserRemoved, ChangelogOff}
	if len(got) != len(want) {
		t.Fatalf("changes %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("changes %v, want %v", got, want)
		}
	}
}
