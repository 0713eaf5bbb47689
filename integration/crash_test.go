package integration

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fidlog/fidlog/changelog"
	"github.com/fidlog/fidlog/fid"
	changelogv1 "github.com/fidlog/fidlog/proto/lustre/changelog/v1"
	commonv1 "github.com/fidlog/fidlog/proto/lustre/common/v1"
	mdtv1 "github.com/fidlog/fidlog/proto/lustre/mdt/v1"
)

func fidOf(f *commonv1.Fid) fid.FID {
	return fid.FID{Seq: f.GetSeq(), Oid: f.GetOid(), Ver: f.GetVer()}
}

func envIntDefault(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// follower is a consumer that follows the changelog from its own cleared
// point, clears as it goes, and reconnects across server restarts. It
// checks it never skips an index: re-reading what it had not cleared is
// allowed, skipping is not.
type follower struct {
	t       *testing.T
	user    string
	mu      sync.Mutex
	seen    changelog.Index // highest index seen in order
	cleared changelog.Index
	errs    []string
	creates map[string]fid.FID // "<parent FID>/<name>" -> target FID of CREAT records
}

func (f *follower) run(ctx context.Context, target func() *Conn) {
	for ctx.Err() == nil {
		c := target()
		if c == nil {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		f.once(ctx, c)
		time.Sleep(20 * time.Millisecond)
	}
}

func (f *follower) once(ctx context.Context, c *Conn) {
	st, err := c.CL.Read(c.Ctx(ctx), &changelogv1.ReadRequest{Device: device, Follow: true, User: f.user, FromUserPoint: true, Raw: true})
	if err != nil {
		return
	}
	for {
		resp, err := st.Recv()
		if err != nil {
			return
		}
		var last changelog.Index
		for _, raw := range resp.GetRawRecords() {
			r, err := changelog.Decode(raw)
			if err != nil {
				f.fail("undecodable record: %v", err)
				return
			}
			f.mu.Lock()
			if r.Index > f.seen+1 {
				f.errs = append(f.errs, fmt.Sprintf("follower skipped from %d to %d", f.seen, r.Index))
			}
			if r.Index == f.seen+1 {
				f.seen = r.Index
			}
			if r.Type == changelog.CLCreate {
				f.creates[r.PFID.String()+"/"+r.Name] = r.TFID
			}
			f.mu.Unlock()
			last = r.Index
		}
		if last != 0 && rand.IntN(4) == 0 {
			if _, err := c.CL.Clear(c.Ctx(ctx), &changelogv1.ClearRequest{Device: device, User: f.user, EndRecord: uint64(last)}); err == nil {
				f.mu.Lock()
				f.cleared = max(f.cleared, last)
				f.mu.Unlock()
			}
		}
	}
}

func (f *follower) fail(format string, args ...any) {
	f.mu.Lock()
	f.errs = append(f.errs, fmt.Sprintf(format, args...))
	f.mu.Unlock()
}

// TestKillNine kills mdtd with SIGKILL at random moments under 32
// concurrent writers, repeatedly, and checks after each restart: every
// acknowledged create has its namespace entry and its CREAT record, indices
// are contiguous, the current index never goes back, the consumer and its
// point are intact, no FID is reused; a following consumer that clears as it
// goes never skips an index.
func TestKillNine(t *testing.T) {
	iters := envIntDefault("FIDLOG_CRASH_ITERS", 6)
	s := StartServer(t, shortTempDir(t))
	c := Dial(t, s, 0, 0)
	ctx := context.Background()
	reg, err := c.CL.Register(c.Ctx(ctx), &changelogv1.RegisterRequest{Device: device, Name: "crash"})
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	user := reg.GetDisplayName()
	// Checkpoints often enough that the kills fall between some of them,
	// and that what a restart retains (the records the follower had not
	// cleared: 0-128 since creates got cheaper, 239-954 before) often
	// holds one.
	MustRun(t, s, "lctl", "set_param", "mdd."+device+".changelog_checkpoint_records=50")
	pub, err := changelog.ParsePublicKey(getParam(t, s, "mdd."+device+".changelog_pubkey"))
	if err != nil {
		t.Fatal(err)
	}
	var chain changelog.VerifySummary
	// Checkpoints verified over all restarts: the follower clears (and
	// the log purges) as it goes, so what one restart retains may hold
	// none of the checkpoints.
	var verified uint64
	const writers = 32
	dirFID := make([]fid.FID, writers)
	for w := range writers {
		resp, err := c.NS.Mkdir(c.Ctx(ctx), &mdtv1.MkdirRequest{Path: []byte(fmt.Sprintf("w%d", w)), Mode: 0o755})
		if err != nil {
			t.Fatalf("mkdir: %v", err)
		}
		dirFID[w] = fidOf(resp.GetAttr().GetFid())
	}
	type ack struct {
		key  string // "<parent FID>/<name>"
		path string
		f    fid.FID
	}
	var everAcked []ack

	var connMu sync.Mutex
	cur := c
	getConn := func() *Conn { connMu.Lock(); defer connMu.Unlock(); return cur }
	fctx, fcancel := context.WithCancel(ctx)
	fol := &follower{t: t, user: user, creates: map[string]fid.FID{}}
	var fwg sync.WaitGroup
	fwg.Go(func() { fol.run(fctx, getConn) })

	allFIDs := map[fid.FID]string{}
	var prevCurrent uint64
	rng := rand.New(rand.NewPCG(7, uint64(time.Now().UnixNano())))
	for it := range iters {
		// Each writer records every create acknowledged to it, up to
		// the one in flight when the server died; all of them are
		// checked after the restart, including those acknowledged in the
		// last instant before the kill (no copy is taken before it).
		ackedBy := make([][]ack, writers)
		var stop atomic.Bool
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				for i := 0; !stop.Load(); i++ {
					name := fmt.Sprintf("it%d-%d", it, i)
					p := fmt.Sprintf("w%d/%s", w, name)
					resp, err := c.NS.Create(c.Ctx(ctx), &mdtv1.CreateRequest{Path: []byte(p), Mode: 0o644, Exclusive: true})
					if err != nil {
						return // the server died
					}
					ackedBy[w] = append(ackedBy[w], ack{dirFID[w].String() + "/" + name, p, fidOf(resp.GetAttr().GetFid())})
				}
			})
		}
		time.Sleep(time.Duration(100+rng.IntN(400)) * time.Millisecond)
		s.Kill()
		stop.Store(true)
		wg.Wait() // every writer has seen its last reply (or the failure)
		var mustHave []ack
		for _, a := range ackedBy {
			mustHave = append(mustHave, a...)
		}
		if len(mustHave) == 0 {
			t.Fatalf("iteration %d: no create was acknowledged before the kill", it)
		}

		s.Restart()
		connMu.Lock()
		c = Dial(t, s, 0, 0)
		cur = c
		connMu.Unlock()

		// Every acknowledged create: entry with the same FID, and a record.
		st, err := c.CL.Read(c.Ctx(ctx), &changelogv1.ReadRequest{Device: device, Raw: true})
		if err != nil {
			t.Fatal(err)
		}
		var prev changelog.Index
		for {
			resp, err := st.Recv()
			if err != nil {
				break
			}
			for _, raw := range resp.GetRawRecords() {
				r, err := changelog.Decode(raw)
				if err != nil {
					t.Fatal(err)
				}
				if prev != 0 && r.Index != prev+1 {
					t.Fatalf("iteration %d: index gap %d -> %d", it, prev, r.Index)
				}
				prev = r.Index
			}
		}
		// The hash chain and the signed checkpoints verify after the
		// kill, from the first retained record (the follower's clears
		// purge as it goes).
		chain = verifyChain(t, c, pub)
		verified += chain.Checkpoints
		gs, err := c.CL.GetState(c.Ctx(ctx), &changelogv1.GetStateRequest{Device: device})
		if err != nil {
			t.Fatal(err)
		}
		if gs.GetCurrentIndex() < prevCurrent {
			t.Fatalf("iteration %d: current index went back %d -> %d", it, prevCurrent, gs.GetCurrentIndex())
		}
		if prev != 0 && uint64(prev) != gs.GetCurrentIndex() {
			t.Fatalf("iteration %d: last record %d != current index %d", it, prev, gs.GetCurrentIndex())
		}
		prevCurrent = gs.GetCurrentIndex()
		fol.mu.Lock()
		cleared := fol.cleared
		fol.mu.Unlock()
		for _, a := range mustHave {
			sr, err := c.NS.Stat(c.Ctx(ctx), &mdtv1.StatRequest{Path: []byte(a.path)})
			if err != nil {
				t.Fatalf("iteration %d: acknowledged create %s lost: %v", it, a.path, err)
			}
			if got := fidOf(sr.GetAttr().GetFid()); got != a.f {
				t.Fatalf("iteration %d: %s has FID %s, acknowledged %s", it, a.path, got, a.f)
			}
			if prevName, dup := allFIDs[a.f]; dup && prevName != a.path {
				t.Fatalf("FID %s reused: %s and %s", a.f, prevName, a.path)
			}
			allFIDs[a.f] = a.path
		}
		lu, err := c.CL.ListUsers(c.Ctx(ctx), &changelogv1.ListUsersRequest{Device: device})
		if err != nil {
			t.Fatal(err)
		}
		if len(lu.GetUsers()) != 1 || lu.GetUsers()[0].GetDisplayName() != user || lu.GetUsers()[0].GetIndex() < uint64(cleared) {
			t.Fatalf("iteration %d: users %v, want %s at >= %d", it, lu.GetUsers(), user, cleared)
		}
		everAcked = append(everAcked, mustHave...)
	}
	// Let the follower catch up with the final state, then check it.
	deadline := time.Now().Add(20 * time.Second)
	for {
		fol.mu.Lock()
		seen := fol.seen
		fol.mu.Unlock()
		if uint64(seen) >= prevCurrent || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	fcancel()
	fwg.Wait()
	if verified == 0 {
		t.Fatalf("no signed checkpoint verified in %d restarts (last: %+v)", iters, chain)
	}
	fol.mu.Lock()
	defer fol.mu.Unlock()
	if len(fol.errs) > 0 {
		t.Fatalf("follower: %v", fol.errs)
	}
	if uint64(fol.seen) < prevCurrent {
		t.Fatalf("follower saw up to %d, current index %d", fol.seen, prevCurrent)
	}
	// Every acknowledged create reached the consumer with its FID.
	for _, a := range everAcked {
		if got, ok := fol.creates[a.key]; !ok || got != a.f {
			t.Fatalf("acknowledged create %s (%s): consumer saw %v %v", a.path, a.f, got, ok)
		}
	}
}

// verifyChain streams the log's chain (anchor, records, checkpoints) and
// verifies it against pub up to the durable index.
func verifyChain(t *testing.T, c *Conn, pub ed25519.PublicKey) changelog.VerifySummary {
	t.Helper()
	ctx := context.Background()
	gs, err := c.CL.GetState(c.Ctx(ctx), &changelogv1.GetStateRequest{Device: device})
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.CL.Read(c.Ctx(ctx), &changelogv1.ReadRequest{Device: device, Raw: true, Chain: true})
	if err != nil {
		t.Fatal(err)
	}
	v := changelog.NewVerifier(pub)
	for {
		resp, err := st.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("chain read: %v", err)
		}
		for _, raw := range resp.GetRawRecords() {
			if err := v.Item(raw); err != nil {
				t.Fatalf("chain after restart: %v", err)
			}
		}
	}
	if err := v.End(changelog.Index(gs.GetDurableIndex())); err != nil {
		t.Fatalf("chain after restart: %v", err)
	}
	return v.Summary()
}
