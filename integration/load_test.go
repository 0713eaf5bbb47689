package integration

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/fidlog/fidlog/changelog"
	changelogv1 "github.com/fidlog/fidlog/proto/lustre/changelog/v1"
	mdtv1 "github.com/fidlog/fidlog/proto/lustre/mdt/v1"
)

// rssKiB reads a process's resident set size.
func rssKiB(t *testing.T, pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}

// TestLoad runs 64 writers and 8 following consumers (one of them slow)
// for a bounded time, with a dead consumer that never clears and a
// retained-records cap: no consumer misses or duplicates a record, writers
// keep going while a consumer is slow, memory stays bounded, and the dead
// consumer is evicted by GC before it fills the disk.
func TestLoad(t *testing.T) {
	secs := envIntDefault("FIDLOG_LOAD_SECONDS", 4)
	s := StartServer(t, shortTempDir(t))
	c := Dial(t, s, 0, 0)
	ctx := context.Background()
	const writers, followers, capRecords, writeRate = 64, 8, 8000, 3000
	const clearEvery, clearInterval = 500, 100 * time.Millisecond

	users := make([]string, followers)
	for i := range followers {
		r, err := c.CL.Register(c.Ctx(ctx), &changelogv1.RegisterRequest{Device: device, Name: fmt.Sprintf("f%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		users[i] = r.GetDisplayName()
	}
	dead, err := c.CL.Register(c.Ctx(ctx), &changelogv1.RegisterRequest{Device: device, Name: "dead"})
	if err != nil {
		t.Fatal(err)
	}
	setParam(t, c, "mdd."+device+".changelog_max_records", strconv.Itoa(capRecords))
	for w := range writers {
		if _, err := c.NS.Mkdir(c.Ctx(ctx), &mdtv1.MkdirRequest{Path: []byte(fmt.Sprintf("w%d", w)), Mode: 0o755}); err != nil {
			t.Fatal(err)
		}
	}

	fctx, fcancel := context.WithCancel(ctx)
	defer fcancel()
	var fwg sync.WaitGroup
	type fstate struct {
		mu      sync.Mutex
		next    changelog.Index // next index expected
		records int
		err     string
	}
	states := make([]*fstate, followers)
	for i := range followers {
		st := &fstate{}
		states[i] = st
		slow := i == 0
		fwg.Go(func() {
			fc := Dial(t, s, 0, 0)
			stream, err := fc.CL.Read(fc.Ctx(fctx), &changelogv1.ReadRequest{Device: device, Follow: true, User: users[i], FromUserPoint: true, Raw: true})
			if err != nil {
				st.err = err.Error()
				return
			}
			var cleared changelog.Index
			clearedAt := time.Now()
			for {
				resp, err := stream.Recv()
				if err != nil {
					if fctx.Err() == nil {
						st.mu.Lock()
						st.err = err.Error()
						st.mu.Unlock()
					}
					return
				}
				var last changelog.Index
				for _, raw := range resp.GetRawRecords() {
					idx, _ := changelog.PeekIndex(raw)
					st.mu.Lock()
					if st.next != 0 && idx != st.next && st.err == "" {
						st.err = fmt.Sprintf("%s expected index %d, got %d", users[i], st.next, idx)
					}
					st.next = idx + 1
					st.records++
					st.mu.Unlock()
					last = idx
				}
				// Clear as consumers do (Robinhood, lfs changelog_clear
				// from scripts): in batches, not after every message. A
				// clear is a durable write; one per message made a follower
				// spend over half its time in fsyncs on a loaded machine,
				// and fall behind by the cap.
				if last != 0 && (last-cleared >= clearEvery || time.Since(clearedAt) >= clearInterval) {
					if _, err := fc.CL.Clear(fc.Ctx(fctx), &changelogv1.ClearRequest{Device: device, User: users[i], EndRecord: uint64(last)}); err != nil && fctx.Err() == nil {
						st.mu.Lock()
						st.err = "clear: " + err.Error()
						st.mu.Unlock()
						return
					}
					cleared, clearedAt = last, time.Now()
				}
				if slow {
					// Slow per record (as a real consumer is): 50 µs a
					// record, a fraction of the write rate's headroom.
					time.Sleep(time.Duration(len(resp.GetRawRecords())) * 50 * time.Microsecond)
				}
			}
		})
	}

	var ops, failures atomic.Int64
	var wg sync.WaitGroup
	// Write for at least secs and until well past the cap, so the dead
	// consumer must be evicted however slow the machine is; bounded by
	// hardDeadline.
	start := time.Now()
	minEnd, hardDeadline := start.Add(time.Duration(secs)*time.Second), start.Add(2*time.Minute)
	var stop atomic.Bool
	// The writers share a rate the followers can sustain on a loaded
	// 2-core machine: a live follower lagging by the cap is evicted, as it
	// should be, so an unthrottled write rate would make the test about
	// the machine's speed rather than about the dead consumer.
	limit := rate.NewLimiter(writeRate, writers)
	maxRSS := 0
	for w := range writers {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				if err := limit.Wait(ctx); err != nil {
					failures.Add(1)
					return
				}
				if _, err := c.NS.Create(c.Ctx(ctx), &mdtv1.CreateRequest{Path: []byte(fmt.Sprintf("w%d/f%d", w, i)), Mode: 0o644}); err != nil {
					failures.Add(1)
					continue
				}
				ops.Add(1)
			}
		})
	}
	for now := time.Now(); now.Before(minEnd) || (ops.Load() < 2*capRecords && now.Before(hardDeadline)); now = time.Now() {
		maxRSS = max(maxRSS, rssKiB(t, s.cmd.Process.Pid))
		time.Sleep(200 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	cur := currentIndex(t, c)
	// Let the followers drain.
	drain := time.Now().Add(30 * time.Second)
	for {
		behind := false
		for _, st := range states {
			st.mu.Lock()
			if uint64(st.next) <= cur && st.err == "" {
				behind = true
			}
			st.mu.Unlock()
		}
		if !behind || time.Now().After(drain) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	fcancel()
	fwg.Wait()

	t.Logf("load: %d creates in %v by %d writers (%d failed), current index %d, max RSS %d MiB", ops.Load(), time.Since(start).Round(time.Second), writers, failures.Load(), cur, maxRSS/1024)
	if failures.Load() != 0 {
		t.Errorf("%d creates failed under load", failures.Load())
	}
	for i, st := range states {
		if st.err != "" {
			t.Errorf("follower %d: %s", i, st.err)
		}
		if uint64(st.next) != cur+1 {
			t.Errorf("follower %d (%s) ended at %d, current index %d", i, users[i], st.next, cur)
		}
	}
	// The dead consumer was evicted before it could hold more than the cap.
	lu, err := c.CL.ListUsers(c.Ctx(ctx), &changelogv1.ListUsersRequest{Device: device})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range lu.GetUsers() {
		if u.GetDisplayName() == dead.GetDisplayName() {
			t.Errorf("dead consumer %s still registered at index %d of %d", u.GetDisplayName(), u.GetIndex(), cur)
		}
	}
	if _, err := c.CL.Clear(c.Ctx(ctx), &changelogv1.ClearRequest{Device: device, User: dead.GetDisplayName()}); err == nil || !strings.Contains(err.Error(), "evicted") {
		t.Errorf("evicted consumer's clear: %v, want an eviction error naming it", err)
	}
	gs, _ := c.CL.GetState(c.Ctx(ctx), &changelogv1.GetStateRequest{Device: device})
	if retained := gs.GetCurrentIndex() - gs.GetFirstIndex() + 1; retained > capRecords {
		t.Errorf("%d records retained, cap %d", retained, capRecords)
	}
	if maxRSS > 1<<20 {
		t.Errorf("mdtd RSS reached %d MiB under load", maxRSS/1024)
	}
}
